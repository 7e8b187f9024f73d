"""Sampled frames: what a source gives (:class:`SampledFrames`), their size and framing.

:class:`FrameGeometry` says how a frame is fitted; the functions below fit one.

A decoded frame (BGR, BGRA or grey) is optionally cut around its largest face,
then resized (or centre-cropped and resized) and converted to RGB; the frames
of one source are then stacked.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vidseq.errors import SourceReadError, UsageError
from vidseq.extract.decode.faces import FaceCrop

CROP_MODES = ("resize", "center")
"""``FrameGeometry.crop``: plain resize, or shorter side resized then the centre cropped."""


def check_crop(crop) -> str:
    """The one crop rule: returns ``crop``, or raises UsageError unless it is a crop mode."""
    if crop not in CROP_MODES:
        raise UsageError(
            f"Unknown crop mode. Expected one of {list(CROP_MODES)}. Received: crop={crop!r}"
        )
    return crop


@dataclass
class SampledFrames:
    """The frames sampled from one source, and what the decoder saw.

    Attributes:
        frames: (K, H, W, 3) uint8 RGB frames; grayscale sources are replicated
            to 3 channels.
        frame_indices: (K,) int64 source frame index of each row; padding rows
            repeat the last real index.
        timestamps_ms: (K,) float64 time of each row in the source, in ms.
        num_valid: How many leading rows are real frames (the rest is padding).
        fps: The source's frame rate (for videos without one, ``DEFAULT_FPS``).
        num_source_frames: Frames really decoded (videos) or images found
            (clips, frame directories), never the container header's claim.
        face_found: (K,) bool, whether a face was found in each row's frame;
            None unless the geometry asks for a face crop.
        motion_signal: ``motion`` sampling: the signal that chose the frames
            (see :mod:`vidseq.extract.decode.cheap_motion`); else None.
    """

    frames: np.ndarray
    frame_indices: np.ndarray
    timestamps_ms: np.ndarray
    num_valid: int
    fps: float
    num_source_frames: int
    face_found: np.ndarray | None = None
    motion_signal: str | None = None


@dataclass(frozen=True)
class FrameGeometry:
    """The size and framing of the output frames.

    Args:
        size: ``(height, width)`` of the output frames; ``None`` keeps the
            source's size.
        crop: ``"resize"`` scales the whole frame to ``size`` (the aspect ratio
            may change); ``"center"`` scales the shorter side to fit and crops
            the centre, keeping the aspect ratio. Shrinking uses
            ``cv2.INTER_AREA``, enlarging ``cv2.INTER_LINEAR``.
        face: A :class:`~vidseq.extract.decode.faces.FaceCrop`: cut each frame around
            its largest face first (then ``crop`` and ``size`` apply to that
            square); None uses whole frames.

    Raises:
        UsageError: For a size that is not two positive integers, an unknown
            crop mode, or a ``face`` that is not a FaceCrop.
    """

    size: tuple[int, int] | None = None
    crop: str = "resize"
    face: FaceCrop | None = None

    def __post_init__(self):
        if self.face is not None and not isinstance(self.face, FaceCrop):
            raise UsageError(f"face must be a FaceCrop or None. Received: face={self.face!r}")
        check_crop(self.crop)
        if self.size is None:
            return
        try:
            height, width = self.size
            valid = all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                for v in (height, width)
            )
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise UsageError(
                "size must be (height, width), two positive integers, or None. "
                f"Received: size={self.size!r}"
            )
        object.__setattr__(self, "size", (int(height), int(width)))


def crop_face(image, faces, found, index):
    """Crops ``image`` around its largest face when ``faces`` (a FaceTracker) is given."""
    if faces is None:
        return image
    image, found[index] = faces.crop(image)
    return image


def face_flags(found, indices, geometry):
    """(K,) bool face flags in row order, or None without a face crop."""
    if geometry.face is None:
        return None
    return np.array([found[int(i)] for i in indices], dtype=bool)


def to_rgb(image, geometry):
    """Fits a decoded BGR/BGRA/gray frame to ``geometry`` and returns it as RGB.

    The face crop of ``geometry`` is not applied here (see
    :class:`~vidseq.extract.decode.faces.FaceTracker`): only the size and the crop mode.
    """
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    image = fit_frame(image, geometry)  # before colour conversion: less to convert
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def fit_frame(image, geometry):
    """Resizes, or crops the centre then resizes (same as resize-shorter-side then crop)."""
    if geometry.size is None:
        return image
    target_h, target_w = geometry.size
    height, width = image.shape[:2]
    if geometry.crop == "center":
        # The largest centred region with the target's aspect ratio; cropping
        # first avoids resizing pixels that the crop would throw away.
        if width * target_h > height * target_w:
            crop_h, crop_w = height, max(1, min(width, round(height * target_w / target_h)))
        else:
            crop_h, crop_w = max(1, min(height, round(width * target_h / target_w))), width
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        image = image[top : top + crop_h, left : left + crop_w]
        height, width = crop_h, crop_w
    if (height, width) == (target_h, target_w):
        return image
    shrinking = target_h <= height and target_w <= width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (target_w, target_h), interpolation=interpolation)


def stack_frames(kept, indices, name):
    frames = [kept[int(i)] for i in indices]
    shapes = {frame.shape for frame in frames}
    if len(shapes) > 1:
        sizes = sorted(f"{h}x{w}" for h, w, _ in shapes)
        raise SourceReadError(
            name,
            f"frames have different sizes ({', '.join(sizes)}); give FrameGeometry a size",
        )
    return np.stack(frames)
