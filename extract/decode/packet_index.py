"""A video's packet index, read without decoding: its frames and its keyframes.

:func:`read_packet_index` demuxes the video stream of a file with PyAV (no
decoding: it reads packet headers, a few milliseconds even for long HD videos)
and returns a :class:`PacketIndex`: the presentation timestamp of every frame in
display order, which of them are keyframes (where decoding may start), the
size of each frame's packet, and the container facts that timestamps are computed from.

The frame count comes from the packets, not from the container header's claim.
That count equals what sequential decoding yields only when every packet
carries one frame and is decodable, so the index refuses (raises
:class:`IndexUnavailable`) whatever it cannot vouch for:

* damaged indexes: packets without a timestamp, two packets with the same
  timestamp, truncated (corrupt) packets, a first frame that is not a
  keyframe; these are ``broken``;
* codecs outside :data:`PLANNABLE_CODECS` (e.g. VP8, whose hidden alt-ref
  frames may travel in packets of their own), AVI files whose codec reorders
  frames (AVI stores decode order only, so packet timestamps are not display
  times); these are merely unsupported (``broken`` is False). Rotated videos
  (OpenCV rotates them on reading) are refused by the reader at the first
  decoded frame.

A packet whose decoder can only fail in the middle of a file is not detectable
without decoding it: sequential decoding stops at such a packet, the index
counts past it.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

PLANNABLE_CODECS = frozenset(
    {"h264", "hevc", "mpeg4", "mjpeg", "vp9", "av1", "mpeg1video", "mpeg2video"}
)
"""Codecs whose packets carry exactly one displayed frame each."""


class IndexUnavailable(Exception):
    """The packet index cannot stand in for sequential decoding of this file.

    Attributes:
        reason: What is wrong, in words.
        broken: True when the file's index is missing or damaged, False when the
            file is fine but of a kind the index does not handle.
    """

    def __init__(self, reason: str, broken: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.broken = broken


@dataclass(frozen=True)
class PacketIndex:
    """The frames of a video stream and where decoding can start.

    Attributes:
        pts: (N,) int64 presentation timestamps in display order: frame ``i``
            of sequential decoding has timestamp ``pts[i]``.
        keyframes: (M,) int64 display indices of the keyframes, increasing,
            starting with 0.
        time_base: Seconds per timestamp unit.
        start_time: The stream's first timestamp (what OpenCV measures from).
        fps: The frame rate OpenCV reports for this file (FFmpeg's guess from
            the stream), or 0.0 when there is none.
        codec: The codec's FFmpeg name.
        sizes: (N,) int64 packet size in bytes of each frame, in display
            order (what the compressed-domain motion signal reads), or None.
        positions: (N,) int64 byte offset of each frame's packet in the file,
            in display order, -1 where the demuxer does not say; or None.
            Motion-JPEG's reduced decodes read the JPEGs they need from there.
    """

    pts: np.ndarray
    keyframes: np.ndarray
    time_base: Fraction
    start_time: int
    fps: float
    codec: str
    sizes: np.ndarray | None = None
    positions: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        """Frames that sequential decoding yields."""
        return len(self.pts)

    def keyframe_before(self, index: int) -> int:
        """The display index of the last keyframe at or before frame ``index``."""
        return int(self.keyframes[bisect.bisect_right(self.keyframes, index) - 1])

    def frame_of(self, pts) -> int:
        """The display index of the frame with timestamp ``pts``, or -1 if none has it."""
        if pts is None:
            return -1
        position = int(np.searchsorted(self.pts, pts))
        if position < len(self.pts) and self.pts[position] == pts:
            return position
        return -1


def read_packet_index(path: str) -> PacketIndex:
    """Reads the packet index of the first video stream of ``path``.

    Args:
        path: A video file.

    Returns:
        The :class:`PacketIndex`.

    Raises:
        IndexUnavailable: If the index cannot vouch for sequential decoding (see
            the module's description); ``broken`` says whether the file is damaged.
    """
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise IndexUnavailable("no video stream")
            stream = container.streams.video[0]
            return index_stream(container, stream)
    except av.FFmpegError as error:
        raise IndexUnavailable(f"PyAV cannot read it ({error})") from None


def index_stream(container, stream) -> PacketIndex:
    """Demuxes every packet of ``stream`` (no decoding) into a :class:`PacketIndex`.

    Leaves the container at its end: seek before decoding from it.

    Raises:
        IndexUnavailable: As :func:`read_packet_index`.
    """
    codec = stream.codec_context.name
    _check_supported(container, stream, codec)
    pts, keys, sizes, positions = [], [], [], []
    for packet in container.demux(stream):
        if packet.size == 0 or packet.is_discard:
            continue  # the flush packet at the end; frames the edit list drops
        if packet.is_corrupt:
            raise IndexUnavailable("a packet is truncated or corrupt")
        if packet.pts is None:
            raise IndexUnavailable("a packet has no presentation timestamp")
        pts.append(packet.pts)
        keys.append(packet.is_keyframe)
        sizes.append(packet.size)
        positions.append(-1 if packet.pos is None else packet.pos)
    if not pts:
        raise IndexUnavailable("no video packet")
    order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
    sorted_pts = np.asarray(pts, dtype=np.int64)[order]
    if np.any(np.diff(sorted_pts) == 0):
        raise IndexUnavailable("two packets have the same presentation timestamp")
    keyframes = np.flatnonzero(np.asarray(keys, dtype=bool)[order]).astype(np.int64)
    if len(keyframes) == 0 or keyframes[0] != 0:
        raise IndexUnavailable("the first frame is not a keyframe")
    if stream.start_time is None:
        raise IndexUnavailable("the stream has no start time")
    return PacketIndex(
        pts=sorted_pts,
        keyframes=keyframes,
        time_base=stream.time_base,
        start_time=int(stream.start_time),
        fps=_opencv_fps(stream),
        codec=codec,
        sizes=np.asarray(sizes, dtype=np.int64)[order],
        positions=np.asarray(positions, dtype=np.int64)[order],
    )


def _check_supported(container, stream, codec):
    if codec not in PLANNABLE_CODECS:
        raise IndexUnavailable(f"codec {codec!r} is not one the planner handles", broken=False)
    if container.format.name == "avi" and stream.codec_context.has_b_frames:
        raise IndexUnavailable(
            "AVI with reordered (B-) frames: its timestamps are in decode order", broken=False
        )
    if stream.time_base is None:
        raise IndexUnavailable("the stream has no time base")


def _opencv_fps(stream):
    """The frame rate OpenCV's CAP_PROP_FPS gives: the average rate, else FFmpeg's guess."""
    for rate in (stream.average_rate, stream.guessed_rate):
        if rate is not None and rate.denominator:
            fps = rate.numerator / rate.denominator
            if math.isfinite(fps) and fps > 0:
                return fps
    return 0.0
