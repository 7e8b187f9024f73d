"""finetune: the end-to-end pass (raw frames → CNN → RNN), from a trained run or from scratch.

Fine-tuning a run (:func:`finetune`) builds ``TimeDistributed(backbone)`` and the
run's trained head into one model: uint8 clips ``(T, H, W, 3)`` in,
probabilities out. The backbone is rebuilt with the weights the run recorded
(SHA-256 checked, ``weights_seed`` for random init), so before any training step
the model gives the feature run's outputs on the same frames. The last N layers
of the backbone (or those from a named layer on) are unfrozen; every
``BatchNormalization`` layer stays frozen, which in Keras 3 also means it runs
in inference mode: its moving statistics never change (Keras' transfer-learning
guide). The frames are exactly those the cache lists (paths and frame indices),
decoded in background threads while the network trains
(:mod:`vidseq.sequence.frames_data`).

Training from scratch (:func:`train_from_scratch`, the tutorial's FER option 1)
builds a random-init backbone, optionally on one grey channel (a fixed
luminance layer turns the RGB frames into grey inside the model), with a fresh
head, and trains every layer end to end on a dataset or on the videos of a
cache.

Both write a run directory like train-sequence's, whose ``config.json`` says
``"model": "end_to_end"`` and whose ``model.keras`` is the whole model;
``evaluate`` and ``predict`` decode raw frames for it. The training loop,
learning-rate schedules, checkpoints and ``--resume`` are train-sequence's
(:func:`vidseq.sequence.training.fit_run`). With a GPU, the backbone computes in
``mixed_float16`` (the head, and so the softmax, stays float32; the optimizer
scales the loss).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidseq.cache.store import absolute_cache_spec
from vidseq.errors import UsageError
from vidseq.sequence import run_dir as rd

END_TO_END = rd.END_TO_END

MIXED_PRECISION_MODES = ("auto", "on", "off")
DEFAULT_UNFREEZE = 20
"""Backbone layers unfrozen by default, as in Keras' EfficientNet fine-tuning example."""

GRAY_LAYER = "rgb_to_gray"
LUMINANCE = (0.299, 0.587, 0.114)
# Fields a resumed run may take from the new call instead of the saved config.
RESUME_OVERRIDABLE = ("resume", "workers", "tensorboard", "strategy")


