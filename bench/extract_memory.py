"""Benchmark: peak memory of extract-features and of streamed train-sequence.

Peak resident memory (``ru_maxrss`` of ``getrusage``, read by the child process
itself at its end) is measured in a fresh child process per run, so that one
measurement never inherits another's heap. ``RLIMIT_AS`` is no use here:
TensorFlow reserves tens of GB of virtual address space it never touches.

1. ``extract``: ``extract_features`` on 100 and on 1,000 small videos (64x48,
   MJPG, 40 frames) listed by manifest CSVs over the same folder, with
   MobileNetV2 at 32x32 (random init: 1,280 features per frame, 16 frames per
   video) stored as float32, so the 1,000 videos' features weigh about 82 MB:
   a pipeline that kept them would show it (> 10% of the peak). Target:
   peak(1,000) / peak(100) <= 1.1.
2. ``train``: ``train_sequence`` (one epoch, then its evaluation) with
   ``streaming="stream"`` on a synthetic cache several times larger than
   ``--cap-mb``, against the same with ``streaming="memory"``. Target: the
   streamed peak stays under the cap although the features alone exceed it.
   The peak is given before ``fit``, at its end, and at the end of the command
   (the final evaluation fits the bag-of-frames baseline, whose inputs are
   (N_train, D) float64 means: memory that grows with the number of videos).
   Page-cache pages of the HDF5 file are not resident memory of the process
   (the kernel drops them under pressure), so the peak RSS is the honest figure.

Figures are printed, never asserted. Usage::

    python bench/extract_memory.py [--workdir DIR] [--skip-extract] [--skip-train]
        [--stream-videos 30000] [--cap-mb 1536] [--skip-memory-run]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np

_CHILD_EXTRACT = """
import json, resource, time
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.pipeline import extract_features
from vidseq.extract.decode.sampling import SamplingConfig
start = time.perf_counter()
summary = extract_features({data!r}, {out!r}, source="manifest", backbone="mobilenetv2",
    weights="none", input_size=(32, 32), frames=FrameSpec(SamplingConfig(num_frames=16)),
    dtype="float32", progress=False, overwrite=True)
assert not summary.failures, summary.failures[:3]
print(json.dumps({{"peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "videos": summary.done, "frames": summary.frames,
    "seconds": time.perf_counter() - start}}))
"""

_CHILD_TRAIN = """
import json, resource, time
import keras
from vidseq.sequence.config import FitConfig, TrainConfig
from vidseq.sequence.train.training import train_sequence
marks = {{}}
class Marks(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        marks["begin_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    def on_train_end(self, logs=None):
        marks["fit_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
result = train_sequence({cache!r}, {out!r}, TrainConfig(fit=FitConfig(epochs=1,
    patience=0), streaming={streaming!r}), overwrite=True, verbose=0, callbacks=[Marks()])
print(json.dumps({{"peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    **marks, "streaming": result.streaming, "seconds": time.perf_counter() - start}}))
"""


def _child(code: str) -> dict:
    """Runs ``code`` in a fresh interpreter; returns the JSON of its last stdout line."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the measured process failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_small_videos(root: Path, count: int, classes: int = 4) -> list[str]:
    """Writes ``count`` small MJPG videos (64x48, 40 frames); returns their relative paths."""
    rng = np.random.default_rng(0)
    names = []
    for v in range(count):
        name = f"c{v % classes}/v{v:05d}.avi"
        path = root / name
        names.append(name)
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 48))
        base = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        for i in range(40):
            writer.write(np.roll(base, i, axis=1))
        writer.release()
    return names


def bench_extract(workdir: Path, counts=(100, 1000)) -> None:
    root = workdir / "small"
    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    names = make_small_videos(root, max(counts))
    print(f"{max(counts)} small videos made or reused in {time.perf_counter() - start:.1f} s")
    peaks = {}
    for count in counts:
        manifest = root / f"manifest-{count}.csv"
        lines = ["path,label"] + [f"{name},{name.split('/')[0]}" for name in names[:count]]
        manifest.write_text("\n".join(lines) + "\n")
        out = workdir / f"features-{count}.h5"
        result = _child(_CHILD_EXTRACT.format(data=str(manifest), out=str(out)))
        peaks[count] = result["peak_kb"] / 1024
        features_mb = result["frames"] * 1280 * 4 / 1e6
        print(
            f"  extract {count:>5} videos: peak RSS {peaks[count]:7.1f} MiB "
            f"({result['frames']} frames, {features_mb:.1f} MB of float32 features, "
            f"{result['seconds']:.1f} s)",
            flush=True,
        )
    low, high = min(counts), max(counts)
    print(f"  peak({high}) / peak({low}) = {peaks[high] / peaks[low]:.3f}  (target <= 1.1)")


def bench_train(workdir: Path, videos: int, cap_mb: float, memory_run: bool) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_throughput import build_cache

    cache = workdir / f"stream-{videos}x16x2048.h5"
    if not cache.exists():
        seconds = build_cache(cache, videos=videos)
        print(f"built {cache} in {seconds:.1f} s")
    features_mb = videos * 16 * 2048 * 2 / 2**20
    print(
        f"cache {cache.stat().st_size / 2**20:.0f} MiB on disk, {features_mb:.0f} MiB of "
        f"float16 features; cap {cap_mb:.0f} MiB"
    )
    modes = ["stream", "memory"] if memory_run else ["stream"]
    for streaming in modes:
        result = _child(
            _CHILD_TRAIN.format(cache=str(cache), out=str(workdir / "run"), streaming=streaming)
        )
        begin, fit, peak = (result[k] / 1024 for k in ("begin_kb", "fit_kb", "peak_kb"))
        print(
            f"  train-sequence --streaming {streaming:<6}: peak RSS before fit {begin:5.0f} MiB, "
            f"at the end of fit {fit:5.0f} MiB ({'under' if fit < cap_mb else 'OVER'} the cap), "
            f"with the final evaluation {peak:5.0f} MiB "
            f"({'under' if peak < cap_mb else 'OVER'} the cap); {result['seconds']:.0f} s",
            flush=True,
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="keep videos and caches here (default: temp dir)")
    parser.add_argument("--skip-extract", action="store_true")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--stream-videos", type=int, default=30000)
    parser.add_argument("--cap-mb", type=float, default=1536.0)
    parser.add_argument("--skip-memory-run", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the bench runs")
    args = parser.parse_args(argv)
    if args.smoke:  # a few seconds; its figures mean nothing
        args.skip_extract, args.stream_videos, args.skip_memory_run = True, 200, True
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="vidseq-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if not args.skip_extract:
            bench_extract(workdir)
        if not args.skip_train:
            bench_train(workdir, args.stream_videos, args.cap_mb, not args.skip_memory_run)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
