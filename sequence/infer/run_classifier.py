"""A trained feature run as a frame classifier: backbone, engine and head together.

Windowed prediction and ``vidseq watch`` classify many clips of one stream;
:class:`RunClassifier` gives them the run's frame spec, its backbone (through
an engine) and its head. This module is the one place where they touch the run
directory and ``predict``'s backbone loader (:func:`load_classifier`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidseq.errors import UsageError
from vidseq.extract.decode.frames import FrameGeometry
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.models.engines import check_engine, load_engine
from vidseq.extract.models.precision import check_precision
from vidseq.extract.models.quantize import find_quantized, quantized_folder
from vidseq.sequence.data.batches import predict_fixed_batch
from vidseq.sequence.data.temporal import prepare_clip
from vidseq.sequence.runs.saved_run import load_run, load_run_backbone

CLIPS_PER_CALL = 8
"""Clips per head call: a constant batch shape, so the head's predict step is traced once."""


@dataclass
class RunClassifier:
    """The run's backbone and head, ready for clips of frames.

    Attributes:
        class_names: Class names, index = output unit.
        spec: How the run's cache sampled and framed its frames.
        geometry: The frames the CNN takes (size, crop, face crop).
        frames: T, the feature rows the head reads per clip.
        engine: What runs the backbone (``extract(frames) -> features``).
        model: The trained head (Keras model).
        cache_path: The run's cache, as recorded in its config.
        clip_frames: G, the frames the backbone reads at once (above 1: a clip
            encoder, whose features depend on the group: see :meth:`clip_features`).
    """

    class_names: list[str]
    spec: FrameSpec
    geometry: FrameGeometry
    frames: int
    engine: object
    model: object
    cache_path: object = None
    clip_frames: int = 1

    def features(self, frames: np.ndarray) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 frames → ``(N, D)`` float32 backbone features."""
        return np.asarray(self.engine.extract(frames), dtype=np.float32)

    def clip_features(self, frames: np.ndarray, num_valid: int) -> np.ndarray:
        """The (K, D) features of one clip's K sampled frames, as extraction computes them.

        The real frames go through the backbone together (a clip encoder groups
        them from the clip's first frame); padding rows repeat the last real
        frame's features.
        """
        real = self.features(frames[:num_valid])
        return np.concatenate([real, np.repeat(real[-1:], len(frames) - num_valid, axis=0)])

    def classify(self, clips) -> np.ndarray:
        """Class probabilities of clips of features.

        Args:
            clips: ``(features, num_valid)`` pairs: the (K, D) features of one
                clip's sampled frames (padding rows included) and its number of
                real rows.

        Returns:
            (N, C) float32 probabilities, one row per clip.
        """
        batch = np.stack([prepare_clip(f, n, self.frames) for f, n in clips])
        rows = [
            predict_fixed_batch(self.model, batch[start : start + CLIPS_PER_CALL], CLIPS_PER_CALL)
            for start in range(0, len(batch), CLIPS_PER_CALL)
        ]
        return np.concatenate(rows).astype(np.float32, copy=False)

    def warm_up(self) -> None:
        """Runs the backbone and the head once, so that the first real call is not slow."""
        frame = np.zeros((1, *self.geometry.size, 3), dtype=np.uint8)
        features = self.features(frame)
        self.classify([(np.repeat(features, self.spec.num_frames, axis=0), 1)])


def top_labels(row, class_names, top_k: int) -> list[tuple[str, float]]:
    """The ``top_k`` most probable ``(label, probability)`` pairs of one row."""
    best = np.argsort(row)[::-1][:top_k]
    return [(class_names[i], float(row[i])) for i in best]


def load_classifier(
    run_dir, *, engine: str = "tf", batch_size: int = 32, precision: str = "fp32"
) -> RunClassifier:
    """Loads a feature run as a :class:`RunClassifier`.

    Args:
        run_dir: A run directory written by ``train_sequence``.
        engine: ``"tf"`` or ``"openvino"``.
        batch_size: Frames per backbone call (OpenVINO compiles for it).
        precision: ``"fp32"``, ``"bf16"`` or ``"int8"`` (see :func:`run_engine`).

    Returns:
        The classifier.

    Raises:
        UsageError: Incomplete run, weights that differ from the run's, an
            unknown engine, or an end-to-end run (it reads raw clips, not
            backbone features).
    """
    check_engine(engine)
    check_precision(engine, precision)
    run = load_run(run_dir)
    if run.end_to_end:
        raise UsageError(
            f"{run_dir}: an end-to-end (fine-tuned) run reads whole clips of raw frames; "
            "windowed prediction and watch need a run trained on cached features"
        )
    runner = run_engine(run, engine, batch_size, precision)
    return RunClassifier(
        class_names=run.class_names,
        spec=run.frame_spec,
        geometry=run.frame_spec.geometry(run.input_size),
        frames=run.frames,
        engine=runner,
        model=run.model,
        cache_path=run.config.get("cache_path"),
        clip_frames=runner.net.clip_frames,
    )


def run_engine(run, engine: str, batch_size: int, precision: str):
    """The engine that runs a feature run's backbone, in ``precision``.

    INT8 runs the model quantised by ``extract-features --precision int8``,
    found beside the run's cache (same backbone, weights and input size; see
    :mod:`vidseq.extract.models.quantize`); nothing is calibrated here.

    Raises:
        UsageError: As :func:`~vidseq.extract.models.engines.load_engine`, or
            INT8 with no quantised model beside the run's cache.
    """
    net = load_run_backbone(run)
    quantized = None
    if precision == "int8":
        cache = run.config.get("cache_path") or "."
        quantized = find_quantized(net, quantized_folder(cache))
        if quantized is None:
            raise UsageError(
                f"{run.path}: no INT8 {net.name} model beside its cache {cache}; run "
                "extract-features --engine openvino --precision int8 there first"
            )
    return load_engine(
        net, engine, batch_size=batch_size, precision=precision, quantized_path=quantized
    )