@dataclass
class FinetuneConfig:
    """Settings of finetune (and of its from-scratch mode).

    Attributes:
        unfreeze: Unfreeze the last N layers of the backbone network (its
            input layer not counted); 0 trains the head only. Ignored from scratch.
        unfreeze_from: Unfreeze this layer of the backbone and every later one
            (instead of ``unfreeze``).
        lr: Initial Adam learning rate (small: the network is pretrained).
        epochs: Most epochs to train.
        batch_size: Videos per batch and replica (memory is about
            ``batch_size`` x T frames per replica, times the batches decoded
            ahead); a step reads ``batch_size x replicas`` videos.
        patience: Early stopping on validation loss (0: off; the best epoch is kept).
        lr_schedule: ``"constant"``, ``"step"``, ``"cosine"`` or ``"plateau"``
            (as train-sequence).
        label_smoothing: Label smoothing of the cross-entropy.
        class_weight: None or ``"balanced"``.
        augment: Random TSN segment offsets (uniform sampling) and horizontal flips.
        seed: Seed of the shuffling, augmentation, dropout and fresh weights.
        resume: Continue the interrupted run in the output directory.
        mixed_precision: ``"auto"`` (mixed_float16 when a GPU is present),
            ``"on"`` or ``"off"``.
        workers: Decoder threads (default: the cores, 2 to 8).
        tensorboard: Directory for TensorBoard logs, or None.
        backbone: From scratch: registry name of the CNN.
        input_size: From scratch: ``(height, width)``; the backbone's default if None.
        grayscale: From scratch: the CNN reads one grey channel.
        frames: From scratch: T, frames per clip (default: the cache's or
            the sampling's).
        rnn: From scratch: ``"lstm"`` or ``"gru"``.
        units: From scratch: units per recurrent layer.
        layers: From scratch: stacked recurrent layers.
        bidirectional: From scratch: bidirectional recurrent layers.
        dropout: From scratch: dropout of the recurrent inputs.
        centering: From scratch: the head's temporal centering mode.
        val_fraction: From scratch: fraction of training videos carved for
            validation when the data has no ``val`` split.
        eval_clips: From scratch: clips averaged per video in evaluation when
            the cache is denser than ``frames``.
        strategy: ``"default"``, ``"mirrored"`` or ``"multiworker"`` (as
            train-sequence; see :mod:`vidseq.sequence.distribute`).
    """

    unfreeze: int = DEFAULT_UNFREEZE
    unfreeze_from: str | None = None
    lr: float = 1e-4
    epochs: int = 10
    batch_size: int = 8
    patience: int = 5
    lr_schedule: str = "constant"
    label_smoothing: float = 0.0
    class_weight: str | None = None
    augment: bool = False
    seed: int = 0
    resume: bool = False
    mixed_precision: str = "auto"
    workers: int | None = None
    tensorboard: str | None = None
    backbone: str = "vgg16"
    input_size: tuple[int, int] | None = None
    grayscale: bool = False
    frames: int | None = None
    rnn: str = "lstm"
    units: int = 128
    layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.5
    centering: str = "concat"
    val_fraction: float = 0.15
    eval_clips: int = 5
    strategy: str = "default"

    def validate(self):
        """Raises UsageError naming the first bad field; returns self."""
        from vidseq.sequence.distribute import STRATEGIES
        from vidseq.sequence.head import CENTERING_MODES, RNN_TYPES
        from vidseq.sequence.training import LR_SCHEDULES, _check_fields
        from vidseq.sequence.training import _is_int as is_int

        checks = [
            ("unfreeze", is_int(self.unfreeze) and self.unfreeze >= 0, "an integer >= 0"),
            ("lr", float(self.lr) > 0, "> 0"),
            ("epochs", is_int(self.epochs) and self.epochs >= 1, "an integer >= 1"),
            ("batch_size", is_int(self.batch_size) and self.batch_size >= 1, "an integer >= 1"),
            ("patience", is_int(self.patience) and self.patience >= 0, "an integer >= 0"),
            ("lr_schedule", self.lr_schedule in LR_SCHEDULES, f"one of {LR_SCHEDULES}"),
            ("label_smoothing", 0.0 <= float(self.label_smoothing) < 1.0, "in [0, 1)"),
            ("class_weight", self.class_weight in (None, "balanced"), "None or 'balanced'"),
            ("seed", is_int(self.seed), "an integer"),
            (
                "mixed_precision",
                self.mixed_precision in MIXED_PRECISION_MODES,
                f"one of {MIXED_PRECISION_MODES}",
            ),
            (
                "workers",
                self.workers is None or (is_int(self.workers) and self.workers >= 1),
                "None or an integer >= 1",
            ),
            (
                "frames",
                self.frames is None or (is_int(self.frames) and self.frames >= 1),
                "None or an integer >= 1",
            ),
            ("rnn", self.rnn in RNN_TYPES, f"one of {RNN_TYPES}"),
            ("units", is_int(self.units) and self.units >= 1, "an integer >= 1"),
            ("layers", is_int(self.layers) and self.layers >= 1, "an integer >= 1"),
            ("dropout", 0.0 <= float(self.dropout) < 1.0, "in [0, 1)"),
            ("centering", self.centering in CENTERING_MODES, f"one of {CENTERING_MODES}"),
            ("val_fraction", 0.0 < float(self.val_fraction) < 1.0, "in (0, 1)"),
            ("eval_clips", is_int(self.eval_clips) and self.eval_clips >= 1, "an integer >= 1"),
            ("strategy", self.strategy in STRATEGIES, f"one of {STRATEGIES}"),
        ]
        return _check_fields(self, checks)

    def to_dict(self):
        """The fields as a JSON-ready dict."""
        out = dataclasses.asdict(self)
        if out["input_size"] is not None:
            out["input_size"] = [int(v) for v in out["input_size"]]
        return out

    @classmethod
    def from_dict(cls, data):
        """Builds a config from :meth:`to_dict` output (unknown keys ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        if values.get("input_size") is not None:
            values["input_size"] = tuple(values["input_size"])
        return cls(**values)


is_end_to_end = rd.is_end_to_end


# ------------------------------------------------------------------------------ the model


@contextlib.contextmanager
def dtype_policy(name):
    """Sets Keras' global dtype policy inside the block (restored after)."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def use_mixed_precision(mode) -> bool:
    """``"on"``, ``"off"``, or ``"auto"``: True when TensorFlow sees a GPU."""
    if mode == "auto":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return mode == "on"


