"""Motion-aware frame selection: K frames at equal steps of cumulative motion (MGSampler-style).

The motion of frame ``i`` is the mean absolute difference, in grey levels
(0-255), between small grey thumbnails of frames ``i - 1`` and ``i`` (frame 0
has none). No CNN is involved: a thumbnail is a strided subsample of the
decoded frame's luma plane, at most :data:`THUMB_SIZE`
(:func:`vidseq.extract.decode.video_reader.iter_thumbnails`), so the signal costs a
few microseconds per frame at any resolution.

Selection. Each frame weighs ``max(motion, floor)``; the video's total weight
is split into K equal parts ("motion segments") and the frame at the centre of
each part is taken, so frames concentrate where the picture changes. The floor
keeps static stretches from vanishing entirely, and a video whose motion never
exceeds the floor (a still shot, or compression noise only) gets exactly the
``uniform`` selection. With a random generator a random point of each motion
segment is taken instead: the motion analogue of TSN's random segment offsets.
"""

from __future__ import annotations

import cv2
import numpy as np

from vidseq.extract.decode.sampling import FrameSelection, padded, uniform_indices

THUMB_SIZE = (32, 32)
"""Largest (height, width) of the grey thumbnails the motion signal compares."""


class MotionSignal:
    """Accumulates the per-frame motion signal of one video, one thumbnail at a time.

    Memory is one thumbnail and one float per frame, never the frames.
    """

    def __init__(self):
        self._values = []
        self._previous = None

    def add(self, thumbnail: np.ndarray, position: int | None = None) -> None:
        """Adds a frame's (h, w) uint8 grey thumbnail.

        Args:
            thumbnail: The thumbnail.
            position: The frame's index in the video; None for the frame after
                the last one added. When frames were skipped since the last one
                added, the motion between the two thumbnails is shared equally
                by the frames in between and this one.
        """
        thumbnail = np.ascontiguousarray(thumbnail)
        position = len(self._values) if position is None else int(position)
        gap = position - len(self._values) + 1
        if gap < 1:
            raise ValueError(
                f"position must follow the last frame added ({len(self._values) - 1}). "
                f"Received: position={position}"
            )
        if self._previous is None or self._previous.shape != thumbnail.shape:
            motion = 0.0
        else:
            motion = cv2.norm(thumbnail, self._previous, cv2.NORM_L1) / thumbnail.size
        self._values.extend([motion / gap] * gap)
        self._previous = thumbnail

    def pad_to(self, count: int) -> None:
        """Gives frames up to ``count`` that were never added (skipped at the end) no motion."""
        self._values.extend([0.0] * (count - len(self._values)))

    def values(self) -> np.ndarray:
        """(n,) float64 motion of each frame so far, in grey levels."""
        return np.asarray(self._values, dtype=np.float64)


def motion_indices(motion, num_frames, floor, rng=None) -> FrameSelection:
    """Selects K frames at equal steps of cumulative motion.

    Args:
        motion: (n,) per-frame motion in grey levels (:class:`MotionSignal`).
        num_frames: K, the number of frames wanted (>= 1).
        floor: Weight of a frame with less motion than this (grey levels, > 0).
        rng: Optional ``numpy.random.Generator``: a random point of each motion
            segment instead of its centre (training augmentation).

    Returns:
        The selection: K strictly increasing indices when ``n >= K``, else all
        ``n`` frames padded to K by repeating the last one.

    Raises:
        ValueError: For an empty signal, ``K < 1`` or a floor that is not positive.
    """
    motion = np.asarray(motion, dtype=np.float64)
    if motion.ndim != 1 or motion.size == 0:
        raise ValueError(f"motion must be a non-empty 1-D array. Received: shape={motion.shape}")
    if not floor > 0:
        raise ValueError(f"floor must be > 0. Received: floor={floor!r}")
    n, k = motion.size, int(num_frames)
    if n < k:
        return padded(np.arange(n, dtype=np.int64), k)
    if not (motion > floor).any():
        return uniform_indices(n, k, rng=rng)
    weights = np.maximum(motion, floor)
    cumulative = np.cumsum(weights)
    offsets = np.full(k, 0.5) if rng is None else rng.random(k)
    targets = (np.arange(k) + offsets) * cumulative[-1] / k
    # Frame i covers the motion interval [cumulative[i-1], cumulative[i]).
    indices = np.searchsorted(cumulative, targets, side="right").clip(0, n - 1)
    return FrameSelection(indices=strictly_increasing(indices, n), num_valid=k)


def strictly_increasing(indices, num_source_frames) -> np.ndarray:
    """Moves repeated indices apart so that K indices in ``[0, n)`` strictly increase.

    A frame that carries more than one segment's weight (a flash, a cut) would
    otherwise be taken twice; its neighbours are taken instead, which keeps the
    padding convention (trailing repeats mean padding) unambiguous.
    """
    result = np.asarray(indices, dtype=np.int64).copy()
    k = len(result)
    for j in range(1, k):
        result[j] = max(result[j], result[j - 1] + 1)
    for j in range(k - 1, -1, -1):
        limit = num_source_frames - k + j if j == k - 1 else result[j + 1] - 1
        result[j] = min(result[j], limit)
    return result
