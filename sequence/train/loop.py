"""The training engine: every training command (train-sequence, finetune, from scratch) fits here.

:func:`fit` runs one run's epochs under a ``Distribution`` and keeps its
bookkeeping in one Keras callback, :class:`RunStateCallback`: the
learning-rate schedule, per-epoch reseeding of dropout, the best epoch, early
stopping, a checkpoint and ``state.json`` every epoch, ``history.csv``. Two
loops drive the same callbacks:

* ``"fit"``: Keras' ``Model.fit`` (default and mirrored strategies);
* ``"custom"``: :func:`fit_custom`, a ``strategy.run`` step loop for
  ``MultiWorkerMirroredStrategy``, where Keras 3's ``fit`` fails
  (keras-team/keras#20585).

The end of a run (evaluation, metrics, report page) is :mod:`.finish`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight

from vidseq.errors import UsageError
from vidseq.sequence.runs import plots
from vidseq.sequence.runs import report_files as reports
from vidseq.sequence.runs import run_dir as rd
from vidseq.sequence.train import checkpoint
from vidseq.sequence.train.distribute import replica_batch

LOOPS = ("fit", "custom")


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


def seed_everything(seed, *, deterministic=True):
    """Seeds Python, NumPy and Keras; with ``deterministic``, TensorFlow ops are deterministic."""
    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def compile_classifier(model, fit_config, *, mixed_precision=False):
    """Compiles a softmax classifier: Adam, cross-entropy (smoothed) and accuracy.

    Args:
        model: The model.
        fit_config: A :class:`~vidseq.sequence.config.FitConfig` (``lr``,
            ``label_smoothing``).
        mixed_precision: Wrap the optimizer in a ``LossScaleOptimizer``.
    """
    optimizer = keras.optimizers.Adam(learning_rate=fit_config.lr)
    if mixed_precision:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(
            label_smoothing=float(fit_config.label_smoothing)
        ),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )


def class_weights(fit_config, train_labels, num_classes):
    """Per-class sample weights (``class_weight="balanced"``), or None."""
    if fit_config.class_weight != "balanced":
        return None
    present = np.unique(train_labels)
    weights = np.ones(num_classes, dtype=np.float64)
    weights[present] = compute_class_weight("balanced", classes=present, y=train_labels)
    return weights


def require_tensorboard(fit_config):
    """Refuses ``fit_config.tensorboard`` when the tensorboard package is missing."""
    if fit_config.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise UsageError(
            f"tensorboard={fit_config.tensorboard!r} needs the tensorboard package, which is "
            "not installed (pip install tensorboard)"
        )


class RunStateCallback(keras.callbacks.Callback):
    """Owns every piece of resumable state of a run (see :class:`~run_dir.RunState`).

    Each epoch begins with the scheduled learning rate, layers reseeded from
    ``(seed, epoch)`` and the training batches set to that epoch; each ends by
    recording the epoch, keeping the best weights, reducing a plateaued rate,
    stopping early, and writing a checkpoint, ``state.json`` and ``history.csv``.

    Args:
        run_path: The directory written (``checkpoints/`` exists).
        fit_config: The :class:`~vidseq.sequence.config.FitConfig`.
        state: The :class:`~vidseq.sequence.runs.run_dir.RunState`; updated in place.
        train_batches: Training batches with ``epoch`` and ``set_epoch``.
    """

    def __init__(self, run_path, fit_config, state, train_batches):
        super().__init__()
        self.run_path = Path(run_path)
        self.fit_config = fit_config
        self.state = state
        self.train_batches = train_batches
        self.ckpt_dir = self.run_path / rd.CHECKPOINT_DIR

    def on_epoch_begin(self, epoch, logs=None):
        c, s = self.fit_config, self.state
        s.lr = scheduled_lr(c.lr_schedule, epoch, c.lr, c.epochs, s.lr)
        self.model.optimizer.learning_rate = s.lr
        reseed_layers(self.model, c.seed, epoch)
        if self.train_batches.epoch != epoch:
            self.train_batches.set_epoch(epoch)

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1}
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            if key in (logs or {}):
                row[key] = float(logs[key])
        row["lr"] = float(self.state.lr)
        rd.stop_if_diverged(self.run_path, self.state, row)
        self.state.history.append(row)
        self._track_best(epoch, row.get("val_loss", row["loss"]))
        self._checkpoint(epoch)

    def _track_best(self, epoch, val_loss):
        c, s = self.fit_config, self.state
        if s.best_val_loss is None or val_loss < s.best_val_loss:
            s.best_val_loss, s.best_epoch = float(val_loss), epoch + 1
            s.wait = s.plateau_wait = 0
            s.best_weights = checkpoint.best_file(epoch + 1)
            checkpoint.save_values(self.ckpt_dir / s.best_weights, self.model, optimizer=False)
        else:
            s.wait += 1
            s.plateau_wait += 1
        if c.lr_schedule == "plateau" and s.plateau_wait >= max(1, c.patience // 2):
            s.lr = max(s.lr * 0.5, c.lr * 1e-3)
            s.plateau_wait = 0
        if c.patience and s.wait >= c.patience:
            s.stopped_early = True
            self.model.stop_training = True

    def _checkpoint(self, epoch):
        s = self.state
        s.checkpoint = checkpoint.epoch_file(epoch + 1)
        checkpoint.save_values(self.ckpt_dir / s.checkpoint, self.model, optimizer=True)
        s.epochs_done = epoch + 1
        rd.write_state(self.run_path, s)
        reports.write_history_csv(self.run_path / rd.HISTORY_FILE, s.history)
        keep = {checkpoint.INITIAL_FILE, s.checkpoint, s.best_weights, rd.STATE_FILE}
        for path in self.ckpt_dir.iterdir():
            if path.name not in keep and not path.name.startswith("."):
                path.unlink(missing_ok=True)


def fit(
    model,
    run_path,
    fit_config,
    state,
    train_batches,
    val_batches,
    *,
    dist,
    start_epoch=0,
    callbacks=None,
    verbose=1,
):
    """Fits a compiled model the way every run trains, then saves its model and curves.

    After fitting, the best weights are loaded and ``model.keras``,
    ``history.csv`` and ``training_curves.png`` written into ``run_path``.
    Only the chief logs TensorBoard.

    Args:
        model: A compiled ``keras.Model`` built under ``dist.scope()`` (fresh,
            or loaded from a checkpoint).
        run_path: The directory this process writes (``checkpoints/`` exists).
        fit_config: The :class:`~vidseq.sequence.config.FitConfig`.
        state: The :class:`~vidseq.sequence.runs.run_dir.RunState`; updated.
        train_batches: Training batches with ``epoch`` and ``set_epoch``.
        val_batches: Validation batches.
        dist: The ``distribute.Distribution``: its strategy and loop.
        start_epoch: Epochs already completed.
        callbacks: Extra Keras callbacks, called after the run's own.
        verbose: Keras progress verbosity.

    Returns:
        Seconds spent fitting.
    """
    run_path = Path(run_path)
    all_callbacks = [RunStateCallback(run_path, fit_config, state, train_batches)]
    if fit_config.tensorboard and dist.chief:
        logs = rd.tensorboard_dir(fit_config.tensorboard, run_path)
        all_callbacks.append(keras.callbacks.TensorBoard(log_dir=str(logs)))
    all_callbacks.extend(callbacks or [])
    if dist.loop not in LOOPS:
        raise UsageError(f"loop must be one of {LOOPS}. Received: loop={dist.loop!r}")
    kwargs = {
        "epochs": fit_config.epochs,
        "initial_epoch": start_epoch,
        "callbacks": all_callbacks,
        "verbose": verbose,
    }
    start = time.perf_counter()
    if start_epoch < fit_config.epochs and not state.stopped_early:
        checkpoint.save_initial(model, run_path / rd.CHECKPOINT_DIR)
        if dist.loop == "custom":
            fit_custom(model, dist.strategy, train_batches, val_batches, **kwargs)
        else:
            model.fit(train_batches, validation_data=val_batches, shuffle=False, **kwargs)
    seconds = time.perf_counter() - start
    if state.best_weights:
        checkpoint.restore_weights(model, run_path / rd.CHECKPOINT_DIR / state.best_weights)
    model.save(run_path / rd.MODEL_FILE)
    reports.write_history_csv(run_path / rd.HISTORY_FILE, state.history)
    plots.plot_training_curves(run_path / rd.CURVES_FILE, state.history)
    return seconds


class _StepFunctions:
    """The distributed train and eval steps of :func:`fit_custom`.

    Each returns the sums over the global batch of the weighted loss, the
    correct predictions of real videos, and the real videos (weight > 0).
    """

    def __init__(self, model, strategy):
        self.model = model
        self.strategy = strategy
        self.loss_fn = model.loss
        self.optimizer = model.optimizer
        self.train_step = tf.function(self._train_step, reduce_retracing=True)
        self.eval_step = tf.function(self._eval_step, reduce_retracing=True)

    @staticmethod
    def _sums(y, p, w, per_video):
        real = tf.cast(w > 0, tf.float32)
        hits = tf.cast(tf.equal(tf.argmax(y, -1), tf.argmax(p, -1)), tf.float32) * real
        return tf.reduce_sum(per_video * w), tf.reduce_sum(hits), tf.reduce_sum(real)

    def _replica_train(self, x, y, w, global_size):
        with tf.GradientTape() as tape:
            p = tf.cast(self.model(x, training=True), tf.float32)
            per_video = tf.cast(self.loss_fn.call(y, p), tf.float32)
            loss = tf.nn.compute_average_loss(
                per_video, sample_weight=w, global_batch_size=global_size
            )
            if self.model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
            scaled = self.optimizer.scale_loss(loss)
        variables = self.model.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        return self._sums(y, p, w, per_video)

    def _replica_eval(self, x, y, w):
        p = tf.cast(self.model(x, training=False), tf.float32)
        return self._sums(y, p, w, tf.cast(self.loss_fn.call(y, p), tf.float32))

    def _reduce(self, out):
        return [self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for v in out]

    def _train_step(self, inputs, global_size):
        return self._reduce(self.strategy.run(self._replica_train, args=(*inputs, global_size)))

    def _eval_step(self, inputs):
        return self._reduce(self.strategy.run(self._replica_eval, args=inputs))

    def distributed(self, batches, index):
        """Global batch ``index``, each replica given its share (``replica_batch``)."""

        def value(context):
            return replica_batch(
                batches, index, context.replica_id_in_sync_group, context.num_replicas_in_sync
            )

        return self.strategy.experimental_distribute_values_from_function(value)

    def run_epoch(self, batches, *, training, hook=None):
        """One pass over ``batches``. Returns ``(mean loss, accuracy)`` over its videos."""
        totals = np.zeros(3)
        for index in range(len(batches)):
            if hook:
                hook.on_train_batch_begin(index)
            inputs = self.distributed(batches, index)
            if training:
                size = tf.constant(len(batches.batch_positions(index)), dtype=tf.int64)
                out = self.train_step(inputs, size)
            else:
                out = self.eval_step(inputs)
            totals += np.asarray([float(v) for v in out])
            if hook:
                loss, hits, count = totals
                hook.on_train_batch_end(
                    index, {"loss": loss / max(count, 1), "accuracy": hits / max(count, 1)}
                )
        loss, hits, count = totals
        return loss / max(count, 1), hits / max(count, 1)


def fit_custom(
    model,
    strategy,
    train_batches,
    val_batches,
    *,
    epochs,
    initial_epoch=0,
    callbacks=None,
    verbose=1,
):
    """``Model.fit`` for strategies where Keras 3's cannot run (MultiWorkerMirroredStrategy).

    Each step gives every replica its share of the global batch
    (``distribute.replica_batch``, via
    ``strategy.experimental_distribute_values_from_function``), computes the
    compiled loss per video, averages it over the global batch with
    ``tf.nn.compute_average_loss`` and applies the gradients with the compiled
    optimizer (which sums them across replicas). The logs (``loss``,
    ``accuracy``, ``val_loss``, ``val_accuracy``) mean what ``fit``'s mean: the
    loss averaged over the videos of the epoch (training: weighted by sample
    weight), the accuracy unweighted. Callbacks are called as ``fit`` calls them:
    train begin/end, epoch begin/end (after validation), batch begin/end;
    ``model.stop_training`` ends the loop after the epoch.

    Args:
        model: A compiled ``keras.Model`` built under ``strategy.scope()``.
        strategy: A ``tf.distribute.Strategy`` (any, the default one included).
        train_batches: Training batches (yield ``(x, y, w)``), ``len()`` global batches.
        val_batches: Validation batches (``(x, y)``), or None.
        epochs: Train until this epoch count.
        initial_epoch: Epochs already done.
        callbacks: Keras callbacks.
        verbose: 0 silent, 1 progress bar, 2 one line per epoch.

    Returns:
        The logs of the last epoch.
    """
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    steps = _StepFunctions(model, strategy)
    callback_list = keras.callbacks.CallbackList(
        callbacks,
        add_progbar=verbose != 0,
        model=model,
        verbose=verbose,
        epochs=epochs,
        steps=len(train_batches),
    )
    logs = {}
    model.stop_training = False
    callback_list.on_train_begin()
    for epoch in range(int(initial_epoch), int(epochs)):
        callback_list.on_epoch_begin(epoch)
        loss, accuracy = steps.run_epoch(train_batches, training=True, hook=callback_list)
        logs = {"loss": loss, "accuracy": accuracy}
        if hasattr(train_batches, "on_epoch_end"):
            train_batches.on_epoch_end()
        if val_batches is not None:
            val_loss, val_accuracy = steps.run_epoch(val_batches, training=False)
            logs.update(val_loss=val_loss, val_accuracy=val_accuracy)
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return logs


def resume_or_compile(model_factory, opened, run_path, dist, fit_config, *, mixed_precision=False):
    """The model to train: reloaded from the resumed checkpoint, or built and compiled.

    Args:
        model_factory: Called without arguments, under ``dist.scope()``, for a
            new run: returns the uncompiled model.
        opened: The ``run_dir.OpenedRun``.
        run_path: The directory this process reads its checkpoint from.
        dist: The ``distribute.Distribution``.
        fit_config: The run's :class:`~vidseq.sequence.config.FitConfig`, its
            ``lr`` resolved (:func:`with_epochs`).
        mixed_precision: Compile with a loss-scale optimizer.

    Returns:
        ``(model, start_epoch)``.
    """
    with dist.scope():  # the model and its optimizer are the strategy's
        if opened.resuming:
            ckpt_dir = Path(run_path) / rd.CHECKPOINT_DIR
            model = checkpoint.load_checkpoint(ckpt_dir, opened.state.checkpoint)
            return model, int(opened.state.epochs_done)
        model = model_factory()
        compile_classifier(model, fit_config, mixed_precision=mixed_precision)
        model.optimizer.build(model.trainable_variables)  # its slots go into every checkpoint
    return model, 0


def with_epochs(config, num_train, dist):
    """``config`` with its ``fit.epochs`` and ``fit.lr`` resolved for ``num_train`` videos.

    See :meth:`~vidseq.sequence.config.FitConfig.resolved` (the learning rate is
    that of ``config.head``'s head when the config has one); a resumed run's
    saved settings already hold both.
    """
    head = config.head.head if hasattr(config, "head") else None  # finetune keeps its run's
    return dataclasses.replace(config, fit=config.fit.resolved(num_train, dist.replicas, head=head))


def new_state(fit_config):
    """The :class:`~vidseq.sequence.runs.run_dir.RunState` of a run that has not trained yet."""
    return rd.RunState(lr=float(fit_config.lr))
