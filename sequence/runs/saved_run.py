"""A finished run directory loaded for use: its model, frame spec and backbone.

What prediction (and any later consumer: windowed prediction, export) needs::

    run = load_run("runs/ucf")          # config.json + model.keras, shapes checked
    spec = run.frame_spec               # how to sample and frame the video
    backbone = load_run_backbone(run)   # feature runs: the CNN, SHA-256 checked
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from vidseq.errors import UsageError
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.models.backbones import load_backbone
from vidseq.extract.models.engines import ENGINES
from vidseq.extract.models.hub import import_keras_hub, is_hub_name, recorded_pooling
from vidseq.extract.models.hub_layers import (
    ClipGrouping,
    GroupRows,
    ImageScaling,
    TokenPooling,
)
from vidseq.extract.models.preprocessing import FramePreprocessing
from vidseq.sequence.heads.layers import CUSTOM_OBJECTS as HEAD_LAYERS
from vidseq.sequence.runs.run_dir import CONFIG_FILE, MODEL_FILE, is_end_to_end, read_run_config

CUSTOM_OBJECTS = {
    "vidseq>FramePreprocessing": FramePreprocessing,
    "vidseq>ImageScaling": ImageScaling,
    "vidseq>TokenPooling": TokenPooling,
    "vidseq>ClipGrouping": ClipGrouping,
    "vidseq>GroupRows": GroupRows,
    **HEAD_LAYERS,
}
"""Every vidseq layer a run's model may hold: backbone preprocessing and pooling, heads."""


@dataclass
class SequenceRun:
    """A loaded run directory.

    Attributes:
        path: The run directory.
        config: Its config.json.
        model: The trained ``keras.Model`` (best weights), uncompiled.
    """

    path: Path
    config: dict
    model: object

    @property
    def class_names(self):
        """Class names, index = output unit."""
        return list(self.config["class_names"])

    @property
    def end_to_end(self):
        """Whether the model reads raw uint8 clips rather than cached features."""
        return is_end_to_end(self.config)

    @property
    def frames(self):
        """T, the number of rows (features or frames) the model reads per video."""
        return int(self.config["frames"])

    @property
    def input_size(self):
        """``(height, width)`` of the CNN's frames."""
        return tuple(int(v) for v in self.config["input_size"])

    @property
    def frame_spec(self):
        """The run's :class:`~vidseq.extract.decode.framespec.FrameSpec`."""
        return FrameSpec.from_dict(dict(self.config["sampling"]))


def load_model_file(path, *, compile=False):
    """Loads a ``.keras`` file with ``safe_mode=True``.

    Raises:
        UsageError: Naming the file: missing, not a valid ``.keras`` archive
            (truncated or corrupt), or refused by Keras (e.g. a ``Lambda``
            layer under ``safe_mode``).
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: missing; the run directory is incomplete")
    if not _is_intact_zip(path):
        raise UsageError(
            f"{path}: cannot load the model (not a valid .keras archive: truncated or corrupt)"
        )
    try:
        return keras.saving.load_model(
            path, custom_objects=CUSTOM_OBJECTS, compile=compile, safe_mode=True
        )
    except Exception as e:  # Keras raises many types for a model it refuses.
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"{path}: cannot load the model ({first})") from None


def check_finite_weights(model, path) -> None:
    """Refuses a model whose weights hold NaN or infinity.

    The normalisation statistics (the feature mean and variance a
    ``Normalization`` layer applies) are weights too, so a run whose statistics
    were computed from broken features, or whose file was damaged, is refused
    here instead of predicting NaN.

    Raises:
        UsageError: Naming ``path`` and the first such weight.
    """
    for weight in model.weights:
        values = keras.ops.convert_to_numpy(weight)
        if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
            raise UsageError(
                f"{path}: the model's weight {weight.path} holds NaN or infinite values "
                "(normalisation statistics or weights of a broken run); train the run again"
            )


def _is_intact_zip(path):
    """Whether ``path`` is a zip archive whose every member reads back (CRC checked)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return False


def load_run(run_dir):
    """Loads and validates a finished run directory (feature or end-to-end).

    Args:
        run_dir: The run directory.

    Returns:
        A :class:`SequenceRun`.

    Raises:
        UsageError: config.json or model.keras missing or corrupt, a model
            whose input/output shape disagrees with config.json, or one whose
            weights (normalisation statistics included) are not finite.
    """
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    if is_hub_name(config["backbone"]):
        import_keras_hub()  # registers the encoder classes an end-to-end model holds
    model = load_model_file(run_dir / MODEL_FILE)
    check_finite_weights(model, run_dir / MODEL_FILE)
    if is_end_to_end(config):  # uint8 clips (T, H, W, 3) in
        expected_in = (int(config["frames"]), *(int(v) for v in config["input_size"]), 3)
    else:
        expected_in = (int(config["frames"]), int(config["feature_dim"]))
    got_in = tuple(model.input_shape[1:])
    got_out = model.output_shape[-1]
    if got_in != expected_in or got_out != len(config["class_names"]):
        raise UsageError(
            f"{run_dir / MODEL_FILE}: model shape {got_in} -> {got_out} disagrees with "
            f"{CONFIG_FILE} input {expected_in} -> "
            f"{len(config['class_names'])} classes"
        )
    return SequenceRun(run_dir, config, model)


def load_run_backbone(run: SequenceRun):
    """Rebuilds the backbone that made the run's training features, hash checked.

    Args:
        run: A loaded run directory.

    Returns:
        The :class:`~vidseq.extract.models.backbones.Backbone`.

    Raises:
        UsageError: The weights found now are not those the run was trained on,
            or its features were made by an engine vidseq does not know.
    """
    config = run.config
    # Every known engine gives the same features (to float32 rounding): a run
    # trained on one engine's cache predicts with any of them.
    if config["engine"] not in ENGINES:
        raise UsageError(
            f"{run.path}: features made with engine {config['engine']!r}; "
            f"expected one of {', '.join(ENGINES)}"
        )
    net = load_backbone(
        config["backbone"],
        config["weights"],
        input_size=run.input_size,
        seed=int(config.get("weights_seed", 0)),
        pooling=recorded_pooling(config.get("backbone_config", {})),
    )
    if net.weights_sha256 != config["weights_sha256"]:
        raise UsageError(
            f"{run.path}: the {config['backbone']} weights {config['weights']!r} have SHA-256 "
            f"{net.weights_sha256[:12]}…, but the run was trained on features of "
            f"{config['weights_sha256'][:12]}…; supply the same weights"
        )
    return net
