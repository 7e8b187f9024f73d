"""Benchmark: what writing the run's report.html costs, against the demo that trains the run.

Runs ``vidseq demo`` (``run_demo``: make-sample, extract with the tiny CNN,
train, evaluate, report, predict) into a temporary folder, then writes the
run's page again ``--repeats`` times, and prints the demo's wall time, the
median report time (each stage timed in this one process, side by side) and
their ratio, with the page's size and the videos it shows. The target is a
report under 10% of the demo. ``--smoke`` runs a smaller pipeline instead
of the demo (2 classes of 6 sample videos, 2 epochs) to check the script.
Usage::

    python bench/report_cost.py [--repeats 3] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def smoke_run(root):
    """A small sample → cache → run pipeline (no report); returns the run directory."""
    from vidseq.extract.decode.framespec import FrameSpec
    from vidseq.extract.decode.sampling import SamplingConfig
    from vidseq.extract.pipeline import extract_features
    from vidseq.extract.sources.sample_data import make_sample
    from vidseq.sequence.config import TrainConfig
    from vidseq.sequence.train.training import train_sequence

    sample = make_sample(root / "sample", videos_per_class=6, classes=["Grow", "Shrink"])
    cache = extract_features(
        sample,
        root / "features.h5",
        backbone="tiny",
        weights="none",
        frames=FrameSpec(SamplingConfig(num_frames=8)),
        progress=False,
    ).out
    config = TrainConfig.from_dict({"epochs": 2, "units": 8})
    return train_sequence(cache, root / "run", config, verbose=0, report=False).run_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="a small pipeline, not the demo")
    args = parser.parse_args(argv)

    from vidseq.sequence.report.build import report
    from vidseq.sequence.studies.demo import run_demo

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        if args.smoke:
            run = smoke_run(Path(tmp))
            what = "smoke pipeline (sample, extract, train)"
        else:
            run = run_demo(Path(tmp) / "demo", log=lambda line: None).run
            what = "vidseq demo (its own report included)"
        pipeline = time.perf_counter() - start
        results = [report(run) for _ in range(max(1, args.repeats))]
    seconds = statistics.median(r.seconds for r in results)
    last = results[-1]
    print(f"{what}: {pipeline:.1f} s")
    print(
        f"report.html: {seconds:.2f} s median of {len(results)} "
        f"({last.bytes / 1e6:.2f} MB, {last.facts['videos_shown']} videos shown)"
    )
    print(f"report / pipeline: {100 * seconds / pipeline:.1f}% (target < 10%)")


if __name__ == "__main__":
    main()
