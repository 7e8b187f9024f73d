"""vidseq compare: every head trained on the same splits and seeds, against the bag of frames.

:func:`compare` runs ``train_sequence`` once per head and seed, one run after
another in this process (so memory stays what one run takes, streamed or in
memory as ``train-sequence`` decides), evaluates each on the test split, fits
the order-blind bag-of-frames baseline on each seed's training split, and
writes ``comparison.json``, ``comparison.md``, ``comparison.png`` and the page
``report.html`` (each run gets its own page too). A head
that fails is recorded with its error; the others go on.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidseq.bounds import MAX_SEED, check_count
from vidseq.cache.files import absolute_cache_spec
from vidseq.cache.store import FeatureStore
from vidseq.errors import UsageError
from vidseq.outputs import atomic_output, check_output
from vidseq.sequence.config import COMPARE_HEADS, COMPARE_SEEDS, HEAD_TYPES, HeadConfig, TrainConfig
from vidseq.sequence.data.batches import StreamFeatures, mean_valid_features
from vidseq.sequence.data.split_indices import splits_of
from vidseq.sequence.heads.registry import head_options
from vidseq.sequence.report.build import report_after_training
from vidseq.sequence.runs import plots
from vidseq.sequence.runs import report_files as reports
from vidseq.sequence.runs.evaluation import bag_of_frames_baseline
from vidseq.sequence.runs.saved_run import load_run
from vidseq.sequence.train.finish import evaluation_split
from vidseq.sequence.train.training import train_sequence

BASELINE = "bag-of-frames"


@dataclass
class HeadRuns:
    """One head's runs: accuracy, parameters and seconds of each seed, or its error.

    Attributes:
        head: The head's name.
        accuracies: Test accuracy per seed, in seed order (the seeds that ran).
        params: Parameters of the model.
        seconds: Training seconds per seed.
        runs: The run directories.
        error: Why the head failed (None when every seed ran).
    """

    head: str
    accuracies: list = field(default_factory=list)
    params: int = 0
    seconds: list = field(default_factory=list)
    runs: list = field(default_factory=list)
    error: str | None = None

    def figures(self):
        """``{median, min, max}`` of the accuracies (NaN when none ran)."""
        acc = self.accuracies or [float("nan")]
        return {"median": statistics.median(acc), "min": min(acc), "max": max(acc)}


@dataclass
class ComparisonResult:
    """What :func:`compare` measured.

    Attributes:
        out_dir: Where the runs and the comparison files are.
        cache: The cache compared on.
        seeds: The seeds, in order.
        heads: One :class:`HeadRuns` per head, in the order asked.
        baseline: Bag-of-frames test accuracy per seed.
        split: The split evaluated (``"test"``, or ``"val"`` without test videos).
        files: The comparison files written.
    """

    out_dir: Path
    cache: str
    seeds: list
    heads: list
    baseline: list
    split: str = "test"
    files: list = field(default_factory=list)

    @property
    def failed(self):
        """``{head: error}`` of the heads that failed."""
        return {h.head: h.error for h in self.heads if h.error}

    def accuracies(self):
        """``{head: per-seed accuracies}``, and the baseline under ``"bag-of-frames"``."""
        return {**{h.head: list(h.accuracies) for h in self.heads}, BASELINE: list(self.baseline)}

    def summary(self):
        """One line per head (median, min-max, parameters, seconds) and the baseline."""
        lines = [f"{self.split} accuracy over seeds {self.seeds} ({self.out_dir}):"]
        for h in self.heads:
            if h.error:
                lines.append(f"  {h.head:12s} failed: {h.error}")
                continue
            f = h.figures()
            lines.append(
                f"  {h.head:12s} {f['median']:.3f} ({f['min']:.3f}-{f['max']:.3f}), "
                f"{h.params:,} params, {statistics.mean(h.seconds):.1f} s/run"
            )
        lines.append(f"  {BASELINE:12s} {statistics.median(self.baseline):.3f}")
        return "\n".join(lines)

    def to_dict(self):
        """JSON-ready form (what ``comparison.json`` holds)."""
        return {
            "out_dir": str(self.out_dir),
            "cache": self.cache,
            "split": self.split,
            "seeds": list(self.seeds),
            "heads": {h.head: {**dataclasses.asdict(h), **h.figures()} for h in self.heads},
            "baseline": {"accuracies": list(self.baseline), **_figures(self.baseline)},
            "files": [str(p) for p in self.files],
        }


def _figures(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def head_config(base, head):
    """``base`` (a :class:`HeadConfig`) for ``head``: the options it takes, centering, normalize."""
    accepted = head_options(head)
    options = {k: v for k, v in base.options().items() if k in accepted}
    return HeadConfig(
        head=head,
        centering=base.centering,
        normalize=base.normalize,
        clip_dropout=base.clip_dropout,
        **options,
    )


def _check(heads, seeds):
    heads, seeds = list(heads), list(seeds)
    if not heads or len(set(heads)) != len(heads):
        raise UsageError(f"heads must name distinct heads. Received: heads={heads!r}")
    for head in heads:
        if head not in HEAD_TYPES:
            raise UsageError(f"head must be one of {HEAD_TYPES}. Received: head={head!r}")
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise UsageError(f"seeds must be a non-empty list of integers. Received: seeds={seeds!r}")
    for seed in seeds:
        check_count("seeds", seed, low=0, high=MAX_SEED)
    return heads, seeds


def _baseline(cache, config, seeds):
    """Bag-of-frames accuracy per seed (each seed's training split, the evaluated split)."""
    with FeatureStore(cache) as store:
        everything = np.arange(len(store), dtype=np.int64)
        num_valid = np.asarray(store.num_valid, dtype=np.int64)
        means = mean_valid_features(StreamFeatures(store), everything, num_valid)
        labels = np.asarray(store.labels, dtype=np.int64)
        out, split = [], "test"
        for seed in seeds:
            keywords = {**config.split_keywords(), "seed": seed}
            splits = splits_of(store, **keywords, source=str(cache))
            split, indices = evaluation_split(splits)
            result = bag_of_frames_baseline(
                means[splits.train],
                labels[splits.train],
                means[indices],
                labels[indices],
                list(store.class_names),
                seed=seed,
            )
            out.append(float(result["accuracy"]))
    return out, split


def _run_head(cache, out_dir, config, head, seeds, verbose, log, report):
    """Trains and evaluates one head for every seed; a failure ends this head only."""
    runs = HeadRuns(head)
    for seed in seeds:
        run_config = dataclasses.replace(
            config,
            head=head_config(config.head, head),
            fit=dataclasses.replace(config.fit, seed=seed),
        )
        run_dir = Path(out_dir) / "runs" / f"{head}-seed{seed}"
        try:
            result = train_sequence(
                cache, run_dir, run_config, overwrite=True, verbose=verbose, report=report
            )
            runs.params = int(load_run(run_dir).model.count_params())
        except Exception as e:  # any failure of this head's run: report it, go on
            runs.error = f"seed {seed}: {type(e).__name__}: {e}".splitlines()[0]
            log(f"{head} seed {seed} failed: {runs.error}")
            return runs
        runs.accuracies.append(float(result.metrics["accuracy"]))
        runs.seconds.append(float(result.seconds))
        runs.runs.append(str(run_dir))
        log(f"{head} seed {seed}: accuracy {runs.accuracies[-1]:.3f} in {result.seconds:.1f} s")
    return runs


def compare(
    cache,
    out_dir,
    *,
    heads=COMPARE_HEADS,
    seeds=COMPARE_SEEDS,
    config=None,
    overwrite=False,
    verbose=0,
    log=None,
    report=True,
):
    """Trains every head with every seed on the same splits and compares them.

    Args:
        cache: A feature cache (or several read as one, as for ``train_sequence``).
        out_dir: Folder for ``runs/HEAD-seedS/`` and the comparison files.
        heads: Registered head names, in the order to report them.
        seeds: Seeds; seed ``s`` draws the same validation carve-out,
            initialisation and batches for every head.
        config: The :class:`~vidseq.sequence.config.TrainConfig` every run
            shares (default settings when None); its head options apply to
            the heads that take them, its seed is replaced by each seed.
        overwrite: Replace the runs and files of a non-empty ``out_dir``
            (without it a non-empty folder is refused before any work).
        verbose: Keras progress verbosity of each run.
        log: Called with one line per run (default: silent).
        report: Also write each run's page and the comparison's,
            ``out_dir/report.html`` (``vidseq report``).

    Returns:
        A :class:`ComparisonResult`; see its ``failed`` for heads that failed.

    Raises:
        UsageError: Unknown heads, bad seeds or settings, or a cache that is not one.
    """
    heads, seeds = _check(heads, seeds)
    config = (config or TrainConfig()).validate()
    log = log or (lambda line: None)
    inputs = [cache] if isinstance(cache, (str, os.PathLike)) else cache
    check_output(out_dir, inputs, overwrite=overwrite, folder=True, flag="out_dir")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    baseline, split = _baseline(cache, config, seeds)
    results = [_run_head(cache, out_dir, config, h, seeds, verbose, log, report) for h in heads]
    result = ComparisonResult(
        out_dir, str(absolute_cache_spec(cache)), seeds, results, baseline, split
    )
    result.files = write_comparison(result)
    if report:
        warnings = []
        page = report_after_training(out_dir, warnings)
        result.files += [page.path] if page else []
        for warning in warnings:
            log(f"warning: {warning}")
    return result


def comparison_table(result):
    """The Markdown table of ``comparison.md``."""
    lines = [
        f"| head | median | min | max | per seed ({', '.join(map(str, result.seeds))}) "
        "| params | s/run |",
        "|---|---|---|---|---|---|---|",
    ]
    for h in result.heads:
        if h.error and not h.accuracies:
            lines.append(f"| {h.head} | failed: {h.error} | | | | | |")
            continue
        f = h.figures()
        per_seed = ", ".join(f"{a:.3f}" for a in h.accuracies)
        lines.append(
            f"| {h.head} | {f['median']:.3f} | {f['min']:.3f} | {f['max']:.3f} | {per_seed} "
            f"| {h.params:,} | {statistics.mean(h.seconds):.1f} |"
        )
    b = _figures(result.baseline)
    per_seed = ", ".join(f"{a:.3f}" for a in result.baseline)
    lines.append(
        f"| {BASELINE} baseline | {b['median']:.3f} | {b['min']:.3f} | {b['max']:.3f} "
        f"| {per_seed} | | |"
    )
    return "\n".join(lines)


def write_comparison(result):
    """Writes comparison.json, comparison.md and comparison.png; returns their paths."""
    out = Path(result.out_dir)
    paths = [out / "comparison.json", out / "comparison.md", out / "comparison.png"]
    reports.write_json(paths[0], result.to_dict())
    with atomic_output(paths[1], "w", encoding="utf-8") as file:
        file.write(
            f"# Head comparison on {result.cache}\n\n{result.split} accuracy over seeds "
            f"{result.seeds}; training seconds per run.\n\n{comparison_table(result)}\n"
        )
    plot_comparison(paths[2], result)
    return paths


def plot_comparison(path, result):
    """Bars of the median accuracy per head, min-max whiskers, the baseline as a line."""
    ran = [h for h in result.heads if h.accuracies]
    figures = [h.figures() for h in ran]
    return plots.plot_bars(
        path,
        [h.head for h in ran],
        [f["median"] for f in figures],
        [f["min"] for f in figures],
        [f["max"] for f in figures],
        reference=statistics.median(result.baseline),
        reference_label=f"{BASELINE} baseline",
        ylabel=f"{result.split} accuracy (median, min-max over seeds)",
    )
