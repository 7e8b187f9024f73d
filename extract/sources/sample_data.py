"""Offline sample data: small real videos whose classes only temporal order separates.

:func:`make_sample` writes encoded videos (Motion-JPEG in ``.avi``) in the
UCF-101 layout, so that every stage of vidseq can run offline, and a test of
the whole pipeline means something::

    OUT/Grow/v_Grow_g01_c01.avi
    ...
    OUT/ucfTrainTestlist/classInd.txt     "1 BlueToRed"
    OUT/ucfTrainTestlist/trainlist01.txt  "Grow/v_Grow_g03_c01.avi 4"
    OUT/ucfTrainTestlist/testlist01.txt   "Grow/v_Grow_g01_c01.avi"
    OUT/vidseq_sample.json                parameters, and frames and fps of every video

Design. The classes come in pairs, each the time reversal of the other:

* ``Grow`` / ``Shrink``: a shape's size goes from small to large;
* ``FadeIn`` / ``FadeOut``: a shape's opacity goes from 0 to 1;
* ``RedToBlue`` / ``BlueToRed``: a shape's colour goes from red to blue;
* ``RotateCW`` / ``RotateCCW``: an asymmetric shape (an L, an arrow) turns
  clockwise (on screen).

A video of the second class of a pair is drawn by *the same random procedure*
as one of the first class (with its own random numbers), then played
backwards. So, inside a pair, a video and its time reversal are exactly
equally likely: backgrounds, positions, sizes,
speeds, lengths and frame rates all have the same distributions, and anything
computed from the set of frames regardless of their order (a time-averaged CNN
feature, a bag of frames) has the same distribution for both classes. Such a
classifier stays at chance inside a pair (it can still tell pairs apart, so
its expected accuracy is about 1/2); only a model of
temporal order, such as the RNN head, separates all classes. What changes
(size, opacity, colour, orientation) survives global average pooling frame by
frame; only its order differs. (Motion to the left or right would not do:
pooling discards position.) Note that the ``fps`` sampling mode reads at most
K frames from the start, which may cover only the first part of a long video;
the property above holds for whole-clip (``uniform``) sampling.

Randomness: each group (``gNN``, the "long video" that clips are cut from, as
in UCF-101) shares a dark background (two-colour gradient plus faint clutter)
and a shape and its bright colour; each clip draws its own position, drift, size, speed and
timing of the change, length (40 to 90 frames) and frame rate (15 to 30 fps,
integer). Frames are 128x96 (width x height). Groups ``g01``..``g0k`` (about a
third of the groups) form the test list, as in UCF-101, the others the train
list. The default set, 6 classes (the first three pairs) x 40 videos = 240
videos of ~65 frames each (~15,600 frames), is written in a few seconds and
extracts in seconds with the tiny CNN on 2 cores.

Determinism: every video's random numbers derive from ``(seed, class,
group, clip)``; the same seed gives the same bytes (same OpenCV build), and
choosing a subset of ``classes`` gives the same videos for those classes.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from vidseq.errors import UsageError
from vidseq.version import __version__

SAMPLE_PAIRS = (
    ("Grow", "Shrink"),
    ("FadeIn", "FadeOut"),
    ("RedToBlue", "BlueToRed"),
    ("RotateCW", "RotateCCW"),
)
SAMPLE_CLASSES = tuple(sorted(name for pair in SAMPLE_PAIRS for name in pair))
DEFAULT_CLASSES = tuple(sorted(name for pair in SAMPLE_PAIRS[:3] for name in pair))
"""The classes written by default: the three pairs that the tiny random-init CNN's
features make learnable. The rotation pair is available on request; through the
tiny CNN its direction stays near chance for the RNN too (measured: see docs/results.md)."""
FRAME_SIZE = (96, 128)  # (height, width)
FRAME_COUNT_RANGE = (40, 90)  # inclusive
FPS_RANGE = (15, 30)  # inclusive, integers
DEFAULT_VIDEOS_PER_CLASS = 40
CLIPS_PER_GROUP = 2
MARKER_FILE = "vidseq_sample.json"
LISTS_DIR = "ucfTrainTestlist"

_SHIFT = 4  # sub-pixel bits for cv2 drawing
_SCALE = 1 << _SHIFT
_KIND = {}
for _pair_index, (_forward, _backward) in enumerate(SAMPLE_PAIRS):
    _KIND[_forward] = (_pair_index, False)
    _KIND[_backward] = (_pair_index, True)
_CLASS_ID = {name: i for i, name in enumerate(name for pair in SAMPLE_PAIRS for name in pair)}

_ASYMMETRIC_SHAPES = (
    # An L, and an arrow with an off-centre head: neither looks the same after any turn.
    np.array([[-0.6, -1.0], [-0.1, -1.0], [-0.1, 0.5], [0.9, 0.5], [0.9, 1.0], [-0.6, 1.0]]),
    np.array(
        [
            [-1.0, -0.25],
            [0.2, -0.25],
            [0.2, -0.7],
            [1.0, 0.1],
            [0.2, 0.5],
            [0.2, 0.25],
            [-1.0, 0.25],
        ]
    ),
)


_DARK = 50.0
"""Backgrounds and clutter take random colours with every channel below this."""
_BRIGHT = 150.0
"""Shapes take random colours with every channel above this: a shape is always brighter
than the background, as a lit subject on a darker scene; otherwise "growing" and
"shrinking" (or fading in and out) would have no direction a model could learn."""


def _regular_polygon(sides: int, rotation: float) -> np.ndarray:
    angles = rotation + 2 * np.pi * np.arange(sides) / sides
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _mask(shape, centre, scale, angle) -> np.ndarray:
    """Anti-aliased coverage (0..1 float32) of a shape on the frame."""
    height, width = FRAME_SIZE
    canvas = np.zeros((height, width), dtype=np.uint8)
    if shape is None:  # a disk
        centre_px = (round(centre[0] * _SCALE), round(centre[1] * _SCALE))
        cv2.circle(canvas, centre_px, max(round(scale * _SCALE), 1), 255, -1, cv2.LINE_AA, _SHIFT)
    else:
        cos, sin = math.cos(angle), math.sin(angle)
        rotated = shape @ np.array([[cos, sin], [-sin, cos]])  # +angle turns clockwise (y down)
        points = np.round((rotated * scale + np.asarray(centre)) * _SCALE).astype(np.int32)
        cv2.fillPoly(canvas, [points], 255, cv2.LINE_AA, _SHIFT)
    return canvas.astype(np.float32) / 255.0


def _background(rng: np.random.Generator) -> np.ndarray:
    height, width = FRAME_SIZE
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = xx * math.cos(angle) + yy * math.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    first, second = rng.uniform(0, _DARK, (2, 3)).astype(np.float32)
    image = first + (second - first) * ramp[..., None]
    for _ in range(int(rng.integers(0, 4))):  # faint static clutter
        clutter = np.zeros((height, width), dtype=np.uint8)
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1 = x0 + int(rng.integers(8, 40))
        y1 = y0 + int(rng.integers(8, 30))
        cv2.rectangle(clutter, (x0, y0), (x1, y1), 255, -1)
        tint = rng.uniform(0, _DARK, 3).astype(np.float32)
        alpha = 0.3 * clutter.astype(np.float32)[..., None] / 255.0
        image = image * (1 - alpha) + tint * alpha
    return image


def _bright_colour(rng: np.random.Generator) -> np.ndarray:
    """A random colour brighter than any background, so "more shape" means "brighter"."""
    return rng.uniform(_BRIGHT, 255, 3).astype(np.float32)


def _group_scene(rng: np.random.Generator, pair_index: int) -> dict:
    background = _background(rng)
    scene = {"background": background, "colour": _bright_colour(rng)}
    if pair_index == 3:
        scene["shape"] = _ASYMMETRIC_SHAPES[int(rng.integers(len(_ASYMMETRIC_SHAPES)))]
    else:
        sides = int(rng.choice([0, 3, 4, 6]))
        scene["shape"] = None if sides == 0 else _regular_polygon(sides, rng.uniform(0, np.pi))
    return scene


def _forward_clip(rng: np.random.Generator, pair_index: int, scene: dict):
    """Draws one clip of the first class of a pair; returns (RGB frames, fps)."""
    height, width = FRAME_SIZE
    count = int(rng.integers(FRAME_COUNT_RANGE[0], FRAME_COUNT_RANGE[1] + 1))
    fps = int(rng.integers(FPS_RANGE[0], FPS_RANGE[1] + 1))
    # When the change happens: a window of 50-100% of the clip, anywhere in it.
    duration = rng.uniform(0.5, 1.0) * (count - 1)
    start = rng.uniform(0, (count - 1) - duration)
    times = np.arange(count, dtype=np.float64)
    progress = np.clip((times - start) / max(duration, 1e-6), 0.0, 1.0)
    # Where: a random spot, drifting slowly in a random direction.
    origin = np.array([rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height])
    drift = rng.uniform(-0.3, 0.3, 2)
    low, high = np.array([0.2 * width, 0.2 * height]), np.array([0.8 * width, 0.8 * height])
    centres = np.clip(origin + drift * times[:, None], low, high)

    background = scene["background"]
    colour = scene["colour"]
    shape = scene["shape"]
    angle0 = float(rng.uniform(0, 2 * np.pi)) if pair_index != 3 else 0.0
    if pair_index == 0:  # Grow: small to large
        small, large = rng.uniform(3, 8), rng.uniform(22, 40)
        scales = small + (large - small) * progress
        colours = np.repeat(colour[None], count, axis=0)
        opacity = np.ones(count)
        angles = np.full(count, angle0)
    elif pair_index == 1:  # FadeIn: transparent to opaque
        scales = np.full(count, rng.uniform(12, 30))
        colours = np.repeat(colour[None], count, axis=0)
        opacity = progress
        angles = np.full(count, angle0)
    elif pair_index == 2:  # RedToBlue
        red = np.array([220.0, 40.0, 40.0]) + rng.uniform(-30, 30, 3)
        blue = np.array([40.0, 60.0, 220.0]) + rng.uniform(-30, 30, 3)
        scales = np.full(count, rng.uniform(12, 30))
        colours = red[None] + (blue - red)[None] * progress[:, None]
        opacity = np.ones(count)
        angles = np.full(count, angle0)
    else:  # RotateCW: clockwise on screen
        scales = np.full(count, rng.uniform(16, 30))
        turn = np.deg2rad(rng.uniform(120, 270))
        angles = rng.uniform(0, 2 * np.pi) + turn * progress
        colours = np.repeat(colour[None], count, axis=0)
        opacity = np.ones(count)

    # What a pixel the shape does not touch becomes (in float64, as the blend computes).
    still = np.clip(np.rint(background.astype(np.float64)), 0, 255).astype(np.uint8)
    frames = []
    for t in range(count):
        coverage = _mask(shape, centres[t], scales[t], angles[t]) * opacity[t]
        frames.append(_composite(background, still, coverage, colours[t].astype(np.float32)))
    return frames, fps


def _composite(background, still, coverage, colour) -> np.ndarray:
    """``background * (1 - coverage) + colour * coverage`` rounded to uint8.

    Blended only inside the box where ``coverage`` is not zero; outside it the
    result is ``still``, the background rounded.
    """
    frame = still.copy()
    rows = np.flatnonzero(coverage.any(axis=1))
    if rows.size:
        cols = np.flatnonzero(coverage.any(axis=0))
        box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        alpha = coverage[box][..., None]
        blend = background[box] * (1 - alpha) + colour * alpha
        frame[box] = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
    return frame


def sample_video(name: str, group: int, clip: int, *, seed: int = 0):
    """Draws one sample video (without writing it).

    Args:
        name: A class name from :data:`SAMPLE_CLASSES`.
        group: Group number (1-based), the ``gNN`` of the file name.
        clip: Clip number inside the group (1-based), the ``cNN``.
        seed: The data set's seed.

    Returns:
        ``(frames, fps)``: a list of (96, 128, 3) uint8 RGB frames and an int.

    Raises:
        UsageError: Unknown class name.
    """
    if name not in _KIND:
        raise UsageError(
            f"unknown sample class {name!r}; expected one of {', '.join(SAMPLE_CLASSES)}"
        )
    pair_index, reverse = _KIND[name]
    class_id = _CLASS_ID[name]
    scene = _group_scene(np.random.default_rng([seed, class_id, group, 0]), pair_index)
    frames, fps = _forward_clip(
        np.random.default_rng([seed, class_id, group, clip]), pair_index, scene
    )
    return (frames[::-1] if reverse else frames), fps


def sparse_event_video(name: str, group: int, clip: int, *, seed: int = 0, event_fraction=0.1):
    """Draws one sample video as a short event inside a long still shot (without writing it).

    The event is :func:`sample_video`'s clip; before and after it the group's
    background holds still, without the shape, for as long as
    ``event_fraction`` says. The same still image comes before and after the
    event, and its split into "before" and "after" is drawn the same way for
    both classes of a pair, so neither the set of frames nor the order of the
    still parts tells a class from its time-reversed twin: only the order of
    the few event frames does.

    Args:
        name: A class name from :data:`SAMPLE_CLASSES`.
        group: Group number (1-based).
        clip: Clip number inside the group (1-based).
        seed: The data set's seed.
        event_fraction: The event's share of the video's frames, in (0, 1].

    Returns:
        ``(frames, fps)`` as :func:`sample_video` returns them.

    Raises:
        UsageError: Unknown class name or an ``event_fraction`` outside (0, 1].
    """
    fraction = _event_fraction(event_fraction)
    event, fps = sample_video(name, group, clip, seed=seed)
    pair_index, _ = _KIND[name]
    scene = _group_scene(np.random.default_rng([seed, _CLASS_ID[name], group, 0]), pair_index)
    still = np.clip(np.rint(scene["background"]), 0, 255).astype(np.uint8)
    static = round(len(event) * (1 / fraction - 1))
    before = int(
        np.random.default_rng([seed, _CLASS_ID[name], group, clip, 1]).integers(static + 1)
    )
    return [still] * before + list(event) + [still] * (static - before), fps


def _event_fraction(value):
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        valid = False
    else:
        valid = 0 < value <= 1
    if not valid:
        raise UsageError(
            f"event_fraction must be a number in (0, 1]. Received: event_fraction={value!r}"
        )
    return float(value)


def _write_avi(path: Path, frames, fps: int) -> None:
    height, width = FRAME_SIZE
    fourcc = cv2.VideoWriter_fourcc(*"MJPG")
    writer = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, fourcc, float(fps), (width, height))
    if not writer.isOpened():
        writer = cv2.VideoWriter(str(path), fourcc, float(fps), (width, height))
    if not writer.isOpened():
        raise UsageError(f"{path}: OpenCV cannot write Motion-JPEG .avi files here")
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 85)
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def _check_classes(classes) -> list[str]:
    if classes is None:
        return list(DEFAULT_CLASSES)
    if isinstance(classes, str):
        classes = [part for part in classes.replace(",", " ").split() if part]
    chosen = list(dict.fromkeys(classes))
    unknown = [name for name in chosen if name not in _KIND]
    if unknown:
        raise UsageError(
            f"unknown sample class(es) {', '.join(map(repr, unknown))}; "
            f"expected some of {', '.join(SAMPLE_CLASSES)}"
        )
    if not chosen:
        raise UsageError(f"classes must name at least one of {', '.join(SAMPLE_CLASSES)}")
    return sorted(chosen)


def num_test_groups(num_groups: int) -> int:
    """How many leading groups (``g01``..) form the test list: about a third, at least one.

    A single group cannot be split; it all goes to the train list.
    """
    return 0 if num_groups < 2 else max(1, round(num_groups / 3))


def make_sample(
    out,
    *,
    seed: int = 0,
    classes=None,
    videos_per_class: int = DEFAULT_VIDEOS_PER_CLASS,
    overwrite: bool = False,
    event_fraction=None,
) -> Path:
    """Writes the offline sample data set (see the module docstring for its design).

    Args:
        out: Folder to create. It must not exist or be empty, unless
            ``overwrite`` is set and it holds an earlier make-sample output.
        seed: Seed; the same seed writes the same bytes.
        classes: Class names to write (a list, or a comma-separated string),
            among :data:`SAMPLE_CLASSES`; None writes :data:`DEFAULT_CLASSES`
            (6 classes, 3 time-reversed pairs). A class without its partner is
            allowed but separable from the others by appearance alone.
        videos_per_class: Videos per class, in groups of 2 clips
            (``v_<Class>_g01_c01.avi``, ``..._g01_c02.avi``, ``..._g02_c01.avi``).
        overwrite: Replace ``out`` if it is an earlier make-sample output
            (it holds ``vidseq_sample.json``).
        event_fraction: None, or the sparse-event variant: each video is a
            short event (this share of its frames) inside a long still shot
            (see :func:`sparse_event_video`).

    Returns:
        The absolute path of ``out``.

    Raises:
        UsageError: Unknown class names, ``videos_per_class`` < 1, a negative
            seed, or an ``out`` that is not free.
    """
    chosen = _check_classes(classes)
    if (
        isinstance(videos_per_class, bool)
        or not isinstance(videos_per_class, int)
        or videos_per_class < 1
    ):
        raise UsageError(
            "videos_per_class must be an integer >= 1. "
            f"Received: videos_per_class={videos_per_class!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError(f"seed must be an integer >= 0. Received: seed={seed!r}")
    if event_fraction is not None:
        event_fraction = _event_fraction(event_fraction)
    out = Path(os.path.abspath(os.path.expanduser(str(out))))
    replace_existing = False
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"{out}: exists and is not a folder; expected a new folder")
        if any(out.iterdir()):
            if not overwrite:
                raise UsageError(
                    f"{out}: exists and is not empty; choose a new folder "
                    "(or overwrite an earlier make-sample output)"
                )
            if not (out / MARKER_FILE).is_file():
                raise UsageError(
                    f"{out}: not a make-sample output (no {MARKER_FILE}); refusing to replace it"
                )
        replace_existing = True

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    if partial.exists():
        shutil.rmtree(partial)
    try:
        _write_dataset(partial, chosen, seed, videos_per_class, event_fraction)
        if replace_existing:
            shutil.rmtree(out)
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out


def _write_dataset(
    root: Path, chosen: list[str], seed: int, videos_per_class: int, event_fraction
) -> None:
    num_groups = math.ceil(videos_per_class / CLIPS_PER_GROUP)
    num_test = num_test_groups(num_groups)
    lists = root / LISTS_DIR
    lists.mkdir(parents=True)
    train_lines, test_lines, videos = [], [], []
    for index, name in enumerate(chosen, start=1):
        (root / name).mkdir()
        for number in range(videos_per_class):
            group, clip = number // CLIPS_PER_GROUP + 1, number % CLIPS_PER_GROUP + 1
            rel = f"{name}/v_{name}_g{group:02d}_c{clip:02d}.avi"
            if event_fraction is None:
                frames, fps = sample_video(name, group, clip, seed=seed)
            else:
                frames, fps = sparse_event_video(
                    name, group, clip, seed=seed, event_fraction=event_fraction
                )
            _write_avi(root / rel, frames, fps)
            split = "test" if group <= num_test else "train"
            if split == "test":
                test_lines.append(rel)
            else:
                train_lines.append(f"{rel} {index}")
            videos.append(
                {"path": rel, "label": name, "frames": len(frames), "fps": fps, "split": split}
            )

    def write_lines(path: Path, lines) -> None:
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write("".join(f"{line}\r\n" for line in lines))

    write_lines(lists / "classInd.txt", [f"{i} {name}" for i, name in enumerate(chosen, 1)])
    write_lines(lists / "trainlist01.txt", train_lines)
    write_lines(lists / "testlist01.txt", test_lines)
    marker = {
        "generator": "vidseq make-sample",
        "vidseq_version": __version__,
        "seed": seed,
        "classes": chosen,
        "pairs": [list(pair) for pair in SAMPLE_PAIRS if set(pair) & set(chosen)],
        "videos_per_class": videos_per_class,
        "event_fraction": event_fraction,
        "frame_size": list(FRAME_SIZE),
        "videos": videos,
    }
    (root / MARKER_FILE).write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n")
