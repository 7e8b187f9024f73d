"""Window planning for long videos: pure arithmetic, no decoding, no TensorFlow.

A window of ``window`` seconds starts every ``stride`` seconds. In frames, at
the video's frame rate ``fps``, window ``k`` covers the frames
``round(k * stride * fps)`` up to, not including, that plus
``round(window * fps)``. Windows that fit inside the video are kept; when the
last of them stops short of the end, one more window ends exactly at the last
frame, so the whole video is covered. A video shorter than one window gets a
single window over all its frames.

Inside its frame range, each window is sampled exactly as the run's cache was
(its :class:`~vidseq.extract.decode.sampling.SamplingConfig`): a window over frames
``a .. b-1`` takes ``a + select_frames(sampling, b - a, fps).indices``. A window
as long as the video therefore takes the very frames a whole-clip prediction
takes.

Consecutive windows with the same top label merge into segments
(:func:`merge_segments`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vidseq.errors import UsageError
from vidseq.extract.decode.sampling import SamplingConfig, as_float, select_frames


@dataclass(frozen=True)
class Window:
    """One window of a video and the frames sampled from it.

    Attributes:
        index: Position in the plan (0-based).
        first: First source frame of the window.
        stop: One past its last source frame.
        frame_indices: (K,) int64 sampled source frame indices; padding
            repeats the last real one (see :func:`select_frames`).
        num_valid: How many leading entries are real frames.
        fps: The video's frame rate.
    """

    index: int
    first: int
    stop: int
    frame_indices: np.ndarray
    num_valid: int
    fps: float

    @property
    def start_s(self) -> float:
        """Start time in seconds."""
        return self.first / self.fps

    @property
    def end_s(self) -> float:
        """End time in seconds (exclusive)."""
        return self.stop / self.fps


@dataclass(frozen=True)
class Segment:
    """A run of consecutive windows with the same top label.

    Attributes:
        start: Start time in seconds.
        end: End time in seconds.
        label: The windows' top label.
        probability: Mean top probability over the windows.
        windows: How many windows it merges.
    """

    start: float
    end: float
    label: str
    probability: float
    windows: int

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "start": self.start,
            "end": self.end,
            "label": self.label,
            "probability": self.probability,
            "windows": self.windows,
        }


def check_seconds(name: str, value) -> float:
    """``value`` as a positive, finite number of seconds.

    Raises:
        UsageError: For anything else, naming ``name`` and quoting ``value``.
    """
    seconds = as_float(value)
    if seconds is None or not (math.isfinite(seconds) and seconds > 0):
        raise UsageError(f"{name} must be a positive number of seconds. Received: {name}={value!r}")
    return seconds


def window_starts(num_frames: int, fps: float, window: float, stride: float) -> list[tuple]:
    """The ``(first, stop)`` frame ranges of the windows of a video.

    Args:
        num_frames: Frames in the video (>= 1).
        fps: Its frame rate (> 0).
        window: Window length in seconds.
        stride: Seconds between window starts.

    Returns:
        ``(first, stop)`` pairs in order; see the module docstring.
    """
    length = max(1, round(window * fps))
    if num_frames <= length:
        return [(0, num_frames)]
    ranges = []
    k = 0
    while (first := round(k * stride * fps)) + length <= num_frames:
        ranges.append((first, first + length))
        k += 1
    if ranges[-1][1] < num_frames:
        ranges.append((num_frames - length, num_frames))
    return ranges


def plan_windows(
    num_frames: int, fps: float, *, window: float, stride: float, sampling: SamplingConfig
) -> list[Window]:
    """Plans the windows of a video and the frames each one samples.

    Args:
        num_frames: Frames in the video (>= 1).
        fps: Its frame rate.
        window: Window length in seconds (> 0).
        stride: Seconds between window starts (> 0).
        sampling: The run's sampling (mode, K, frame rate).

    Returns:
        The :class:`Window` list, in time order.

    Raises:
        UsageError: For a window or stride that is not a positive number.
    """
    window = check_seconds("window", window)
    stride = check_seconds("stride", stride)
    plan = []
    for index, (first, stop) in enumerate(window_starts(num_frames, fps, window, stride)):
        selection = select_frames(sampling, stop - first, fps)
        plan.append(
            Window(
                index=index,
                first=first,
                stop=stop,
                frame_indices=selection.indices + first,
                num_valid=int(selection.num_valid),
                fps=float(fps),
            )
        )
    return plan


def merge_segments(starts, ends, labels, probabilities) -> list[Segment]:
    """Merges consecutive windows with the same top label into segments.

    Segments tile the time line without overlap: the boundary between two
    segments lies halfway between the centre of the last window of the first
    and the centre of the first window of the second. The first segment starts
    where the first window starts, the last ends where the last window ends.

    Args:
        starts: Window start times (seconds), in order.
        ends: Window end times.
        labels: Each window's top label.
        probabilities: Each window's top probability.

    Returns:
        The :class:`Segment` list (empty without windows).
    """
    runs = []  # [first window, last window] of each run of equal labels
    for i, label in enumerate(labels):
        if runs and labels[runs[-1][0]] == label:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    centres = [(s + e) / 2 for s, e in zip(starts, ends, strict=True)]
    segments = []
    for n, (first, last) in enumerate(runs):
        start = starts[first] if n == 0 else segments[-1].end
        end = ends[last] if n == len(runs) - 1 else (centres[last] + centres[last + 1]) / 2
        mean = float(np.mean([probabilities[i] for i in range(first, last + 1)]))
        segments.append(Segment(start, end, labels[first], mean, last - first + 1))
    return segments
