"""The run directory: its files, its config.json, and a validating loader."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from vidseq.cache.schema import CacheMeta
from vidseq.errors import UsageError

RUN_KIND = "vidseq-sequence-run"
RUN_FORMAT_VERSION = 1
END_TO_END = "end_to_end"
"""``config["model"]`` of an end-to-end run (uint8 clips in); absent for feature runs."""

CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
REPORT_FILE = "classification_report.txt"
CONFUSION_FILE = "confusion_matrix.png"
CURVES_FILE = "training_curves.png"
CHECKPOINT_DIR = "checkpoints"

RUN_FILES = (
    CONFIG_FILE,
    MODEL_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    REPORT_FILE,
    CONFUSION_FILE,
    CURVES_FILE,
    CHECKPOINT_DIR,
)

META_FIELDS = tuple(field.name for field in dataclasses.fields(CacheMeta))
"""The cache meta fields copied verbatim into config.json: every field of CacheMeta."""
REQUIRED_KEYS = (
    *(k for k in META_FIELDS if k != "weights_seed"),
    "kind",
    "frames",
    "head",
    "num_classes",
)


def meta_dict(meta):
    """The cache meta fields (a ``CacheMeta`` or a dict) as a JSON-ready dict."""
    if dataclasses.is_dataclass(meta):
        meta = dataclasses.asdict(meta)
    out = {}
    for key in META_FIELDS:
        if isinstance(meta, dict) and key not in meta:
            continue
        value = meta[key] if isinstance(meta, dict) else getattr(meta, key)
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def read_run_config(run_dir):
    """Reads and validates ``config.json`` of a run directory (no TensorFlow).

    Args:
        run_dir: The run directory.

    Returns:
        The config dict (keys: see ``training.build_run_config``).

    Raises:
        UsageError: the directory or its config.json is missing, unreadable,
            not JSON, or lacks a required key.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: not a run directory (no such directory)")
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise UsageError(f"{path}: missing; {run_dir} is not a complete run directory")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{path}: corrupt run config ({e})") from None
    if not isinstance(config, dict) or config.get("kind") != RUN_KIND:
        raise UsageError(f"{path}: not a vidseq run config (expected kind {RUN_KIND!r})")
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise UsageError(f"{path}: corrupt run config, missing {', '.join(missing)}")
    return config


def is_end_to_end(config):
    """Whether a run config describes an end-to-end run (raw frames in; see finetune)."""
    return config.get("model") == END_TO_END


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
        """T, the number of feature rows the model reads per video."""
        return int(self.config["frames"])


def load_model_file(path, *, compile=False):
    """Loads a ``.keras`` file with ``safe_mode=True``; UsageError naming it on failure."""
    import keras

    from vidseq.extract.preprocessing import FramePreprocessing
    from vidseq.sequence.head import PaddingFrameMask, TemporalCentering

    custom_objects = {
        "vidseq>FramePreprocessing": FramePreprocessing,
        "vidseq>TemporalCentering": TemporalCentering,
        "vidseq>PaddingFrameMask": PaddingFrameMask,
    }

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: missing; the run directory is incomplete")
    try:
        return keras.saving.load_model(
            path, custom_objects=custom_objects, compile=compile, safe_mode=True
        )
    except Exception as e:  # Keras raises many types for a corrupt archive.
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"{path}: cannot load the model ({first})") from None


def load_run(run_dir):
    """Loads and validates a run directory written by ``train_sequence``.

    Args:
        run_dir: The run directory.

    Returns:
        A :class:`SequenceRun`.

    Raises:
        UsageError: config.json or model.keras missing or corrupt, or a model
            whose input/output shape disagrees with config.json.
    """
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    model = load_model_file(run_dir / MODEL_FILE)
    if is_end_to_end(config):  # uint8 clips (T, H, W, 3) in, see sequence/finetune.py
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
