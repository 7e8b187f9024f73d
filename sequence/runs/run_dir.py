"""The run directory's lifecycle: its files, config.json, state.json, check, clear, resume.

A run directory is created empty (or replaced with ``overwrite``), receives
``config.json`` before training, ``checkpoints/`` (see ``checkpoint``: the
last epoch's variables with its optimizer's, the best weights so far and
``state.json``) each epoch, and its reports at the end. :func:`open_run`
checks a directory before a training command writes anything and brings back
an interrupted run's state and settings. No TensorFlow here (see
``saved_run`` for loading a model).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from vidseq.bounds import MAX_CLASSES, MAX_FEATURES, MAX_FRAMES, MAX_SIDE, check_count
from vidseq.cache.schema import CacheMeta
from vidseq.errors import UsageError, VidseqError
from vidseq.extract.decode.sampling import SamplingConfig
from vidseq.outputs import check_writable_folder, is_within, refuse_inputs, same_path
from vidseq.sequence.config import resumed_config
from vidseq.sequence.runs.report_files import read_json, write_json

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
REPORT_PAGE = "report.html"
CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "state.json"

RUN_FILES = (
    CONFIG_FILE,
    MODEL_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    REPORT_FILE,
    CONFUSION_FILE,
    CURVES_FILE,
    REPORT_PAGE,
    CHECKPOINT_DIR,
)

META_FIELDS = tuple(field.name for field in dataclasses.fields(CacheMeta))
"""The cache meta fields copied verbatim into config.json: every field of CacheMeta."""
OPTIONAL_META_FIELDS = ("weights_seed", "backbone_config", "precision", "precision_check")
"""Meta fields that older runs, and end-to-end runs, may lack."""
REQUIRED_KEYS = (
    *(k for k in META_FIELDS if k not in OPTIONAL_META_FIELDS),
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
        The config dict (keys: see ``training.build_run_config``
        and ``end_to_end.run_config``).

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
    config = read_json(path, "run config")
    if not isinstance(config, dict) or config.get("kind") != RUN_KIND:
        raise UsageError(f"{path}: not a vidseq run config (expected kind {RUN_KIND!r})")
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise UsageError(f"{path}: corrupt run config, missing {', '.join(missing)}")
    try:
        check_run_config_values(config)
    except (UsageError, TypeError, ValueError, AttributeError, OverflowError) as e:
        problem = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"{path}: corrupt run config ({problem})") from None
    return config


CONFIG_TYPES = {
    "backbone": str,
    "weights": str,
    "weights_sha256": str,
    "engine": str,
    "input_size": list,
    "sampling": dict,
    "class_names": list,
    "dtype": str,
    "head": (dict, str),
    "train": dict,
    "finetune": dict,
    "cache_path": (str, list, type(None)),
}
"""config.json keys -> the JSON types they may hold (absent keys are not checked)."""


def check_run_config_values(config):
    """Checks the types of a run config's values and bounds its sizes (see ``vidseq.bounds``).

    Raises:
        UsageError: A value of the wrong type, or a size out of bounds (named).
    """
    for key, types in CONFIG_TYPES.items():
        if key in config and not isinstance(config[key], types):
            raise UsageError(f"{key} has the wrong type. Received: {key}={config[key]!r}")
    check_count("frames", config["frames"], high=MAX_FRAMES)
    check_count("feature_dim", config["feature_dim"], high=MAX_FEATURES)
    check_count("num_classes", config["num_classes"], low=2, high=MAX_CLASSES)
    if len(config["class_names"]) != config["num_classes"]:
        raise UsageError(
            f"class_names must list num_classes names. Received: {len(config['class_names'])} "
            f"names, num_classes={config['num_classes']}"
        )
    if len(config["input_size"]) != 2:
        raise UsageError(f"input_size must be [height, width]. Received: {config['input_size']}")
    for side in config["input_size"]:
        check_count("input_size", side, high=MAX_SIDE)
    SamplingConfig.from_dict(config["sampling"])
    split_settings(config)


def is_end_to_end(config):
    """Whether a run config describes an end-to-end run (raw frames in; see finetune)."""
    return config.get("model") == END_TO_END


def split_keywords(config):
    """How a run split its data: ``val_fraction``, ``seed``, ``folds``, ``fold`` (``splits_of``'s).

    Reads the ``train`` section of any run's config.json: the nested layout
    (``{"fit": {"seed": ...}, ...}``), the flat one of older runs, and the
    short one of end-to-end runs.
    """
    train = config.get("train", {})
    fit = train.get("fit", train)
    return {
        "val_fraction": float(train.get("val_fraction", 0.15)),
        "seed": int(fit.get("seed", 0)),
        "folds": int(train.get("folds", 1)),
        "fold": int(train.get("fold", 0)),
    }


def split_settings(config):
    """:func:`split_keywords` and how the run evaluated: ``eval_clips``."""
    train = config.get("train", {})
    return {**split_keywords(config), "eval_clips": int(train.get("eval_clips", 1) or 1)}


@dataclass
class RunState:
    """The resumable state of a run, saved as ``checkpoints/state.json`` every epoch.

    Attributes:
        epochs_done: Epochs completed.
        checkpoint: File (in ``checkpoints/``) of the last epoch's variables, or None.
        best_weights: File of the best epoch's weights, or None.
        best_val_loss: Best validation loss so far, or None.
        best_epoch: 1-based epoch of the best weights (0: none yet).
        wait: Epochs since the last improvement (early stopping).
        plateau_wait: The same, for the ``plateau`` schedule.
        lr: Learning rate of the last epoch.
        stopped_early: Early stopping (or ``model.stop_training``) ended training.
        finished: The run wrote its model and reports.
        failed: Why training stopped without finishing (a NaN loss), or None.
        history: One dict per epoch (``epoch``, ``loss``, ``accuracy``,
            ``val_loss``, ``val_accuracy``, ``lr``).
    """

    lr: float
    epochs_done: int = 0
    checkpoint: str | None = None
    best_weights: str | None = None
    best_val_loss: float | None = None
    best_epoch: int = 0
    wait: int = 0
    plateau_wait: int = 0
    stopped_early: bool = False
    finished: bool = False
    failed: str | None = None
    history: list = field(default_factory=list)

    def to_dict(self):
        """The JSON-ready dict of ``state.json``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        """Reads ``state.json`` (unknown keys ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def state_path(run_path):
    """``checkpoints/state.json`` of a run directory."""
    return Path(run_path) / CHECKPOINT_DIR / STATE_FILE


def read_state(run_path):
    """The :class:`RunState` of a run directory; UsageError when unreadable."""
    return RunState.from_dict(read_json(state_path(run_path)))


def write_state(run_path, state):
    """Writes ``state.json`` atomically."""
    return write_json(state_path(run_path), state.to_dict())


def stop_if_diverged(run_path, state, row):
    """Marks the run failed and raises when an epoch's loss is NaN or infinite.

    Args:
        run_path: The run directory.
        state: Its :class:`RunState` (``failed`` is set and ``state.json`` written).
        row: The epoch's history row (``epoch``, ``loss``, maybe ``val_loss``).

    Raises:
        VidseqError: A runtime failure (exit 1), naming the epoch and what to do.
    """
    bad = [k for k in ("loss", "val_loss") if k in row and not math.isfinite(row[k])]
    if not bad:
        return
    state.failed = f"{bad[0]} became {row[bad[0]]} in epoch {row['epoch']}"
    write_state(run_path, state)
    raise VidseqError(
        f"{run_path}: training failed, the {state.failed}; the run is marked failed in "
        f"{state_path(run_path)}. Lower --lr, or check the cache's features"
    )


def check_run_dir(out_dir, *, resume, overwrite, chief=True, inputs=()):
    """Refuses an occupied run directory. Returns the state of a run to resume, or None.

    A worker that is not the chief (``chief=False``) only reads the state of a
    resume: the chief checks the directory, and may already be writing to it.

    Raises:
        UsageError: ``out_dir`` is one of ``inputs`` (also with ``overwrite``);
            ``out_dir`` is a file; a non-empty directory without ``resume`` or
            ``overwrite``; a finished run asked to resume; a resume without a
            checkpoint in a directory holding other files.
    """
    out_dir = Path(out_dir)
    path = state_path(out_dir)
    resumable = resume and path.is_file()
    if not chief:
        state = read_state(out_dir) if resumable else None
        return state if state and state.checkpoint and not state.finished else None
    refuse_inputs(out_dir, inputs, flag="out_dir")
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a directory. Received: out_dir={out_dir}")
    non_empty = out_dir.is_dir() and any(out_dir.iterdir())
    if resumable:
        state = read_state(out_dir)
        if state.finished:
            raise UsageError(
                f"{out_dir}: this run already finished; nothing to resume "
                "(choose another out_dir, or pass overwrite=True)"
            )
        return state if state.checkpoint else None  # no epoch ended yet: start again
    if non_empty and resume:
        if all(p.name in RUN_FILES for p in out_dir.iterdir()):
            return None  # interrupted before its first epoch ended: start again
        raise UsageError(f"{out_dir}: no checkpoint to resume from ({path} missing)")
    if non_empty and not overwrite:
        raise UsageError(
            f"{out_dir}: the run directory is not empty; choose another out_dir, "
            "or pass resume=True or overwrite=True"
        )
    return None


def tensorboard_dir(folder, run_path) -> Path:
    """Where a run's TensorBoard logs go: ``FOLDER/RUN_NAME`` (``train/``, ``validation/``).

    ``FOLDER`` gathers the logs of many runs, one folder each, as
    ``tensorboard --logdir FOLDER`` shows them.
    """
    return Path(folder) / Path(os.path.abspath(run_path)).name


def check_tensorboard_dir(folder, run_path, *, resume, inputs=()) -> None:
    """Checks a run's TensorBoard folder before any work; nothing in it is ever removed.

    ``FOLDER`` may exist and hold other runs' logs. The run's own
    ``FOLDER/RUN_NAME`` must be new or empty, except with ``resume`` (the run
    goes on, and its new event files, uniquely named, continue the old ones);
    ``overwrite`` replaces a run's files, never logs that TensorBoard would mix
    with the new ones. Neither may be an input or lie inside an input folder.

    Raises:
        UsageError: One line naming ``tensorboard`` and the problem.
    """
    if not folder:
        return
    logs = tensorboard_dir(folder, run_path)
    for path in (Path(folder), logs):
        if path.exists() and not path.is_dir():
            raise UsageError(f"tensorboard must be a folder; {path} is a file")
    for source in inputs:
        if same_path(logs, source) or (os.path.isdir(source) and is_within(logs, source)):
            raise UsageError(
                f"tensorboard must not write inside the input {source}; choose another "
                f"folder. Received: tensorboard={folder}"
            )
    if not resume and logs.is_dir() and any(logs.iterdir()):
        raise UsageError(
            f"tensorboard must not hold the logs of an earlier run named {logs.name} ({logs}), "
            "which TensorBoard would mix with this one's (--resume continues that run); "
            f"choose another folder, or remove it. Received: tensorboard={folder}"
        )
    check_writable_folder(logs / "train", flag="tensorboard")


def clear_run_files(out_dir):
    """Removes the files a run writes (nothing else) and creates ``checkpoints/``."""
    out_dir = Path(out_dir)
    for name in RUN_FILES:
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    (out_dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)


def start_run_files(out_dir, run_config):
    """Clears a new run's files and writes its ``config.json``."""
    clear_run_files(out_dir)
    write_json(Path(out_dir) / CONFIG_FILE, run_config)


@dataclass
class OpenedRun:
    """A checked run directory, with what a resume brings back.

    Attributes:
        path: The run directory.
        config: The settings to train with: the call's, or on resume the saved
            ones with the call's overridable fields (``config.RESUME_OVERRIDABLE``).
        state: The :class:`RunState` to resume, or None for a new run.
        saved_config: The resumed run's ``config.json``, or None.
        warnings: Things the caller should tell the user.
    """

    path: Path
    config: object
    state: RunState | None = None
    saved_config: dict | None = None
    warnings: list = field(default_factory=list)

    @property
    def resuming(self):
        """Whether training continues an interrupted run."""
        return self.state is not None


def open_run(
    out_dir, config, *, section, resume, overwrite, chief=True, end_to_end=False, inputs=()
):
    """Checks ``out_dir`` for a training command; on resume, brings back the saved run.

    Args:
        out_dir: The run directory.
        config: The validated settings of the call (a config of ``sequence.config``).
        section: The key of ``config.json`` holding the settings (``"train"``
            or ``"finetune"``).
        resume: Continue the interrupted run in ``out_dir``.
        overwrite: Replace the run files of a non-empty ``out_dir``.
        chief: This process writes ``out_dir`` (see :func:`check_run_dir`).
        end_to_end: The command trains end-to-end runs (refuses to resume another kind).
        inputs: What the command reads (a source run, a dataset): never ``out_dir``.

    Returns:
        An :class:`OpenedRun`.
    """
    path = Path(out_dir)
    state = check_run_dir(path, resume=resume, overwrite=overwrite, chief=chief, inputs=inputs)
    if chief:
        check_tensorboard_dir(config.fit.tensorboard, path, resume=resume, inputs=inputs)
    if state is None:
        return OpenedRun(path, config)
    saved_config = read_run_config(path)
    if is_end_to_end(saved_config) != end_to_end:
        raise UsageError(f"{path}: a run of another kind; nothing for this command to resume")
    warnings = []
    saved = type(config).from_dict(saved_config[section])
    merged = resumed_config(saved, config, warnings)
    return OpenedRun(path, merged, state, saved_config, warnings)
