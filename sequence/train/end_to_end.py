"""End-to-end models (raw frames → CNN → head) and the training of an end-to-end run.

Finetune (:mod:`vidseq.sequence.train.finetune`) and from-scratch training
(:mod:`vidseq.sequence.train.scratch`) both build ``TimeDistributed(backbone)`` and a
head into one model: uint8 clips ``(T, H, W, 3)`` in, probabilities out, and
both train it here with :func:`train_end_to_end`: the engine's loop
(:func:`vidseq.sequence.train.loop.fit`) on frames decoded in background threads
(:mod:`vidseq.sequence.data.frame_clips`), then evaluation on the run's test split.
Their run directory's ``config.json`` says ``"model": "end_to_end"``; its
``model.keras`` is the whole model. With a GPU, the backbone computes in
``mixed_float16`` (the head, and so the softmax, stays float32; the optimizer
scales the loss).
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from vidseq.errors import UsageError
from vidseq.extract.models.backbones import weights_sha256
from vidseq.extract.models.hub_blocks import unfreeze_blocks
from vidseq.extract.models.hub_layers import ClipGrouping, GroupRows
from vidseq.sequence.config import DEFAULT_UNFREEZE
from vidseq.sequence.data.frame_clips import FrameBatches
from vidseq.sequence.heads.layers import PaddingFrameMask
from vidseq.sequence.runs import run_dir as rd
from vidseq.sequence.runs.evaluation import evaluate_clips
from vidseq.sequence.train.distribute import make_distribution, write_dir
from vidseq.sequence.train.finish import evaluation_split, finish_run, model_to_evaluate
from vidseq.sequence.train.loop import (
    class_weights,
    fit,
    new_state,
    require_tensorboard,
    resume_or_compile,
    seed_everything,
    with_epochs,
)
from vidseq.version import __version__

END_TO_END = rd.END_TO_END


@contextlib.contextmanager
def dtype_policy(name):
    """Sets Keras' global dtype policy inside the block (restored after)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def use_mixed_precision(mode) -> bool:
    """``"on"``, ``"off"``, or ``"auto"``: True when TensorFlow sees a GPU."""
    if mode == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return mode == "on"


