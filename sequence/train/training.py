"""train-sequence: fit the temporal head on a feature cache into a run directory."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from vidseq.cache.files import absolute_cache_spec
from vidseq.cache.store import FeatureStore
from vidseq.errors import UsageError
from vidseq.extract.models.backbones import weights_sha256
from vidseq.sequence.config import TrainConfig
from vidseq.sequence.data.batches import (
    SequenceBatches,
    decide_streaming,
    feature_bytes,
    make_features,
)
from vidseq.sequence.data.split_indices import splits_of
from vidseq.sequence.runs import run_dir as rd
from vidseq.sequence.runs.evaluation import check_cache_matches_run, evaluate_features
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
from vidseq.sequence.train.model import build_head, head_record
from vidseq.sequence.train.normalization import feature_normalization
from vidseq.version import __version__


def build_run_config(meta, config, *, frames, cache_path, splits, num_classes):
    """The config.json of a feature run.

    Keys: ``kind``, ``format_version``, ``vidseq_version``; the cache meta
    fields verbatim (``backbone``, ``weights``, ``weights_sha256``,
    ``engine``, ``input_size``, ``feature_dim``, ``sampling`` (the cache's
    ``FrameSpec``), ``class_names``, ``dtype``); ``num_classes``; ``frames``
    (T, feature rows per video the model reads); ``head`` (see
    :func:`~vidseq.sequence.train.model.head_record`); ``train`` (the ``TrainConfig``, nested);
    ``cache_path`` (absolute); ``splits`` (sizes and ``val_source``).
    """
    out = {"kind": rd.RUN_KIND, "format_version": rd.RUN_FORMAT_VERSION}
    out["vidseq_version"] = __version__
    out.update(rd.meta_dict(meta))
    out["num_classes"] = int(num_classes)
    out["frames"] = int(frames)
    out["head"] = head_record(
        config.head, num_frames=frames, feature_dim=out["feature_dim"], num_classes=num_classes
    )
    out["train"] = config.to_dict()
    out["cache_path"] = absolute_cache_spec(cache_path)
    out["splits"] = dict(splits)
    return out


@dataclass
class _CachedData:
    """What train_sequence reads from the cache: labels, splits, features, T."""

    labels: np.ndarray
    num_valid: np.ndarray
    class_names: list
    splits: object
    frames: int
    features: object
    streaming: bool


def _read_cache(store, cache_path, config, saved_config):
    """Checks the cache, resolves its splits and opens its features (in memory or streamed)."""
    class_names = list(store.class_names)
    if len(class_names) < 2:
        raise UsageError(
            f"{cache_path}: the cache has a single class ({class_names}); "
            "a classifier needs at least 2"
        )
    if saved_config is not None:
        check_cache_matches_run(saved_config, store.meta, str(cache_path))
    labels = np.asarray(store.labels, dtype=np.int64)
    if len(labels) == 0:
        raise UsageError(f"{cache_path}: the cache holds no video")
    if labels.max() >= len(class_names):
        raise UsageError(
            f"{cache_path}: label {int(labels.max())} is outside the {len(class_names)} class names"
        )
    splits = splits_of(store, **config.split_keywords(), source=str(cache_path))
    num_valid = np.asarray(store.num_valid, dtype=np.int64)
    longest = int(np.max(store.lengths))
    if config.frames is not None and config.frames > longest:
        raise UsageError(
            f"frames must be at most {longest}, the rows per video of {cache_path}. "
            f"Received: frames={config.frames}"
        )
    frames = config.frames or int(num_valid.max())
    if saved_config is not None and int(saved_config["frames"]) != frames:
        raise UsageError(
            f"{cache_path}: resumed run reads {saved_config['frames']} frames, "
            f"this cache gives {frames}"
        )
    needed = np.concatenate([splits.train, splits.val, splits.test])
    streaming = decide_streaming(config.streaming, feature_bytes(store, needed))
    features = make_features(store, needed, streaming)
    return _CachedData(labels, num_valid, class_names, splits, frames, features, streaming)


def _normalization(store, data, config):
    """The feature scaling layer of a new run (one pass over the training videos), or None."""
    if config.head.normalize == "none":
        return None
    return feature_normalization(store, data.splits.train, mode=config.head.normalize)


def _batches(data, config, dist, start_epoch):
    """The training and validation :class:`SequenceBatches` of a run."""
    common = {
        "frames": data.frames,
        "length": data.frames,
        "batch_size": dist.global_batch_size(config.fit.batch_size),
    }
    num_classes = len(data.class_names)
    train = SequenceBatches(
        data.features,
        data.splits.train,
        data.labels,
        data.num_valid,
        num_classes,
        training=True,
        seed=config.fit.seed,
        temporal_shift=config.temporal_shift,
        class_weights=class_weights(config.fit, data.labels[data.splits.train], num_classes),
        epoch=start_epoch,
        **common,
    )
    val = SequenceBatches(
        data.features, data.splits.val, data.labels, data.num_valid, num_classes, **common
    )
    return train, val


def _evaluate_trained(
    model, store, run_config, data, config, dist, write_path, warnings, *, evaluate_on
):
    """The chief's metrics of the final model (on ``evaluate_on``); {} elsewhere."""
    if not dist.chief:
        return {}
    if evaluate_on == "val":
        split, indices = "val", data.splits.val
    else:
        split, indices = evaluation_split(data.splits)
    if split == "val" and evaluate_on != "val":
        warnings.append("the cache has no labelled test video: metrics are on validation")
    if data.streaming:
        warnings.append(
            "features were streamed, so the bag-of-frames baseline was not fitted (it "
            "holds every training video's pooled features); `vidseq evaluate RUN` fits it"
        )
    return evaluate_features(
        model_to_evaluate(model, dist, write_path),
        store,
        run_config,
        indices,
        features=data.features,
        split=split,
        batch_size=max(config.fit.batch_size, 64),
        # The baseline holds the pooled training features in memory (N x D,
        # float64 in scikit-learn): a streamed run leaves it to `vidseq evaluate`.
        baseline_train=None if data.streaming else data.splits.train,
    )


