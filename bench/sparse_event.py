"""Benchmark: uniform vs motion vs keyframes sampling on a sparse-event task from real photographs.

The task. Every video is one long still shot of a real photograph (a random
crop of a ``skimage.data`` image), with one short event of about
``--event-fraction`` of its frames at a random time; the same still comes
before and after it. Six classes in three time-reversed pairs; each event
ramps a global property of the picture that globally pooled CNN features see
whatever the photograph (brightness, contrast, colour), then cuts back:

* ``Brighten`` / ``Darken``: the still brightens (x1 to x2.5, saturating) then
  cuts back; or it appears bright and dims back to the still;
* ``FadeOut`` / ``FadeIn``: the still fades to flat grey (90%) then cuts back;
  or it appears grey and fades in;
* ``Tint`` / ``Untint``: the still is tinted orange (70%) then cuts back; or
  it appears tinted and the tint goes.

Two more pairs (``write_dataset(pairs=5)``, used by ``bench/tune_task.py``;
this bench writes the first three): ``Blur`` / ``Focus`` (a Gaussian blur up to
3 pixels sets in, or clears) and ``Desaturate`` / ``Saturate`` (to grey, 90%).
``noise`` and ``jitter`` add a grainy, shaky camera to every frame.

(A first design had a second photograph grow from a point to the full frame
vs shrink away. With every frame on the event, the head could not tell those
twins apart (test recall 0.44 and 0.22, while Brighten/Darken reached 0.95):
pooled features do not say which photograph is the square and which the
background, so "B grows over A" and "B shrinks away from A" look alike.)

A video of the second class of a pair is drawn exactly as one of the first
(same photographs, crop, event position and length), then its event is
played backwards. So the set of frames does not tell a class from its twin
(the bag-of-frames baseline cannot beat ~1/2 inside a pair, ~1/3 overall), and
neither does the order of the still parts; only the order of the event frames
does. Uniform sampling puts about ``F x K`` of its K frames on the event.

Protocol (all settings explicit below, easy to change):

1. write the videos (``--codec mjpeg``: Motion-JPEG ``.avi``; ``--codec h264``:
   H.264 ``.mp4`` from libx264 at its defaults; UCF-101 layout with groups,
   ``--size`` pixels square; a third of the groups are the test split);
2. extract features with the ``tiny`` CNN (random init, seed 0) for each mode
   (``motion`` picks its signal per video, ``motion-full`` always decodes every
   frame for it, as every motion extraction did before the cheap signals);
3. standardise the features by the training split's mean and std (a copy of
   the cache; the bench does this, not the library);
4. train the default head (``train_sequence``, default ``TrainConfig`` but
   ``--epochs``, ``--batch-size``, ``--patience`` and the seed) over ``--seeds``;
5. report the test accuracy and the bag-of-frames baseline's
   (``metrics["baseline"]``), per mode, median and range; and the CPU seconds
   of each mode's extraction (``--rounds`` of them, the modes in turn within
   each round: the median, and its ratio to the first mode's).

Check first that the event is learnable when the frames are concentrated on
it: ``--event-fraction 1.0 --modes uniform`` (every video is all event).
Figures are printed, never asserted. Usage::

    python bench/sparse_event.py [--videos-per-class 30] [--length 120]
        [--event-fraction 0.1] [--frames 16] [--seeds 0 1 2] [--workdir DIR]
        [--codec mjpeg|h264] [--rounds 1] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import av
import cv2
import h5py
import numpy as np
from skimage import data as photos

from vidseq.cache.store import FeatureStore
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.decode.sampling import SamplingConfig
from vidseq.extract.pipeline import extract_features
from vidseq.sequence.config import FitConfig, TrainConfig
from vidseq.sequence.train.training import train_sequence

PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "cat",
    "immunohistochemistry",
    "colorwheel",
    "retina",
)
PAIRS = (
    ("Brighten", "Darken"),
    ("FadeOut", "FadeIn"),
    ("Tint", "Untint"),
    ("Blur", "Focus"),
    ("Desaturate", "Saturate"),
)
"""Every pair; ``write_dataset(pairs=n)`` writes the first ``n`` (this bench: 3)."""
TINT = (0, 140, 255)
"""BGR colour the ``Tint`` event blends towards (orange)."""
CLIPS_PER_GROUP = 3


def _photo(name, rng, size):
    """A random square crop of a ``skimage.data`` photograph, BGR, ``size`` pixels."""
    image = getattr(photos, name)()[:, :, :3]
    height, width = image.shape[:2]
    side = int(min(height, width) * rng.uniform(0.5, 0.9))
    top, left = int(rng.integers(height - side + 1)), int(rng.integers(width - side + 1))
    crop = cv2.resize(image[top : top + side, left : left + side], (size, size), cv2.INTER_AREA)
    return cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)


def forward_event(kind, still, length):
    """The forward event's frames (BGR) of pair ``kind``, starting from ``still``."""
    image = still.astype(np.float32)
    frames = []
    for p in np.linspace(0.0, 1.0, length):
        if kind == 0:  # brighten, x1 to x2.5 (saturating)
            frame = image * (1.0 + 1.5 * p)
        elif kind == 1:  # fade to flat grey
            frame = image * (1.0 - 0.9 * p) + 128.0 * 0.9 * p
        elif kind == 2:  # tint towards orange
            frame = image * (1.0 - 0.7 * p) + np.array(TINT, np.float32) * 0.7 * p
        elif kind == 3:  # blur (Gaussian, sigma 0 to 3 pixels)
            frame = cv2.GaussianBlur(image, (0, 0), 3.0 * p) if p > 0 else image
        else:  # desaturate to grey (90%)
            grey = image.mean(axis=2, keepdims=True)
            frame = image * (1.0 - 0.9 * p) + grey * 0.9 * p
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


