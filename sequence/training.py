"""train-sequence: fit the LSTM/GRU head on a feature cache into a run directory."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidseq.cache.store import absolute_cache_spec
from vidseq.errors import UsageError
from vidseq.sequence import run_dir as rd

LR_SCHEDULES = ("constant", "step", "cosine", "plateau")
STATE_FILE = "state.json"
# Fields a resumed run may take from the new call instead of the saved config.
RESUME_OVERRIDABLE = ("resume", "streaming", "tensorboard", "strategy")


@dataclass
class TrainConfig:
    """Settings of train-sequence (the head, the optimisation, the data).

    Attributes:
        rnn: ``"lstm"`` or ``"gru"``.
        units: Units per recurrent layer.
        layers: Stacked recurrent layers.
        bidirectional: Bidirectional recurrent layers.
        dropout: Dropout rate after each recurrent layer.
        centering: What the RNN reads: ``"concat"`` (each frame's features and
            their deviation from the clip mean), ``"subtract"`` (the deviation
            only) or ``"none"`` (the features as they are, the tutorial's head).
        lr: Initial Adam learning rate.
        epochs: Most epochs to train.
        batch_size: Videos per batch and replica: a step reads ``batch_size x
            replicas`` videos (the global batch; replicas are 1 under the
            default strategy).
        patience: Early stopping on validation loss after this many epochs
            without improvement (best weights restored); 0 disables it (the
            best epoch's weights are still the ones kept).
        class_weight: None or ``"balanced"`` (inverse class frequency).
        label_smoothing: Label smoothing of the cross-entropy.
        lr_schedule: ``"constant"``; ``"step"`` (the tutorial's: halve every
            epoch after epoch 10); ``"cosine"`` (to 0 over ``epochs``);
            ``"plateau"`` (halve after ``max(1, patience // 2)`` epochs
            without validation improvement).
        frames: Feature rows per video fed to the RNN; None uses all cached
            rows. When the cache holds more, training draws a TSN random-offset
            sample each epoch and evaluation the centre (and multi-clip) sample.
        temporal_shift: Largest shift (frames) of the temporal-shift
            augmentation, drawn in ``[-s, s]`` per video and epoch; 0 disables.
        seed: Seed of weights, shuffling, sampling and augmentation.
        streaming: ``"auto"`` (by size against available memory), ``"memory"``
            or ``"stream"`` (read each batch from the HDF5 file).
        resume: Continue the interrupted run in the output directory.
        tensorboard: Directory for TensorBoard logs, or None.
        val_fraction: Fraction of training videos (by group) used for
            validation when the cache has no ``val`` split.
        eval_clips: Temporal samples averaged per video in evaluation when the
            cache is denser than ``frames``.
        strategy: ``"default"`` (one device), ``"mirrored"`` (the GPUs of this
            machine) or ``"multiworker"`` (machines listed in ``TF_CONFIG``); see
            :mod:`vidseq.sequence.distribute`.
    """

    rnn: str = "lstm"
    units: int = 128
    layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.5
    centering: str = "concat"
    lr: float = 1e-3
    epochs: int = 30
    batch_size: int = 32
    patience: int = 10
    class_weight: str | None = None
    label_smoothing: float = 0.0
    lr_schedule: str = "constant"
    frames: int | None = None
    temporal_shift: int = 0
    seed: int = 0
    streaming: str = "auto"
    resume: bool = False
    tensorboard: str | None = None
    val_fraction: float = 0.15
    eval_clips: int = 5
    strategy: str = "default"

    def validate(self):
        """Raises UsageError naming the first bad field; returns self."""
        from vidseq.sequence.data import STREAMING_MODES
        from vidseq.sequence.distribute import STRATEGIES
        from vidseq.sequence.head import CENTERING_MODES, RNN_TYPES

        checks = [
            ("rnn", self.rnn in RNN_TYPES, f"one of {RNN_TYPES}"),
            ("units", _is_int(self.units) and self.units >= 1, "an integer >= 1"),
            ("layers", _is_int(self.layers) and self.layers >= 1, "an integer >= 1"),
            ("dropout", 0.0 <= float(self.dropout) < 1.0, "in [0, 1)"),
            ("centering", self.centering in CENTERING_MODES, f"one of {CENTERING_MODES}"),
            ("lr", float(self.lr) > 0, "> 0"),
            ("epochs", _is_int(self.epochs) and self.epochs >= 1, "an integer >= 1"),
            ("batch_size", _is_int(self.batch_size) and self.batch_size >= 1, "an integer >= 1"),
            ("patience", _is_int(self.patience) and self.patience >= 0, "an integer >= 0"),
            ("class_weight", self.class_weight in (None, "balanced"), "None or 'balanced'"),
            ("label_smoothing", 0.0 <= float(self.label_smoothing) < 1.0, "in [0, 1)"),
            ("lr_schedule", self.lr_schedule in LR_SCHEDULES, f"one of {LR_SCHEDULES}"),
            (
                "frames",
                self.frames is None or (_is_int(self.frames) and self.frames >= 1),
                "None or an integer >= 1",
            ),
            (
                "temporal_shift",
                _is_int(self.temporal_shift) and self.temporal_shift >= 0,
                "an integer >= 0",
            ),
            ("seed", _is_int(self.seed), "an integer"),
            ("streaming", self.streaming in STREAMING_MODES, f"one of {STREAMING_MODES}"),
            ("val_fraction", 0.0 < float(self.val_fraction) < 1.0, "in (0, 1)"),
            ("eval_clips", _is_int(self.eval_clips) and self.eval_clips >= 1, "an integer >= 1"),
            ("strategy", self.strategy in STRATEGIES, f"one of {STRATEGIES}"),
        ]
        return _check_fields(self, checks)

    def to_dict(self):
        """The fields as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        """Builds a config from :meth:`to_dict` output (unknown keys ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_fields(config, checks):
    """Raises UsageError for the first ``(name, ok, expected)`` not ok; returns ``config``."""
    for name, ok, expected in checks:
        if not ok:
            raise UsageError(
                f"{name} must be {expected}. Received: {name}={getattr(config, name)!r}"
            )
    return config


@dataclass
class TrainResult:
    """What train_sequence did.

    Attributes:
        run_dir: The run directory.
        history: One dict per completed epoch (``epoch`` 1-based, ``loss``,
            ``accuracy``, ``val_loss``, ``val_accuracy``, ``lr``).
        best_epoch: 1-based epoch whose weights were kept.
        epochs_completed: Epochs completed in all (resumed ones included).
        stopped_early: Early stopping ended training.
        resumed_from: Epochs already completed when this call started.
        metrics: The evaluation dict of the final model (see
            ``evaluation.compute_metrics``) on the test split, or on the
            validation split when the cache has no test video.
        splits: Split sizes and where validation came from.
        streaming: Features were streamed from the file.
        seconds: Wall time of the fitting in this call.
        videos: Training videos seen in this call (videos x epochs).
        warnings: Things the caller should tell the user.
        weights_sha256: Digest of the final weights (``distribute.weights_sha256``):
            every worker of a multi-worker run reports the same one.
        chief: This process wrote the run directory (False for the other
            workers of a multi-worker run, whose ``metrics`` are empty).
        replicas: Replicas that trained in sync.
    """

    run_dir: Path
    history: list
    best_epoch: int
    epochs_completed: int
    stopped_early: bool
    resumed_from: int
    metrics: dict
    splits: dict
    streaming: bool
    seconds: float
    videos: int
    warnings: list = field(default_factory=list)
    weights_sha256: str = ""
    chief: bool = True
    replicas: int = 1

    @property
    def videos_per_second(self):
        """Training throughput of this call."""
        return self.videos / self.seconds if self.seconds > 0 else 0.0

    def summary(self):
        """One closing line: videos, seconds, videos/s, result, where."""
        m = self.metrics
        if not self.chief:
            return (
                f"worker done: {self.videos} video-epochs in {self.seconds:.1f} s, best epoch "
                f"{self.best_epoch}/{self.epochs_completed}; weights sha256 "
                f"{self.weights_sha256}; the chief writes the run directory {self.run_dir}"
            )
        baseline = m.get("baseline")
        versus = f", bag-of-frames baseline {baseline['accuracy']:.3f}" if baseline else ""
        return (
            f"trained on {self.splits['train']} videos: {self.videos} video-epochs in "
            f"{self.seconds:.1f} s ({self.videos_per_second:.1f} videos/s), best epoch "
            f"{self.best_epoch}/{self.epochs_completed}; {m['split']} accuracy "
            f"{m['accuracy']:.3f}{versus}; run: {self.run_dir}"
        )


def scheduled_lr(schedule, epoch, base_lr, epochs, current):
    """Learning rate of a 0-based epoch under a stateless schedule.

    ``plateau`` is not stateless: it keeps ``current`` (reduced elsewhere).
    """
    if schedule == "step":
        return base_lr * 0.5 ** max(0, epoch - 9)
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    if schedule == "plateau":
        return current
    return base_lr


def reseed_layers(model, seed, epoch):
    """Sets every random layer's seed state from ``(seed, epoch)``.

    Dropout masks then depend on the epoch, not on how many steps ran before in
    this process: a resumed run draws what the uninterrupted one drew.
    """
    generators = []
    for layer in model._flatten_layers(include_self=True, recursive=True):
        generators.extend(getattr(layer, "_seed_generators", []))
    if not generators:
        return
    values = np.random.default_rng([int(seed), int(epoch), 7919]).integers(
        0, 2**31 - 1, size=len(generators)
    )
    for generator, value in zip(generators, values, strict=True):
        state = generator.state
        state.assign(np.asarray([value, 0]).astype(state.dtype))


def _check_out_dir(out_dir, *, resume, overwrite, chief=True):
    """Refuses an occupied run directory. Returns the saved state of a resume, or None.

    A worker that is not the chief (``chief=False``) only reads the state of a
    resume: the chief checks the directory, and may already be writing to it.
    """
    out_dir = Path(out_dir)
    state_path = out_dir / rd.CHECKPOINT_DIR / STATE_FILE
    if not chief:
        if not (resume and state_path.is_file()):
            return None
        from vidseq.sequence.reports import read_json

        state = read_json(state_path)
        return state if state.get("checkpoint") and not state.get("finished") else None
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a directory")
    non_empty = out_dir.is_dir() and any(out_dir.iterdir())
    if resume and state_path.is_file():
        from vidseq.sequence.reports import read_json

        state = read_json(state_path)
        if state.get("finished"):
            raise UsageError(
                f"{out_dir}: this run already finished; nothing to resume "
                "(use another --out, or overwrite)"
            )
        if not state.get("checkpoint"):
            return None  # interrupted before its first epoch ended: start again
        return state
    if non_empty and resume:
        if all(p.name in rd.RUN_FILES for p in out_dir.iterdir()):
            return None  # interrupted before its first epoch ended: start again
        raise UsageError(f"{out_dir}: no checkpoint to resume from ({state_path} missing)")
    if non_empty and not overwrite:
        raise UsageError(
            f"{out_dir}: the run directory is not empty; choose another --out, "
            "or ask for resume or overwrite"
        )
    return None


def _clear_run_files(out_dir):
    """Removes the files a run writes (nothing else) and creates checkpoints/."""
    out_dir = Path(out_dir)
    for name in (*rd.RUN_FILES, rd.CHECKPOINT_DIR):
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    (out_dir / rd.CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)


def _require_tensorboard(config):
    """Refuses ``config.tensorboard`` when the tensorboard package is missing."""
    if config.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise UsageError(
            f"tensorboard={config.tensorboard!r} needs the tensorboard package, which is not "
            "installed (pip install tensorboard)"
        )


def _resumed_config(saved, config, overridable, warnings):
    """The interrupted run's settings ``saved``, with the new call's ``overridable`` fields.

    Appends to ``warnings`` the other fields whose new values are ignored.
    Returns the validated settings.
    """
    changed = [
        f.name
        for f in dataclasses.fields(saved)
        if f.name not in overridable and getattr(saved, f.name) != getattr(config, f.name)
    ]
    if changed:
        warnings.append(
            "resume keeps the interrupted run's settings; ignored new values of "
            + ", ".join(changed)
        )
    for name in overridable:
        setattr(saved, name, getattr(config, name))
    return saved.validate()


def _compile_classifier(model, optimizer, label_smoothing):
    """Compiles a softmax classifier: cross-entropy (smoothed) and accuracy."""
    import keras

    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=float(label_smoothing)),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )


def _evaluation_split(splits):
    """``("test", indices)``, or ``("val", indices)`` when there is no test video."""
    return ("test", splits.test) if len(splits.test) else ("val", splits.val)


def build_run_config(meta, config, *, frames, cache_path, splits, num_classes):
    """The config.json of a run.

    Keys: ``kind``, ``format_version``, ``vidseq_version``; the cache meta
    fields verbatim (``backbone``, ``weights``, ``weights_sha256``,
    ``engine``, ``input_size``, ``feature_dim``, ``sampling``,
    ``class_names``, ``dtype``); ``num_classes``; ``frames`` (T, feature rows
    per video the model reads); ``head`` (build_head arguments);
    ``train`` (TrainConfig fields); ``cache_path`` (absolute); ``splits``
    (sizes and ``val_source``).
    """
    from vidseq import __version__

    out = {"kind": rd.RUN_KIND, "format_version": rd.RUN_FORMAT_VERSION}
    out["vidseq_version"] = __version__
    out.update(rd.meta_dict(meta))
    out["num_classes"] = int(num_classes)
    out["frames"] = int(frames)
    out["head"] = {
        "rnn": config.rnn,
        "units": int(config.units),
        "layers": int(config.layers),
        "bidirectional": bool(config.bidirectional),
        "dropout": float(config.dropout),
        "centering": config.centering,
        "num_frames": int(frames),
        "feature_dim": int(out["feature_dim"]),
        "num_classes": int(num_classes),
    }
    out["train"] = config.to_dict()
    out["cache_path"] = absolute_cache_spec(cache_path)
    out["splits"] = dict(splits)
    return out


def _class_weights(config, train_labels, num_classes):
    if config.class_weight != "balanced":
        return None
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(train_labels)
    weights = np.ones(num_classes, dtype=np.float64)
    weights[present] = compute_class_weight("balanced", classes=present, y=train_labels)
    return weights


def _make_state_callback(run_path, config, state, train_batches):
    """The callback that owns every piece of resumable state."""
    import keras

    from vidseq.sequence.reports import write_history_csv, write_json

    class RunState(keras.callbacks.Callback):
        """Schedules the learning rate, tracks the best epoch, stops early, checkpoints."""

        def __init__(self):
            super().__init__()
            self.state = state
            self.ckpt_dir = run_path / rd.CHECKPOINT_DIR

        def on_epoch_begin(self, epoch, logs=None):
            lr = scheduled_lr(config.lr_schedule, epoch, config.lr, config.epochs, self.state["lr"])
            self.model.optimizer.learning_rate = lr
            self.state["lr"] = lr
            reseed_layers(self.model, config.seed, epoch)
            if train_batches.epoch != epoch:
                train_batches.set_epoch(epoch)

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            s = self.state
            row = {"epoch": epoch + 1}
            for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
                if key in logs:
                    row[key] = float(logs[key])
            row["lr"] = float(s["lr"])
            s["history"].append(row)
            val_loss = row.get("val_loss", row["loss"])
            improved = s["best_val_loss"] is None or val_loss < s["best_val_loss"]
            if improved:
                s["best_val_loss"] = float(val_loss)
                s["best_epoch"] = epoch + 1
                s["wait"] = 0
                s["plateau_wait"] = 0
                best = f"best-{epoch + 1:04d}.weights.h5"
                self.model.save_weights(self.ckpt_dir / best)
                s["best_weights"] = best
            else:
                s["wait"] += 1
                s["plateau_wait"] += 1
            if config.lr_schedule == "plateau" and s["plateau_wait"] >= max(
                1, config.patience // 2
            ):
                s["lr"] = max(s["lr"] * 0.5, config.lr * 1e-3)
                s["plateau_wait"] = 0
            if config.patience and s["wait"] >= config.patience:
                s["stopped_early"] = True
                self.model.stop_training = True
            checkpoint = f"epoch-{epoch + 1:04d}.keras"
            self.model.save(self.ckpt_dir / checkpoint)
            s["checkpoint"] = checkpoint
            s["epochs_done"] = epoch + 1
            write_json(self.ckpt_dir / STATE_FILE, s)
            write_history_csv(run_path / rd.HISTORY_FILE, s["history"])
            keep = {s["checkpoint"], s["best_weights"], STATE_FILE}
            for path in self.ckpt_dir.iterdir():
                if path.name not in keep and not path.name.startswith("."):
                    path.unlink(missing_ok=True)

    return RunState()


def new_run_state(lr):
    """The resumable state of a run that has not trained yet (saved as state.json)."""
    return {
        "epochs_done": 0,
        "checkpoint": None,
        "best_weights": None,
        "best_val_loss": None,
        "best_epoch": 0,
        "wait": 0,
        "plateau_wait": 0,
        "lr": float(lr),
        "stopped_early": False,
        "finished": False,
        "history": [],
    }


def fit_run(
    model,
    run_path,
    config,
    state,
    train_batches,
    val_batches,
    *,
    start_epoch,
    callbacks=None,
    verbose=1,
    strategy=None,
    loop="fit",
):
    """Fits a compiled model the way every run trains, then saves its model and curves.

    The run's state callback schedules the learning rate, reseeds dropout per
    epoch, tracks the best epoch, stops early and checkpoints every epoch (see
    ``state.json``). After fitting, the best weights are loaded and
    ``model.keras``, ``history.csv`` and ``training_curves.png`` written. Used
    by train-sequence and by finetune, under every strategy: ``loop="fit"``
    runs Keras' ``Model.fit``, ``loop="custom"``
    :func:`vidseq.sequence.distribute.fit_custom` (``strategy.run`` steps, for
    MultiWorkerMirroredStrategy); both call the same callbacks, so the
    bookkeeping is this one callback's whichever loop runs.

    Args:
        model: A compiled ``keras.Model`` (fresh, or loaded from a checkpoint).
        run_path: The run directory (``checkpoints/`` exists).
        config: Settings with ``epochs``, ``lr``, ``lr_schedule``, ``patience``,
            ``seed`` and optionally ``tensorboard``.
        state: The state dict (:func:`new_run_state` or a resumed one); updated.
        train_batches: Training batches with ``epoch`` and ``set_epoch``.
        val_batches: Validation batches.
        start_epoch: Epochs already completed.
        callbacks: Extra Keras callbacks, called after the run's own.
        verbose: Keras progress verbosity.
        strategy: The ``tf.distribute.Strategy`` the model was built under
            (default: the current one).
        loop: ``"fit"`` or ``"custom"``.

    Returns:
        Seconds spent fitting.
    """
    import keras

    from vidseq.sequence import reports

    run_path = Path(run_path)
    all_callbacks = [_make_state_callback(run_path, config, state, train_batches)]
    if getattr(config, "tensorboard", None):
        all_callbacks.append(keras.callbacks.TensorBoard(log_dir=str(config.tensorboard)))
    all_callbacks.extend(callbacks or [])

    fit_start = time.perf_counter()
    if loop not in ("fit", "custom"):
        raise UsageError(f"loop must be 'fit' or 'custom'. Received: loop={loop!r}")
    if start_epoch < config.epochs and not state["stopped_early"] and loop == "custom":
        import tensorflow as tf

        from vidseq.sequence.distribute import fit_custom

        fit_custom(
            model,
            strategy or tf.distribute.get_strategy(),
            train_batches,
            val_batches,
            epochs=config.epochs,
            initial_epoch=start_epoch,
            callbacks=all_callbacks,
            verbose=verbose,
        )
    elif start_epoch < config.epochs and not state["stopped_early"]:
        model.fit(
            train_batches,
            validation_data=val_batches,
            epochs=config.epochs,
            initial_epoch=start_epoch,
            callbacks=all_callbacks,
            shuffle=False,
            verbose=verbose,
        )
    seconds = time.perf_counter() - fit_start
    if state["best_weights"]:
        model.load_weights(run_path / rd.CHECKPOINT_DIR / state["best_weights"])
    model.save(run_path / rd.MODEL_FILE)
    reports.write_history_csv(run_path / rd.HISTORY_FILE, state["history"])
    reports.plot_training_curves(run_path / rd.CURVES_FILE, state["history"])
    return seconds


def _fit_distributed(dist, model, write_path, config, state, train_batches, val_batches, **kwargs):
    """:func:`fit_run` under ``dist``'s strategy and loop; only the chief logs TensorBoard.

    ``kwargs`` (``start_epoch``, ``callbacks``, ``verbose``) go to :func:`fit_run`.
    """
    return fit_run(
        model,
        write_path,
        config if dist.chief else dataclasses.replace(config, tensorboard=None),
        state,
        train_batches,
        val_batches,
        strategy=dist.strategy,
        loop=dist.loop,
        **kwargs,
    )


def _finish_run(
    run_path,
    state,
    metrics,
    *,
    cache,
    dist,
    splits,
    resumed_from,
    streaming,
    seconds,
    warnings,
    weights_sha256,
):
    """Marks the run finished; the chief writes its metrics and final state.

    Returns:
        The :class:`TrainResult` of the call.
    """
    from vidseq.sequence import reports
    from vidseq.sequence.evaluation import write_evaluation

    state["finished"] = True
    if dist.chief:
        metrics["cache"] = cache
        metrics["run_dir"] = str(run_path.resolve())
        write_evaluation(metrics, run_path)
        reports.write_json(run_path / rd.CHECKPOINT_DIR / STATE_FILE, state)
    return TrainResult(
        run_dir=run_path,
        history=list(state["history"]),
        best_epoch=int(state["best_epoch"]),
        epochs_completed=int(state["epochs_done"]),
        stopped_early=bool(state["stopped_early"]),
        resumed_from=resumed_from,
        metrics=metrics,
        splits=splits.sizes(),
        streaming=streaming,
        seconds=seconds,
        videos=len(splits.train) * (int(state["epochs_done"]) - resumed_from),
        warnings=warnings,
        weights_sha256=weights_sha256,
        chief=dist.chief,
        replicas=dist.replicas,
    )


def _build_or_resume_head(config, state, run_path, num_classes, feature_dim, frames):
    """The compiled head: loaded from the resumed checkpoint, or fresh. Returns (model, epoch)."""
    import keras

    from vidseq.sequence.head import build_head

    if state is not None:
        model = rd.load_model_file(run_path / rd.CHECKPOINT_DIR / state["checkpoint"], compile=True)
        return model, int(state["epochs_done"])
    model = build_head(
        num_classes,
        feature_dim,
        rnn=config.rnn,
        units=config.units,
        layers=config.layers,
        bidirectional=config.bidirectional,
        dropout=config.dropout,
        centering=config.centering,
        num_frames=frames,
    )
    _compile_classifier(
        model, keras.optimizers.Adam(learning_rate=config.lr), config.label_smoothing
    )
    return model, 0


def train_sequence(cache_path, out_dir, config=None, *, overwrite=False, verbose=1, callbacks=None):
    """Trains the LSTM/GRU head on a feature cache and writes a run directory.

    The run directory receives ``config.json`` (before training),
    ``checkpoints/`` (each epoch: the model with its optimizer state, the best
    weights so far, ``state.json``), ``history.csv`` (each epoch), and at the
    end ``model.keras`` (best weights), ``metrics.json``,
    ``classification_report.txt``, ``confusion_matrix.png`` and
    ``training_curves.png``. ``config.json`` records the strategy under
    ``distribute`` (``strategy``, ``replicas``, ``num_workers``, ``loop``).

    Under ``config.strategy="multiworker"`` every worker calls this with the
    same arguments; only the chief writes ``out_dir`` (the others checkpoint
    into a temporary directory, and return without evaluating).

    Args:
        cache_path: A feature cache (``features.h5``) with labels and a train split.
        out_dir: The run directory: created, or empty, or (with ``resume``)
            an interrupted run, or (with ``overwrite``) a run to replace.
        config: A :class:`TrainConfig` (default settings when None). With
            ``config.resume`` the saved config of the run is used; the new
            call's ``streaming`` and ``tensorboard`` still apply.
        overwrite: Replace the run files of a non-empty ``out_dir``.
        verbose: Keras progress verbosity (0 silent, 1 bar, 2 one line per epoch).
        callbacks: Extra Keras callbacks, called after the run's own.

    Returns:
        A :class:`TrainResult`; ``result.summary()`` is the closing line.

    Raises:
        UsageError: bad settings; a cache without labels, train split or a
            second class; groups shared across the cache's splits; an occupied
            ``out_dir``; a resume against another cache. ``CacheError`` (a
            UsageError) when ``cache_path`` is not a cache.
    """
    import keras
    import tensorflow as tf

    from vidseq.cache.store import FeatureStore
    from vidseq.sequence import reports
    from vidseq.sequence.data import (
        SequenceBatches,
        decide_streaming,
        feature_bytes,
        make_features,
    )
    from vidseq.sequence.distribute import make_distribution, weights_sha256, write_dir
    from vidseq.sequence.evaluation import evaluate_model
    from vidseq.sequence.splits import resolve_splits

    config = (config or TrainConfig()).validate()
    _require_tensorboard(config)
    run_path = Path(out_dir)
    warnings = []
    dist = make_distribution(config.strategy)  # before any other TensorFlow op
    state = _check_out_dir(run_path, resume=config.resume, overwrite=overwrite, chief=dist.chief)
    saved_config = None
    if state is not None:
        saved_config = rd.read_run_config(run_path)
        saved = TrainConfig.from_dict(saved_config["train"])
        config = _resumed_config(saved, config, RESUME_OVERRIDABLE, warnings)

    with FeatureStore(cache_path) as store, write_dir(run_path, dist) as write_path:
        meta = store.meta
        class_names = list(store.class_names)
        num_classes = len(class_names)
        if num_classes < 2:
            raise UsageError(
                f"{cache_path}: the cache has a single class ({class_names}); "
                "a classifier needs at least 2"
            )
        if saved_config is not None:
            from vidseq.sequence.evaluation import check_cache_matches_run

            check_cache_matches_run(saved_config, meta, str(cache_path))
        labels = np.asarray(store.labels, dtype=np.int64)
        if len(labels) == 0:
            raise UsageError(f"{cache_path}: the cache holds no video")
        if labels.max() >= num_classes:
            raise UsageError(
                f"{cache_path}: label {int(labels.max())} is outside the {num_classes} class names"
            )
        splits = resolve_splits(
            labels,
            store.splits,
            store.groups,
            store.video_ids,
            val_fraction=config.val_fraction,
            seed=config.seed,
            source=str(cache_path),
        )
        num_valid = np.asarray(store.num_valid, dtype=np.int64)
        frames = config.frames or int(num_valid.max())
        needed = np.concatenate([splits.train, splits.val, splits.test])
        streaming = decide_streaming(config.streaming, feature_bytes(store, needed))
        features = make_features(store, needed, streaming)

        if saved_config is not None and int(saved_config["frames"]) != frames:
            raise UsageError(
                f"{cache_path}: resumed run reads {saved_config['frames']} frames, "
                f"this cache gives {frames}"
            )
        run_config = saved_config or {
            **build_run_config(
                meta,
                config,
                frames=frames,
                cache_path=cache_path,
                splits=splits.sizes(),
                num_classes=num_classes,
            ),
            "distribute": dist.to_dict(),
        }
        if saved_config is None:
            _clear_run_files(write_path)
            reports.write_json(write_path / rd.CONFIG_FILE, run_config)

        keras.utils.set_random_seed(config.seed)
        tf.config.experimental.enable_op_determinism()
        with dist.scope():  # the model and its optimizer are the strategy's
            model, start_epoch = _build_or_resume_head(
                config, state, write_path, num_classes, int(meta.feature_dim), frames
            )
        if state is None:
            state = new_run_state(config.lr)
        resumed_from = start_epoch

        common = {
            "frames": frames,
            "length": frames,
            "batch_size": dist.global_batch_size(config.batch_size),
        }
        train_batches = SequenceBatches(
            features,
            splits.train,
            labels,
            num_valid,
            num_classes,
            training=True,
            seed=config.seed,
            temporal_shift=config.temporal_shift,
            class_weights=_class_weights(config, labels[splits.train], num_classes),
            epoch=start_epoch,
            **common,
        )
        val_batches = SequenceBatches(
            features, splits.val, labels, num_valid, num_classes, **common
        )
        seconds = _fit_distributed(
            dist,
            model,
            write_path,
            config,
            state,
            train_batches,
            val_batches,
            start_epoch=start_epoch,
            callbacks=callbacks,
            verbose=verbose,
        )
        digest = weights_sha256(model)

        eval_split, eval_indices = _evaluation_split(splits)
        if eval_split == "val" and dist.chief:
            warnings.append("the cache has no labelled test video: metrics are on validation")
        if streaming and dist.chief:
            warnings.append(
                "features were streamed, so the bag-of-frames baseline was not fitted (it "
                "holds every training video's pooled features); `vidseq evaluate RUN` fits it"
            )
        metrics = {}
        if dist.chief:  # a distributed model is evaluated as its saved copy, on one device
            metrics = evaluate_model(
                model if dist.name == "default" else rd.load_model_file(write_path / rd.MODEL_FILE),
                store,
                run_config,
                eval_indices,
                features=features,
                split=eval_split,
                batch_size=max(config.batch_size, 64),
                # The baseline holds the pooled training features in memory (N x D,
                # float64 in scikit-learn): a streamed run leaves it to `vidseq evaluate`.
                baseline_train=None if streaming else splits.train,
            )
    return _finish_run(
        run_path,
        state,
        metrics,
        cache=run_config["cache_path"],
        dist=dist,
        splits=splits,
        resumed_from=resumed_from,
        streaming=streaming,
        seconds=seconds,
        warnings=warnings,
        weights_sha256=digest,
    )
