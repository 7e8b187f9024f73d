"""The decode plan of a video: which frames to decode to reach the sampled ones.

A plan is a list of :class:`DecodeRun`: each run seeks to a keyframe and decodes
forward through its targets. Between two wanted frames the planner chooses the
cheaper way on, counting the frames to decode:

* decode through: every frame after the previous target up to the next;
* seek: to the last keyframe at or before the next target, then decode from
  there (plus :data:`SEEK_PENALTY_FRAMES` for the seek itself).

Each choice ends with the decoder just past the same target, so choosing per
gap gives the cheapest plan overall. A video with a keyframe every frame
(MJPEG) becomes one seek per target; a video with one keyframe becomes one
run, the same work as sequential decoding up to the last target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vidseq.errors import UsageError
from vidseq.extract.decode.packet_index import PacketIndex

SEEK_PENALTY_FRAMES = 1
"""Frames a seek is counted as costing: on a tie, decoding through wins."""


@dataclass(frozen=True)
class DecodeRun:
    """Seek to the keyframe ``start`` (a display index) and decode up to ``targets[-1]``.

    Attributes:
        start: Display index of the keyframe decoding starts from.
        targets: Increasing display indices of the frames to keep.
    """

    start: int
    targets: tuple[int, ...]

    @property
    def cost(self) -> int:
        """Frames this run decodes."""
        return self.targets[-1] - self.start + 1


def plan_decode(index: PacketIndex, targets: Sequence[int]) -> list[DecodeRun]:
    """Plans the cheapest decoding of ``targets`` (display indices) of a video.

    Args:
        index: The video's packet index.
        targets: Frame indices to decode, in any order, repeats allowed.

    Returns:
        The runs, in increasing order of frames.

    Raises:
        UsageError: If ``targets`` is empty or names a frame the video lacks.
    """
    wanted = sorted({int(t) for t in targets})
    if not wanted or wanted[0] < 0 or wanted[-1] >= index.num_frames:
        raise UsageError(
            f"targets must be frame indices in [0, {index.num_frames}). "
            f"Received: targets={list(targets)!r}"
        )
    runs: list[tuple[int, list[int]]] = []
    for target in wanted:
        keyframe = index.keyframe_before(target)
        if runs:
            position = runs[-1][1][-1]
            through = target - position
            seek = target - keyframe + 1 + SEEK_PENALTY_FRAMES
            if keyframe <= position or through <= seek:
                runs[-1][1].append(target)
                continue
        runs.append((keyframe, [target]))
    return [DecodeRun(start, tuple(kept)) for start, kept in runs]


def plan_cost(runs: Sequence[DecodeRun]) -> int:
    """Frames decoded by a plan (seeks not counted)."""
    return sum(run.cost for run in runs)