def load_grayscale_backbone(name, *, input_size=None, seed=0):
    """A random-init registry network on one grey channel, behind an RGB uint8 input.

    The model takes ``(H, W, 3)`` uint8 RGB frames like every vidseq backbone:
    ``FramePreprocessing("tf")`` scales them to [-1, 1], a fixed (never
    trained) 1x1 convolution named ``rgb_to_gray`` takes the luminance
    ``0.299 R + 0.587 G + 0.114 B``, and the registry's network, built with
    ``input_shape=(H, W, 1)`` and ``weights=None`` from ``seed``, reads it
    (e.g. ``keras.applications.VGG16(weights=None, input_shape=(48, 48, 1))``).
    Grey sources replicated to RGB (FER-2013) come out as their own grey value.

    Args:
        name: Registry name (``"vgg16"``, ``"tiny"``, ...).
        input_size: ``(height, width)``; the registry default if None.
        seed: Seed of the random initialisation.

    Returns:
        A :class:`~vidseq.extract.backbones.Backbone` (weights ``"none"``).

    Raises:
        UsageError: Unknown name or too small an input.
    """
    import keras

    from vidseq.extract.backbones import Backbone, _build_seeded, get_spec, weights_sha256
    from vidseq.extract.preprocessing import FramePreprocessing

    spec = get_spec(name)
    size = tuple(int(v) for v in (input_size or spec.input_size))
    if len(size) != 2 or min(size) < spec.min_size:
        raise UsageError(
            f"backbone {spec.name} needs an input of at least {spec.min_size}x{spec.min_size}. "
            f"Received: input_size={input_size!r}"
        )
    module_name, _, attr = spec.constructor.rpartition(".")
    constructor = getattr(importlib.import_module(module_name), attr)
    base = _build_seeded(constructor, (size[0], size[1], 1), seed)
    frames = keras.Input(shape=(size[0], size[1], 3), dtype="uint8", name="frames")
    x = FramePreprocessing("tf", name="preprocessing")(frames)
    gray = keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer="zeros", name=GRAY_LAYER)
    x = gray(x)
    gray.set_weights([np.asarray(LUMINANCE, dtype=np.float32).reshape(1, 1, 3, 1)])
    model = keras.Model(frames, base(x), name=f"vidseq_{spec.name}_gray")
    model.trainable = False
    return Backbone(
        name=spec.name,
        weights="none",
        weights_sha256=weights_sha256(model),
        seed=int(seed),
        input_size=size,
        feature_dim=int(model.output_shape[-1]),
        model=model,
    )


def set_trainable(backbone, *, unfreeze=DEFAULT_UNFREEZE, unfreeze_from=None, everything=False):
    """Unfreezes the top of a backbone; BatchNormalization stays frozen (inference mode).

    The layers of ``backbone.base_model`` (the network, its input layer not
    counted) are frozen, then the last ``unfreeze`` of them (or ``unfreeze_from``
    and every later one) are unfrozen, except ``BatchNormalization`` layers: a
    frozen BN layer runs in inference mode in Keras 3, so its moving mean and
    variance never change. The preprocessing (and the grey conversion) always
    stay frozen. With ``everything`` (training from scratch) every network layer
    trains, BN included.

    Args:
        backbone: A :class:`~vidseq.extract.backbones.Backbone`.
        unfreeze: How many of the last network layers to unfreeze.
        unfreeze_from: Name of the first layer to unfreeze (overrides ``unfreeze``).
        everything: Unfreeze every network layer, BN included.

    Returns:
        The names of the layers that hold trainable weights now, in order.

    Raises:
        UsageError: ``unfreeze_from`` names no layer of the network.
    """
    import keras

    model, base = backbone.model, backbone.base_model
    model.trainable = True
    for layer in model.layers:
        if layer is not base:
            layer.trainable = False
    layers = [layer for layer in base.layers if not isinstance(layer, keras.layers.InputLayer)]
    if everything:
        start = 0
    elif unfreeze_from is not None:
        names = [layer.name for layer in layers]
        if unfreeze_from not in names:
            shown = ", ".join(names[-8:])
            raise UsageError(
                f"backbone {backbone.name} has no layer {unfreeze_from!r} "
                f"(its last layers: {shown}). Received: unfreeze_from={unfreeze_from!r}"
            )
        start = names.index(unfreeze_from)
    else:
        start = max(0, len(layers) - int(unfreeze))
    for position, layer in enumerate(layers):
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = position >= start and (everything or not is_bn)
    return [layer.name for layer in layers if layer.trainable and layer.trainable_weights]


