"""finetune: a trained feature run, fine-tuned end to end on the raw frames its cache lists.

:func:`finetune` builds ``TimeDistributed(backbone)`` and the run's trained
head into one model (:mod:`vidseq.sequence.train.end_to_end`). The backbone is
rebuilt with the weights the run recorded (SHA-256 checked, ``weights_seed``
for random init), so before any training step the model gives the feature
run's outputs on the same frames. The last N layers of the backbone (or those
from a named layer on) are unfrozen; every ``BatchNormalization`` layer stays
frozen, which in Keras 3 also means it runs in inference mode: its moving
statistics never change (Keras' transfer-learning guide). The frames are
exactly those the cache lists (paths and frame indices), decoded in background
threads while the network trains.
"""

from __future__ import annotations

import os

from vidseq.cache.files import absolute_cache_spec
from vidseq.cache.store import FeatureStore
from vidseq.errors import UsageError
from vidseq.sequence.config import FinetuneConfig
from vidseq.sequence.data.frame_clips import videos_from_cache
from vidseq.sequence.data.split_indices import splits_of
from vidseq.sequence.runs import run_dir as rd
from vidseq.sequence.runs.evaluation import check_cache_matches_run
from vidseq.sequence.runs.saved_run import load_model_file, load_run, load_run_backbone
from vidseq.sequence.train.end_to_end import (
    build_end_to_end,
    dtype_policy,
    mixed_precision_of,
    open_end_to_end_run,
    run_config,
    set_trainable,
    train_end_to_end,
)


def _source_videos(source, cache):
    """The videos the feature run's cache (or ``cache``) lists, and the cache's absolute name."""
    cache = cache if cache is not None else source.config.get("cache_path")
    if not cache:
        raise UsageError(f"{source.path}: config.json names no cache; pass cache=")
    with FeatureStore(cache) as store:
        check_cache_matches_run(source.config, store.meta, str(cache))
        videos = videos_from_cache(store, source.config["input_size"])
    return videos, str(absolute_cache_spec(cache))


def _build_model(source, config, dist, mixed_precision):
    """The end-to-end model of a feature run, built under ``dist``'s scope.

    Returns:
        ``(model, backbone, unfrozen layer names)``.
    """
    with dist.scope():  # the strategy's variables: the head is reloaded inside it
        with dtype_policy("mixed_float16" if mixed_precision else "float32"):
            backbone = load_run_backbone(source)  # SHA-256 checked against the run
        unfrozen = set_trainable(
            backbone, unfreeze=config.unfreeze, unfreeze_from=config.unfreeze_from
        )
        head = (
            source.model if dist.name == "default" else load_model_file(source.path / rd.MODEL_FILE)
        )
        return build_end_to_end(backbone, head, frames=source.frames), backbone, unfrozen


def finetune(
    run_dir,
    out_dir,
    config=None,
    *,
    cache=None,
    resume=False,
    overwrite=False,
    verbose=1,
    callbacks=None,
    report=True,
):
    """Fine-tunes a trained feature run end to end on the raw frames its cache lists.

    Args:
        run_dir: A run directory written by ``train_sequence``.
        out_dir: The new run directory: created, or empty, or (with
            ``resume``) an interrupted finetune, or (with ``overwrite``) a run
            to replace.
        config: A :class:`~vidseq.sequence.config.FinetuneConfig` (defaults
            when None). The backbone, frames, head and splits are the run's.
        cache: The cache listing the videos (default: the run's own); it must
            hold the run's features (backbone, weights hash, class names).
        resume: Continue the interrupted finetune in ``out_dir`` with its saved
            settings (the call's ``workers``, ``tensorboard`` and ``strategy``
            still apply).
        overwrite: Replace the run files of a non-empty ``out_dir``.
        verbose: Keras progress verbosity.
        callbacks: Extra Keras callbacks.
        report: Also write the run's page, ``report.html`` (``vidseq report``).

    Returns:
        A :class:`~vidseq.sequence.runs.results.TrainResult`.

    Raises:
        UsageError: Bad settings, an incomplete run, weights whose hash differs
            from the run's, a layer name that does not exist, an occupied
            ``out_dir``, or an unreadable video of the cache
            (``SourceReadError``).
    """
    opened, dist = open_end_to_end_run(
        out_dir,
        config or FinetuneConfig(),
        resume=resume,
        overwrite=overwrite,
        inputs=[p for p in (run_dir, cache) if isinstance(p, (str, os.PathLike))],
    )
    source = load_run(run_dir)
    if source.end_to_end:
        raise UsageError(
            f"{source.path}: already an end-to-end run; fine-tune the feature run it came "
            "from, or resume an interrupted finetune. Received: run_dir={run_dir}"
        )
    videos, source_name = _source_videos(source, cache)
    splits = splits_of(videos, **rd.split_keywords(source.config), source=source_name)
    new_config, model = None, None
    if not opened.resuming:
        model, backbone, unfrozen = _build_model(
            source, opened.config, dist, mixed_precision_of(opened)
        )
        new_config = run_config(
            opened,
            dist,
            backbone=backbone,
            frames=source.frames,
            class_names=source.class_names,
            head=source.config["head"],
            unfrozen=unfrozen,
            train=source.config.get("train", {}),
            splits=splits,
            extra={
                "dtype": source.config.get("dtype", "float16"),
                "sampling": source.frame_spec.to_dict(),
                "grayscale": False,
                "from_scratch": False,
                "source_run": str(source.path.resolve()),
                "cache_path": source_name,
            },
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
