"""Benchmark: CPU cost of motion / keyframes sampling against uniform on the same videos.

Writes videos shaped like UCF-101 (320x240, 25 fps, 7 s, MPEG-4 part 2 in
``.avi``, one keyframe per clip as XviD's default GOP of 300 gives) and 720p
H.264 (1280x720, 25 fps, keyframe every 2 s, ``--hd-seconds`` long), textured,
with a slow pan and a moving object. Two measurements, side by side, CPU time
(``time.process_time``: every thread of the process, not wall time):

* decode only: ``read_frames`` (decode, select, resize to 224x224) per video
  with ``uniform`` (planned decoding, the default), ``uniform`` under
  ``VIDSEQ_DECODER=opencv`` (sequential OpenCV decoding of every frame, the
  reader before the planner), ``motion`` and ``keyframes``; the modes alternate
  inside each of ``--repeats`` rounds, so a noisy neighbour slows them alike;
* whole extraction: ``extract_features`` of the same videos (two classes) with
  the ``tiny`` CNN and with ``mobilenetv2`` (``weights=None``, 224x224), for
  ``uniform`` and ``motion``, once each. Its fixed start-up (building the
  model, the cache) is measured on a two-video dataset of 8-frame clips and
  subtracted, as issue 18's acceptance run does.

The ratio printed is uniform's CPU / the mode's (its speed relative to
uniform; 1.0 = as fast; the target is >= 0.8). Figures are printed, never
asserted. Usage::

    python bench/motion_cost.py [--videos 4] [--hd-seconds 10 30] [--repeats 3]
        [--backbones tiny mobilenetv2] [--extra-videos REAL.mp4 ...]
        [--modes uniform-opencv motion motion-full keyframes] [--smoke]

``--extra-videos`` adds real files (decode-only rows; e.g. the workspace's real
sample clips).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from vidseq.extract.decode.frames import FrameGeometry, read_frames
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.decode.sampling import SamplingConfig
from vidseq.extract.pipeline import extract_features

DECODE_MODES = ("uniform", "uniform-opencv", "motion", "motion-full", "keyframes")
"""``motion`` picks its signal per video; ``motion-full`` always scans every frame for it."""


def write_video(path, width, height, frames, codec, gop, seed):
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (height // 4, width // 4, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(texture, 4, 0), 4, 1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        for t in range(frames):
            image = np.roll(texture, t, axis=1)  # a slow pan
            x = (t * 7) % (width - 40)
            image[height // 3 : height // 3 + 40, x : x + 40] = 255  # a moving object
            image = image + rng.integers(0, 6, image.shape, dtype=np.uint8)  # sensor noise
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@contextlib.contextmanager
def reader_for(mode, frames):
    """The SamplingConfig of ``mode``, with ``VIDSEQ_DECODER`` set for it meanwhile."""
    previous = os.environ.get("VIDSEQ_DECODER")
    os.environ["VIDSEQ_DECODER"] = "opencv" if mode.endswith("-opencv") else "planned"
    try:
        signal = {"motion_signal": "full"} if mode == "motion-full" else {}
        yield SamplingConfig(mode=mode.split("-")[0], num_frames=frames, **signal)
    finally:
        if previous is None:
            del os.environ["VIDSEQ_DECODER"]
        else:
            os.environ["VIDSEQ_DECODER"] = previous


def _read(paths, mode, frames):
    geometry = FrameGeometry(size=(224, 224))
    with reader_for(mode, frames) as sampling:
        start = time.process_time()
        for path in paths:
            read_frames(path, sampling, geometry)
        return time.process_time() - start


def decode_cpu(paths, repeats, frames, modes=DECODE_MODES):
    """CPU seconds per video of ``read_frames``, per mode (medians over the repeats)."""
    cpu = {mode: [] for mode in modes}
    for _ in range(repeats):
        for mode in modes:
            cpu[mode].append(_read(paths, mode, frames) / len(paths))
    return {mode: float(np.median(values)) for mode, values in cpu.items()}


def extract_cpu(root, work, backbone, mode, frames):
    """CPU seconds of one ``extract_features`` run of ``root``."""
    with reader_for(mode, frames) as sampling:
        start = time.process_time()
        extract_features(
            root,
            work / f"{backbone}-{mode}.h5",
            backbone=backbone,
            weights="none",
            input_size=(224, 224),
            frames=FrameSpec(sampling),
            overwrite=True,
            progress=False,
        )
        return time.process_time() - start


def dataset(root, paths):
    """A two-class folder dataset of ``paths`` (symbolic links)."""
    for number, path in enumerate(paths):
        folder = root / "ab"[number % 2]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"v{number}{path.suffix}").symlink_to(path)
    return root


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4, help="UCF-shaped clips")
    parser.add_argument("--hd-seconds", type=float, nargs="*", default=[10.0, 30.0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backbones", nargs="*", default=["tiny", "mobilenetv2"])
    parser.add_argument(
        "--extra-videos", nargs="*", default=[], help="real videos, one decode-only row each"
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        default=list(DECODE_MODES[1:]),
        choices=DECODE_MODES[1:],
        help="modes beside uniform (always measured: the base)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the bench runs")
    args = parser.parse_args(argv)
    modes = ("uniform", *args.modes)
    if args.smoke:  # a few seconds; its figures mean nothing
        args.videos, args.hd_seconds, args.frames, args.repeats = 1, [], 4, 1
        args.backbones = ["tiny"]
    with tempfile.TemporaryDirectory(prefix="vidseq-motion-cost-") as work:
        measure(args, modes, Path(work))


def measure(args, modes, work):
    """Writes the videos under ``work``, then prints each set's decode and extraction CPU."""
    sets = {"320x240 7 s MPEG-4": []}
    for i in range(args.videos):
        path = work / f"ucf{i}.avi"
        write_video(path, 320, 240, 175, "mpeg4", 300, i)
        sets["320x240 7 s MPEG-4"].append(path)
    for seconds in args.hd_seconds:
        path = work / f"hd{seconds:g}.mp4"
        write_video(path, 1280, 720, round(25 * seconds), "libx264", 50, 0)
        sets[f"1280x720 {seconds:g} s H.264"] = [path, path]
    startup_paths = [work / "start0.avi", work / "start1.avi"]
    for i, path in enumerate(startup_paths):
        write_video(path, 320, 240, 8, "mpeg4", 300, 100 + i)
    startup_root = dataset(work / "startup", startup_paths)
    for backbone in args.backbones:  # warm-up: TensorFlow's first-use costs
        extract_cpu(startup_root, work, backbone, "uniform", 4)
    startup = {b: extract_cpu(startup_root, work, b, "uniform", 4) for b in args.backbones}
    if startup:
        print("start-up CPU s: " + "  ".join(f"{b} {s:.2f}" for b, s in startup.items()))

    for extra in args.extra_videos:
        sets[Path(extra).name] = [Path(extra)]
    for number, (name, paths) in enumerate(sets.items()):
        if not paths:
            continue
        cpu = decode_cpu(paths, args.repeats, args.frames, modes)
        sequential = (
            f"  | motion vs sequential uniform: {cpu['uniform-opencv'] / cpu['motion']:.2f}x"
            if {"uniform-opencv", "motion"} <= set(modes)
            else ""
        )
        print(
            f"{name:26s} decode CPU s/video: "
            + "  ".join(f"{mode} {cpu[mode]:.3f}" for mode in modes)
            + "\n    speed vs uniform: "
            + "  ".join(f"{m} {cpu['uniform'] / cpu[m]:.2f}x" for m in modes[1:])
            + sequential,
            flush=True,
        )
        if name in {Path(extra).name for extra in args.extra_videos}:
            continue  # decode only
        root = dataset(work / f"set{number}", paths)
        for backbone in args.backbones:
            whole = {m: extract_cpu(root, work, backbone, m, args.frames) for m in modes}
            net = {m: whole[m] - startup[backbone] for m in whole}
            print(
                f"    extract_features {backbone}: "
                + "  ".join(f"{m} {whole[m] / len(paths):.2f}" for m in whole)
                + " CPU s/video (start-up included); speed vs uniform, start-up subtracted: "
                + "  ".join(f"{m} {net['uniform'] / net[m]:.2f}x" for m in modes[1:]),
                flush=True,
            )


if __name__ == "__main__":
    main()