def build_end_to_end(backbone, head, *, frames, name="vidseq_end_to_end"):
    """``TimeDistributed(backbone)`` → padding mask → head, as one model.

    Args:
        backbone: A :class:`~vidseq.extract.backbones.Backbone`.
        head: The sequence head (``(T, D)`` features → probabilities).
        frames: T.
        name: Model name.

    Returns:
        A ``keras.Model`` from ``(T, H, W, 3)`` uint8 clips (padding frames all
        zero) to class probabilities. It holds built-in layers and vidseq's
        registered ones only, so it loads with ``safe_mode=True``.
    """
    import keras

    from vidseq.sequence.head import PaddingFrameMask

    height, width = backbone.input_size
    clips = keras.Input(shape=(int(frames), height, width, 3), dtype="uint8", name="frames")
    features = keras.layers.TimeDistributed(backbone.model, name="backbone")(clips)
    features = PaddingFrameMask(name="padding_mask")([clips, features])
    return keras.Model(clips, head(features), name=name)


def backbone_of(model):
    """The backbone wrapper model (uint8 frame → features) inside an end-to-end model."""
    return model.get_layer("backbone").layer


def _compile(model, config, mixed):
    import keras

    from vidseq.sequence.training import _compile_classifier

    optimizer = keras.optimizers.Adam(learning_rate=config.lr)
    if mixed:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    _compile_classifier(model, optimizer, config.label_smoothing)


# ------------------------------------------------------------------------------ data of a run


def _is_cache_file(path) -> bool:
    import h5py

    path = Path(path)
    return path.is_file() and h5py.is_hdf5(path)


def run_videos(config, cache=None):
    """The videos an end-to-end run reads: its cache's, another cache's, or its dataset's.

    Args:
        config: The run's config.json dict.
        cache: A feature cache listing the videos (default: the run's cache,
            or the dataset it was trained on).

    Returns:
        ``(videos, source_name)``: a :class:`~vidseq.sequence.frames_data.FrameVideos`
        and the absolute path it came from.

    Raises:
        UsageError: No source recorded, or class names that differ from the run's.
    """
    from vidseq.cache.store import FeatureStore
    from vidseq.sequence.frames_data import (
        geometry_from_sampling,
        videos_from_cache,
        videos_from_dataset,
    )

    if cache is None:
        cache = config.get("cache_path")
    if cache is not None:
        with FeatureStore(cache) as store:
            videos = videos_from_cache(store, config["input_size"])
        name = str(absolute_cache_spec(cache))
    else:
        data = config.get("data")
        if not data:
            raise UsageError("the run's config.json names no cache or dataset; pass a cache")
        from vidseq.extract.dataset import load_dataset
        from vidseq.extract.sampling import SamplingConfig

        dataset = load_dataset(
            data["path"],
            data["source"],
            split=data["split"],
            seed=data["seed"],
            clip_length=data["clip_length"],
        )
        sampling = dict(config["sampling"])
        videos = videos_from_dataset(
            dataset,
            SamplingConfig.from_dict(sampling),
            geometry_from_sampling(sampling, config["input_size"]),
        )
        name = str(data["path"])
    if list(videos.class_names) != list(config["class_names"]):
        raise UsageError(
            f"{name}: class names {videos.class_names} differ from the run's "
            f"{config['class_names']}"
        )
    return videos, name


def resolve_run_splits(videos, train_config, source=""):
    """Train/val/test indices as the run resolved them (same seed, same carved val)."""
    from vidseq.sequence.splits import resolve_splits

    return resolve_splits(
        videos.labels,
        videos.splits,
        videos.groups,
        videos.video_ids,
        val_fraction=train_config.get("val_fraction", 0.15),
        seed=train_config.get("seed", 0),
        source=source,
    )


