"""FrameSpec: how frames are taken from a source and framed for the CNN, as one typed value.

A cache records its ``FrameSpec`` as the root attribute ``sampling`` (JSON text,
see ``docs/cache-format.md``); every later stage (finetune, from-scratch,
predict, windowed predict, exports) rebuilds its frames from it. The attribute
keeps the flat schema-v1 layout::

    {"mode": "uniform", "num_frames": 16, "frame_rate": 5.0, "crop": "resize",
     "face_crop": {...},      # only with a face crop
     "clip_length": 10}       # only for FER-2013 pseudo-clips

Caches written before ``FrameSpec`` existed hold the same keys (``crop`` may be
missing: it means ``"resize"``), so every existing cache reads back unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from vidseq.errors import UsageError
from vidseq.extract.decode.faces import FaceCrop
from vidseq.extract.decode.geometry import FrameGeometry, check_crop
from vidseq.extract.decode.sampling import SamplingConfig


@dataclass(frozen=True)
class FrameSpec:
    """Sampling, crop, face crop and clip length of the frames fed to the CNN.

    Args:
        sampling: Which frames to take (:class:`SamplingConfig`).
        crop: ``"resize"`` or ``"center"`` (see :class:`FrameGeometry`).
        face_crop: Cut each frame around its largest face first, or None.
        clip_length: Images per FER-2013 pseudo-clip; None for other sources.

    Raises:
        UsageError: For a field of the wrong type or an unknown crop mode.
    """

    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    crop: str = "resize"
    face_crop: FaceCrop | None = None
    clip_length: int | None = None

    def __post_init__(self):
        if not isinstance(self.sampling, SamplingConfig):
            raise UsageError(
                f"sampling must be a SamplingConfig. Received: sampling={self.sampling!r}"
            )
        check_crop(self.crop)
        if self.face_crop is not None and not isinstance(self.face_crop, FaceCrop):
            raise UsageError(
                f"face_crop must be a FaceCrop or None. Received: face_crop={self.face_crop!r}"
            )
        if self.clip_length is not None:
            length = self.clip_length
            if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
                raise UsageError(
                    f"clip_length must be None or an integer >= 1. Received: clip_length={length!r}"
                )
            object.__setattr__(self, "clip_length", int(length))

    @classmethod
    def from_options(
        cls,
        *,
        sampling: str = "uniform",
        num_frames: int = 16,
        frame_rate: float = 5.0,
        crop: str = "resize",
        face_crop: bool = False,
        face_gray: bool = False,
        face_margin: float = 0.2,
        clip_length: int | None = None,
        **mode_options,
    ) -> FrameSpec:
        """Builds a spec from flat options, as the command line gives them.

        A grey face crop is a face crop: ``face_gray=True`` cuts faces even
        when ``face_crop`` is False.

        Args:
            sampling: The sampling mode (one of ``SAMPLING_MODES``).
            num_frames: K, the frames per clip.
            frame_rate: Frames per second taken in ``fps`` mode.
            crop: ``"resize"`` or ``"center"``.
            face_crop: Cut each frame around its largest face.
            face_gray: Cut faces, in grey (implies ``face_crop``).
            face_margin: Room around a face on each side, a fraction of its size.
            clip_length: Images per FER-2013 pseudo-clip; None for the default.
            **mode_options: The parameters of the ``motion`` and ``keyframes``
                modes (``motion_floor``, ``cut_threshold``, ``cut_ratio``).

        Returns:
            The :class:`FrameSpec`.

        Raises:
            UsageError: For a value out of range.
        """
        face = FaceCrop(margin=face_margin, gray=bool(face_gray))  # validated even when unused
        if not (face_crop or face_gray):
            face = None
        return cls(
            sampling=SamplingConfig(
                mode=sampling, num_frames=num_frames, frame_rate=frame_rate, **mode_options
            ),
            crop=crop,
            face_crop=face,
            clip_length=clip_length,
        )

    @property
    def num_frames(self) -> int:
        """K, the frames per clip (padding included)."""
        return self.sampling.num_frames

    def geometry(self, input_size) -> FrameGeometry:
        """The :class:`FrameGeometry` of these frames at the CNN's ``(height, width)``."""
        size = None if input_size is None else tuple(int(v) for v in input_size)
        return FrameGeometry(size=size, crop=self.crop, face=self.face_crop)

    def with_num_frames(self, num_frames: int) -> FrameSpec:
        """The same spec taking ``num_frames`` frames per clip."""
        sampling = dataclasses.replace(self.sampling, num_frames=num_frames)
        return dataclasses.replace(self, sampling=sampling)

    def to_dict(self) -> dict:
        """The cache's ``sampling`` attribute: the flat, JSON-ready schema-v1 dict."""
        recorded = {**self.sampling.to_dict(), "crop": self.crop}
        if self.face_crop is not None:
            recorded["face_crop"] = self.face_crop.to_dict()
        if self.clip_length is not None:
            recorded["clip_length"] = self.clip_length
        return recorded

    @classmethod
    def from_dict(cls, recorded) -> FrameSpec:
        """Reads a cache's ``sampling`` attribute (any schema-v1 cache, old ones included).

        Keys this class does not know are ignored; missing ones take their
        defaults (a cache without ``crop`` was resized).

        Raises:
            UsageError: For a value that is not a dict, or a bad field in it.
        """
        if not isinstance(recorded, dict):
            raise UsageError(f"sampling must be a dict. Received: sampling={recorded!r}")
        face = recorded.get("face_crop")
        return cls(
            sampling=SamplingConfig.from_dict(recorded),
            crop=recorded.get("crop", "resize"),
            face_crop=FaceCrop.from_dict(face) if face else None,
            clip_length=recorded.get("clip_length"),
        )
