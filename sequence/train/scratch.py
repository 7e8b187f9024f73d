"""finetune from scratch: a random-init CNN and a fresh head, trained end to end.

The tutorial's FER option 1: :func:`train_from_scratch` builds a random-init
backbone, optionally on one grey channel (a fixed luminance layer turns the RGB
frames into grey inside the model, :func:`load_grayscale_backbone`), with a
fresh head, and trains every layer end to end on a dataset or on the videos of
a cache (:mod:`vidseq.sequence.train.end_to_end`).
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import h5py
import keras
import numpy as np

from vidseq.cache.store import FeatureStore
from vidseq.errors import UsageError
from vidseq.extract.models.backbones import (
    Backbone,
    build_seeded,
    get_spec,
    load_backbone,
    weights_sha256,
)
from vidseq.extract.models.hub import is_hub_name
from vidseq.extract.models.preprocessing import FramePreprocessing
from vidseq.extract.sources.dataset import load_dataset
from vidseq.sequence.config import ScratchConfig
from vidseq.sequence.data.frame_clips import videos_from_cache, videos_from_dataset
from vidseq.sequence.data.split_indices import splits_of
from vidseq.sequence.train.end_to_end import (
    build_end_to_end,
    dtype_policy,
    mixed_precision_of,
    open_end_to_end_run,
    run_config,
    set_trainable,
    train_end_to_end,
)
from vidseq.sequence.train.model import build_head, head_record

GRAY_LAYER = "rgb_to_gray"
LUMINANCE = (0.299, 0.587, 0.114)


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
        A :class:`~vidseq.extract.models.backbones.Backbone` (weights ``"none"``).

    Raises:
        UsageError: Unknown name or too small an input.
    """
    spec = get_spec(name)
    size = tuple(int(v) for v in (input_size or spec.input_size))
    if len(size) != 2 or min(size) < spec.min_size:
        raise UsageError(
            f"backbone {spec.name} needs an input of at least {spec.min_size}x{spec.min_size}. "
            f"Received: input_size={input_size!r}"
        )
    module_name, _, attr = spec.constructor.rpartition(".")
    constructor = getattr(importlib.import_module(module_name), attr)
    base = build_seeded(constructor, (size[0], size[1], 1), seed)
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


def _is_cache_file(path) -> bool:
    path = Path(path)
    return path.is_file() and h5py.is_hdf5(path)


def _read_data(data, config, size, warnings):
    """The videos of a cache or a dataset, and what the run config records about them.

    Returns:
        ``(videos, extra)``: the ``FrameVideos`` and the config.json keys
        ``dtype``, ``sampling`` (a ``FrameSpec`` dict), ``cache_path`` and
        (for a dataset) ``data``.
    """
    source_name = str(Path(data).resolve())
    if _is_cache_file(data):
        with FeatureStore(data) as store:
            videos = videos_from_cache(store, size)
            dtype = store.meta.dtype
        return videos, {
            "dtype": dtype,
            "sampling": videos.frame_spec.to_dict(),
            "cache_path": source_name,
        }
    dataset = load_dataset(
        data,
        config.source,
        split=config.split,
        seed=config.fit.seed,
        clip_length=config.clip_length,
    )
    warnings.extend(dataset.warnings)
    if dataset.rejected:
        warnings.append(f"{len(dataset.rejected)} malformed inputs left out")
    spec = config.frame_spec(fer2013=dataset.source == "fer2013")
    videos = videos_from_dataset(dataset, spec, size)
    return videos, {
        "dtype": "float32",
        "sampling": spec.to_dict(),
        "cache_path": None,
        "data": {
            "path": source_name,
            "source": dataset.source,
            "split": int(config.split),
            "seed": int(config.fit.seed),
            "clip_length": int(config.clip_length),
        },
    }


