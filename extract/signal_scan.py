"""The first pass of ``motion`` and ``keyframes`` sampling: a signal from every frame.

These modes cannot choose frames before they have seen the whole video, so
:func:`scan_video` decodes it once with PyAV and keeps, per frame, one number
(the motion or the content change, from a thumbnail) and its timestamp. It
also holds the decoded frames themselves (YUV, as the decoder gives them, no
colour conversion) while they fit in ``max_held_bytes``; then the chosen
frames are converted from memory and the video is decoded once. A longer
video drops what it held, and the chosen frames are decoded by a second
sequential pass that stops at the last chosen frame. Memory is bounded by
``max_held_bytes`` plus a thumbnail and two numbers per frame, whatever the
video's length.

The thumbnails cost almost nothing: the motion thumbnail is a strided
subsample of the luma plane (no conversion at all); the content thumbnail is
one ``swscale`` call to a tiny BGR image. The chosen frames are converted to
BGR by FFmpeg's ``swscale`` exactly as OpenCV's FFmpeg reader converts them,
so a video read later by its recorded frame indices (finetune, predict) gives
the same pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from vidseq.errors import SourceReadError
from vidseq.extract.motion import MotionSignal, gray_thumbnail, motion_indices
from vidseq.extract.sampling import FrameSelection, SamplingConfig
from vidseq.extract.shots import ContentSignal, keyframe_indices

MAX_HELD_BYTES = 256 * 2**20
"""Decoded frames one video's scan may hold to avoid a second pass (256 MiB: e.g. all
1,450 frames of a 320x240 clip, or 190 frames of 1280x720)."""
COLOUR_THUMB = (48, 36)
"""(width, height) of the BGR thumbnail whose HSV histogram the content change compares."""
_LUMA_PLANE_FORMATS = frozenset(
    f"{family}{layout}p"
    for family in ("yuv", "yuvj", "yuva")
    for layout in ("410", "411", "420", "422", "440", "444")
) | {"nv12", "nv21", "gray"}
"""8-bit pixel formats whose first plane is the luma (grey) image."""


@dataclass
class ScannedVideo:
    """What the scan of one video found, and the frames it chose.

    Attributes:
        selection: The chosen frames.
        images: Source index -> (H, W, 3) uint8 BGR frame, for every chosen index.
        stamps_ms: Source index -> presentation time in ms, for every chosen
            index (NaN where the container gives none).
        first_ms: Presentation time of frame 0 in ms (NaN if none).
        count: Frames decoded.
        fps: The stream's frame rate (None if the container gives none).
        passes: Decoding passes made (1, or 2 when the frames did not fit).
    """

    selection: FrameSelection
    images: dict
    stamps_ms: dict
    first_ms: float
    count: int
    fps: float | None
    passes: int


class FrameSignal:
    """The per-frame signal a sampling mode selects from: motion or content change."""

    def __init__(self, config: SamplingConfig):
        self.config = config
        self._signal = MotionSignal() if config.mode == "motion" else ContentSignal()
        self._reformatter = VideoReformatter()  # keeps its swscale context from frame to frame

    def add_video_frame(self, frame) -> None:
        """Adds a decoded ``av.VideoFrame``."""
        if self.config.mode == "motion":
            self._signal.add(gray_thumbnail(_luma(frame)))
        else:
            width, height = COLOUR_THUMB
            self._signal.add(
                self._reformatter.reformat(
                    frame, width=width, height=height, format="bgr24"
                ).to_ndarray()
            )

    def add_image(self, image: np.ndarray) -> None:
        """Adds a decoded BGR, BGRA or grey image (frame directories and clips)."""
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if self.config.mode == "motion":
            gray = image if image.ndim == 2 else cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2GRAY)
            self._signal.add(gray_thumbnail(gray))
        else:
            bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[:, :, :3]
            self._signal.add(cv2.resize(bgr, COLOUR_THUMB, interpolation=cv2.INTER_AREA))

    def values(self) -> np.ndarray:
        """(n,) the signal of every frame added so far (motion or content change)."""
        return self._signal.values()

    def select(self, rng=None) -> FrameSelection:
        """The frames the mode chooses from the signal added so far."""
        values, config = self.values(), self.config
        if config.mode == "motion":
            return motion_indices(values, config.num_frames, config.motion_floor, rng=rng)
        return keyframe_indices(
            values, config.num_frames, config.cut_threshold, config.cut_ratio, rng=rng
        )


def select_from_images(config: SamplingConfig, load, count: int, rng=None) -> FrameSelection:
    """Selects frames of an image clip or frame directory from a signal of every image.

    Args:
        config: A ``motion`` or ``keyframes`` :class:`SamplingConfig`.
        load: ``load(index)`` returns the decoded image ``index``.
        count: Images in the clip (>= 1).
        rng: Optional ``numpy.random.Generator`` (random variant).
    """
    signal = FrameSignal(config)
    for index in range(count):
        signal.add_image(load(index))
    return signal.select(rng)


def scan_video(path, config: SamplingConfig, rng=None, max_held_bytes=MAX_HELD_BYTES):
    """Decodes a video once for its per-frame signal, and returns the frames it chooses.

    Args:
        path: The video file.
        config: A ``motion`` or ``keyframes`` :class:`SamplingConfig`.
        rng: Optional ``numpy.random.Generator`` (random variant).
        max_held_bytes: Most bytes of decoded frames held to avoid a second pass.

    Returns:
        A :class:`ScannedVideo`.

    Raises:
        SourceReadError: The file cannot be opened, has no video stream or
            decodable frame, or decoding fails partway (the error names the frame).
    """
    signal = FrameSignal(config)
    held, held_bytes, stamps, count = {}, 0, [], 0
    with _open(path) as container:
        stream = container.streams.video[0]
        fps, time_base = _rate(stream), stream.time_base
        for frame in _frames(container, stream, path):
            signal.add_video_frame(frame)
            stamps.append(_ms(frame.pts, time_base))
            if held is not None:
                held_bytes += sum(plane.buffer_size for plane in frame.planes)
                held[count] = frame
                if held_bytes > max_held_bytes:
                    held = None  # too long to hold: the chosen frames are decoded again
            count += 1
    if count == 0:
        raise SourceReadError(path, "no decodable video frame")
    selection = signal.select(rng)
    needed = np.unique(selection.indices).tolist()
    if held is not None:
        images, passes = {i: held[i].to_ndarray(format="bgr24") for i in needed}, 1
    else:
        images, passes = _decode_again(path, needed), 2
    return ScannedVideo(
        selection=selection,
        images=images,
        stamps_ms={i: stamps[i] for i in needed},
        first_ms=stamps[0],
        count=count,
        fps=fps,
        passes=passes,
    )


def _decode_again(path, needed):
    """The second pass: decodes sequentially up to the last needed frame, converting those."""
    images, wanted = {}, set(needed)
    with _open(path) as container:
        stream = container.streams.video[0]
        for index, frame in enumerate(_frames(container, stream, path)):
            if index in wanted:
                images[index] = frame.to_ndarray(format="bgr24")
                if len(images) == len(wanted):
                    return images
    missing = sorted(wanted - set(images))
    raise SourceReadError(
        path,
        f"decoding is not repeatable: frame {missing[0]} was decoded on a first pass "
        "but not found on the second",
    )


def _open(path):
    try:
        container = av.open(str(path))
    except av.FFmpegError as error:
        raise SourceReadError(
            path,
            f"FFmpeg cannot open it as a video (unknown container or codec, or corrupt): {error}",
        ) from None
    if not container.streams.video:
        container.close()
        raise SourceReadError(path, "the file holds no video stream")
    # One decoder thread per video, as the OpenCV reader: parallelism comes from
    # decoding several videos at once.
    container.streams.video[0].thread_type = "NONE"
    return container


def _frames(container, stream, path):
    """Yields the decoded frames; a decoding error partway is a SourceReadError."""
    count = 0
    try:
        for frame in container.decode(stream):
            yield frame
            count += 1
    except av.FFmpegError as error:
        raise SourceReadError(path, f"decoding failed after frame {count}: {error}") from None


def _luma(frame) -> np.ndarray:
    """The frame's luma plane as (H, W) uint8, without conversion where the format allows."""
    if frame.format.name in _LUMA_PLANE_FORMATS:
        plane = frame.planes[0]
        rows = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
        return rows[:, : plane.width]
    return frame.to_ndarray(format="gray")


def _rate(stream):
    rate = stream.guessed_rate or stream.average_rate
    rate = float(rate) if rate else math.nan
    return rate if math.isfinite(rate) and rate > 0 else None


def _ms(pts, time_base):
    if pts is None or time_base is None:
        return math.nan
    return float(pts * time_base) * 1000.0
