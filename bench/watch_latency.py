"""Benchmark: latency and dropped frames of ``vidseq watch`` on a live loopback stream.

For each backbone (``tiny`` and ``mobilenetv2``, random weights: speed does not
depend on the weight values), a feature run is trained on a small sample set
(16 frames per clip, the backbone's default input size), then ``watch`` reads
an MJPEG-over-HTTP stream served on 127.0.0.1 in real time (320x240 JPEG frames
at 25 fps, the test server of ``tests/sequence/mjpeg_server.py``) for
``--seconds`` seconds, one decision per second (stride 1 s, window 2 s).

Latency is the delay from the arrival of the window's newest frame (when the
reader thread got it from the decoder) to the decision that includes it.
Dropped frames are frames that left the ring buffer without being in any
classified window. Figures are printed, never asserted. Usage::

    taskset -c 0,1 python bench/watch_latency.py [--seconds 30] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2
import numpy as np

from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.decode.sampling import SamplingConfig
from vidseq.extract.pipeline import extract_features
from vidseq.extract.sources.sample_data import make_sample, sample_video
from vidseq.sequence.config import FitConfig, HeadConfig, TrainConfig
from vidseq.sequence.infer.watch import watch
from vidseq.sequence.train.training import train_sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sequence"))
from mjpeg_server import MJPEGServer  # the tests' loopback server

BACKBONES = ("tiny", "mobilenetv2")


def train_run(root: Path, backbone: str) -> Path:
    """A small feature run of ``backbone`` (random weights) on Grow/Shrink samples."""
    sample = make_sample(root / "sample", videos_per_class=6, classes=["Grow", "Shrink"])
    cache = extract_features(
        sample,
        root / f"{backbone}.h5",
        backbone=backbone,
        weights="none",
        frames=FrameSpec(SamplingConfig(num_frames=16)),
        progress=False,
    ).out
    config = TrainConfig(
        head=HeadConfig(units=16), fit=FitConfig(epochs=2, batch_size=4, patience=0)
    )
    return train_sequence(cache, root / f"run-{backbone}", config, verbose=0).run_dir


def measure(run_dir: Path, seconds: float) -> dict:
    """Watches a 320x240, 25 fps loopback stream; returns the latency and drop figures."""
    frames, _ = sample_video("Grow", 1, 1)
    frames = [cv2.resize(f, (320, 240)) for f in frames]
    server = MJPEGServer(frames, 25.0).start()
    latencies = []
    try:
        summary = watch(
            run_dir,
            server.url,
            window=2.0,
            stride=1.0,
            max_seconds=seconds,
            on_decision=lambda d: latencies.append(d.latency),
        )
    finally:
        server.stop()
    values = np.array(latencies) * 1000
    return {
        "decisions": summary.decisions,
        "frames": summary.frames,
        "dropped": summary.dropped,
        "skipped": summary.skipped,
        "median_ms": float(np.median(values)),
        "p95_ms": float(np.percentile(values, 95)),
        "max_ms": float(values.max()),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the bench runs")
    args = parser.parse_args(argv)
    if args.smoke:  # a few seconds; its figures mean nothing
        args.seconds = 2.0
    root = Path(args.workdir or tempfile.mkdtemp(prefix="vidseq-watch-bench-"))
    print(f"cores: {len(os.sched_getaffinity(0))}, {args.seconds:.0f} s per backbone")
    print("backbone      decisions  frames  dropped  skipped  median ms  p95 ms  max ms")
    for backbone in BACKBONES:
        figures = measure(train_run(root / backbone, backbone), args.seconds)
        print(
            f"{backbone:12s}  {figures['decisions']:9d}  {figures['frames']:6d}  "
            f"{figures['dropped']:7d}  {figures['skipped']:7d}  {figures['median_ms']:9.0f}  "
            f"{figures['p95_ms']:6.0f}  {figures['max_ms']:6.0f}"
        )


if __name__ == "__main__":
    main()
