"""A run's page: metrics against the baseline, per class, confusion, curves, videos, settings."""

from __future__ import annotations

import csv
from pathlib import Path

from vidseq.errors import UsageError
from vidseq.sequence.report.charts import line_chart
from vidseq.sequence.report.filmstrip import display_size, thumb_size
from vidseq.sequence.report.pages import as_text, render
from vidseq.sequence.report.run_videos import run_videos
from vidseq.sequence.runs import run_dir as rd
from vidseq.sequence.runs.report_files import read_json


def read_history(path):
    """history.csv as a list of dicts of floats (``epoch`` as int); [] when absent."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return []
    out = []
    for row in rows:
        values = {k: float(v) if v not in ("", None) else None for k, v in row.items()}
        values["epoch"] = int(values.get("epoch") or len(out) + 1)
        out.append(values)
    return out


def curves(history):
    """The loss and accuracy charts (SVG) of a history."""
    if not history:
        return []
    epochs = [row["epoch"] for row in history]
    charts = []
    for key, y_range in (("loss", None), ("accuracy", (0.0, 1.0))):
        series = {
            label: [row.get(prefix + key) for row in history]
            for prefix, label in (("", "training"), ("val_", "validation"))
            if any(row.get(prefix + key) is not None for row in history)
        }
        if series:
            charts.append(line_chart(f"{key} per epoch", epochs, series, y_range=y_range))
    return charts


def cards(metrics):
    """The headline figures: accuracy against the bag-of-frames baseline, F1, top-5, clips."""
    baseline = metrics.get("baseline")
    out = [
        {
            "label": "accuracy",
            "value": f"{metrics['accuracy']:.3f}",
            "note": f"{metrics.get('clips', 1)} clip(s) per video",
        },
        {
            "label": "bag-of-frames baseline",
            "value": f"{baseline['accuracy']:.3f}" if baseline else "not fitted",
            "note": "mean-pooled features, no temporal order"
            if baseline
            else "`vidseq evaluate RUN` fits it",
        },
        {"label": "F1 macro", "value": f"{metrics['f1_macro']:.3f}", "note": "all classes alike"},
    ]
    if baseline:
        gain = metrics["accuracy"] - baseline["accuracy"]
        out.insert(2, {"label": "gain over baseline", "value": f"{gain:+.3f}", "note": "accuracy"})
    if "top5_accuracy" in metrics:
        out.append(
            {"label": "top-5 accuracy", "value": f"{metrics['top5_accuracy']:.3f}", "note": ""}
        )
    if "single_clip_accuracy" in metrics:
        out.append(
            {
                "label": "1-clip accuracy",
                "value": f"{metrics['single_clip_accuracy']:.3f}",
                "note": "",
            }
        )
    return out


def settings(config, metrics, run_dir):
    """``(name, text)`` rows: backbone, sampling, head, recipe, and where the cache and run are."""
    head = config["head"]
    rows = [
        ("run directory", str(Path(run_dir).resolve())),
        ("cache", as_text(metrics.get("cache") or config.get("cache_path") or config.get("data"))),
        (
            "model",
            "end-to-end (fine-tuned CNN)"
            if rd.is_end_to_end(config)
            else "head on cached features",
        ),
        ("backbone", f"{config['backbone']} (weights {config['weights']})"),
        ("weights sha256", str(config["weights_sha256"])),
        ("input size", as_text(config["input_size"])),
        ("sampling", as_text(config["sampling"])),
        ("frames read", str(config["frames"])),
        ("head", f"{head.get('head')} {as_text(head.get('options', {}))}"),
        ("centering, normalize", f"{head.get('centering')}, {head.get('normalize')}"),
        ("recipe", as_text(config.get("train", {}))),
        ("splits", as_text(config.get("splits", {}))),
        ("evaluated", f"{metrics.get('split')} split, {metrics['num_videos']} videos"),
    ]
    return rows


def run_page(run_dir, *, max_videos):
    """The HTML of a run's page and its warnings.

    Args:
        run_dir: A finished run directory.
        max_videos: At most this many videos shown.

    Returns:
        ``(html, warnings, facts)``: facts holds ``videos_shown``, ``missing``
        and ``misclassified``.

    Raises:
        UsageError: Not a run directory, or a run without metrics.json.
    """
    run_dir = Path(run_dir)
    config = rd.read_run_config(run_dir)
    metrics_path = run_dir / rd.METRICS_FILE
    if not metrics_path.is_file():
        raise UsageError(
            f"{metrics_path}: missing; the run is not finished (resume it, or "
            "`vidseq evaluate RUN`)"
        )
    metrics = read_json(metrics_path, "metrics file")
    videos = run_videos(run_dir, config, metrics, max_videos)
    names = list(metrics["class_names"])
    per_class = [{"name": n, **metrics["per_class"][n]} for n in names]
    html = render(
        "run.html",
        title=f"{run_dir.resolve().name}: {config['head'].get('head')} on {config['backbone']}",
        subtitle=f"{run_dir.resolve()} · {len(names)} classes",
        warnings=videos.warnings,
        split=metrics.get("split", "?"),
        num_videos=metrics["num_videos"],
        cards=cards(metrics),
        per_class=per_class,
        class_names=names,
        confusion=metrics["confusion_matrix"],
        cells=videos.cells,
        shown={v["index"] for v in videos.wrong + videos.unsure},
        curves=curves(read_history(run_dir / rd.HISTORY_FILE)),
        wrong=videos.wrong,
        unsure=videos.unsure,
        num_wrong=videos.num_wrong,
        predictions_missing=videos.predictions_missing,
        any_weights=any(
            f["weight"] is not None
            for v in videos.wrong + videos.unsure
            for f in v["strip"]["frames"]
        ),
        thumb=display_size(thumb_size(config["input_size"])),
        settings=settings(config, metrics, run_dir),
    )
    facts = {
        "videos_shown": len(videos.wrong) + len(videos.unsure),
        "missing": videos.missing,
        "misclassified": videos.num_wrong,
    }
    warnings = list(videos.warnings)
    if videos.predictions_missing:
        warnings.append(videos.predictions_missing)
    return html, warnings, facts
