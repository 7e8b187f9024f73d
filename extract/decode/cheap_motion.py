"""Motion signals that need no full decode: packet sizes, or reduced JPEG decoding.

``motion`` sampling weighs each frame by how much the picture changes
(:mod:`vidseq.extract.decode.motion`). The full-scan signal decodes every
frame for it (:mod:`vidseq.extract.decode.signal_scan`), which costs more than
everything uniform sampling decodes once the planner decodes only the frames
it needs. Two signals avoid that, chosen per video by :func:`cheap_motion`:

* ``packet_size``, for inter-coded streams (H.264, HEVC, VP9, MPEG-4, ...):
  a P- or B-frame's packet holds what the encoder could not predict from its
  references, so its size tracks motion and change. Read from the packet index
  (:attr:`PacketIndex.sizes`, demuxing only: nothing is decoded). Per GOP,
  the smallest inter packets' size (the 10th percentile: the slice headers
  and skip flags of an unchanged picture) is subtracted and the rest is
  divided by the GOP's keyframe size (what coding the picture from scratch
  costs), then scaled by 255: a frame that costs as much as a keyframe scores
  255, the most a grey-level difference can be. The values thus stand in for
  grey levels (``motion_floor`` keeps its meaning: frames below it weigh the
  floor). A keyframe tells nothing about motion and takes its predecessor's
  value. Streams with more keyframes than inter frames (intra-only H.264,
  e.g.) do not qualify.
* ``reduced_jpeg``, for Motion-JPEG: each packet is a JPEG, which libjpeg
  decodes at 1/2, 1/4 or 1/8 of its size from the DCT coefficients without
  the full inverse transform (OpenCV's ``IMREAD_REDUCED_GRAYSCALE_*``; the
  largest reduction that still leaves the full scan's 32 pixels a side, so
  the thumbnail is sampled from it as the full scan samples the frame). A strided scan: every
  :data:`JPEG_STRIDE`-th frame is decoded, and the frames skipped between two
  decoded ones are decoded too only when those two differ by more than
  :data:`REFINE_LEVEL` (sharing the change equally would halve a small fast
  object's motion); still stretches cost half the decodes. The grey thumbnails
  are compared as the full scan compares its own; block averages move a little
  less than the full scan's point samples, so fine texture weighs slightly less.
  A packet libjpeg cannot read (e.g. an AVI1 JPEG without Huffman tables)
  disqualifies the video.

Everything else (and every video without a packet index) keeps the full scan,
``full_scan``. The cache records the policy (``motion_signal`` in the
``sampling`` attribute) and, per sampled frame, the signal that chose it
(:data:`SIGNAL_NAMES` codes in the row dataset ``motion_signal``).
"""

from __future__ import annotations

import itertools

import av
import cv2
import numpy as np

from vidseq.extract.decode.motion import THUMB_SIZE, MotionSignal
from vidseq.extract.decode.packet_index import PacketIndex

FULL_SCAN = "full_scan"
PACKET_SIZE = "packet_size"
REDUCED_JPEG = "reduced_jpeg"
SIGNAL_NAMES = (FULL_SCAN, PACKET_SIZE, REDUCED_JPEG)
"""The motion signals; a cache's ``motion_signal`` row dataset holds their positions here."""

