"""Peak memory of a finetune epoch on a small and a 10x larger generated dataset.

finetune decodes raw frames batch by batch in background threads (a bounded
queue of batches), so its memory should not grow with the dataset. This script
builds two sample datasets (make-sample), extracts tiny-CNN features, trains a
feature run on each, then runs one finetune epoch per dataset in a fresh Python
process and prints that process's peak resident set size (``ru_maxrss``).

Usage::

    python bench/finetune_memory.py [--videos-per-class 8] [--factor 10] [--workdir DIR]

A figure, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CHILD = textwrap.dedent(
    """
    import resource, sys, time
    from vidseq.sequence.config import FinetuneConfig, FitConfig
    from vidseq.sequence.train.finetune import finetune
    start = time.perf_counter()
    result = finetune(sys.argv[1], sys.argv[2], FinetuneConfig(
        fit=FitConfig(epochs=1, batch_size=8), unfreeze=2, augment=True, workers=2), verbose=0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{result.splits['train']} {peak:.1f} {time.perf_counter() - start:.1f}")
    """
)


def prepare(root: Path, videos_per_class: int) -> Path:
    """make-sample → tiny features → a 1-epoch feature run; returns the run directory."""
    from vidseq.extract.pipeline import extract_features
    from vidseq.extract.sources.sample_data import make_sample
    from vidseq.sequence.config import FitConfig, HeadConfig, TrainConfig
    from vidseq.sequence.train.training import train_sequence

    sample = make_sample(root / "sample", videos_per_class=videos_per_class, overwrite=True)
    cache = extract_features(
        sample, root / "features.h5", backbone="tiny", progress=False, overwrite=True
    ).out
    config = TrainConfig(
        head=HeadConfig(units=8), fit=FitConfig(epochs=1, batch_size=16, patience=0)
    )
    return train_sequence(cache, root / "run", config, overwrite=True, verbose=0).run_dir


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos-per-class", type=int, default=8)
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the bench runs")
    args = parser.parse_args(argv)
    if args.smoke:  # a few seconds; its figures mean nothing
        args.videos_per_class, args.factor = 6, 2  # 3 groups: one for test, two to train
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="vidseq-ftmem-"))
    rows = []
    for label, per_class in (
        ("small", args.videos_per_class),
        (f"{args.factor}x", args.videos_per_class * args.factor),
    ):
        root = workdir / label
        root.mkdir(parents=True, exist_ok=True)
        run = prepare(root, per_class)
        out = root / "finetuned"
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(run), str(out)],
            capture_output=True,
            text=True,
            check=True,
        )
        videos, peak, seconds = proc.stdout.strip().splitlines()[-1].split()
        rows.append((label, int(videos), float(peak), float(seconds)))
        print(
            f"{label:>5}: {videos:>4} training videos, peak RSS {float(peak):7.1f} MiB, "
            f"finetune {float(seconds):.1f} s (process {time.perf_counter() - started:.1f} s)"
        )
    ratio = rows[1][2] / rows[0][2]
    scale = rows[1][1] / rows[0][1]
    print(f"peak RSS ratio {rows[1][0]} / small = {ratio:.3f} (dataset x{scale:.1f})")


if __name__ == "__main__":
    main()
