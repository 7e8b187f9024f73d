"""Which frames of a video to take: pure functions, no decoding.

Four modes (see ``docs/architecture.md``, "Frame sampling"):

* ``uniform`` (default, TSN-style): the video is split into K equal segments and
  the centre frame of each is taken, so the sample covers the whole clip. With a
  random generator, a random frame of each segment is taken instead (the
  training-time augmentation of Temporal Segment Networks).
* ``fps``: the tutorial's mode: one frame every ``max(int(fps / frame_rate), 1)``
  frames from the start, at most K, padded to K by repeating the last one.
* ``motion``: K frames at equal steps of cumulative motion (see
  :mod:`vidseq.extract.decode.motion`); a static video gets the ``uniform`` selection.
* ``keyframes``: content cuts split the video into shots, and each shot gets
  frames in proportion to its length (see :mod:`vidseq.extract.decode.shots`).

``motion`` and ``keyframes`` need a signal from every frame; the reader computes
it while decoding (:mod:`vidseq.extract.decode.signal_scan`), so :func:`select_frames`
here serves ``uniform`` and ``fps`` only.

Segments are defined on integers: segment ``k`` of ``n`` frames split into ``K``
holds the frames ``k * n // K`` up to, not including, ``(k + 1) * n // K``.
Every segment holds at least one frame when ``n >= K``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from vidseq.bounds import MAX_FRAMES, check_count
from vidseq.errors import UsageError

SAMPLING_MODES = ("uniform", "fps", "motion", "keyframes")
SIGNAL_MODES = ("motion", "keyframes")
"""The modes that choose frames from a per-frame signal of the whole video."""
MOTION_SIGNALS = ("auto", "full")
"""``motion`` mode's signal policies: the cheapest per video, or always the full scan."""


@dataclass(frozen=True)
class SamplingConfig:
    """How many frames to take from each video, and how.

    Args:
        mode: ``"uniform"`` (K equal segments, centre frame of each), ``"fps"``
            (one frame every ``fps / frame_rate`` frames from the start),
            ``"motion"`` (equal steps of cumulative motion) or ``"keyframes"``
            (frames per shot in proportion to its length).
        num_frames: K, the number of frames per video (padding included).
        frame_rate: Frames per second taken in ``fps`` mode; unused otherwise.
        motion_floor: ``motion`` mode: weight, in grey levels, of a frame that
            moves less than this; a video that never moves more is sampled
            uniformly.
        cut_threshold: ``keyframes`` mode: least HSV-histogram change (0-1) of a cut.
        cut_ratio: ``keyframes`` mode: least ratio of a cut's change to the
            mean change of its neighbours (the adaptive threshold).
        motion_signal: ``motion`` mode: ``"auto"`` takes, per video, a signal
            that needs no full decode where one applies (packet sizes of
            inter-coded streams, reduced JPEG decodes of Motion-JPEG; see
            :mod:`vidseq.extract.decode.cheap_motion`), else the full scan;
            ``"full"`` always decodes every frame for it (what caches written
            before the choice existed used; they read back as ``"full"``).

    Raises:
        UsageError: For an unknown mode or motion signal, ``num_frames < 1`` or
            a rate, floor, threshold or ratio that is not a positive finite number.
    """

    mode: str = "uniform"
    num_frames: int = 16
    frame_rate: float = 5.0
    motion_floor: float = 1.0
    cut_threshold: float = 0.3
    cut_ratio: float = 3.0
    motion_signal: str = "auto"

    def __post_init__(self):
        if self.mode not in SAMPLING_MODES:
            raise UsageError(
                f"Unknown sampling mode. Expected one of {list(SAMPLING_MODES)}. "
                f"Received: mode={self.mode!r}"
            )
        if self.motion_signal not in MOTION_SIGNALS:
            raise UsageError(
                f"Unknown motion signal. Expected one of {list(MOTION_SIGNALS)}. "
                f"Received: motion_signal={self.motion_signal!r}"
            )
        if isinstance(self.num_frames, bool) or not isinstance(self.num_frames, (int, np.integer)):
            raise UsageError(
                f"num_frames must be an integer between 1 and {MAX_FRAMES}. "
                f"Received: num_frames={self.num_frames!r}"
            )
        check_count("num_frames", self.num_frames, high=MAX_FRAMES)
        for name in ("frame_rate", "motion_floor", "cut_threshold", "cut_ratio"):
            value = as_float(getattr(self, name))
            if value is None or not (math.isfinite(value) and value > 0):
                raise UsageError(
                    f"{name} must be a positive finite number. "
                    f"Received: {name}={getattr(self, name)!r}"
                )
            object.__setattr__(self, name, value)
        object.__setattr__(self, "num_frames", int(self.num_frames))

    def to_dict(self) -> dict:
        """Returns the configuration as a JSON-serialisable dict.

        The parameters of a mode are recorded with that mode only, so a
        ``uniform`` or ``fps`` configuration reads as it always has.
        """
        recorded = asdict(self)
        if self.mode != "motion":
            del recorded["motion_floor"], recorded["motion_signal"]
        if self.mode != "keyframes":
            del recorded["cut_threshold"], recorded["cut_ratio"]
        return recorded

    @classmethod
    def from_dict(cls, d: dict) -> SamplingConfig:
        """Builds a configuration from :meth:`to_dict`'s output.

        Keys this class does not know (e.g. facts another module stored beside
        the sampling in a cache) are ignored; missing keys take their defaults,
        except a ``motion`` configuration without ``motion_signal``: it was
        written before the cheap signals existed and reads as ``"full"``.

        Args:
            d: A mapping such as ``{"mode": "uniform", "num_frames": 16}``.

        Returns:
            The configuration.
        """
        known = {f.name for f in fields(cls)}
        options = {key: value for key, value in d.items() if key in known}
        if options.get("mode") == "motion":
            options.setdefault("motion_signal", "full")
        return cls(**options)


