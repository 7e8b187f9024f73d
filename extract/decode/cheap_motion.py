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
  the thumbnail is sampled from it as the full scan samples the frame). The
  JPEGs are read straight from the file at the packet index's byte positions
  (no second demux), and only some are decoded: every :data:`JPEG_STRIDE`-th
  frame, and both frames of every jump of the JPEG size (:func:`size_changes`:
  the sizes come free with the index, and a still picture encodes to nearly
  the same size each frame, so a short flash between two strided frames is
  still seen). Between two decoded frames that differ by more than
  :data:`REFINE_LEVEL` grey levels the frame halfway is decoded, and so on
  (bisection): a still stretch costs one decode in :data:`JPEG_STRIDE`, a
  change is found in a few decodes, a moving stretch decodes every frame (so
  a small fast object's motion is not shared out over skipped frames). The
  frames between two decoded ones that do not differ share their difference
  equally. The grey thumbnails are compared as the full scan compares its
  own; block averages move a little less than the full scan's point
  samples, so fine texture weighs slightly less. A packet that is not a JPEG
  OpenCV reads (e.g. an AVI1 JPEG without Huffman tables), or an index
  without byte positions, disqualifies the video.

Everything else (and every video without a packet index) keeps the full scan,
``full_scan``. The cache records the policy (``motion_signal`` in the
``sampling`` attribute) and, per sampled frame, the signal that chose it
(:data:`SIGNAL_NAMES` codes in the row dataset ``motion_signal``).
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np

from vidseq.extract.decode.motion import THUMB_SIZE, MotionSignal
from vidseq.extract.decode.packet_index import PacketIndex

FULL_SCAN = "full_scan"
PACKET_SIZE = "packet_size"
REDUCED_JPEG = "reduced_jpeg"
SIGNAL_NAMES = (FULL_SCAN, PACKET_SIZE, REDUCED_JPEG)
"""The motion signals; a cache's ``motion_signal`` row dataset holds their positions here."""

JPEG_STRIDE = 8
"""Motion-JPEG: every this-many-th frame is decoded (at reduced size) whatever its packet."""
SIZE_JUMP = 4.0
"""Motion-JPEG: a packet whose size differs from the previous one's by this many times
the video's median difference (and by a byte at least) marks a change: both frames
are decoded."""
REFINE_LEVEL = 1.0
"""Motion-JPEG: grey levels of change between two decoded frames above which the frame
halfway between them is decoded too (the default ``motion_floor``): a still stretch
costs one decode in :data:`JPEG_STRIDE`, a moving one every frame."""
JPEG_START = b"\xff\xd8"
"""The start-of-image marker that every JPEG begins with."""
HEADER_SLACK = 32
"""Motion-JPEG: bytes after a packet's position searched for the JPEG's start (AVI and
MP4/MOV point at the JPEG itself, Matroska at the block header before it)."""
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
        index: Its packet index (with packet sizes and byte positions).

    Returns:
        (n,) float64 motion in grey levels, or None when the index lacks a
        packet's position or a packet read there is not a JPEG that OpenCV reads.
    """
    positions, sizes = index.positions, index.sizes
    if positions is None or sizes is None or bool((positions < 0).any()):
        return None
    try:
        with open(path, "rb") as file:
            return _JpegScan(file, positions, sizes).motion()
    except (OSError, _Unreadable):
        return None


def size_changes(sizes: np.ndarray) -> np.ndarray:
    """Frames whose JPEG size jumps from the previous one's, and those previous ones.

    A jump is at least :data:`SIZE_JUMP` times the video's median jump and at
    least one byte: a still stretch encodes to (nearly) the same size every
    frame, a change of the picture changes it.

    Args:
        sizes: (n,) packet sizes in bytes.

    Returns:
        Sorted display indices: both frames of every jump.
    """
    jumps = np.abs(np.diff(np.asarray(sizes, dtype=np.int64)))
    if jumps.size == 0:
        return np.zeros(0, dtype=np.int64)
    after = np.flatnonzero(jumps >= max(SIZE_JUMP * float(np.median(jumps)), 1.0)) + 1
    return np.union1d(after - 1, after)


class _Unreadable(Exception):
    """A packet is not a JPEG that OpenCV reads at reduced size."""


class _JpegScan:
    """Anchors and packet-size jumps decoded small, the frames between them by bisection."""

    def __init__(self, file, positions: np.ndarray, sizes: np.ndarray):
        self.file = file
        self.positions = positions
        self.sizes = sizes
        self.flag = None  # the reduction, from the first JPEG's size
        self.thumbnails = {}  # display index -> grey thumbnail

    def motion(self) -> np.ndarray:
        """(n,) motion of every frame: decoded pairs compared, the frames between sharing."""
        count = len(self.sizes)
        anchors = np.union1d(np.arange(0, count, JPEG_STRIDE), size_changes(self.sizes))
        anchors = np.union1d(anchors, [count - 1]).tolist()
        for position in anchors:
            self.thumbnail(position)
        for start, stop in itertools.pairwise(anchors):
            self.refine(start, stop)
        signal = MotionSignal()
        for position in sorted(self.thumbnails):
            signal.add(self.thumbnails[position], position)
        return signal.values()

    def refine(self, start: int, stop: int) -> None:
        """Bisects ``[start, stop]`` while its two ends differ by more than :data:`REFINE_LEVEL`."""
        pending = [(start, stop)]
        while pending:
            start, stop = pending.pop()
            if stop - start < 2:
                continue
            first, last = self.thumbnail(start), self.thumbnail(stop)
            if cv2.norm(first, last, cv2.NORM_L1) / first.size <= REFINE_LEVEL:
                continue
            middle = (start + stop) // 2
            self.thumbnail(middle)
            pending += [(middle, stop), (start, middle)]

    def thumbnail(self, position: int) -> np.ndarray:
        """The grey thumbnail of frame ``position``, decoded once."""
        thumbnail = self.thumbnails.get(position)
        if thumbnail is None:
            self.file.seek(int(self.positions[position]))
            size = int(self.sizes[position])
            data = self.file.read(size + HEADER_SLACK)
            start = data.find(JPEG_START, 0, HEADER_SLACK + 2)
            data = data[max(start, 0) : max(start, 0) + size]
            if self.flag is None:
                self.flag = _reduction_flag(*jpeg_shape(data))
            image = cv2.imdecode(np.frombuffer(data, np.uint8), self.flag)
            if image is None:
                raise _Unreadable(position)
            thumbnail = self.thumbnails[position] = _thumbnail(image)
        return thumbnail


def jpeg_shape(data: bytes) -> tuple[int, int]:
    """``(height, width)`` of a JPEG from its frame header.

    Raises:
        _Unreadable: ``data`` is not a JPEG with a frame header.
    """
    if data[:2] != JPEG_START:
        raise _Unreadable("no JPEG start of image")
    offset = 2
    while offset + 9 <= len(data):
        if data[offset] != 0xFF:
            break
        marker = data[offset + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            height = int.from_bytes(data[offset + 5 : offset + 7], "big")
            width = int.from_bytes(data[offset + 7 : offset + 9], "big")
            return height, width
        offset += 2 + int.from_bytes(data[offset + 2 : offset + 4], "big")
    raise _Unreadable("no JPEG frame header")


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