def evaluate_frames(model, videos, config, indices, *, split, num_clips=None, batch_size=8):
    """Metrics of an end-to-end model on some videos, decoding their frames.

    When the cache holds more real frames per video than the model reads, the
    softmax is averaged over ``num_clips`` evenly offset samples (as for
    feature runs).

    Args:
        model: The end-to-end model.
        videos: A :class:`~vidseq.sequence.frames_data.FrameVideos`.
        config: The run config (``frames``, ``class_names``, ``train``).
        indices: Labelled videos to evaluate.
        split: Name of the split, recorded in the result.
        num_clips: Clips per video when dense (default: the run's ``eval_clips``).
        batch_size: Videos per batch.

    Returns:
        The ``compute_metrics`` dict plus ``split``, ``clips``,
        ``single_clip_accuracy`` (multi-clip only) and ``baseline`` (None: no
        features to pool).
    """
    from vidseq.sequence.evaluation import compute_metrics
    from vidseq.sequence.frames_data import predict_clips
    from vidseq.sequence.temporal import clip_offsets

    class_names = list(config["class_names"])
    frames = int(config["frames"])
    indices = np.asarray(indices, dtype=np.int64)
    if num_clips is None:
        num_clips = int(config.get("train", {}).get("eval_clips", 1) or 1)
    clips = int(num_clips) if videos.is_dense(indices, frames) else 1

    def probabilities(offset):
        return predict_clips(
            model,
            videos,
            indices,
            len(class_names),
            frames=frames,
            batch_size=batch_size,
            offset=offset,
        )

    centre = probabilities(0.5)
    if clips > 1:
        probs = np.mean(
            [centre if abs(o - 0.5) < 1e-12 else probabilities(o) for o in clip_offsets(clips)],
            axis=0,
        )
    else:
        probs = centre
    y = videos.labels[indices]
    metrics = {"split": split, "clips": clips, **compute_metrics(y, probs, class_names)}
    if clips > 1:
        metrics["single_clip_accuracy"] = float((centre.argmax(axis=1) == y).mean())
    metrics["baseline"] = None
    return metrics


# ------------------------------------------------------------------------------ training


@dataclass
class _OutDir:
    """A checked output directory, with the settings and state a resume brings back."""

    path: Path
    config: FinetuneConfig
    dist: object
    state: dict | None
    saved_config: dict | None
    warnings: list

    def mixed_precision(self) -> bool:
        """The resumed run's mixed precision, or the config's mode resolved now."""
        if self.saved_config:
            return bool(self.saved_config["mixed_precision"])
        return use_mixed_precision(self.config.mixed_precision)


def _open_out_dir(out_dir, config, overwrite):
    """Validates the settings, makes the distribution, checks the output directory.

    On resume the saved settings win (except ``RESUME_OVERRIDABLE``).
    """
    from vidseq.sequence.distribute import make_distribution
    from vidseq.sequence.training import _check_out_dir, _resumed_config

    config = (config or FinetuneConfig()).validate()
    dist = make_distribution(config.strategy)  # before any other TensorFlow op
    run_path = Path(out_dir)
    state = _check_out_dir(run_path, resume=config.resume, overwrite=overwrite, chief=dist.chief)
    warnings = []
    if state is None:
        return _OutDir(run_path, config, dist, None, None, warnings)
    saved_config = rd.read_run_config(run_path)
    if not is_end_to_end(saved_config):
        raise UsageError(f"{run_path}: not an end-to-end run; nothing for finetune to resume")
    saved = FinetuneConfig.from_dict(saved_config["finetune"])
    config = _resumed_config(saved, config, RESUME_OVERRIDABLE, warnings)
    return _OutDir(run_path, config, dist, state, saved_config, warnings)


def _run_config(out, *, backbone, frames, class_names, head, unfrozen, train_config, splits, extra):
    """The config.json of an end-to-end run; ``extra`` holds the keys of one kind of run."""
    from vidseq import __version__

    return {
        "kind": rd.RUN_KIND,
        "format_version": rd.RUN_FORMAT_VERSION,
        "model": END_TO_END,
        "vidseq_version": __version__,
        "backbone": backbone.name,
        "weights": backbone.weights,
        "weights_sha256": backbone.weights_sha256,
        "weights_seed": int(backbone.seed),
        "engine": "tf",
        "input_size": [int(v) for v in backbone.input_size],
        "feature_dim": int(backbone.feature_dim),
        "class_names": list(class_names),
        "num_classes": len(class_names),
        "frames": int(frames),
        "input": {"shape": [int(frames), *backbone.input_size, 3], "dtype": "uint8"},
        "head": dict(head),
        "finetune": out.config.to_dict(),
        **extra,
        "preprocessing": _preprocessing_of(backbone.model),
        "unfrozen_layers": unfrozen,
        "mixed_precision": out.mixed_precision(),
        "train": train_config,
        "splits": splits.sizes(),
        "distribute": out.dist.to_dict(),
    }