JPEG_STRIDE = 2
"""Motion-JPEG: one frame in this many is decoded (at reduced size) for the signal."""
REFINE_LEVEL = 1.0
"""Motion-JPEG: grey levels of change across a stride above which the frames skipped
in it are decoded too (the default ``motion_floor``): a still stretch costs one
decode in :data:`JPEG_STRIDE`, a moving one every frame."""
INTRA_CODECS = frozenset({"mjpeg"})
"""Codecs whose every packet is a picture of its own (JPEG): the reduced decode applies."""
BASE_PERCENTILE = 10.0
"""Percentile of a GOP's inter packet sizes taken as the cost of an unchanged picture."""
GREY_SCALE = 255.0
"""Score of an inter frame that costs as much as its GOP's keyframe."""
_REDUCTIONS = (
    (8, cv2.IMREAD_REDUCED_GRAYSCALE_8),
    (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
    (2, cv2.IMREAD_REDUCED_GRAYSCALE_2),
)


def cheap_motion(path: str, index: PacketIndex) -> tuple[np.ndarray, str] | None:
    """The motion signal of a video without a full decode, where one applies.

    Args:
        path: The video file.
        index: Its packet index (with packet sizes).

    Returns:
        ``(values, name)``: (n,) motion of each frame in grey levels (or their
        stand-in) and the signal's name; None when the video needs the full scan.
    """
    if index.codec in INTRA_CODECS:
        values = reduced_jpeg_motion(path, index)
        return None if values is None else (values, REDUCED_JPEG)
    values = packet_activity(index)
    return None if values is None else (values, PACKET_SIZE)


def packet_activity(index: PacketIndex) -> np.ndarray | None:
    """The compressed-domain activity of each frame, from its packet size.

    Args:
        index: A packet index with ``sizes``.

    Returns:
        (n,) float64 activity (see the module's description), or None when the
        index has no sizes or the stream has more keyframes than inter frames.
    """
    sizes = index.sizes
    if sizes is None or 2 * len(index.keyframes) > index.num_frames:
        return None
    sizes = sizes.astype(np.float64)
    values = np.zeros(len(sizes), dtype=np.float64)
    bounds = [*index.keyframes.tolist(), len(sizes)]
    for start, stop in itertools.pairwise(bounds):
        inter = sizes[start + 1 : stop]
        if inter.size:
            base = np.percentile(inter, BASE_PERCENTILE)
            keyframe = max(sizes[start], 1.0)
            values[start + 1 : stop] = np.maximum(inter - base, 0.0) / keyframe * GREY_SCALE
        if start > 0:
            values[start] = values[start - 1]
    return values


def reduced_jpeg_motion(path: str, index: PacketIndex) -> np.ndarray | None:
    """The motion signal of a Motion-JPEG video from reduced-size JPEG decodes.

    Args:
        path: The video file.
        index: Its packet index.

    Returns:
        (n,) float64 motion in grey levels, or None when a packet is not a
        JPEG that OpenCV reads.
    """
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            flag = _reduction_flag(stream.codec_context.height, stream.codec_context.width)
            scan = _StridedJpegScan(flag, index.num_frames)
            for packet in container.demux(stream):
                if packet.size == 0 or packet.is_discard:
                    continue
                if not scan.add(index.frame_of(packet.pts), bytes(packet)):
                    return None
    except av.FFmpegError:
        return None
    return scan.values()


class _StridedJpegScan:
    """Every :data:`JPEG_STRIDE`-th JPEG decoded small; the ones between only where it moved."""

    def __init__(self, flag: int, num_frames: int):
        self.flag = flag
        self.num_frames = num_frames
        self.signal = MotionSignal()
        self.previous = None  # the last decoded thumbnail
        self.skipped = []  # (position, JPEG bytes) of the frames skipped since
        self.count = 0  # frames seen

    def add(self, position: int, data: bytes) -> bool:
        """Takes the next frame's JPEG; False if the stream cannot be scanned this way."""
        if position < self.count:
            return False  # out of order: not a plain intra-only stream
        self.count = position + 1
        if position % JPEG_STRIDE and position != self.num_frames - 1:
            self.skipped.append((position, data))
            return True
        thumbnail = self._decode(data)
        if thumbnail is None:
            return False
        moved = self.previous is not None and (
            cv2.norm(thumbnail, self.previous, cv2.NORM_L1) / thumbnail.size > REFINE_LEVEL
        )
        for skipped_position, skipped in self.skipped if moved else ():
            between = self._decode(skipped)
            if between is None:
                return False
            self.signal.add(between, skipped_position)
        self.skipped = []
        self.signal.add(thumbnail, position)
        self.previous = thumbnail
        return True

    def _decode(self, data: bytes) -> np.ndarray | None:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), self.flag)
        return None if image is None else _thumbnail(image)

    def values(self) -> np.ndarray | None:
        """(n,) motion of every frame, or None when no frame was decoded."""
        if self.previous is None:
            return None
        self.signal.pad_to(self.num_frames)
        return self.signal.values()


def _reduction_flag(height: int, width: int) -> int:
    """The largest JPEG reduction that leaves both sides at least the thumbnail's."""
    smallest = min(THUMB_SIZE)
    for factor, flag in _REDUCTIONS:
        if min(height, width) // factor >= smallest:
            return flag
    return cv2.IMREAD_GRAYSCALE


def _thumbnail(image: np.ndarray) -> np.ndarray:
    """A strided subsample of a grey image, at most :data:`THUMB_SIZE` (as the full scan's)."""
    height, width = THUMB_SIZE
    row_step = -(-image.shape[0] // height)
    column_step = -(-image.shape[1] // width)
    return image[::row_step, ::column_step]
