"""Shot-aware ("keyframes") frame selection: content cuts, then frames per shot by length.

Content change. Each frame's small colour thumbnail is reduced to an HSV
histogram (:data:`HSV_BINS` bins, normalised); the change at frame ``i`` is
half the L1 distance between the histograms of frames ``i - 1`` and ``i``
(0: same colours, 1: no colour in common). This is the histogram variant of
PySceneDetect's ``ContentDetector``.

Cuts (adaptive threshold, as PySceneDetect's ``AdaptiveDetector``): frame ``i``
starts a new shot when its change is at least ``threshold`` *and* at least
``ratio`` times the mean change of the :data:`WINDOW` frames on either side,
and the current shot already has :data:`MIN_SHOT_FRAMES` frames. A hard cut is
one spike; a fade or a camera pan raises the neighbours too and is not cut.

Selection. Each shot gets frames in proportion to its length (largest
remainder, never more frames than it has), then its frames are taken as
``uniform`` takes them from a video of that length: the centre of equal
segments, or with a random generator a random frame of each. Every segment
lies inside one shot, so no sample straddles a cut.
"""

from __future__ import annotations

import cv2
import numpy as np

from vidseq.extract.decode.sampling import FrameSelection, padded, uniform_indices

HSV_BINS = (16, 4, 4)
"""Hue, saturation and value bins of the content histogram."""
WINDOW = 2
"""Frames on either side whose mean change the adaptive threshold compares against."""
MIN_SHOT_FRAMES = 8
"""Shortest shot: no cut closer than this to the previous one."""


class ContentSignal:
    """Accumulates the per-frame content change of one video, one thumbnail at a time."""

    def __init__(self):
        self._values = []
        self._previous = None

    def add(self, bgr_thumbnail: np.ndarray) -> None:
        """Adds the next frame's small (h, w, 3) uint8 BGR thumbnail."""
        hsv = cv2.cvtColor(bgr_thumbnail, cv2.COLOR_BGR2HSV)
        histogram = cv2.calcHist([hsv], [0, 1, 2], None, list(HSV_BINS), [0, 180, 0, 256, 0, 256])
        histogram = histogram.ravel() / max(1.0, float(histogram.sum()))
        if self._previous is None:
            self._values.append(0.0)
        else:
            self._values.append(0.5 * float(np.abs(histogram - self._previous).sum()))
        self._previous = histogram

    def values(self) -> np.ndarray:
        """(n,) float64 content change of each frame so far, in [0, 1]."""
        return np.asarray(self._values, dtype=np.float64)


def detect_cuts(change, threshold, ratio) -> np.ndarray:
    """The frames that start a new shot (hard cuts).

    Args:
        change: (n,) per-frame content change (:class:`ContentSignal`).
        threshold: Least change of a cut, in [0, 1].
        ratio: Least ratio of a cut's change to its neighbours' mean change.

    Returns:
        Sorted int64 indices of the first frame of every shot after the first.
    """
    change = np.asarray(change, dtype=np.float64)
    cuts, last = [], 0
    for i in np.flatnonzero(change >= threshold).tolist():
        neighbours = np.concatenate(
            [change[max(1, i - WINDOW) : i], change[i + 1 : i + 1 + WINDOW]]
        )
        local = float(neighbours.mean()) if neighbours.size else 0.0
        if change[i] >= ratio * local and i - last >= MIN_SHOT_FRAMES:
            cuts.append(i)
            last = i
    return np.asarray(cuts, dtype=np.int64)


def shot_frames(num_source_frames, cuts, num_frames) -> np.ndarray:
    """How many of K frames each shot gets: proportional to length, at most its length.

    Args:
        num_source_frames: n, the video's frames (>= K).
        cuts: First frame of every shot after the first (:func:`detect_cuts`).
        num_frames: K.

    Returns:
        (S,) int64 frames per shot, summing to K.
    """
    bounds = np.concatenate([[0], np.asarray(cuts, dtype=np.int64), [num_source_frames]])
    lengths = np.diff(bounds)
    exact = lengths * num_frames / num_source_frames
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")  # largest remainder first
    for shot in order[: num_frames - int(counts.sum())]:
        counts[shot] += 1
    return counts


def keyframe_indices(change, num_frames, threshold, ratio, rng=None) -> FrameSelection:
    """Selects K frames shot by shot (see the module docstring).

    Args:
        change: (n,) per-frame content change (:class:`ContentSignal`).
        num_frames: K, the number of frames wanted (>= 1).
        threshold: Least change of a cut (see :func:`detect_cuts`).
        ratio: Least ratio of a cut's change to its neighbours' (see :func:`detect_cuts`).
        rng: Optional ``numpy.random.Generator``: a random frame of each
            segment of a shot instead of its centre (training augmentation).

    Returns:
        The selection: K strictly increasing indices when ``n >= K``, else all
        ``n`` frames padded to K by repeating the last one.
    """
    change = np.asarray(change, dtype=np.float64)
    n, k = change.size, int(num_frames)
    if n < k:
        return padded(np.arange(n, dtype=np.int64), k)
    cuts = detect_cuts(change, threshold, ratio)
    starts = np.concatenate([[0], cuts])
    lengths = np.diff(np.concatenate([starts, [n]]))
    parts = [
        start + uniform_indices(int(length), int(count), rng=rng).indices
        for start, length, count in zip(starts, lengths, shot_frames(n, cuts, k), strict=True)
        if count
    ]
    return FrameSelection(indices=np.concatenate(parts).astype(np.int64), num_valid=k)