def _train(out, run_config, model, videos, splits, *, source_name, callbacks, verbose):
    """Resumes (or compiles) the model, fits it with train-sequence's loop, evaluates it.

    ``model`` is the new model built under ``out.dist.scope()`` (None on
    resume); only the chief writes ``out.path`` and evaluates.
    """
    import tensorflow as tf

    from vidseq.sequence.distribute import write_dir
    from vidseq.sequence.training import _require_tensorboard

    _require_tensorboard(out.config)
    if not tf.config.list_physical_devices("GPU"):
        tf.config.experimental.enable_op_determinism()
    with write_dir(out.path, out.dist) as write_path:
        return _fit_and_evaluate(
            out,
            write_path,
            run_config,
            model,
            videos,
            splits,
            source_name=source_name,
            callbacks=callbacks,
            verbose=verbose,
        )


def _fit_and_evaluate(
    out, write_path, run_config, model, videos, splits, *, source_name, callbacks, verbose
):
    """:func:`_train` once the directory to write (``write_path``) is known."""
    import keras

    from vidseq.sequence import reports
    from vidseq.sequence.distribute import weights_sha256
    from vidseq.sequence.frames_data import FrameBatches
    from vidseq.sequence.training import (
        _class_weights,
        _clear_run_files,
        _evaluation_split,
        _finish_run,
        _fit_distributed,
        new_run_state,
    )

    config, dist, state, warnings = out.config, out.dist, out.state, out.warnings
    with dist.scope():  # the model and its optimizer are the strategy's
        if state is not None:
            run_config = out.saved_config
            model = rd.load_model_file(
                write_path / rd.CHECKPOINT_DIR / state["checkpoint"], compile=True
            )
            start_epoch = int(state["epochs_done"])
        else:
            _compile(model, config, run_config["mixed_precision"])
            start_epoch = 0
    if state is None:
        _clear_run_files(write_path)
        reports.write_json(write_path / rd.CONFIG_FILE, run_config)
        state = new_run_state(config.lr)
    resumed_from = start_epoch

    frames = int(run_config["frames"])
    num_classes = len(run_config["class_names"])
    train_batches = FrameBatches(
        videos,
        splits.train,
        num_classes,
        frames=frames,
        batch_size=dist.global_batch_size(config.batch_size),
        training=True,
        augment=config.augment,
        seed=config.seed,
        epoch=start_epoch,
        class_weights=_class_weights(config, videos.labels[splits.train], num_classes),
        workers=config.workers,
    )
    val_batches = FrameBatches(
        videos,
        splits.val,
        num_classes,
        frames=frames,
        batch_size=dist.global_batch_size(config.batch_size),
        workers=config.workers,
    )
    keras.utils.set_random_seed(config.seed)
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
    metrics = {}
    if dist.chief:
        eval_split, eval_indices = _evaluation_split(splits)
        if eval_split == "val":
            warnings.append("no labelled test video: metrics are on validation")
        metrics = evaluate_frames(  # a distributed model is evaluated as its saved copy
            model if dist.name == "default" else rd.load_model_file(write_path / rd.MODEL_FILE),
            videos,
            run_config,
            eval_indices,
            split=eval_split,
            batch_size=config.batch_size,
        )
    return _finish_run(
        out.path,
        state,
        metrics,
        cache=source_name,
        dist=dist,
        splits=splits,
        resumed_from=resumed_from,
        streaming=True,
        seconds=seconds,
        warnings=warnings,
        weights_sha256=weights_sha256(model),
    )