def _new_run_config(store, config, data, cache_path, dist) -> dict:
    """The ``config.json`` of a new run: the cache's meta, the settings, the strategy."""
    run_config = build_run_config(
        store.meta,
        config,
        frames=data.frames,
        cache_path=cache_path,
        splits=data.splits.sizes(),
        num_classes=len(data.class_names),
    )
    return {**run_config, "distribute": dist.to_dict()}


def train_sequence(
    cache_path,
    out_dir,
    config=None,
    *,
    resume=False,
    overwrite=False,
    verbose=1,
    callbacks=None,
    report=True,
    evaluate_on="test",
):
    """Trains the temporal head on a feature cache and writes a run directory.

    The run directory receives ``config.json`` (before training),
    ``checkpoints/`` (the compiled model once, then each epoch the values of
    its variables and its optimizer's, the best weights so far, ``state.json``),
    ``history.csv`` (each epoch), and at the end ``model.keras`` (best
    weights), ``metrics.json``, ``classification_report.txt``,
    ``confusion_matrix.png``, ``training_curves.png`` and ``report.html``. ``config.json``
    records the strategy under ``distribute`` (``strategy``, ``replicas``,
    ``num_workers``, ``loop``).

    Under ``config.fit.strategy="multiworker"`` every worker calls this with
    the same arguments; only the chief writes ``out_dir`` (the others
    checkpoint into a temporary directory, and return without evaluating).

    Args:
        cache_path: A feature cache (``features.h5``) with labels and a train split.
        out_dir: The run directory: created, or empty, or (with ``resume``)
            an interrupted run, or (with ``overwrite``) a run to replace.
        config: A :class:`~vidseq.sequence.config.TrainConfig` (default
            settings when None).
        resume: Continue the interrupted run in ``out_dir`` with its saved
            settings; the call's ``streaming``, ``tensorboard`` and
            ``strategy`` still apply.
        overwrite: Replace the run files of a non-empty ``out_dir``.
        verbose: Keras progress verbosity (0 silent, 1 bar, 2 one line per epoch).
        callbacks: Extra Keras callbacks, called after the run's own.
        report: Also write the run's page, ``report.html`` (``vidseq report``).
        evaluate_on: ``"test"`` (the test split, or validation when the cache
            has no test video) or ``"val"``: the final model is evaluated on
            validation and the test split is never read (``vidseq tune``'s trials).

    Returns:
        A :class:`~vidseq.sequence.runs.results.TrainResult`.

    Raises:
        UsageError: bad settings; a cache without labels, train split or a
            second class; groups shared across the cache's splits; an occupied
            ``out_dir``; a resume against another cache. ``CacheError`` (a
            UsageError) when ``cache_path`` is not a cache.
    """
    if evaluate_on not in ("test", "val"):
        raise UsageError(
            f"evaluate_on must be 'test' or 'val'. Received: evaluate_on={evaluate_on!r}"
        )
    config = (config or TrainConfig()).validate()
    require_tensorboard(config.fit)
    dist = make_distribution(config.fit.strategy)  # before any other TensorFlow op
    opened = rd.open_run(
        out_dir,
        config,
        section="train",
        resume=resume,
        overwrite=overwrite,
        chief=dist.chief,
        inputs=[cache_path] if isinstance(cache_path, (str, os.PathLike)) else cache_path,
    )
    config, warnings = opened.config, opened.warnings
    with FeatureStore(cache_path) as store, write_dir(opened.path, dist) as write_path:
        data = _read_cache(store, cache_path, config, opened.saved_config)
        config = with_epochs(config, len(data.splits.train), dist)
        run_config = opened.saved_config or _new_run_config(store, config, data, cache_path, dist)
        if not opened.resuming:
            rd.start_run_files(write_path, run_config)
        seed_everything(config.fit.seed)
        model, start_epoch = resume_or_compile(
            lambda: build_head(
                len(data.class_names),
                int(store.meta.feature_dim),
                config.head,
                num_frames=data.frames,
                normalization=_normalization(store, data, config),
            ),
            opened,
            write_path,
            dist,
            config.fit,
        )
        state = opened.state or new_state(config.fit)
        train_batches, val_batches = _batches(data, config, dist, start_epoch)
        seconds = fit(
            model,
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
        digest = weights_sha256(model)
        metrics = _evaluate_trained(
            model,
            store,
            run_config,
            data,
            config,
            dist,
            write_path,
            warnings,
            evaluate_on=evaluate_on,
        )
    return finish_run(
        opened.path,
        state,
        metrics,
        cache=run_config["cache_path"],
        dist=dist,
        splits=data.splits,
        resumed_from=start_epoch,
        seconds=seconds,
        streaming=data.streaming,
        warnings=warnings,
        weights_sha256=digest,
        report=report,
    )