def shaky_camera(frames, noise, jitter, rng):
    """Each frame shifted by up to ``jitter`` pixels (reflected border), plus Gaussian noise."""
    out = []
    for frame in frames:
        dx, dy = rng.integers(-jitter, jitter + 1, size=2) if jitter else (0, 0)
        shift = np.float32([[1, 0, dx], [0, 1, dy]])
        moved = cv2.warpAffine(frame, shift, frame.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
        grain = rng.normal(0.0, noise, frame.shape) if noise else 0.0
        out.append(np.clip(moved + grain, 0, 255).astype(np.uint8))
    return out


def make_video(class_index, group, clip, length, event_fraction, size, seed, noise=0, jitter=0):
    """One video's BGR frames: a still shot with one short event (see the module docstring).

    ``noise`` (Gaussian, in grey levels) and ``jitter`` (pixels) add a shaky,
    grainy camera to every frame, drawn alike for both twins of a pair.
    """
    kind, reverse = divmod(class_index, 2)
    rng = np.random.default_rng([seed, kind, group, clip])  # the same draws for both twins
    still = _photo(PHOTOS[int(rng.integers(len(PHOTOS)))], rng, size)
    event_length = min(length, max(4, round(length * event_fraction)))
    event = forward_event(kind, still, event_length)
    if reverse:
        event = event[::-1]
    start = int(rng.integers(length - event_length + 1))
    frames = [still] * start + event + [still] * (length - event_length - start)
    return shaky_camera(frames, noise, jitter, rng) if noise or jitter else frames


def write_video(path, frames, codec):
    """Writes BGR frames at 25 fps: Motion-JPEG with OpenCV, or H.264 with PyAV (libx264)."""
    height, width = frames[0].shape[:2]
    if codec == "mjpeg":
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (width, height))
        for frame in frames:
            writer.write(frame)
        writer.release()
        return
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode())


def write_dataset(
    root,
    videos_per_class,
    length,
    event_fraction,
    size,
    seed,
    codec="mjpeg",
    pairs=3,
    noise=0,
    jitter=0,
    test_share=1 / 3,
):
    """Writes the task's videos and UCF-101 lists; the first ``test_share`` of the groups are test.

    Returns:
        The number of test groups per class (groups ``1`` to it are test).
    """
    classes = [name for pair in PAIRS[:pairs] for name in pair]
    groups = -(-videos_per_class // CLIPS_PER_GROUP)
    test_groups = max(1, round(groups * test_share))
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    train, test = [], []
    for index, name in enumerate(classes):
        (root / name).mkdir()
        for number in range(videos_per_class):
            group, clip = number // CLIPS_PER_GROUP + 1, number % CLIPS_PER_GROUP + 1
            suffix = ".avi" if codec == "mjpeg" else ".mp4"
            rel = f"{name}/v_{name}_g{group:02d}_c{clip:02d}{suffix}"
            video = make_video(
                index, group, clip, length, event_fraction, size, seed, noise, jitter
            )
            write_video(root / rel, video, codec)
            if group <= test_groups:
                test.append(rel)
            else:
                train.append(f"{rel} {index + 1}")
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(classes, 1)))
    (lists / "trainlist01.txt").write_text("".join(f"{line}\n" for line in train))
    (lists / "testlist01.txt").write_text("".join(f"{line}\n" for line in test))
    return test_groups


