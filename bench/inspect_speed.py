"""Benchmark: how fast `vidseq inspect` answers on a UCF-101-sized cache.

Builds a synthetic cache of 13,320 videos x 16 frames x 2048 float16 features
(random data, written through CacheWriter exactly like an extraction run), then
prints the seconds taken by:

* ``summarize()`` in this process (index only: no feature rows are read);
* a fresh ``python`` subprocess doing ``summarize`` + ``format_summary`` — what
  ``python -m vidseq inspect CACHE`` does, interpreter start and imports included;
* the same for one video (``describe_video`` + ``format_video``);
* opening a FeatureStore, and (``--load``) loading every video into memory.

Figures are printed, never asserted. Usage::

    python bench/inspect_speed.py [CACHE.h5] [--videos 13320] [--frames 16] [--dim 2048] [--load]
    python bench/inspect_speed.py --smoke   # a few seconds: the bench runs, figures mean nothing

Without CACHE.h5 the file goes to a temporary folder removed at the end; with
it, an existing file is reused.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vidseq.cache import CacheMeta, CacheWriter, FeatureStore, VideoRecord, summarize

SMOKE_HELP = "tiny sizes, a few seconds: proves the bench runs (its figures mean nothing)"


def build(path: Path, videos: int, frames: int, dim: int, classes: int = 101) -> float:
    """Writes the synthetic cache through CacheWriter; returns the seconds taken."""
    meta = CacheMeta(
        backbone="resnet50",
        weights="imagenet",
        weights_sha256="f" * 64,
        engine="tf",
        input_size=(224, 224),
        feature_dim=dim,
        sampling={"mode": "uniform", "num_frames": frames, "frame_rate": 5.0},
        class_names=[f"Class{c:03d}" for c in range(classes)],
    )
    rng = np.random.default_rng(0)
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
                num_source_frames=150,
            )
            features = rng.standard_normal((frames, dim), dtype=np.float32)
            indices = np.linspace(4, 145, frames).astype(np.int64)
            writer.add(record, features, indices, indices * 40.0)
        writer.finalize()
    return time.perf_counter() - start


def timed_subprocess(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", nargs="?", help="cache to build (or reuse); default: temp dir")
    parser.add_argument("--videos", type=int, default=13320)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--load", action="store_true", help="also time loading every video")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args(argv)
    if args.smoke:
        args.videos, args.frames, args.dim, args.load = 60, 4, 32, True

    tmp = None
    if args.cache:
        path = Path(args.cache)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="vidseq-bench-")
        path = Path(tmp.name) / "features.h5"
    try:
        if path.exists():
            print(f"reusing {path}")
        else:
            seconds = build(path, args.videos, args.frames, args.dim)
            print(
                f"built {path}: {args.videos} videos x {args.frames} x {args.dim} float16 "
                f"in {seconds:.1f} s (CacheWriter, commits of 1024 videos, then finalize)"
            )
        print(f"file size: {path.stat().st_size / 1e6:.0f} MB")

        start = time.perf_counter()
        summarize(path)
        print(f"summarize() in process:                      {time.perf_counter() - start:.3f} s")
        start = time.perf_counter()
        with FeatureStore(path) as store:
            opened = time.perf_counter() - start
            video_id = str(store.video_ids[len(store) // 2])
            start = time.perf_counter()
            store.features(store.index_of(video_id))
            one = time.perf_counter() - start
            print(f"FeatureStore open (index of {len(store)} videos):  {opened:.3f} s")
            print(f"features() of one video:                     {one * 1000:.2f} ms")
            if args.load:
                start = time.perf_counter()
                x, _, _ = store.load(dtype=np.float16)
                print(
                    f"load() of everything ({x.nbytes / 1e6:.0f} MB float16): "
                    f"{time.perf_counter() - start:.2f} s"
                )
                del x
        inspect = (
            "from vidseq.cache.inspection import summarize, format_summary; "
            f"print(format_summary(summarize({str(path)!r})))"
        )
        seconds = timed_subprocess(inspect)
        print(f"fresh process: summarize + format_summary:   {seconds:.3f} s (imports included)")
        video = (
            "from vidseq.cache.inspection import describe_video, format_video; "
            f"print(format_video(describe_video({str(path)!r}, {video_id!r})))"
        )
        seconds = timed_subprocess(video)
        print(f"fresh process: describe_video + format_video: {seconds:.3f} s")
        seconds = timed_subprocess("import vidseq.cache")
        print(f"fresh process: import vidseq.cache only:     {seconds:.3f} s")
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
