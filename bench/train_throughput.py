"""Benchmark: training on a UCF-101-sized cache, in memory against streamed from HDF5.

Builds (or reuses) a synthetic cache the size of UCF-101 features: 13,320
videos x 16 frames x 2048 features, float16 (about 870 MB of features),
written through :class:`~vidseq.cache.CacheWriter` exactly like an extraction
run; 101 classes, 25 groups (groups 1-7 are ``test``, as in UCF-101 split 1).
The features are a class mean plus noise, so the head has something to learn.
Then prints, in one run:

* ``load``: ``FeatureStore.load`` of every video (what ``--streaming memory``
  does) against ``np.fromfile`` of a raw file holding the same bytes; both are
  read after a first warm-up read, i.e. from the page cache (dropping it needs
  root and would disturb the other users of a shared machine);
* ``epoch``: the seconds of one epoch of ``train_sequence`` (``fit``: the
  training pass and the validation pass) with ``streaming="memory"`` and with
  ``streaming="stream"``, alternated ``--repeats`` times; the ratio
  streamed/in-memory per repeat, its median and range.

Figures are printed, never asserted. Usage::

    python bench/train_throughput.py [--workdir DIR] [--videos 13320] [--frames 16]
        [--dim 2048] [--repeats 3] [--batch-size 32] [--units 128]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from vidseq.cache import CacheMeta, CacheWriter, FeatureStore, VideoRecord


def build_cache(
    path: Path,
    videos: int = 13320,
    frames: int = 16,
    dim: int = 2048,
    classes: int = 101,
    dtype: str = "float16",
    seed: int = 0,
) -> float:
    """Writes a synthetic UCF-101-shaped cache through CacheWriter; returns the seconds.

    Each video's rows are its class mean plus a slice of a shared noise pool
    (drawing 436 million fresh normals would take longer than writing them).
    """
    if videos <= classes * 7:  # groups 1-7 are the test split: keep some training videos
        classes = max(2, videos // 16)
    meta = CacheMeta(
        backbone="resnet50",
        weights="none",
        weights_sha256="0" * 64,
        engine="tf",
        input_size=(224, 224),
        feature_dim=dim,
        sampling={"mode": "uniform", "num_frames": frames, "crop": "resize"},
        class_names=[f"Class{c:03d}" for c in range(classes)],
        dtype=dtype,
    )
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((classes, dim)).astype(np.float32) * 0.5
    pool = rng.standard_normal((8192 + frames, dim)).astype(np.float32)
    indices = np.linspace(4, 145, frames).astype(np.int64)
    start = time.perf_counter()
    with CacheWriter(path, meta, commit_every=1024, commit_seconds=3600) as writer:
        for v in range(videos):
            label = v % classes
            group = (v // classes) % 25 + 1
            record = VideoRecord(
                video_id=f"Class{label:03d}/v_Class{label:03d}_g{group:02d}_c{v:05d}.avi",
                path=f"/data/UCF-101/Class{label:03d}/v_{v:05d}.avi",
                label=label,
                split="train" if group > 7 else "test",
                group=f"g{group:02d}",
                num_valid=frames,
                fps=25.0,
                num_source_frames=175,
            )
            first = (v * 7919) % 8192
            features = pool[first : first + frames] + means[label]
            writer.add(record, features, indices, indices * 40.0)
        writer.finalize()
    return time.perf_counter() - start


def ready_cache(workdir: Path, videos: int, frames: int, dim: int) -> Path:
    """The synthetic cache of this shape in ``workdir``: reused if there, else built."""
    workdir.mkdir(parents=True, exist_ok=True)
    cache = workdir / f"ucf101-like-{videos}x{frames}x{dim}.h5"
    if cache.exists():
        print(f"reusing {cache}")
    else:
        seconds = build_cache(cache, videos, frames, dim)
        print(f"built {cache} in {seconds:.1f} s")
    return cache


def time_load(path: Path, raw: Path, repeats: int) -> tuple[list[float], list[float], int]:
    """Seconds of FeatureStore.load (all videos) and of np.fromfile of the same bytes."""
    with FeatureStore(path) as store:
        nbytes = store.num_rows * store.meta.feature_dim * np.dtype(store.meta.dtype).itemsize
        dtype = np.dtype(store.meta.dtype)
        if not raw.exists() or raw.stat().st_size != nbytes:
            with open(raw, "wb") as f:
                for _, rows in store.iter_videos():
                    f.write(np.ascontiguousarray(rows, dtype=dtype).tobytes())
        np.fromfile(raw, dtype=dtype)  # warm-up: both read from the page cache
        store.load(dtype=dtype)
        loads, raws = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            store.load(dtype=dtype)  # what --streaming memory holds (cache dtype)
            loads.append(time.perf_counter() - start)
            start = time.perf_counter()
            np.fromfile(raw, dtype=dtype)
            raws.append(time.perf_counter() - start)
    return loads, raws, nbytes


def time_epoch(cache: Path, out: Path, streaming: str, args) -> float:
    """Seconds of one epoch of train_sequence's fit (training + validation pass)."""
    from vidseq.sequence.config import FitConfig, HeadConfig, TrainConfig
    from vidseq.sequence.train.training import train_sequence

    config = TrainConfig(
        head=HeadConfig(units=args.units),
        fit=FitConfig(epochs=1, patience=0, batch_size=args.batch_size, seed=0),
        streaming=streaming,
    )
    result = train_sequence(cache, out, config, overwrite=True, verbose=0)
    if result.streaming != (streaming == "stream"):
        raise RuntimeError(f"asked for streaming={streaming}, got streaming={result.streaming}")
    return result.seconds


def _spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{statistics.median(values):.3g} (range {min(values):.3g}-{max(values):.3g})"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="keep the cache here (default: temp dir)")
    parser.add_argument("--videos", type=int, default=13320)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the bench runs")
    args = parser.parse_args(argv)
    if args.smoke:  # a few seconds; its figures mean nothing
        args.videos, args.frames, args.dim, args.repeats = 64, 4, 16, 1

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="vidseq-bench-"))
    try:
        cache = ready_cache(workdir, args.videos, args.frames, args.dim)
        print(f"cache file: {cache.stat().st_size / 1e6:.0f} MB")

        loads, raws, nbytes = time_load(cache, workdir / "features.raw", args.repeats)
        print(f"features: {nbytes / 1e6:.0f} MB")
        print(f"  FeatureStore.load, all videos   {_spread(loads)} s")
        print(f"  np.fromfile, same bytes (raw)   {_spread(raws)} s")
        ratios = [a / b for a, b in zip(loads, raws, strict=True)]
        print(f"  load / raw                      {_spread(ratios)}")

        import tensorflow as tf

        print(
            f"one epoch of train_sequence (batch {args.batch_size}, LSTM {args.units}), "
            f"TensorFlow {tf.__version__}, {os.cpu_count()} logical CPUs"
        )
        times: dict[str, list[float]] = {"memory": [], "stream": []}
        for repeat in range(args.repeats):
            for streaming in ("memory", "stream"):
                seconds = time_epoch(cache, workdir / f"run-{streaming}", streaming, args)
                times[streaming].append(seconds)
                print(f"  repeat {repeat + 1}: {streaming:<6} {seconds:.1f} s", flush=True)
        for streaming, values in times.items():
            print(f"  epoch, {streaming:<6}  {_spread(values)} s")
        ratios = [s / m for s, m in zip(times["stream"], times["memory"], strict=True)]
        print(f"  streamed / in-memory   {_spread(ratios)}")
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
