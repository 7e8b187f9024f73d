"""Reading video frames with PyAV: the sampled frames by plan, or every frame as a thumbnail.

:class:`IndexedVideo` decodes only what a :class:`~vidseq.extract.decode.decode_plan.DecodeRun`
plan needs: it seeks to each run's keyframe and decodes forward. Frames are
told apart by their presentation timestamp (the packet index maps it to a
display index), so each kept frame is the very frame sequential decoding
yields at that index: same pixels (converted to BGR by the same FFmpeg
``swscale`` call OpenCV makes) and the same decoder timestamps. Anything
unexpected while decoding (a frame the index lacks, a frame skipped, a seek
that lands past its keyframe, a rotated video, a decoding error) raises
:class:`~vidseq.extract.decode.packet_index.IndexUnavailable`, and the caller falls
back to sequential decoding with OpenCV.

:func:`iter_thumbnails` is the cheap full pass for signals that need every
frame (e.g. motion between consecutive frames): small grey or colour
thumbnails of every frame, in display order, with the decoded frames
themselves for a caller that holds them (:meth:`IndexedVideo.convert` then
turns held frames into the same pixels and timestamps a plan would decode).

The environment variable ``VIDSEQ_DECODER`` chooses the video reader of
:func:`vidseq.extract.decode.frames.read_frames`: ``planned`` (the default) or
``opencv`` (sequential OpenCV decoding of every frame, as before planning existed).
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from vidseq.errors import UsageError
from vidseq.extract.decode.decode_plan import DecodeRun
from vidseq.extract.decode.packet_index import IndexUnavailable, index_stream

logger = logging.getLogger(__name__)

DECODERS = ("planned", "opencv")
DECODER_VARIABLE = "VIDSEQ_DECODER"

_LUMA_PLANE_FORMATS = frozenset(
    f"{family}{layout}p"
    for family in ("yuv", "yuvj", "yuva")
    for layout in ("410", "411", "420", "422", "440", "444")
) | {"nv12", "nv21", "gray"}
"""8-bit pixel formats whose first plane is the luma (grey) image."""

_fallback_lock = threading.Lock()
_fallback_reported = False


@dataclass
class PlannedFrames:
    """What :meth:`IndexedVideo.decode` decoded.

    Attributes:
        kept: Display index -> ``process(index, bgr)`` of that frame.
        stamps_ms: Display index -> the decoder time OpenCV's
            ``CAP_PROP_POS_MSEC`` gives after grabbing that frame, for every
            kept frame and for frame 0.
        frames_decoded: Frames the decoder produced (the plan's real cost).
    """

    kept: dict
    stamps_ms: dict
    frames_decoded: int


def planned_decoding_enabled() -> bool:
    """Whether ``VIDSEQ_DECODER`` asks for planned decoding (the default).

    Raises:
        UsageError: For a value other than ``planned`` or ``opencv``.
    """
    value = os.environ.get(DECODER_VARIABLE, "planned").strip().lower() or "planned"
    if value not in DECODERS:
        raise UsageError(
            f"{DECODER_VARIABLE} must be one of {list(DECODERS)}. "
            f"Received: {DECODER_VARIABLE}={value!r}"
        )
    return value == "planned"


def report_fallback(path: str, error: IndexUnavailable) -> None:
    """Logs that ``path`` is decoded sequentially instead: a warning once per process.

    A broken index is worth a warning the first time; later ones, and files of
    a kind the planner does not handle, are logged at debug level only.
    """
    global _fallback_reported
    message = "%s: decoding sequentially with OpenCV (%s)"
    with _fallback_lock:
        first = error.broken and not _fallback_reported
        if first:
            _fallback_reported = True
    if first:
        logger.warning(message + "; further such files are logged at debug level", path, error)
    else:
        logger.debug(message, path, error)


class IndexedVideo:
    """A video opened with PyAV and indexed, ready for planned decoding.

    Use as a context manager: ``with IndexedVideo(path) as video:`` opens the
    file once, reads its :class:`~vidseq.extract.decode.packet_index.PacketIndex`
    (``video.index``), then :meth:`decode` decodes plans from the same handle.

    Args:
        path: A video file.

    Raises:
        IndexUnavailable: On entering, if the index cannot stand in for
            sequential decoding.
    """

    def __init__(self, path: str):
        self.path = path
        self.index = None
        self.frame_bytes = 0
        self._container = None

    def __enter__(self):
        try:
            self._container = av.open(self.path)
            if not self._container.streams.video:
                raise IndexUnavailable("no video stream")
            stream = self._container.streams.video[0]
            self.frame_bytes = _frame_bytes(stream.codec_context)
            self.index = index_stream(self._container, stream)
        except av.FFmpegError as error:
            self.close()
            raise IndexUnavailable(f"PyAV cannot read it ({error})") from None
        except IndexUnavailable:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        """Closes the file (idempotent)."""
        if self._container is not None:
            self._container.close()
            self._container = None

    def decode(
        self, runs: list[DecodeRun], keep, process: Callable[[int, np.ndarray], object]
    ) -> PlannedFrames:
        """Decodes the targets of a plan, calling ``process(index, bgr)`` on those to keep.

        Args:
            runs: The plan (:func:`~vidseq.extract.decode.decode_plan.plan_decode`).
                Every target gets a stamp; include frame 0 when relative
                timestamps are wanted (OpenCV's are relative to frame 0's).
            keep: The targets to process and keep. ``process`` is called in
                increasing order of frames, as sequential decoding would.
            process: Turns one (H, W, 3) uint8 BGR frame into what is kept.

        Returns:
            The :class:`PlannedFrames`.

        Raises:
            IndexUnavailable: If decoding does not go as the index says (see
                the module's description).
        """
        result = PlannedFrames(kept={}, stamps_ms={}, frames_decoded=0)
        stream = self._container.streams.video[0]
        stream.codec_context.thread_count = 1  # parallelism: several videos at once
        keep = set(keep)
        try:
            for run in runs:
                _decode_run(self._container, stream, self.index, run, keep, process, result)
        except av.FFmpegError as error:
            raise IndexUnavailable(f"decoding failed ({error})") from None
        return result

    def convert(self, held: dict, targets, keep, process) -> PlannedFrames:
        """What :meth:`decode` gives for ``targets``, from frames already decoded.

        Args:
            held: Display index -> ``av.VideoFrame`` decoded exactly (e.g. held
                from :func:`iter_thumbnails` with ``fast=False``), for every target.
            targets: The frames to stamp (include frame 0, as for :meth:`decode`).
            keep: The targets to process and keep.
            process: As for :meth:`decode`.

        Returns:
            The :class:`PlannedFrames` (``frames_decoded`` is 0).

        Raises:
            IndexUnavailable: If a held frame is not the one the index lists at
                its position, or the video is rotated.
        """
        result = PlannedFrames(kept={}, stamps_ms={}, frames_decoded=0)
        keep = set(keep)
        for position in sorted(set(targets)):
            frame = held[position]
            if self.index.frame_of(frame.pts) != position:
                raise IndexUnavailable(f"frame {position} of the scan is not the indexed one")
            if frame.rotation:
                raise IndexUnavailable("rotated video (OpenCV rotates it)", broken=False)
            result.stamps_ms[position] = _opencv_stamp_ms(frame, self.index)
            if position in keep:
                result.kept[position] = process(position, to_bgr(frame))
        return result


def to_bgr(frame) -> np.ndarray:
    """A decoded frame as (H, W, 3) uint8 BGR: the ``swscale`` conversion OpenCV makes.

    One scaling thread: ``swscale``'s default (a thread per core) gives the
    same pixels for four to five times the CPU time on a 320x240 frame.
    """
    return frame.to_ndarray(format="bgr24", threads=1)


def _frame_bytes(context) -> int:
    """Bytes of one decoded frame of this stream (3 per pixel if the format is unknown)."""
    pixels = context.width * context.height
    fmt = context.format
    bits = fmt.bits_per_pixel if fmt is not None and fmt.bits_per_pixel else 24
    return pixels * bits // 8


def _decode_run(container, stream, index, run, keep, process, result):
    container.seek(int(index.pts[run.start]), backward=True, any_frame=False, stream=stream)
    stream.codec_context.flush_buffers()
    targets = set(run.targets)
    last = run.targets[-1]
    expected = None  # the next display index, once the run's keyframe is out
    for frame in _frames(container, stream):
        position = index.frame_of(frame.pts)
        if position < 0:
            raise IndexUnavailable(f"decoded a frame (pts={frame.pts}) the index does not list")
        result.frames_decoded += 1
        if expected is None:
            if position < run.start:
                continue  # leading frames of an open GOP: shown before the keyframe
            if position > run.start:
                raise IndexUnavailable(f"seeking to frame {run.start} landed on frame {position}")
            if frame.rotation:
                raise IndexUnavailable("rotated video (OpenCV rotates it)", broken=False)
        elif position != expected:
            raise IndexUnavailable(f"frame {expected} expected, frame {position} decoded")
        expected = position + 1
        if position in targets:
            result.stamps_ms[position] = _opencv_stamp_ms(frame, index)
        if position in keep:
            result.kept[position] = process(position, to_bgr(frame))
        if position == last:
            return
    raise IndexUnavailable(f"the video ended before frame {last}")


def _frames(container, stream):
    for packet in container.demux(stream):
        yield from packet.decode()  # the last, empty packet flushes the decoder


def _opencv_stamp_ms(frame, index):
    """``CAP_PROP_POS_MSEC`` of OpenCV's FFmpeg backend after grabbing ``frame``."""
    pts = frame.pts if frame.pts else frame.dts  # OpenCV's rule: pts unless missing or 0
    if pts is None:
        return 0.0
    seconds_per_unit = index.time_base.numerator / index.time_base.denominator
    return float(pts - index.start_time) * seconds_per_unit * 1000.0


@dataclass(frozen=True)
class Thumbnail:
    """One frame of :func:`iter_thumbnails`.

    Attributes:
        index: Number of the frame out of the decoder (0, 1, 2, ...), which is
            its display index unless non-reference frames are skipped.
        time_s: Presentation time in seconds from the stream's start, or NaN.
        image: The thumbnail: (h, w) uint8 grey, a strided view of the frame's
            luma plane at most ``size``, or (height, width, 3) uint8 BGR with
            ``colour=True``.
        frame: The decoded ``av.VideoFrame`` itself: a caller may hold it and
            convert it later (:meth:`IndexedVideo.convert`) instead of decoding
            it again.
    """

    index: int
    time_s: float
    image: np.ndarray
    frame: av.VideoFrame


def iter_thumbnails(
    path: str,
    size: tuple[int, int] = (32, 32),
    *,
    fast: bool = True,
    colour: bool = False,
    references_only: bool = False,
) -> Iterator[Thumbnail]:
    """Yields a small thumbnail of every frame of a video, in display order.

    The cheap full pass for per-frame signals (e.g. the mean absolute
    difference of consecutive grey thumbnails as a motion signal). It decodes
    every frame once with PyAV on one thread (FFmpeg's frame or slice threads
    only add CPU time) and never converts a full-size frame:

    * grey: a strided subsample of the decoded luma plane, at most ``size``
      (every ``ceil(H / height)``-th row and ``ceil(W / width)``-th column;
      a view, no arithmetic); pixel formats without a luma plane go through
      ``swscale`` to grey first;
    * colour: FFmpeg's ``swscale`` shrinks the frame to exactly ``size`` in BGR
      (area averaging), one scaling context and thread for the whole video.

    With ``fast=True`` the decoder also skips the in-loop deblocking filter
    (H.264/HEVC ``skip_loop_filter``): about a quarter less decoding work on
    H.264, at the price of slightly blockier frames (errors do not accumulate
    beyond the GOP), which a motion signal does not notice; the frame count and
    order are unchanged. Use ``fast=False`` when the frames themselves are kept
    for their pixels. Memory stays constant unless the caller holds frames.

    Args:
        path: A video file PyAV opens.
        size: ``(height, width)`` of the thumbnails (at most, for grey ones).
        fast: Skip the deblocking filter (see above).
        colour: BGR thumbnails instead of grey.
        references_only: Skip non-reference frames (see above).

    Yields:
        :class:`Thumbnail` per frame.

    Raises:
        UsageError: For a bad ``size``.
        av.FFmpegError: If the file cannot be opened or decoded.
    """
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        height = width = 0
    if height < 1 or width < 1:
        raise UsageError(
            f"size must be (height, width), two positive integers. Received: size={size!r}"
        )
    scaler = VideoReformatter()  # keeps its swscale context from frame to frame
    with av.open(path) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        context.thread_count = 1
        options = {"skip_loop_filter": "all"} if fast else {}
        if references_only:
            options["skip_frame"] = "noref"
        context.options = options
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        for number, frame in enumerate(_frames(container, stream)):
            time_s = frame.time - start if frame.time is not None else math.nan
            if colour:
                image = scaler.reformat(
                    frame,
                    width=width,
                    height=height,
                    format="bgr24",
                    interpolation="AREA",
                    threads=1,
                ).to_ndarray()
            else:
                luma = _luma(frame, scaler)
                rows, columns = luma.shape
                image = luma[:: -(-rows // height), :: -(-columns // width)]
            yield Thumbnail(number, time_s, image, frame)


def _luma(frame, scaler) -> np.ndarray:
    """The frame's luma plane as (H, W) uint8: a view where the pixel format has one."""
    if frame.format.name in _LUMA_PLANE_FORMATS:
        plane = frame.planes[0]
        rows = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
        return rows[:, : plane.width]
    return scaler.reformat(frame, format="gray", threads=1).to_ndarray()
