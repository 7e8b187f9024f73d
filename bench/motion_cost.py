"""Benchmark: CPU cost of motion / keyframes sampling against uniform on the same videos.

Writes videos shaped like UCF-101 (320x240, 25 fps, 7 s, MPEG-4 part 2 in
``.avi``) and 720p H.264 (1280x720, 25 fps, keyframe every 2 s, ``--hd-seconds``
long), textured, with a moving object. For each video, ``read_frames`` (decode,
select, resize to 224x224) runs with ``uniform``, ``motion`` and ``keyframes``
sampling in turn, ``--repeats`` times; the CPU time (``time.process_time``) of
each is summed per mode, and the ratio uniform / mode (the speed relative to
uniform; 1.0 = as fast) is printed. The modes alternate inside each repeat, so
a noisy neighbour slows them alike. Figures are printed, never asserted. Usage::

    python bench/motion_cost.py [--videos 4] [--hd-seconds 6 30] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from vidseq.extract.frames import FrameGeometry, read_frames
from vidseq.extract.sampling import SamplingConfig

MODES = ("uniform", "motion", "keyframes")


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


def measure(paths, repeats, frames):
    geometry = FrameGeometry(size=(224, 224))
    cpu = dict.fromkeys(MODES, 0.0)
    for _ in range(repeats):
        for mode in MODES:
            sampling = SamplingConfig(mode=mode, num_frames=frames)
            start = time.process_time()
            for path in paths:
                read_frames(path, sampling, geometry)
            cpu[mode] += time.process_time() - start
    return cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--hd-seconds", type=float, nargs="+", default=[6.0, 30.0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vidseq-motion-cost-"))
    sets = {"320x240 7 s MPEG-4": []}
    for i in range(args.videos):
        path = work / f"ucf{i}.avi"
        write_video(path, 320, 240, 175, "mpeg4", 300, i)
        sets["320x240 7 s MPEG-4"].append(path)
    for seconds in args.hd_seconds:
        name = f"1280x720 {seconds:g} s H.264"
        path = work / f"hd{seconds:g}.mp4"
        write_video(path, 1280, 720, round(25 * seconds), "libx264", 50, 0)
        sets[name] = [path]
    for name, paths in sets.items():
        cpu = measure(paths, args.repeats, args.frames)
        per_video = {mode: cpu[mode] / (args.repeats * len(paths)) for mode in MODES}
        print(
            f"{name:24s} CPU s/video: "
            + "  ".join(f"{mode} {per_video[mode]:.3f}" for mode in MODES)
            + "  | speed vs uniform: "
            + "  ".join(f"{mode} {cpu['uniform'] / cpu[mode]:.2f}x" for mode in MODES[1:]),
            flush=True,
        )


if __name__ == "__main__":
    main()