def standardised_copy(cache, out):
    """Copies a cache with its features standardised by the training split's mean and std."""
    with FeatureStore(cache) as store:
        rows = np.concatenate([store.features(i, np.float64) for i in store.select(split="train")])
    mean, std = rows.mean(axis=0), rows.std(axis=0) + 1e-6
    shutil.copyfile(cache, out)
    with h5py.File(out, "r+") as handle:
        features = handle["features"]
        features[...] = ((features[...].astype(np.float64) - mean) / std).astype(features.dtype)
    return out


def _sampling(mode, num_frames):
    """The sampling of a bench mode: a sampling mode, or ``motion-full`` (the full-scan signal)."""
    if mode == "motion-full":
        return SamplingConfig(mode="motion", num_frames=num_frames, motion_signal="full")
    return SamplingConfig(mode=mode, num_frames=num_frames)


def extraction_cpu(data, work, args):
    """CPU seconds of ``extract_features`` per mode, ``--rounds`` times, the modes in turn.

    Each round runs every mode once, so that a change of the machine's load
    falls on all of them; the caches of the last round are kept. An untimed
    extraction comes first: TensorFlow's first-use costs would fall on the
    first mode.
    """
    cpu = {mode: [] for mode in args.modes}
    for number in range(args.rounds + 1):
        for mode in args.modes[:1] if number == 0 else args.modes:
            start = time.process_time()
            extract_features(
                data,
                work / f"{mode}.h5",
                input_size=(args.size, args.size),
                frames=FrameSpec(_sampling(mode, args.frames)),
                overwrite=True,
                backbone="tiny",
                progress=False,
            )
            if number:
                cpu[mode].append(time.process_time() - start)
    line = ", ".join(f"{mode} {' '.join(f'{s:.2f}' for s in cpu[mode])}" for mode in args.modes)
    print(f"extraction CPU s per round: {line}", flush=True)
    return cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos-per-class", type=int, default=30)
    parser.add_argument("--length", type=int, default=120, help="frames per video")
    parser.add_argument("--event-fraction", type=float, default=0.1)
    parser.add_argument("--size", type=int, default=96, help="video side in pixels")
    parser.add_argument("--frames", type=int, default=16, help="K frames sampled per video")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--modes", nargs="+", default=["uniform", "motion", "motion-full", "keyframes"]
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="extractions of each mode, in turn (cost: median)"
    )
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patience", type=int, default=15)
    parser.add_argument("--raw", action="store_true", help="train on unstandardised features")
    parser.add_argument("--codec", choices=("mjpeg", "h264"), default="mjpeg")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the bench runs")
    args = parser.parse_args(argv)
    if args.smoke:  # a few seconds; its figures mean nothing
        args.videos_per_class, args.length, args.size, args.frames = 12, 30, 32, 4
        args.seeds, args.modes, args.epochs = [0], ["uniform"], 1

    if args.workdir:  # kept, and its data reused by the next run
        measure(args, Path(args.workdir))
        return
    with tempfile.TemporaryDirectory(prefix="vidseq-sparse-") as work:
        measure(args, Path(work))


def measure(args, work):
    """Writes the dataset under ``work`` (unless there), then extracts, trains and prints."""
    data = work / "data"
    if not data.exists():
        write_dataset(
            data,
            args.videos_per_class,
            args.length,
            args.event_fraction,
            args.size,
            seed=0,
            codec=args.codec,
        )
    cpu = extraction_cpu(data, work, args)
    results = {}
    for mode in args.modes:
        cache = work / f"{mode}.h5"
        if not args.raw:
            cache = standardised_copy(cache, work / f"{mode}-standardised.h5")
        rows = []
        for seed in args.seeds:
            fit = {"epochs": args.epochs, "batch_size": args.batch_size, "patience": args.patience}
            config = TrainConfig(fit=FitConfig(seed=seed, **fit))
            out = work / f"run-{mode}-{seed}"
            run = train_sequence(cache, out, config, overwrite=True, verbose=0)
            rows.append((run.metrics["accuracy"], run.metrics["baseline"]["accuracy"]))
        head, bag = np.array(rows).T
        median = float(np.median(cpu[mode]))
        base = float(np.median(cpu[args.modes[0]]))
        results[mode] = {
            "head": head.tolist(),
            "baseline": bag.tolist(),
            "extract_cpu_s": cpu[mode],
            "cost_vs_first_mode": median / base,
        }
        print(
            f"{mode:10s} head median {np.median(head):.3f} [{head.min():.3f}-{head.max():.3f}]  "
            f"bag-of-frames median {np.median(bag):.3f} [{bag.min():.3f}-{bag.max():.3f}]  "
            f"extraction {median:.2f} CPU s (median of {len(cpu[mode])}), "
            f"{median / base:.2f}x {args.modes[0]}'s",
            flush=True,
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
