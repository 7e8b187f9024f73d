"""Frames one at a time: a single sequential pass through a file, and live captures.

:func:`read_frames` (in :mod:`vidseq.extract.decode.frames`) returns the K frames of one
clip at once. Long videos and live streams need frames as they are decoded:

* :class:`SequentialDecoder` passes once through a video file and yields the
  wanted frame indices, fitted for the CNN, in order (``grab()`` for the others:
  no colour conversion, no copy). Windowed prediction uses it.
* :func:`open_stream` opens whatever OpenCV's FFmpeg backend opens: a camera
  index (``0``), a file, ``rtsp://``, ``http(s)://`` MJPEG or HLS, with open and
  read timeouts so that a dead stream is noticed. ``vidseq watch`` uses it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import cv2
import numpy as np

from vidseq.errors import SourceReadError
from vidseq.extract.decode.faces import FaceTracker
from vidseq.extract.decode.frames import (
    DEFAULT_FPS,
    FrameGeometry,
    file_problem,
    open_video,
    to_rgb,
)

DEFAULT_MAX_RECONNECTS = 3
"""Reconnection attempts without a frame before a live stream counts as lost (``watch``)."""

STREAM_OPEN_TIMEOUT_MS = 10_000
"""How long opening a network stream may take before it counts as unreachable."""
STREAM_READ_TIMEOUT_MS = 5_000
"""How long a network stream may stay silent before it counts as dropped."""


def frame_rate(capture) -> float:
    """The capture's frame rate, or :data:`DEFAULT_FPS` when its header gives none."""
    fps = capture.get(cv2.CAP_PROP_FPS)
    return float(fps) if math.isfinite(fps) and fps > 0 else DEFAULT_FPS


class FrameFitter:
    """Turns decoded BGR frames into the CNN's RGB frames (face crop, size, crop mode).

    Feed it the frames in stream order: a face crop follows the face from
    frame to frame (see :class:`~vidseq.extract.decode.faces.FaceTracker`).

    Args:
        geometry: The output size and framing.
    """

    def __init__(self, geometry: FrameGeometry):
        self.geometry = geometry
        self._faces = FaceTracker(geometry.face) if geometry.face is not None else None

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """One decoded frame → (H, W, 3) uint8 RGB."""
        if self._faces is not None:
            image, _ = self._faces.crop(image)
        return to_rgb(image, self.geometry)


class SequentialDecoder:
    """One pass through a video file, from the start.

    Args:
        path: A video file.
        geometry: The output size and framing.

    Attributes:
        fps: The video's frame rate (:data:`DEFAULT_FPS` if its header gives none).
        claimed_frames: The header's frame count (0 when it gives none): a first
            guess only; :attr:`count` is the truth once a pass has ended.
        count: Frames decoded by the last complete pass.

    Raises:
        SourceReadError: The file is missing, unreadable or not a video.
    """

    def __init__(self, path, geometry: FrameGeometry):
        self.path = os.fspath(path)
        problem = file_problem(self.path)
        if problem:
            raise SourceReadError(self.path, problem)
        self.geometry = geometry
        capture = open_video(self.path)
        try:
            self.fps = frame_rate(capture)
            claimed = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        finally:
            capture.release()
        self.claimed_frames = int(claimed) if math.isfinite(claimed) and claimed >= 1 else 0
        self.count = 0

    def frames(self, wanted) -> Iterator[tuple[int, np.ndarray]]:
        """Decodes the whole file, yielding ``(index, rgb_frame)`` for each wanted index.

        Args:
            wanted: Sorted unique frame indices (any iterable of ints).

        Yields:
            The wanted frames that exist, in order. Afterwards :attr:`count`
            holds the number of frames in the file.

        Raises:
            SourceReadError: A frame was found but could not be decoded, or the
                file holds no frame at all.
        """
        capture = open_video(self.path)
        fit = FrameFitter(self.geometry)
        targets = iter(wanted)
        target = next(targets, None)
        position, buffer = -1, None
        try:
            while capture.grab():
                position += 1
                if position != target:
                    continue
                ok, buffer = capture.retrieve(buffer)
                if not ok or buffer is None:
                    raise SourceReadError(
                        self.path, f"frame {position} was found but could not be decoded"
                    )
                yield position, fit(buffer)
                target = next(targets, None)
        finally:
            capture.release()
        self.count = position + 1
        if self.count == 0:
            raise SourceReadError(self.path, "no decodable video frame")


def parse_source(source) -> int | str:
    """A camera index (``"0"`` → ``0``) or the path or URL as given."""
    text = str(source).strip()
    return int(text) if text.isdigit() else text


def is_file_source(source) -> bool:
    """Whether ``source`` names a local file (played once) rather than a live stream."""
    return isinstance(source, str) and os.path.isfile(source)


def open_stream(source) -> cv2.VideoCapture:
    """Opens a camera, a file or a network stream with OpenCV.

    Network streams get open and read timeouts
    (:data:`STREAM_OPEN_TIMEOUT_MS`, :data:`STREAM_READ_TIMEOUT_MS`), so that a
    stalled stream ends a read instead of blocking it forever.

    Args:
        source: A camera index (int), a file path, or a URL (``rtsp://``,
            ``http(s)://`` MJPEG or HLS, anything FFmpeg opens).

    Returns:
        An opened ``cv2.VideoCapture``.

    Raises:
        SourceReadError: It cannot be opened (no such camera, unreachable URL,
            unknown format).
    """
    if isinstance(source, int):
        capture = cv2.VideoCapture(source)
        what = f"no camera with index {source} can be opened"
    elif "://" not in source and file_problem(source):  # a local file: say what is wrong
        raise SourceReadError(source, f"{file_problem(source)} (a local file, not a stream URL)")
    else:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            STREAM_OPEN_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            STREAM_READ_TIMEOUT_MS,
        ]
        capture = cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)
        what = "OpenCV's FFmpeg backend cannot open it (unreachable, or not a video stream)"
    if not capture.isOpened():
        capture.release()
        raise SourceReadError(str(source), what)
    return capture