@dataclass(frozen=True)
class FrameSelection:
    """The frames chosen from one video.

    Attributes:
        indices: (K,) int64 source frame indices, in order; padding repeats the
            last real index.
        num_valid: How many leading entries are real frames (the rest is padding).
    """

    indices: np.ndarray
    num_valid: int


def uniform_indices(num_source_frames, num_frames, rng=None) -> FrameSelection:
    """Selects one frame from each of K equal segments of the video.

    With ``n >= K`` frames, segment ``k`` holds frames ``k*n//K`` to
    ``(k+1)*n//K - 1`` and its centre frame is taken (or, with ``rng``, a
    uniformly random frame of it). With ``n < K``, all ``n`` frames are taken and
    the last one is repeated up to K; ``num_valid`` is then ``n``.

    Args:
        num_source_frames: n, the number of frames in the video (>= 1).
        num_frames: K, the number of frames wanted (>= 1).
        rng: Optional ``numpy.random.Generator``; given, a random frame of each
            segment is taken instead of its centre (TSN training variant).

    Returns:
        The selection: K indices and ``num_valid = min(n, K)``.

    Raises:
        ValueError: If ``n < 1`` or ``K < 1``.
    """
    n = _positive_int("num_source_frames", num_source_frames)
    k = _positive_int("num_frames", num_frames)
    if n < k:
        return padded(np.arange(n, dtype=np.int64), k)
    starts = np.arange(k, dtype=np.int64) * n // k
    lengths = np.arange(1, k + 1, dtype=np.int64) * n // k - starts
    # Centre of each segment or, with rng, a random frame of it (TSN training).
    offsets = lengths // 2 if rng is None else rng.integers(0, lengths, dtype=np.int64)
    return FrameSelection(indices=starts + offsets, num_valid=k)


def fps_indices(num_source_frames, fps, frame_rate, num_frames) -> FrameSelection:
    """Selects one frame every ``fps / frame_rate`` frames from the start.

    The tutorial's arithmetic: ``step = max(int(fps / frame_rate), 1)``; the
    indices ``0, step, 2*step, ...`` below ``n``, at most K of them, padded to K
    by repeating the last one.

    Args:
        num_source_frames: n, the number of frames in the video (>= 1).
        fps: The video's frame rate (> 0).
        frame_rate: Frames per second wanted (> 0).
        num_frames: K, the number of frames wanted (>= 1).

    Returns:
        The selection; ``num_valid`` counts the real frames before padding.

    Raises:
        ValueError: If ``n < 1``, ``K < 1`` or a rate is not positive and finite.
    """
    n = _positive_int("num_source_frames", num_source_frames)
    k = _positive_int("num_frames", num_frames)
    fps = _positive_rate("fps", fps)
    frame_rate = _positive_rate("frame_rate", frame_rate)
    step = max(int(fps / frame_rate), 1)
    return padded(np.arange(0, n, step, dtype=np.int64)[:k], k)


def select_frames(config, num_source_frames, fps, rng=None) -> FrameSelection:
    """Selects frames as ``config`` says.

    Args:
        config: A :class:`SamplingConfig`.
        num_source_frames: n, the number of frames in the video (>= 1).
        fps: The video's frame rate (used by ``fps`` mode only).
        rng: Optional ``numpy.random.Generator`` for the random ``uniform``
            variant; ignored by ``fps`` mode, which is deterministic.

    Returns:
        The :class:`FrameSelection`.
    """
    if config.mode == "uniform":
        return uniform_indices(num_source_frames, config.num_frames, rng=rng)
    if config.mode == "fps":
        return fps_indices(num_source_frames, fps, config.frame_rate, config.num_frames)
    if config.mode in SIGNAL_MODES:
        raise ValueError(
            f"{config.mode} sampling needs a signal from every frame; "
            "read the frames with vidseq.extract.decode.frames.read_frames"
        )
    raise ValueError(
        f"Unknown sampling mode. Expected one of {list(SAMPLING_MODES)}. "
        f"Received: mode={config.mode!r}"
    )


def padded(indices, num_frames) -> FrameSelection:
    """Pads real indices to ``num_frames`` by repeating the last one."""
    num_valid = len(indices)
    if num_valid < num_frames:
        indices = np.concatenate(
            [indices, np.full(num_frames - num_valid, indices[-1], dtype=np.int64)]
        )
    return FrameSelection(indices=indices, num_valid=num_valid)


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1. Received: {name}={value!r}")
    return int(value)


def _positive_rate(name, value):
    rate = as_float(value)
    if rate is None or not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"{name} must be a positive finite number. Received: {name}={value!r}")
    return rate


def as_float(value):
    """``value`` as a float, or None when it is not a number (booleans are not numbers)."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