def finetune(
    run_dir, out_dir, config=None, *, cache=None, overwrite=False, verbose=1, callbacks=None
):
    """Fine-tunes a trained feature run end to end on the raw frames its cache lists.

    Args:
        run_dir: A run directory written by ``train_sequence``.
        out_dir: The new run directory: created, or empty, or (with
            ``config.resume``) an interrupted finetune, or (with ``overwrite``)
            a run to replace.
        config: A :class:`FinetuneConfig` (defaults when None). Its from-scratch
            fields are ignored: the backbone, frames and head are the run's.
        cache: The cache listing the videos (default: the run's own); it must
            hold the run's features (backbone, weights hash, class names).
        overwrite: Replace the run files of a non-empty ``out_dir``.
        verbose: Keras progress verbosity.
        callbacks: Extra Keras callbacks.

    Returns:
        A :class:`~vidseq.sequence.training.TrainResult`.

    Raises:
        UsageError: Bad settings, an incomplete run, weights whose hash differs
            from the run's, a layer name that does not exist, an occupied
            ``out_dir``, or an unreadable video of the cache
            (``SourceReadError``).
    """
    from vidseq.cache.store import FeatureStore
    from vidseq.sequence.evaluation import check_cache_matches_run
    from vidseq.sequence.frames_data import videos_from_cache
    from vidseq.sequence.predict import load_run_backbone

    out = _open_out_dir(out_dir, config, overwrite)
    config, dist = out.config, out.dist
    source = rd.load_run(run_dir)
    if is_end_to_end(source.config):
        raise UsageError(
            f"{source.path}: already an end-to-end run; fine-tune the feature run it came "
            "from, or --resume an interrupted finetune"
        )
    cache = cache if cache is not None else source.config.get("cache_path")
    if not cache:
        raise UsageError(f"{source.path}: config.json names no cache; pass one")
    with FeatureStore(cache) as store:
        check_cache_matches_run(source.config, store.meta, str(cache))
        videos = videos_from_cache(store, source.config["input_size"])
    source_name = str(absolute_cache_spec(cache))
    train_config = dict(source.config.get("train", {}))
    splits = resolve_run_splits(videos, train_config, source_name)
    run_config = None
    model = None
    if out.state is None:
        with dist.scope():  # the strategy's variables: the head is reloaded inside it
            with dtype_policy("mixed_float16" if out.mixed_precision() else "float32"):
                backbone = load_run_backbone(source)  # SHA-256 checked against the run
            unfrozen = set_trainable(
                backbone, unfreeze=config.unfreeze, unfreeze_from=config.unfreeze_from
            )
            head = (
                source.model
                if dist.name == "default"
                else rd.load_model_file(source.path / rd.MODEL_FILE)
            )
            model = build_end_to_end(backbone, head, frames=source.frames)
        run_config = _run_config(
            out,
            backbone=backbone,
            frames=source.frames,
            class_names=source.class_names,
            head=source.config["head"],
            unfrozen=unfrozen,
            train_config=train_config,
            splits=splits,
            extra={
                "dtype": source.config.get("dtype", "float16"),
                "sampling": source.config["sampling"],
                "grayscale": False,
                "from_scratch": False,
                "source_run": str(source.path.resolve()),
                "cache_path": source_name,
            },
        )
    return _train(
        out,
        run_config,
        model,
        videos,
        splits,
        source_name=source_name,
        callbacks=callbacks,
        verbose=verbose,
    )


def _preprocessing_of(backbone_model):
    for layer in backbone_model.layers:
        if hasattr(layer, "mode") and layer.name == "preprocessing":
            return layer.mode
    return None


