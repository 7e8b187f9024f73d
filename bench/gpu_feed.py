"""Can the decoders feed the CNN? Decode rate of vidseq's reader vs the backbone alone.

On a GPU machine the CNN gets fast and decoding becomes the bottleneck. This bench
measures, in one run on one machine:

1. vidseq's frame reader (``read_frames``: decode, ``grab()`` for skipped frames,
   uniform sampling, resize to 224x224) on UCF-101-shaped videos (320x240, 25 fps,
   7 s, MPEG-4 part 2), with 1..N decoder threads: sampled frames per second;
2. the backbone alone (``keras.applications``, ``weights=None``: speed does not depend
   on weight values) on pre-decoded batches, with whatever Keras backend is active
   (``KERAS_BACKEND``) and an optional mixed-precision policy: images per second.

It prints how many decoder threads it takes to keep the backbone busy. It needs only
Keras, OpenCV and NumPy, so it also runs where TensorFlow is not installed (with the
JAX or PyTorch backend of Keras).

Usage::

    python bench/gpu_feed.py --videos 64 --workers 1 2 4 8 16 --batch-sizes 32 128
    KERAS_BACKEND=jax python bench/gpu_feed.py --precision mixed_bfloat16
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from vidseq.extract.decode.frames import FrameGeometry, read_frames
from vidseq.extract.decode.sampling import SamplingConfig


def write_videos(folder: Path, count: int, seconds: float = 7.0) -> list[Path]:
    """UCF-101-shaped test videos: 320x240, 25 fps, moving noise (so the codec works)."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    frames = int(seconds * 25)
    paths = []
    for v in range(count):
        path = folder / f"v{v:04d}.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FMP4"), 25.0, (320, 240))
        for t in range(frames):
            y, x = (3 * t + v) % 240, (5 * t + 7 * v) % 320
            writer.write(texture[y : y + 240, x : x + 320])
        writer.release()
        paths.append(path)
    return paths


def _read(path, sampling):
    return read_frames(path, sampling, FrameGeometry(size=(224, 224))).frames


def decode_rate(paths, workers: int, sampling: SamplingConfig, processes=False) -> float:
    """Sampled frames per second delivered by ``workers`` reader threads (or processes).

    Process workers send the frames back through pickling, as a pipeline would.
    """
    if processes:  # spawn: forking a process that imported JAX or TensorFlow is unsafe
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    else:
        pool = ThreadPoolExecutor(workers)
    with pool:
        list(pool.map(_read, paths[:workers], [sampling] * workers))  # start the workers
        started = time.perf_counter()
        frames = sum(len(f) for f in pool.map(_read, paths, [sampling] * len(paths)))
    return frames / (time.perf_counter() - started)


def cnn_rate(name: str, batch_size: int, repeats: int) -> float:
    """Images per second of the backbone alone on host batches (transfer included)."""
    import keras

    constructors = {
        "resnet50": keras.applications.ResNet50,
        "mobilenetv2": keras.applications.MobileNetV2,
    }
    model = constructors[name](
        weights=None, include_top=False, pooling="avg", input_shape=(224, 224, 3)
    )
    batch = np.random.default_rng(0).uniform(0, 255, (batch_size, 224, 224, 3)).astype("float32")
    model.predict_on_batch(batch)  # compile
    model.predict_on_batch(batch)
    started = time.perf_counter()
    for _ in range(repeats):
        np.asarray(model.predict_on_batch(batch))
    return batch_size * repeats / (time.perf_counter() - started)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=32)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--backbones", nargs="+", default=["resnet50", "mobilenetv2"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--precision", default=None, help="e.g. mixed_float16, mixed_bfloat16")
    parser.add_argument("--processes", action="store_true", help="also measure process workers")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the bench runs")
    args = parser.parse_args(argv)
    if args.smoke:  # a few seconds; its figures mean nothing
        args.videos, args.frames, args.workers, args.backbones = 2, 2, [1], ["mobilenetv2"]
        args.repeats, args.batch_sizes = 1, [2]

    import keras

    if args.precision:
        keras.mixed_precision.set_global_policy(args.precision)
    print(
        f"keras {keras.__version__}, backend {keras.backend.backend()}, "
        f"precision {keras.mixed_precision.global_policy().name}, cpus {os.cpu_count()}"
    )
    sampling = SamplingConfig(num_frames=args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_videos(Path(tmp), args.videos)
        decode = {w: decode_rate(paths, w, sampling) for w in args.workers}
        if args.processes:
            by_process = {w: decode_rate(paths, w, sampling, True) for w in args.workers}
    for workers, rate in decode.items():
        print(f"decode  {workers:3d} threads:   {rate:9.1f} sampled frames/s")
    for workers, rate in (by_process if args.processes else {}).items():
        print(f"decode  {workers:3d} processes: {rate:9.1f} sampled frames/s")
    for name in args.backbones:
        for batch_size in args.batch_sizes:
            rate = cnn_rate(name, batch_size, args.repeats)
            per_worker = decode[min(decode)] / min(decode)
            print(
                f"cnn     {name:12s} batch {batch_size:4d}: {rate:9.1f} img/s "
                f"→ about {rate / per_worker:5.1f} decoder threads to keep up"
            )


if __name__ == "__main__":
    main()
