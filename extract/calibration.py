"""INT8 calibration on the user's own videos, and the agreement check of bf16/INT8 features.

Before a lower-precision extraction writes anything:

1. **Calibration** (INT8): :func:`calibration_items` picks ``calibration_videos``
   videos of the dataset (training split first, evenly spread over it, the
   same whatever the shard), their frames are sampled as the extraction samples
   them, and :func:`prepare_int8` quantises the backbone on them (once: the
   model is kept beside the cache, see :mod:`vidseq.extract.models.quantize`).
2. **Agreement** (bf16 and INT8): :func:`held_out_items` picks up to
   :data:`CHECK_VIDEOS` other videos (test split first, never a calibration
   video), and :func:`check_agreement` runs them through TensorFlow in FP32
   and through the lower-precision engine. The cosine similarity of each real
   frame's two feature vectors is summarised (mean, minimum, 1st percentile)
   in the cache's ``precision_check`` attribute, which ``vidseq inspect``
   shows. An optional ``probe`` adds its own figures from the two sets of
   features (the fraction of videos whose top-1 prediction changes under a
   trained run: :mod:`vidseq.sequence.infer.precision_agreement`). A run
   that resumes a cache whose files already record the check for the same
   precision and network keeps that check instead of running it again
   (unless a probe asks for figures of its own).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidseq.errors import SourceReadError, UsageError
from vidseq.extract.decode.frames import read_frames
from vidseq.extract.models.engines import load_engine
from vidseq.extract.models.quantize import quantized_folder, quantized_key, quantized_model

DEFAULT_CALIBRATION_VIDEOS = 16
"""Videos whose sampled frames calibrate INT8 (16 x 16 frames = NNCF's order of 300 samples)."""
CHECK_VIDEOS = 16
"""Held-out videos of the agreement check."""
_SPLIT_ORDER = {"train": 0, "val": 1, "": 2, "test": 3}


@dataclass
class PrecisionCheck:
    """FP32 and lower-precision features of the held-out videos.

    Attributes:
        precision: ``"bf16"`` or ``"int8"``.
        weights_sha256: The backbone's weights hash (what a probe's run must share).
        video_ids: The held-out videos.
        reference: Per video, ``(K, D)`` FP32 features (TensorFlow).
        lowered: Per video, ``(K, D)`` features of the lower-precision engine.
        num_valid: Per video, its real (not padding) frames.
    """

    precision: str
    weights_sha256: str
    video_ids: list[str]
    reference: list[np.ndarray]
    lowered: list[np.ndarray]
    num_valid: list[int]

    def cosines(self) -> np.ndarray:
        """Cosine similarity of the two feature vectors of every real frame."""
        pairs = [
            (a[:n], b[:n])
            for a, b, n in zip(self.reference, self.lowered, self.num_valid, strict=True)
        ]
        a = np.concatenate([p[0] for p in pairs]).astype(np.float64)
        b = np.concatenate([p[1] for p in pairs]).astype(np.float64)
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        return (a * b).sum(axis=1) / np.maximum(norms, np.finfo(np.float64).tiny)

    def to_dict(self) -> dict:
        """The figures the cache records (JSON-ready)."""
        cosines = self.cosines()
        return {
            "precision": self.precision,
            "reference": "tf fp32",
            "videos": len(self.video_ids),
            "frames": int(cosines.size),
            "cosine_mean": round(float(cosines.mean()), 6),
            "cosine_p01": round(float(np.percentile(cosines, 1)), 6),
            "cosine_min": round(float(cosines.min()), 6),
        }


def _by_split(items):
    return sorted(items, key=lambda item: (_SPLIT_ORDER.get(item.split, 2), item.video_id))


def calibration_items(items, count: int) -> list:
    """``count`` videos spread evenly over the dataset, training split first (deterministic)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise UsageError(
            f"calibration_videos must be an integer >= 1. Received: calibration_videos={count!r}"
        )
    ordered = _by_split(items)
    training = [item for item in ordered if item.split == "train"] or ordered
    if len(training) <= count:
        return training
    positions = np.linspace(0, len(training) - 1, count).round().astype(int)
    return [training[i] for i in positions]


def held_out_items(items, exclude, count: int = CHECK_VIDEOS) -> list:
    """Up to ``count`` videos not in ``exclude``, test split first."""
    excluded = {item.video_id for item in exclude}
    others = [item for item in reversed(_by_split(items)) if item.video_id not in excluded]
    return others[:count]


def read_clips(items, spec, geometry) -> list:
    """``(item, SampledFrames)`` of each readable item (unreadable ones are left out)."""
    clips = []
    for item in items:
        try:
            clips.append((item, read_frames(item.source, spec.sampling, geometry)))
        except SourceReadError:
            continue
    return clips


def prepare_int8(net, items, spec, geometry, out, calibration_videos) -> tuple:
    """Calibrates and quantises ``net`` (unless done before) for the cache ``out``.

    Returns:
        ``(path, calibration)``: the quantised model and the calibration items.
    """
    chosen = calibration_items(items, calibration_videos)
    path = quantized_folder(out) / f"{quantized_key(net, [i.video_id for i in chosen])}.xml"
    if not path.is_file():
        clips = read_clips(chosen, spec, geometry)
        if not clips:
            raise UsageError("INT8 calibration found no readable video among the dataset's")
        frames = np.concatenate([frames.frames[: frames.num_valid] for _, frames in clips])
        quantized_model(net, frames, path)
    return path, chosen


def check_agreement(net, engine, clips, probe=None) -> dict:
    """Compares ``engine``'s features with TensorFlow FP32 ones on ``clips``.

    Args:
        net: The backbone (its FP32 TensorFlow function is the reference).
        engine: The lower-precision engine.
        clips: ``(item, SampledFrames)`` pairs (see :func:`read_clips`).
        probe: Optional ``probe(check) -> dict`` adding figures from the
            :class:`PrecisionCheck`.

    Returns:
        The ``precision_check`` dict (empty when there is no clip).
    """
    if not clips:
        return {}
    check = PrecisionCheck(engine.precision, net.weights_sha256, [], [], [], [])
    for item, frames in clips:
        check.video_ids.append(item.video_id)
        check.reference.append(net.extract(frames.frames))
        check.lowered.append(engine.extract(frames.frames))
        check.num_valid.append(int(frames.num_valid))
    figures = check.to_dict()
    if probe is not None:
        figures.update(probe(check))
    return figures


def lowered_engine(
    net, frames, dataset, out, engine, precision, batch_size, videos, probe, recorded=None
):
    """The bf16 or INT8 engine of an extraction (INT8: calibrated first), and its agreement.

    Args:
        net: The backbone.
        frames: The extraction's :class:`~vidseq.extract.decode.framespec.FrameSpec`.
        dataset: The whole dataset (every shard calibrates on the same videos).
        out: The cache being written (the quantised model is kept beside it).
        engine: ``"tf"`` or ``"openvino"``.
        precision: ``"fp32"``, ``"bf16"`` or ``"int8"``.
        batch_size: Frames per inference call.
        videos: INT8 calibration videos.
        probe: Optional probe of the agreement check (see :func:`check_agreement`).
        recorded: The ``precision_check`` the cache being resumed records for
            the same precision and network
            (:func:`~vidseq.cache.writer.recorded_precision_check`): kept,
            and the check is not run again. Ignored when a ``probe`` asks for
            figures of its own.

    Returns:
        ``(engine, check)``: the loaded engine and the ``precision_check``
        dict; for FP32, the engine's name and an empty dict.
    """
    if precision == "fp32":
        return engine, {}
    geometry = frames.geometry(net.input_size)
    quantized, calibration = None, []
    if precision == "int8":
        quantized, calibration = prepare_int8(net, dataset.items, frames, geometry, out, videos)
    runner = load_engine(
        net, engine, batch_size=batch_size, precision=precision, quantized_path=quantized
    )
    if recorded and probe is None:
        return runner, recorded
    clips = read_clips(held_out_items(dataset.items, calibration), frames, geometry)
    return runner, check_agreement(net, runner, clips, probe)