def train_from_scratch(
    data,
    out_dir,
    config=None,
    *,
    source="auto",
    split=1,
    sampling=None,
    crop="resize",
    face_crop=None,
    clip_length=10,
    overwrite=False,
    verbose=1,
    callbacks=None,
):
    """Trains a random-init CNN and a fresh head end to end (the tutorial's FER option 1).

    Args:
        data: A feature cache (its videos, frame indices, splits, crop and face
            crop are reused; its features are not), or a dataset folder / CSV
            (see ``vidseq.extract.dataset.load_dataset``).
        out_dir: The run directory (as for :func:`finetune`).
        config: A :class:`FinetuneConfig`: ``backbone``, ``input_size``,
            ``grayscale``, ``frames`` and the head fields say what to build;
            every layer trains (``unfreeze`` is ignored).
        source: Dataset source (``"auto"``, ``"folder"``, ``"ucf101"``,
            ``"manifest"``, ``"fer2013"``); ignored for a cache.
        split: UCF-101 official split.
        sampling: A ``SamplingConfig`` for a dataset (default: ``frames``
            uniform frames; else ``clip_length`` for FER-2013, 16 otherwise).
        crop: ``"resize"`` or ``"center"`` for a dataset.
        face_crop: A ``FaceCrop`` for a dataset, or None.
        clip_length: FER-2013 images per pseudo-clip.
        overwrite: Replace the run files of a non-empty ``out_dir``.
        verbose: Keras progress verbosity.
        callbacks: Extra Keras callbacks.

    Returns:
        A :class:`~vidseq.sequence.training.TrainResult`.

    Raises:
        UsageError: Bad settings or data, or an occupied ``out_dir``.
    """
    from vidseq.extract.backbones import get_spec, load_backbone
    from vidseq.extract.frames import FrameGeometry
    from vidseq.extract.sampling import SamplingConfig
    from vidseq.sequence.frames_data import videos_from_dataset
    from vidseq.sequence.head import build_head

    out = _open_out_dir(out_dir, config, overwrite)
    config, dist, saved_config = out.config, out.dist, out.saved_config
    spec = get_spec(config.backbone)
    size = tuple(int(v) for v in (config.input_size or spec.input_size))
    extra = {}
    if _is_cache_file(data):
        from vidseq.cache.store import FeatureStore
        from vidseq.sequence.frames_data import videos_from_cache

        with FeatureStore(data) as store:
            videos = videos_from_cache(store, size)
            recorded = dict(store.meta.sampling)
            dtype = store.meta.dtype
        source_name = str(Path(data).resolve())
        extra["cache_path"] = source_name
    else:
        from vidseq.extract.dataset import load_dataset

        dataset = load_dataset(data, source, split=split, seed=config.seed, clip_length=clip_length)
        out.warnings.extend(dataset.warnings)
        if dataset.rejected:
            out.warnings.append(f"{len(dataset.rejected)} malformed inputs left out")
        if sampling is None:  # FER-2013 pseudo-clips: every face of a clip
            fer = dataset.source == "fer2013"
            sampling = SamplingConfig(num_frames=config.frames or (clip_length if fer else 16))
        videos = videos_from_dataset(
            dataset, sampling, FrameGeometry(size=size, crop=crop, face=face_crop)
        )
        recorded = {**sampling.to_dict(), "crop": crop}
        if face_crop is not None:
            recorded["face_crop"] = face_crop.to_dict()
        if dataset.source == "fer2013":
            recorded["clip_length"] = clip_length
        dtype = "float32"
        source_name = str(Path(data).resolve())
        extra["cache_path"] = None
        extra["data"] = {
            "path": source_name,
            "source": dataset.source,
            "split": int(split),
            "seed": int(config.seed),
            "clip_length": int(clip_length),
        }
    num_classes = len(videos.class_names)
    if num_classes < 2:
        raise UsageError(f"{data}: a single class ({videos.class_names}); need at least 2")
    train_config = {
        "val_fraction": float(config.val_fraction),
        "seed": int(config.seed),
        "eval_clips": int(config.eval_clips),
    }
    splits = resolve_run_splits(videos, train_config, source_name)
    frames = int(saved_config["frames"]) if saved_config else config.frames or videos.max_valid()
    head = {
        "rnn": config.rnn,
        "units": int(config.units),
        "layers": int(config.layers),
        "bidirectional": bool(config.bidirectional),
        "dropout": float(config.dropout),
        "centering": config.centering,
        "num_frames": frames,
        "num_classes": num_classes,
    }
    run_config = None
    model = None
    if out.state is None:
        with dist.scope():  # the model's variables are the strategy's
            with dtype_policy("mixed_float16" if out.mixed_precision() else "float32"):
                if config.grayscale:
                    backbone = load_grayscale_backbone(
                        config.backbone, input_size=size, seed=config.seed
                    )
                else:
                    backbone = load_backbone(
                        config.backbone, "none", input_size=size, seed=config.seed
                    )
            unfrozen = set_trainable(backbone, everything=True)
            import keras

            keras.utils.set_random_seed(config.seed)
            head["feature_dim"] = int(backbone.feature_dim)
            head_model = build_head(
                num_classes,
                backbone.feature_dim,
                **{k: head[k] for k in ("rnn", "units", "layers", "bidirectional", "dropout")},
                centering=config.centering,
                num_frames=frames,
            )
            model = build_end_to_end(backbone, head_model, frames=frames)
        run_config = _run_config(
            out,
            backbone=backbone,
            frames=frames,
            class_names=videos.class_names,
            head=head,
            unfrozen=unfrozen,
            train_config=train_config,
            splits=splits,
            extra={
                "dtype": dtype,
                "sampling": recorded,
                "grayscale": bool(config.grayscale),
                "from_scratch": True,
                "source_run": None,
                **extra,
            },
        )
    return _train(
        out,
        run_config,
        model,
        videos,
        splits,
        source_name=source_name,
        callbacks=callbacks,
        verbose=verbose,
    )


def load_end_to_end(run_dir):
    """Loads an end-to-end run directory (``safe_mode=True``); see ``run_dir.load_run``."""
    run = rd.load_run(run_dir)
    if not is_end_to_end(run.config):
        raise UsageError(f"{run.path}: not an end-to-end run (it reads cached features)")
    return run
