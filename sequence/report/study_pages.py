"""The pages of a head comparison (``comparison.json``) and of a tuning study (``tune.json``).

A compare directory is what ``vidseq compare`` writes; a tune directory holds
``tune.json`` (the study's settings and best trial), ``trials.csv`` (one row per
trial) and ``best/`` (the best trial's run). Each run that has its own page
(``report.html``) is linked.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from vidseq.errors import UsageError
from vidseq.sequence.report.charts import bar_chart
from vidseq.sequence.report.pages import as_text, render
from vidseq.sequence.runs.report_files import read_json
from vidseq.sequence.runs.run_dir import REPORT_PAGE

COMPARE_FILE = "comparison.json"
TUNE_FILE = "tune.json"
TRIALS_FILE = "trials.csv"
OBJECTIVE_COLUMNS = ("value", "accuracy", "val_accuracy", "objective")
RUN_COLUMNS = ("run", "run_dir", "path")


def page_link(study_dir, run_dir):
    """The relative link from ``study_dir`` to ``run_dir``'s page, or None when it has none.

    ``run_dir`` may be absolute, relative to ``study_dir``, or as recorded from
    another working directory (then it is looked for under ``study_dir/runs``).
    """
    run = Path(run_dir)
    candidates = (
        [run]
        if run.is_absolute()
        else [Path(study_dir, run), Path(study_dir, "runs", run.name), run]
    )
    page = next((c / REPORT_PAGE for c in candidates if (c / REPORT_PAGE).is_file()), None)
    if page is None:
        return None
    return Path(os.path.relpath(page.resolve(), Path(study_dir).resolve())).as_posix()


def _cell(text, value=None, href=None):
    return {"text": text, "value": value, "href": href}


def _settings(data, skip=()):
    return [(key, as_text(value)) for key, value in data.items() if key not in skip]


def compare_page(study_dir):
    """The HTML of a compare directory's page, and its warnings."""
    study_dir = Path(study_dir)
    data = read_json(study_dir / COMPARE_FILE, "comparison file")
    rows, links, bars = [], [], []
    for name, head in data["heads"].items():
        ran = bool(head.get("accuracies"))
        per_seed = ", ".join(f"{a:.3f}" for a in head.get("accuracies", []))
        seconds = head.get("seconds") or [math.nan]
        rows.append(
            [
                _cell(name),
                _cell(f"{head['median']:.3f}" if ran else "failed", head["median"] if ran else -1),
                _cell(f"{head['min']:.3f}" if ran else "", head["min"] if ran else -1),
                _cell(f"{head['max']:.3f}" if ran else "", head["max"] if ran else -1),
                _cell(per_seed or (head.get("error") or "")),
                _cell(f"{head.get('params', 0):,}", head.get("params", 0)),
                _cell(f"{sum(seconds) / len(seconds):.1f}", sum(seconds) / len(seconds)),
            ]
        )
        if ran:
            bars.append((name, head["median"], head["min"], head["max"]))
        for run in head.get("runs", []):
            href = page_link(study_dir, run)
            if href:
                links.append((Path(run).name, href))
    base = data["baseline"]
    rows.append(
        [
            _cell("bag-of-frames baseline"),
            _cell(f"{base['median']:.3f}", base["median"]),
            _cell(f"{base['min']:.3f}", base["min"]),
            _cell(f"{base['max']:.3f}", base["max"]),
            _cell(", ".join(f"{a:.3f}" for a in base["accuracies"])),
            _cell(""),
            _cell(""),
        ]
    )
    split = data.get("split", "test")
    html = render(
        "study.html",
        title=f"Head comparison: {study_dir.resolve().name}",
        subtitle=f"{split} accuracy over seeds {data.get('seeds')} · cache {data.get('cache')}",
        warnings=[],
        table_title=f"{split} accuracy per head",
        chart=bar_chart(
            f"{split} accuracy (median, min-max)",
            bars,
            reference=base["median"],
            reference_label="bag-of-frames",
        ),
        columns=["head", "median", "min", "max", "per seed", "params", "s/run"],
        rows=rows,
        links=links,
        settings=_settings(data, skip=("heads", "baseline", "files")),
    )
    return html, [], {"runs_linked": len(links)}


def read_trials(path):
    """trials.csv as a list of dicts (text values); UsageError when absent or unreadable."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except OSError as e:
        raise UsageError(f"{path}: cannot read the trials of the study ({e})") from None


def _number(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _trial_rows(study_dir, trials, columns, run_column):
    rows, links = [], []
    for trial in trials:
        row = []
        for column in columns:
            text = trial.get(column) or ""
            href = page_link(study_dir, text) if column == run_column and text else None
            number = _number(text)
            row.append(_cell(f"{number:.4g}" if number is not None else text, number, href))
            if href:
                links.append((f"trial {trial.get('number', len(links))}: {text}", href))
        rows.append(row)
    return rows, links


def tune_page(study_dir):
    """The HTML of a tune directory's page, and its warnings."""
    study_dir = Path(study_dir)
    data = read_json(study_dir / TUNE_FILE, "tune file")
    if not isinstance(data, dict):
        raise UsageError(f"{study_dir / TUNE_FILE}: not a tune file (expected a JSON object)")
    trials = read_trials(study_dir / TRIALS_FILE)
    columns = list(trials[0]) if trials else []
    objective = next((c for c in OBJECTIVE_COLUMNS if c in columns), None)
    run_column = next((c for c in RUN_COLUMNS if c in columns), None)
    rows, links = _trial_rows(study_dir, trials, columns, run_column)
    best = page_link(study_dir, "best")
    if best:
        links.insert(0, ("best trial's run", best))
    bars = [
        (
            str(t.get("number", k)),
            _number(t[objective]),
            _number(t[objective]),
            _number(t[objective]),
        )
        for k, t in enumerate(trials)
        if objective and _number(t[objective]) is not None and 0 <= _number(t[objective]) <= 1
    ]
    warnings = [] if objective else [f"{TRIALS_FILE} has no objective column ({OBJECTIVE_COLUMNS})"]
    html = render(
        "study.html",
        title=f"Tuning study: {study_dir.resolve().name}",
        subtitle=f"{len(trials)} trials · objective {objective or 'unknown'}",
        warnings=warnings,
        table_title="Trials",
        chart=bar_chart(f"{objective or 'objective'} per trial", bars) if bars else "",
        columns=columns,
        rows=rows,
        links=links,
        settings=_settings(data),
    )
    return html, warnings, {"runs_linked": len(links)}
