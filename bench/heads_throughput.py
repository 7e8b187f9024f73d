"""Benchmark: each temporal head's training time per epoch, in memory and streamed.

Builds (or reuses) the synthetic UCF-101-shaped cache of
``bench/train_throughput.py`` (its ``build_cache``: class means plus noise,
float16, written through ``CacheWriter``); by default a tenth of UCF-101
(1,332 videos) so that a run takes minutes, ``--videos 13320`` for the full
size. For every head, ``train_sequence`` runs 2 epochs with the default recipe
(batch 16, features standardised) with ``streaming="memory"`` and with
``streaming="stream"``; the second epoch's seconds (tracing excluded) are
printed with videos/s and the ratio streamed/in-memory. Figures are printed,
never asserted. Usage::

    python bench/heads_throughput.py [--workdir DIR] [--videos 1332] [--frames 16]
        [--dim 2048] [--heads lstm,gru,tcn,transformer,attention,pool]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from train_throughput import ready_cache  # bench/ is the script's directory

HEADS = ("lstm", "gru", "tcn", "transformer", "attention", "pool")


def epoch_seconds(cache, out, head, streaming):
    """(seconds of the second epoch, training videos, parameters) of one head."""
    import keras

    from vidseq.sequence.config import FitConfig, HeadConfig, TrainConfig
    from vidseq.sequence.runs.saved_run import load_run
    from vidseq.sequence.train.training import train_sequence

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start

    timer = EpochTimer()
    config = TrainConfig(
        head=HeadConfig(head=head), fit=FitConfig(epochs=2, seed=0), streaming=streaming
    )
    result = train_sequence(cache, out, config, overwrite=True, verbose=0, callbacks=[timer])
    if result.streaming != (streaming == "stream"):
        raise RuntimeError(f"asked for streaming={streaming}, got streaming={result.streaming}")
    return timer.seconds, result.splits["train"], load_run(out).model.count_params()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="keep the cache here (default: temp dir)")
    parser.add_argument("--videos", type=int, default=1332, help="13320: UCF-101's size")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--heads", default=",".join(HEADS))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the bench runs")
    args = parser.parse_args(argv)
    if args.smoke:  # a few seconds; its figures mean nothing
        args.videos, args.frames, args.dim, args.heads = 48, 4, 16, "lstm"

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="vidseq-bench-"))
    try:
        cache = ready_cache(workdir, args.videos, args.frames, args.dim)
        import tensorflow as tf

        print(
            f"second epoch of train_sequence, default recipe (batch 16), {args.videos} videos "
            f"x {args.frames} x {args.dim}; TensorFlow {tf.__version__}, "
            f"{os.cpu_count()} logical CPUs"
        )
        print(
            "| head | params | in memory s/epoch | streamed s/epoch | videos/s (memory) | ratio |"
        )
        print("|---|---|---|---|---|---|")
        for head in args.heads.split(","):
            memory, train, params = epoch_seconds(cache, workdir / "run", head, "memory")
            stream, _, _ = epoch_seconds(cache, workdir / "run", head, "stream")
            print(
                f"| {head} | {params:,} | {memory:.1f} | {stream:.1f} | {train / memory:.0f} "
                f"| {stream / memory:.2f} |",
                flush=True,
            )
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