def set_trainable(backbone, *, unfreeze=DEFAULT_UNFREEZE, unfreeze_from=None, everything=False):
    """Unfreezes the top of a backbone; BatchNormalization stays frozen (inference mode).

    The layers of ``backbone.base_model`` (the network, its input layer not
    counted) are frozen, then the last ``unfreeze`` of them (or ``unfreeze_from``
    and every later one) are unfrozen, except ``BatchNormalization`` layers: a
    frozen BN layer runs in inference mode in Keras 3, so its moving mean and
    variance never change. The preprocessing (and the grey conversion) always
    stay frozen. With ``everything`` (training from scratch) every network layer
    trains, BN included. For a keras-hub encoder ``unfreeze`` counts its
    transformer blocks (:func:`~vidseq.extract.models.hub_blocks.unfreeze_blocks`) and
    ``unfreeze_from`` names a block.

    Args:
        backbone: A :class:`~vidseq.extract.models.backbones.Backbone`.
        unfreeze: How many of the last network layers to unfreeze.
        unfreeze_from: Name of the first layer to unfreeze (overrides ``unfreeze``).
        everything: Unfreeze every network layer, BN included.

    Returns:
        The names of the layers that hold trainable weights now, in order.

    Raises:
        UsageError: ``unfreeze_from`` names no layer of the network.
    """
    if backbone.blocks and not everything:  # a keras-hub encoder: N counts transformer blocks
        return unfreeze_blocks(backbone, unfreeze, start_at=unfreeze_from)
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

    A clip encoder (VideoPrism, G frames at once) reads the clip's frames in
    consecutive groups of G (:class:`~vidseq.extract.models.hub_layers.ClipGrouping`:
    padding frames and the completion of the last group repeat the last real
    frame, as extraction groups a video's), all groups of the batch in one
    call, and its ``(G, D)`` rows are laid back in order, the completion's
    dropped.

    Args:
        backbone: A :class:`~vidseq.extract.models.backbones.Backbone`.
        head: The sequence head (``(T, D)`` features → probabilities).
        frames: T.
        name: Model name.

    Returns:
        A ``keras.Model`` from ``(T, H, W, 3)`` uint8 clips (padding frames all
        zero) to class probabilities. It holds built-in layers and vidseq's
        registered ones only (and a keras-hub encoder's registered classes),
        so it loads with ``safe_mode=True``.
    """
    height, width = backbone.input_size
    frames = int(frames)
    clips = keras.Input(shape=(frames, height, width, 3), dtype="uint8", name="frames")
    group = int(backbone.clip_frames)
    if group == 1:
        features = keras.layers.TimeDistributed(backbone.model, name="backbone")(clips)
    else:
        groups = ClipGrouping(group, name="clip_groups")(clips)  # (B * T / G, G, H, W, 3)
        model = backbone.model
        grouped = keras.Model(model.input, model.output, name="backbone")(groups)
        features = GroupRows(frames, name="frame_rows")(grouped)
    features = PaddingFrameMask(name="padding_mask")([clips, features])
    return keras.Model(clips, head(features), name=name)


def backbone_of(model):
    """The backbone wrapper model (uint8 frames → features) inside an end-to-end model."""
    layer = model.get_layer("backbone")  # TimeDistributed, or a clip encoder's model
    return getattr(layer, "layer", layer)


def preprocessing_of(backbone_model):
    """The ``mode`` of a backbone model's ``preprocessing`` layer, or None."""
    for layer in backbone_model.layers:
        if hasattr(layer, "mode") and layer.name == "preprocessing":
            return layer.mode
    return None


def open_end_to_end_run(out_dir, config, *, resume, overwrite, inputs=()):
    """Validates the settings, makes the distribution, checks the output directory.

    Returns:
        ``(opened, dist)``: the ``run_dir.OpenedRun`` (on resume, the saved
        settings with the call's overridable ones) and the ``Distribution``.
    """
    config = config.validate()
    require_tensorboard(config.fit)
    dist = make_distribution(config.fit.strategy)  # before any other TensorFlow op
    opened = rd.open_run(
        out_dir,
        config,
        section="finetune",
        resume=resume,
        overwrite=overwrite,
        chief=dist.chief,
        end_to_end=True,
        inputs=inputs,
    )
    return opened, dist


def mixed_precision_of(opened) -> bool:
    """A resumed run's mixed precision, or the config's mode resolved now."""
    if opened.saved_config:
        return bool(opened.saved_config["mixed_precision"])
    return use_mixed_precision(opened.config.mixed_precision)


def run_config(
    opened, dist, *, backbone, frames, class_names, head, unfrozen, train, splits, extra
):
    """The config.json of an end-to-end run; ``extra`` holds the keys of one kind of run.

    ``sampling`` (in ``extra``) is the ``FrameSpec.to_dict()`` of the frames;
    ``train`` the split settings (``val_fraction``, ``seed``, ``eval_clips``;
    a finetune copies its feature run's whole ``train``); ``finetune`` the
    command's settings (a ``FinetuneConfig`` or ``ScratchConfig``, nested).
    """
    return {
        "kind": rd.RUN_KIND,
        "format_version": rd.RUN_FORMAT_VERSION,
        "model": END_TO_END,
        "vidseq_version": __version__,
        "backbone": backbone.name,
        "weights": backbone.weights,
        "weights_sha256": backbone.weights_sha256,
        "weights_seed": int(backbone.seed),
        "backbone_config": dict(backbone.config),
        "engine": "tf",
        "input_size": [int(v) for v in backbone.input_size],
        "feature_dim": int(backbone.feature_dim),
        "class_names": list(class_names),
        "num_classes": len(class_names),
        "frames": int(frames),
        "input": {"shape": [int(frames), *backbone.input_size, 3], "dtype": "uint8"},
        "head": dict(head),
        "finetune": opened.config.to_dict(),
        **extra,
        "preprocessing": preprocessing_of(backbone.model),
        "unfrozen_layers": unfrozen,
        "mixed_precision": mixed_precision_of(opened),
        "train": dict(train),
        "splits": splits.sizes(),
        "distribute": dist.to_dict(),
    }


def _frame_batches(opened, dist, run_config, videos, splits, start_epoch):
    """The training and validation :class:`FrameBatches` of an end-to-end run."""
    config = opened.config
    frames = int(run_config["frames"])
    num_classes = len(run_config["class_names"])
    common = {
        "frames": frames,
        "batch_size": dist.global_batch_size(config.fit.batch_size),
        "workers": config.workers,
    }
    train = FrameBatches(
        videos,
        splits.train,
        num_classes,
        training=True,
        augment=config.augment,
        seed=config.fit.seed,
        epoch=start_epoch,
        class_weights=class_weights(config.fit, videos.labels[splits.train], num_classes),
        **common,
    )
    return train, FrameBatches(videos, splits.val, num_classes, **common)


def train_end_to_end(
    opened, dist, run_config, model, videos, splits, *, source_name, callbacks, verbose, report=True
):
    """Resumes (or compiles) an end-to-end model, fits it with the engine, evaluates it.

    Args:
        opened: The ``run_dir.OpenedRun`` of :func:`open_end_to_end_run`.
        dist: Its ``Distribution``.
        run_config: The new run's config.json (None on resume: the saved one is used).
        model: The new model, built under ``dist.scope()`` (None on resume).
        videos: The ``FrameVideos`` read.
        splits: The ``SplitIndices`` into ``videos``.
        source_name: The cache or dataset, recorded in the metrics.
        callbacks: Extra Keras callbacks.
        verbose: Keras progress verbosity.
        report: Also write the run's page, ``report.html``.

    Returns:
        A :class:`~vidseq.sequence.runs.results.TrainResult`.
    """
    config = with_epochs(opened.config, len(splits.train), dist)
    run_config = opened.saved_config or {**run_config, "finetune": config.to_dict()}
    with write_dir(opened.path, dist) as write_path:
        built, start_epoch = resume_or_compile(
            lambda: model,
            opened,
            write_path,
            dist,
            config.fit,
            mixed_precision=mixed_precision_of(opened),
        )
        if not opened.resuming:
            rd.start_run_files(write_path, run_config)
        state = opened.state or new_state(config.fit)
        train_batches, val_batches = _frame_batches(
            opened, dist, run_config, videos, splits, start_epoch
        )
        gpu = bool(tf.config.list_physical_devices("GPU"))
        seed_everything(config.fit.seed, deterministic=not gpu)
        seconds = fit(
            built,
            write_path,
            config.fit,
            state,
            train_batches,
            val_batches,
            dist=dist,
            start_epoch=start_epoch,
            callbacks=callbacks,
            verbose=verbose,
        )
        metrics = {}
        if dist.chief:
            split, indices = evaluation_split(splits)
            if split == "val":
                opened.warnings.append("no labelled test video: metrics are on validation")
            metrics = evaluate_clips(
                model_to_evaluate(built, dist, write_path),
                videos,
                indices,
                class_names=run_config["class_names"],
                frames=int(run_config["frames"]),
                split=split,
                num_clips=rd.split_settings(run_config)["eval_clips"],
                batch_size=config.fit.batch_size,
            )
    return finish_run(
        opened.path,
        state,
        metrics,
        cache=source_name,
        dist=dist,
        splits=splits,
        resumed_from=start_epoch,
        seconds=seconds,
        streaming=True,
        warnings=opened.warnings,
        weights_sha256=weights_sha256(built),
        report=report,
    )
