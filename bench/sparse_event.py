"""Benchmark: uniform vs motion vs keyframes sampling on a sparse-event task from real photographs.

The task. Every video is one long still shot of a real photograph (a crop of a
``skimage.data`` image, one per group), with one short event of about
``--event-fraction`` of its frames at a random time. Six classes in three
time-reversed pairs, each event starting and ending on the same still image:

* ``ZoomIn`` / ``ZoomOut``: the view zooms into the photograph (1x to 2.5x)
  then cuts back, or starts zoomed and zooms out;
* ``Brighten`` / ``Darken``: the photograph brightens (x1 to x2.2) then cuts
  back, or starts bright and dims;
* ``Grow`` / ``Shrink``: a patch of another photograph grows from 4 pixels to
  most of the frame then vanishes, or appears large and shrinks.

A video of the second class of a pair is drawn exactly as one of the first,
then its event is played backwards; the still parts and the event's position
are drawn the same way for both. So the set of frames does not tell a class
from its twin (the bag-of-frames baseline cannot beat ~1/2 inside a pair), and
uniform sampling, which puts about 10% of its frames on the event, sees one or
two event frames: too few to see their order.

Protocol: write the videos (Motion-JPEG ``.avi``, UCF-101 layout, 64x64);
extract with the tiny CNN (random init, as the sample tests use it) for each
sampling mode; train the default head (``train_sequence``: default
``TrainConfig`` but the seed, ``--epochs`` 80, ``--batch-size`` 8 and patience
epochs/4: about 80 training videos need more than the default's 3 steps per
epoch) over ``--seeds``; report the test accuracy and the
bag-of-frames baseline's (``metrics["baseline"]``), per mode, median and
range. Figures are printed, never asserted. Usage::

    python bench/sparse_event.py [--videos-per-class 24] [--length 120]
        [--event-fraction 0.1] [--frames 16] [--seeds 0 1 2] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from skimage import data as photos

from vidseq.extract.pipeline import extract_features
from vidseq.extract.sampling import SamplingConfig
from vidseq.sequence.training import TrainConfig, train_sequence

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "cat")
PATCHES = ("immunohistochemistry", "colorwheel", "retina")
PAIRS = (("ZoomIn", "ZoomOut"), ("Brighten", "Darken"), ("Grow", "Shrink"))
SIZE = 64
CLIPS_PER_GROUP = 2


def _photo(name):
    image = getattr(photos, name)()
    return cv2.cvtColor(image[:, :, :3], cv2.COLOR_RGB2BGR)


def _event(kind, still_source, patch, rng, length):
    """The forward event's frames (BGR, SIZE x SIZE) for pair ``kind``."""
    frames, progress = [], np.linspace(0.0, 1.0, length)
    height, width = still_source.shape[:2]
    cy, cx = rng.uniform(0.35, 0.65) * height, rng.uniform(0.35, 0.65) * width
    for p in progress:
        if kind == 0:  # zoom in around (cx, cy)
            zoom = 1.0 + 1.5 * p
            half_h, half_w = height / (2 * zoom), width / (2 * zoom)
            top = int(np.clip(cy - half_h, 0, height - 2 * half_h))
            left = int(np.clip(cx - half_w, 0, width - 2 * half_w))
            view = still_source[top : top + int(2 * half_h), left : left + int(2 * half_w)]
            frames.append(cv2.resize(view, (SIZE, SIZE), interpolation=cv2.INTER_AREA))
        elif kind == 1:  # brighten
            still = cv2.resize(still_source, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
            frames.append(
                np.clip(still.astype(np.float32) * (1.0 + 1.2 * p), 0, 255).astype(np.uint8)
            )
        else:  # a patch grows
            still = cv2.resize(still_source, (SIZE, SIZE), interpolation=cv2.INTER_AREA).copy()
            side = int(4 + (SIZE * 0.8 - 4) * p)
            top, left = (SIZE - side) // 2, (SIZE - side) // 2
            still[top : top + side, left : left + side] = cv2.resize(patch, (side, side))
            frames.append(still)
    return frames


def make_video(class_index, group, clip, length, event_fraction, seed):
    """One video's BGR frames: a still shot with one short event (see the module docstring)."""
    kind, reverse = divmod(class_index, 2)
    scene = np.random.default_rng([seed, group])  # the group's photograph and crop
    source = _photo(PHOTOS[int(scene.integers(len(PHOTOS)))])
    h, w = source.shape[:2]
    side = int(min(h, w) * scene.uniform(0.6, 0.9))
    top, left = int(scene.integers(h - side + 1)), int(scene.integers(w - side + 1))
    source = source[top : top + side, left : left + side]
    patch = _photo(PATCHES[int(scene.integers(len(PATCHES)))])[:200, :200]
    rng = np.random.default_rng([seed, kind, group, clip])  # the same draws for both twins
    event_length = max(4, round(length * event_fraction))
    event = _event(kind, source, patch, rng, event_length)
    if reverse:
        event = event[::-1]
    still = cv2.resize(source, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    start = int(rng.integers(length - event_length + 1))
    return [still] * start + event + [still] * (length - event_length - start)


def write_dataset(root, videos_per_class, length, event_fraction, seed):
    classes = [name for pair in PAIRS for name in pair]
    groups = videos_per_class // CLIPS_PER_GROUP
    test_groups = max(1, round(groups / 3))
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    train, test = [], []
    for index, name in enumerate(classes):
        (root / name).mkdir()
        for number in range(videos_per_class):
            group, clip = number // CLIPS_PER_GROUP + 1, number % CLIPS_PER_GROUP + 1
            rel = f"{name}/v_{name}_g{group:02d}_c{clip:02d}.avi"
            writer = cv2.VideoWriter(
                str(root / rel), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (SIZE, SIZE)
            )
            for frame in make_video(index, group, clip, length, event_fraction, seed):
                writer.write(frame)
            writer.release()
            (test if group <= test_groups else train).append(
                rel if group <= test_groups else f"{rel} {index + 1}"
            )
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(classes, 1)))
    (lists / "trainlist01.txt").write_text("".join(f"{line}\n" for line in train))
    (lists / "testlist01.txt").write_text("".join(f"{line}\n" for line in test))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos-per-class", type=int, default=24)
    parser.add_argument("--length", type=int, default=120, help="frames per video")
    parser.add_argument("--event-fraction", type=float, default=0.1)
    parser.add_argument("--frames", type=int, default=16, help="K frames sampled per video")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--modes", nargs="+", default=["uniform", "motion", "keyframes"])
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="vidseq-sparse-"))
    data = work / "data"
    if not data.exists():
        write_dataset(data, args.videos_per_class, args.length, args.event_fraction, seed=0)
    results = {}
    for mode in args.modes:
        cache = work / f"{mode}.h5"
        start = time.process_time()
        extract_features(
            data,
            cache,
            input_size=(SIZE, SIZE),
            sampling=SamplingConfig(mode=mode, num_frames=args.frames),
            overwrite=True,
            progress=False,
        )
        cpu = time.process_time() - start
        rows = []
        for seed in args.seeds:
            config = TrainConfig(
                seed=seed, epochs=args.epochs, batch_size=args.batch_size, patience=args.epochs // 4
            )
            run = train_sequence(
                cache,
                work / f"run-{mode}-{seed}",
                config,
                overwrite=True,
                verbose=0,
            )
            rows.append((run.metrics["accuracy"], run.metrics["baseline"]["accuracy"]))
        head, bag = np.array(rows).T
        results[mode] = {"head": head.tolist(), "baseline": bag.tolist(), "extract_cpu_s": cpu}
        print(
            f"{mode:10s} head median {np.median(head):.3f} [{head.min():.3f}-{head.max():.3f}]  "
            f"bag-of-frames median {np.median(bag):.3f} [{bag.min():.3f}-{bag.max():.3f}]  "
            f"extraction {cpu:.1f} CPU s",
            flush=True,
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