def _build_model(config, dist, size, num_classes, frames, mixed_precision):
    """A random-init backbone and a fresh head as one model. Returns (model, backbone, unfrozen)."""
    with dist.scope():  # the model's variables are the strategy's
        with dtype_policy("mixed_float16" if mixed_precision else "float32"):
            if config.grayscale:
                backbone = load_grayscale_backbone(
                    config.backbone, input_size=size, seed=config.fit.seed
                )
            else:
                backbone = load_backbone(
                    config.backbone, "none", input_size=size, seed=config.fit.seed
                )
        unfrozen = set_trainable(backbone, everything=True)
        keras.utils.set_random_seed(config.fit.seed)
        head = build_head(num_classes, backbone.feature_dim, config.head, num_frames=frames)
        return build_end_to_end(backbone, head, frames=frames), backbone, unfrozen


def train_from_scratch(
    data,
    out_dir,
    config=None,
    *,
    resume=False,
    overwrite=False,
    verbose=1,
    callbacks=None,
    report=True,
):
    """Trains a random-init CNN and a fresh head end to end (the tutorial's FER option 1).

    Args:
        data: A feature cache (its videos, frame indices, splits and
            ``FrameSpec`` are reused; its features are not), or a dataset
            folder / CSV (see ``vidseq.extract.sources.dataset.load_dataset``).
        out_dir: The run directory (as for ``finetune``).
        config: A :class:`~vidseq.sequence.config.ScratchConfig`: the
            backbone, input size, grey channel, frames and head to build, the
            fit, and how a dataset is read. Every layer trains.
        resume: Continue the interrupted run in ``out_dir`` with its saved settings.
        overwrite: Replace the run files of a non-empty ``out_dir``.
        verbose: Keras progress verbosity.
        callbacks: Extra Keras callbacks.
        report: Also write the run's page, ``report.html`` (``vidseq report``).

    Returns:
        A :class:`~vidseq.sequence.runs.results.TrainResult`.

    Raises:
        UsageError: Bad settings or data, or an occupied ``out_dir``.
    """
    config = config or ScratchConfig()
    if is_hub_name(config.backbone):  # a pretrained encoder's architecture, random init: no
        raise UsageError(
            "from scratch trains a registry CNN from random weights; a keras-hub preset is "
            "a pretrained encoder: extract-features --backbone hub:PRESET, then finetune. "
            f"Received: backbone={config.backbone!r}"
        )
    opened, dist = open_end_to_end_run(
        out_dir, config, resume=resume, overwrite=overwrite, inputs=[data]
    )
    config = opened.config
    size = tuple(int(v) for v in (config.input_size or get_spec(config.backbone).input_size))
    videos, extra = _read_data(data, config, size, opened.warnings)
    source_name = str(Path(data).resolve())
    num_classes = len(videos.class_names)
    if num_classes < 2:
        raise UsageError(f"{data}: a single class ({videos.class_names}); need at least 2")
    train = {
        "val_fraction": float(config.val_fraction),
        "seed": int(config.fit.seed),
        "eval_clips": int(config.eval_clips),
    }
    splits = splits_of(
        videos, val_fraction=config.val_fraction, seed=config.fit.seed, source=source_name
    )
    saved = opened.saved_config
    frames = int(saved["frames"]) if saved else config.frames or videos.max_valid()
    new_config, model = None, None
    if not opened.resuming:
        model, backbone, unfrozen = _build_model(
            config, dist, size, num_classes, frames, mixed_precision_of(opened)
        )
        head = head_record(
            dataclasses.replace(config.head, normalize="none"),
            num_frames=frames,
            feature_dim=backbone.feature_dim,
            num_classes=num_classes,
        )
        extra.update(grayscale=bool(config.grayscale), from_scratch=True, source_run=None)
        new_config = run_config(
            opened,
            dist,
            backbone=backbone,
            frames=frames,
            class_names=videos.class_names,
            head=head,
            unfrozen=unfrozen,
            train=train,
            splits=splits,
            extra=extra,
        )
    return train_end_to_end(
        opened,
        dist,
        new_config,
        model,
        videos,
        splits,
        source_name=source_name,
        callbacks=callbacks,
        verbose=verbose,
        report=report,
    )
