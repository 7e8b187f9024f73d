"""The first pass of ``motion`` and ``keyframes`` sampling: a signal from every frame.

These modes cannot choose frames before they have seen the whole video, so
:func:`scan_video` decodes it once (:func:`vidseq.extract.decode.video_reader.iter_thumbnails`:
PyAV, one thread, ``swscale`` straight to a tiny thumbnail) and keeps one number
per frame: the motion (grey thumbnails) or the content change (colour
thumbnails). It chooses the frames from that signal. Getting the chosen frames'
pixels is the caller's second step, one of:

* ``hold=True``: the scan decodes exactly (deblocking on) and holds every
  decoded frame, still in the decoder's YUV, so the chosen ones are converted
  from memory and the video is decoded once. The reader asks for this only
  when the whole video fits in :data:`MAX_HELD_BYTES`;
* ``hold=False``: the scan skips H.264's deblocking filter (the signal does
  not need exact pixels) and holds nothing; the chosen frames are then decoded
  by the keyframe-aware planner, or sequentially where the video has no usable
  packet index. With a packet index, ``motion`` also skips the frames no
  other frame refers to (most B-frames of H.264: a half to two thirds of the
  decoding work): the motion between two decoded frames is shared equally by
  the frames between them (:meth:`MotionSignal.add`), whose display indices
  the index gives. Without an index (or in ``keyframes`` mode, whose cuts
  need every frame) every frame is scanned, so the chosen frames of such a
  video may differ slightly between ``VIDSEQ_DECODER=planned`` and ``opencv``.

Memory is one thumbnail and one float per frame, plus the held frames when
they fit the budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import cv2
import numpy as np

from vidseq.errors import SourceReadError
from vidseq.extract.decode.cheap_motion import FULL_SCAN, cheap_motion
from vidseq.extract.decode.motion import THUMB_SIZE, MotionSignal, motion_indices
from vidseq.extract.decode.packet_index import IndexUnavailable, PacketIndex
from vidseq.extract.decode.sampling import FrameSelection, SamplingConfig
from vidseq.extract.decode.shots import ContentSignal, keyframe_indices
from vidseq.extract.decode.video_reader import iter_thumbnails

MAX_HELD_BYTES = 256 * 2**20
"""Decoded frames one video's scan may hold to avoid a second pass (256 MiB: e.g. 2,330
frames of 4:2:0 320x240, 93 s at 25 fps; or 194 frames of 1280x720, 7.8 s)."""
COLOUR_THUMB = (36, 48)
"""(height, width) of the BGR thumbnail whose HSV histogram the content change compares."""


@dataclass
class ScannedVideo:
    """What the scan of one video found.

    Attributes:
        selection: The chosen frames.
        count: Frames decoded.
        held: Display index -> decoded ``av.VideoFrame`` of every frame when the
            scan held them, else None.
        signal: The signal the frames were chosen from: ``"full_scan"``, or
            for ``motion`` one of :data:`~vidseq.extract.decode.cheap_motion.SIGNAL_NAMES`.
    """

    selection: FrameSelection
    count: int
    held: dict | None
    signal: str = FULL_SCAN


class FrameSignal:
    """The per-frame signal a sampling mode selects from: motion or content change."""

    def __init__(self, config: SamplingConfig):
        self.config = config
        self.colour = config.mode == "keyframes"
        self.size = COLOUR_THUMB if self.colour else THUMB_SIZE
        self._signal = ContentSignal() if self.colour else MotionSignal()

    def add_thumbnail(self, thumbnail: np.ndarray, position: int | None = None) -> None:
        """Adds a frame's thumbnail: grey or BGR (``self.colour``) of ``self.size``.

        ``position`` (the frame's index; None: the next frame) may skip frames
        in ``motion`` mode only (see :meth:`MotionSignal.add`).
        """
        if self.colour:
            self._signal.add(thumbnail)
        else:
            self._signal.add(thumbnail, position)

    def add_image(self, image: np.ndarray) -> None:
        """Adds a decoded BGR, BGRA or grey image (frame directories and clips)."""
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if self.colour:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[:, :, :3]
        elif image.ndim == 3:
            image = cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2GRAY)
        height, width = self.size
        self.add_thumbnail(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))

    def pad_to(self, count: int) -> None:
        """``motion``: frames up to ``count`` never added (skipped at the end) get no motion."""
        self._signal.pad_to(count)

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


def scan_video(
    path, config: SamplingConfig, rng=None, *, hold=False, index: PacketIndex | None = None
) -> ScannedVideo:
    """Decodes a video once for its per-frame signal, and chooses frames from it.

    Args:
        path: The video file.
        config: A ``motion`` or ``keyframes`` :class:`SamplingConfig`.
        rng: Optional ``numpy.random.Generator`` (random variant).
        hold: Decode exactly and hold every decoded frame (see the module's
            description); the caller checks that they fit.
        index: The video's packet index, if it has one. ``motion`` sampling
            with ``motion_signal="auto"`` then first tries a signal that needs
            no full decode (:func:`~vidseq.extract.decode.cheap_motion.cheap_motion`:
            nothing is held); else a video that is not held decodes reference
            frames only (see the module's description).

    Returns:
        A :class:`ScannedVideo`.

    Raises:
        SourceReadError: The file cannot be opened, has no video stream or
            decodable frame, or decoding fails partway (the error names the frame).
        IndexUnavailable: A frame decoded with ``index`` is not in it.
    """
    if index is not None and config.mode == "motion" and config.motion_signal == "auto":
        cheap = cheap_motion(str(path), index)
        if cheap is not None:
            values, name = cheap
            selection = motion_indices(values, config.num_frames, config.motion_floor, rng=rng)
            return ScannedVideo(selection=selection, count=index.num_frames, held=None, signal=name)
    signal = FrameSignal(config)
    held = {} if hold else None
    skipping = index is not None and not hold and not signal.colour
    count = 0
    thumbnails = iter_thumbnails(
        str(path), signal.size, fast=not hold, colour=signal.colour, references_only=skipping
    )
    try:
        for thumbnail in thumbnails:
            position = index.frame_of(thumbnail.frame.pts) if skipping else thumbnail.index
            if position < count:
                raise IndexUnavailable(f"decoded a frame (pts={thumbnail.frame.pts}) out of order")
            signal.add_thumbnail(thumbnail.image, position)
            if held is not None:
                held[position] = thumbnail.frame
            count = position + 1
    except av.FFmpegError as error:
        if count == 0:
            raise SourceReadError(
                path,
                "FFmpeg cannot open or decode it as a video "
                f"(unknown container or codec, or corrupt): {error}",
            ) from None
        raise SourceReadError(path, f"decoding failed after frame {count}: {error}") from None
    except IndexError:
        raise SourceReadError(path, "the file holds no video stream") from None
    if count == 0:
        raise SourceReadError(path, "no decodable video frame")
    if skipping:
        count = index.num_frames  # trailing non-reference frames: no motion of their own
        signal.pad_to(count)
    return ScannedVideo(selection=signal.select(rng), count=count, held=held)
