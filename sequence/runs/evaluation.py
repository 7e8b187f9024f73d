"""Evaluation of a sequence run: metrics, multi-clip testing, bag-of-frames baseline.

One evaluator, :func:`evaluate_clips`, serves feature runs and end-to-end runs
alike through a small clip-source interface:

* ``labels``: (N,) labels of the source's videos;
* ``is_dense(indices, frames)``: some video has more real rows than ``frames``;
* ``predict(model, indices, *, frames, batch_size, offset)``: (len(indices), C)
  probabilities of the sample at in-segment ``offset`` of each video.

``data.CachedClips`` (cached features) and ``frames_data.FrameVideos`` (frames
decoded from the videos) implement it.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vidseq.bounds import MAX_CLIPS, check_count
from vidseq.cache.files import absolute_cache_spec
from vidseq.cache.store import FeatureStore
from vidseq.errors import UsageError
from vidseq.outputs import atomic_output, check_output_files, same_path
from vidseq.sequence.data.batches import (
    CachedClips,
    decide_streaming,
    feature_bytes,
    make_features,
    mean_valid_features,
)
from vidseq.sequence.data.frame_clips import videos_for_run
from vidseq.sequence.data.split_indices import split_indices
from vidseq.sequence.data.temporal import clip_offsets
from vidseq.sequence.runs import plots
from vidseq.sequence.runs import report_files as reports
from vidseq.sequence.runs import run_dir as rd
from vidseq.sequence.runs.results import EvaluationResult
from vidseq.sequence.runs.saved_run import load_run


def compute_metrics(y_true, probabilities, class_names):
    """Classification metrics from true labels and predicted probabilities.

    Args:
        y_true: (N,) int labels.
        probabilities: (N, C) class probabilities (or scores).
        class_names: The C class names.

    Returns:
        A dict: ``num_videos``, ``accuracy``, ``top5_accuracy`` (only when
        C >= 5), ``precision_macro``, ``recall_macro``, ``f1_macro``, the same
        ``_weighted``, ``per_class`` (name -> precision, recall, f1, support),
        ``confusion_matrix`` (C x C list, rows true, columns predicted) and
        ``class_names``. Averages are over all C classes (sklearn's
        ``labels=range(C)``, ``zero_division=0``).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.arange(len(class_names))
    if probabilities.shape != (len(y_true), len(labels)):
        raise ValueError(
            f"probabilities must be (N, C) = ({len(y_true)}, {len(labels)}). "
            f"Received: {probabilities.shape}"
        )
    y_pred = probabilities.argmax(axis=1)
    out = {
        "num_videos": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
    }
    if len(labels) >= 5:
        out["top5_accuracy"] = float(
            top_k_accuracy_score(y_true, probabilities, k=5, labels=labels)
        )
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0
        )
        out[f"precision_{average}"] = float(p)
        out[f"recall_{average}"] = float(r)
        out[f"f1_{average}"] = float(f)
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    out["per_class"] = {
        name: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(s[i]),
        }
        for i, name in enumerate(class_names)
    }
    out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    out["class_names"] = list(class_names)
    return out


def per_video_predictions(indices, y_true, probabilities, class_names, *, video_ids=None, top_k=3):
    """What the model said about each evaluated video, for reports (metrics.json's ``videos``).

    Args:
        indices: (N,) the videos' indices in their source (the cache).
        y_true: (N,) int labels.
        probabilities: (N, C) class probabilities.
        class_names: The C class names.
        video_ids: (N,) the videos' ids, or None.
        top_k: Predictions kept per video.

    Returns:
        One dict per video, in ``indices`` order: ``index``, ``id`` (None
        without ids), ``label`` (the true class name) and ``top`` (``[name,
        probability]`` pairs, most probable first).
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
    return [
        {
            "index": int(index),
            "id": None if video_ids is None else str(video_ids[row]),
            "label": class_names[int(y_true[row])],
            "top": [[class_names[c], round(float(probabilities[row, c]), 6)] for c in order[row]],
        }
        for row, index in enumerate(indices)
    ]


def bag_of_frames_baseline(train_x, train_y, test_x, test_y, class_names, *, seed=0):
    """Mean-pooled features + logistic regression, the order-blind reference.

    Args:
        train_x: (N, D) mean of each training video's valid frame features.
        train_y: (N,) training labels.
        test_x: (M, D) the same for the evaluated videos.
        test_y: (M,) their labels.
        class_names: The C class names.
        seed: ``random_state`` of the classifier.

    Returns:
        A dict with ``accuracy``, ``top5_accuracy`` (C >= 5), precision /
        recall / F1 macro and weighted, ``model`` (a description).
    """
    classifier = make_pipeline(  # copy=False: scale the float32 means in place
        StandardScaler(copy=False), LogisticRegression(max_iter=2000, random_state=seed)
    )
    classifier.fit(train_x, train_y)
    scores = np.zeros((len(test_x), len(class_names)))
    scores[:, classifier.classes_] = classifier.predict_proba(test_x)
    metrics = compute_metrics(test_y, scores, class_names)
    keep = ("num_videos", "accuracy", "top5_accuracy")
    out = {k: metrics[k] for k in keep if k in metrics}
    for average in ("macro", "weighted"):
        for m in ("precision", "recall", "f1"):
            out[f"{m}_{average}"] = metrics[f"{m}_{average}"]
    out["model"] = "mean of valid frame features -> StandardScaler -> LogisticRegression"
    return out


def check_cache_matches_run(config, meta, cache_name=""):
    """Refuses a cache whose features are not those the run was trained on.

    Args:
        config: The run's config.json dict.
        meta: The cache's ``CacheMeta``.
        cache_name: For the message.

    Raises:
        UsageError: feature_dim, backbone, weights hash or class names differ.
    """
    cache_meta = rd.meta_dict(meta)
    where = f"{cache_name}: " if cache_name else ""
    for key in ("feature_dim", "backbone", "weights_sha256", "class_names"):
        if cache_meta[key] != config[key]:
            raise UsageError(
                f"{where}cache {key} is {cache_meta[key]!r} but the run was trained with "
                f"{config[key]!r}; evaluate with a cache extracted the same way"
            )


def evaluate_clips(
    model, source, indices, *, class_names, frames, split, num_clips=1, batch_size=64
):
    """Metrics of a model on some videos, averaging several clips when the data is dense.

    When some video has more real rows than the model reads (``frames``), the
    softmax is averaged over ``num_clips`` evenly offset samples
    (``temporal.clip_offsets``); otherwise one sample, the centre, is read.

    Args:
        model: The Keras model of the run.
        source: A clip source (see the module docstring).
        indices: The labelled videos to evaluate (indices into ``source``).
        class_names: The C class names.
        frames: T, rows the model reads per video.
        split: Name of the split, recorded in the result.
        num_clips: Clips averaged per video when the data is dense.
        batch_size: Videos per batch.

    Returns:
        The :func:`compute_metrics` dict plus ``split``, ``clips``,
        ``single_clip_accuracy`` (multi-clip only), ``baseline`` (None) and
        ``videos`` (:func:`per_video_predictions`; ids from the source's
        ``video_ids`` when it has them).
    """
    indices = np.asarray(indices, dtype=np.int64)
    clips = int(num_clips) if source.is_dense(indices, frames) else 1

    def probabilities(offset):
        return source.predict(model, indices, frames=frames, batch_size=batch_size, offset=offset)

    centre = probabilities(0.5)
    probs = centre
    if clips > 1:
        probs = np.mean(
            [centre if abs(o - 0.5) < 1e-12 else probabilities(o) for o in clip_offsets(clips)],
            axis=0,
        )
    y = np.asarray(source.labels)[indices]
    metrics = {"split": split, "clips": clips, **compute_metrics(y, probs, class_names)}
    if clips > 1:
        metrics["single_clip_accuracy"] = float((centre.argmax(axis=1) == y).mean())
    metrics["baseline"] = None
    ids = getattr(source, "video_ids", None)
    metrics["videos"] = per_video_predictions(
        indices,
        y,
        probs,
        list(class_names),
        video_ids=None if ids is None else np.asarray(ids, dtype=object)[indices],
    )
    return metrics


def evaluate_features(
    model,
    store,
    config,
    indices,
    *,
    features,
    split,
    num_clips=None,
    batch_size=64,
    baseline_train=None,
):
    """Metrics of a feature run's model on some cached videos, and the baseline.

    Args:
        model: The Keras model of the run.
        store: The open ``FeatureStore``.
        config: The run config (``frames``, ``class_names``, ``train``).
        indices: Cache indices of the labelled videos to evaluate.
        features: A feature source holding (or streaming) those videos.
        split: Name of the split, recorded in the result.
        num_clips: Clips averaged per video when the cache is denser than the
            run's frames (default: the run's ``eval_clips``).
        batch_size: Videos per batch.
        baseline_train: Cache indices of the training videos for the
            bag-of-frames baseline (None: no baseline).

    Returns:
        The :func:`evaluate_clips` dict, with ``baseline`` when asked.
    """
    settings = rd.split_settings(config)
    clips = CachedClips.from_store(store, features)
    metrics = evaluate_clips(
        model,
        clips,
        indices,
        class_names=list(config["class_names"]),
        frames=int(config["frames"]),
        split=split,
        num_clips=settings["eval_clips"] if num_clips is None else num_clips,
        batch_size=batch_size,
    )
    if baseline_train is not None and len(baseline_train):
        baseline_train = np.asarray(baseline_train, dtype=np.int64)
        metrics["baseline"] = bag_of_frames_baseline(
            mean_valid_features(features, baseline_train, clips.num_valid),
            clips.labels[baseline_train],
            mean_valid_features(features, indices, clips.num_valid),
            clips.labels[np.asarray(indices, dtype=np.int64)],
            list(config["class_names"]),
            seed=settings["seed"],
        )
    return metrics


def write_evaluation(metrics, out_dir):
    """Writes metrics.json, classification_report.txt and confusion_matrix.png.

    Returns:
        The list of paths written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"Confusion matrix ({metrics.get('split', '')}, accuracy {metrics['accuracy']:.3f})"
    paths = [reports.write_json(out_dir / rd.METRICS_FILE, metrics)]
    report = out_dir / rd.REPORT_FILE
    with atomic_output(report, "w", encoding="utf-8") as file:
        file.write(reports.format_classification_report(metrics))
    paths.append(report)
    paths.append(
        plots.plot_confusion_matrix(
            out_dir / rd.CONFUSION_FILE, metrics["confusion_matrix"], metrics["class_names"], title
        )
    )
    return paths


def evaluation_dir(run_path, config, cache, split, out_dir=None, *, overwrite=False):
    """Where an evaluation's reports go; the run's own test report is never replaced.

    The run's own evaluation (``split="test"`` on the cache it was trained on)
    goes to the run directory, where train-sequence put it. Another split goes
    to ``RUN/eval-SPLIT/``, another cache to ``RUN/eval-SPLIT-NAME/`` (``NAME``:
    the cache file's stem). Another ``out_dir`` may exist and hold other files,
    but a report file in it is replaced only with ``overwrite``, and never one
    the evaluation reads (the run's model and config, the cache).

    Raises:
        UsageError: ``out_dir`` is the run directory for another split or cache,
            holds a report file (without ``overwrite``), or one of them is an input.
    """
    run_path = Path(run_path)
    trained_on = config.get("cache_path")
    own_cache = cache is None or (
        isinstance(cache, (str, os.PathLike))
        and isinstance(trained_on, str)
        and same_path(cache, trained_on)
    )
    own = split == "test" and own_cache
    default = run_path
    if not own:
        name = f"eval-{split}"
        if not own_cache:
            first = cache if isinstance(cache, (str, os.PathLike)) else next(iter(cache), "cache")
            name += "-" + re.sub(r"[^\w.-]+", "_", Path(first).stem)
        default = run_path / name
    if out_dir is None or same_path(out_dir, default):
        return default
    if not own and same_path(out_dir, run_path):
        raise UsageError(
            "out_dir must not be the run directory when evaluating another split or cache "
            "(the run's own test report would be replaced); leave it out to write "
            f"{default}. Received: out_dir={out_dir}"
        )
    caches = [trained_on] if cache is None else cache
    caches = [caches] if isinstance(caches, (str, os.PathLike)) else caches
    inputs = [run_path / rd.CONFIG_FILE, run_path / rd.MODEL_FILE]
    inputs += [c for c in caches if isinstance(c, (str, os.PathLike))]
    names = (rd.METRICS_FILE, rd.REPORT_FILE, rd.CONFUSION_FILE)
    return check_output_files(out_dir, names, inputs, overwrite=overwrite, flag="out_dir")


def evaluate_run(
    run_dir,
    cache=None,
    *,
    split="test",
    out_dir=None,
    num_clips=None,
    baseline=True,
    batch_size=64,
    streaming="auto",
    overwrite=False,
):
    """Evaluates a trained run and writes the report files.

    A feature run reads the cache's features; an end-to-end run decodes the
    frames of the videos its cache (or dataset) lists.

    Args:
        run_dir: A run directory (train-sequence, finetune, from scratch).
        cache: Path of a feature cache, or several read as one (a glob
            pattern or a list; see ``FeatureStore``). Default: the cache
            (or dataset) the run was trained on.
        split: ``"test"``, ``"val"`` or ``"train"``: which labelled videos.
            ``"val"`` is the cache's val split, or the carving the run used.
        out_dir: Where to write metrics.json, classification_report.txt and
            confusion_matrix.png. Default: the run directory for its own test
            split and cache, else ``RUN/eval-SPLIT/`` (another split) or
            ``RUN/eval-SPLIT-CACHE/`` (another cache); see :func:`evaluation_dir`.
        num_clips: Temporal samples per video when the cache holds more rows
            per video than the run's frames (default: the run's eval_clips).
        baseline: Also fit the bag-of-frames baseline on the cache's training
            split (feature runs; skipped when the cache has none).
        batch_size: Videos per batch (at most 8 for an end-to-end run).
        streaming: ``"auto"``, ``"memory"`` or ``"stream"`` (feature runs).
        overwrite: Replace the report files of an earlier evaluation in ``out_dir``.

    Returns:
        An :class:`~vidseq.sequence.runs.results.EvaluationResult`.

    Raises:
        UsageError: incomplete run directory, a cache that is not one
            (``CacheError``), whose features differ from the run's, or that has
            no labelled video in ``split``.
    """
    start = time.perf_counter()
    if split not in ("train", "val", "test"):
        raise UsageError(f"split must be 'train', 'val' or 'test'. Received: split={split!r}")
    if num_clips is not None:
        num_clips = check_count("num_clips", num_clips, high=MAX_CLIPS)
    run = load_run(run_dir)
    out_dir = evaluation_dir(run.path, run.config, cache, split, out_dir, overwrite=overwrite)
    if run.end_to_end:
        metrics = _evaluate_frames(run, cache, split, num_clips, min(batch_size, 8))
    else:
        metrics = _evaluate_cached(run, cache, split, num_clips, batch_size, baseline, streaming)
    metrics["run_dir"] = str(run.path.resolve())
    metrics["seconds"] = round(time.perf_counter() - start, 3)
    files = write_evaluation(metrics, out_dir)
    return EvaluationResult(metrics, [str(p) for p in files])


def _evaluate_cached(run, cache, split, num_clips, batch_size, baseline, streaming):
    """evaluate_run's metrics for a feature run, on a cache's features."""
    config = run.config
    if cache is None:
        cache = config.get("cache_path")
        if not cache:
            raise UsageError(f"{run.path}: config.json names no cache; pass cache=")
    with FeatureStore(cache) as store:
        check_cache_matches_run(config, store.meta, str(cache))
        indices, resolved = split_indices(
            store, split, **rd.split_keywords(config), source=str(cache)
        )
        baseline_train = resolved.train if baseline and resolved is not None else None
        needed = np.union1d(indices, [] if baseline_train is None else baseline_train)
        streamed = decide_streaming(streaming, feature_bytes(store, needed))
        metrics = evaluate_features(
            run.model,
            store,
            config,
            indices,
            features=make_features(store, needed.astype(np.int64), streamed),
            split=split,
            num_clips=num_clips,
            batch_size=batch_size,
            baseline_train=baseline_train,
        )
    metrics["cache"] = absolute_cache_spec(cache)
    return metrics


def _evaluate_frames(run, cache, split, num_clips, batch_size):
    """evaluate_run's metrics for an end-to-end run: decodes the frames of its videos.

    The videos, splits (same seed, same carved validation) and frames come from
    the cache the run names, or from ``cache``; only the class names must match
    (the cache's features are not read).
    """
    videos, name = videos_for_run(run.config, cache)
    settings = rd.split_settings(run.config)
    indices, _ = split_indices(videos, split, **rd.split_keywords(run.config), source=name)
    metrics = evaluate_clips(
        run.model,
        videos,
        indices,
        class_names=run.class_names,
        frames=run.frames,
        split=split,
        num_clips=settings["eval_clips"] if num_clips is None else num_clips,
        batch_size=batch_size,
    )
    metrics["cache"] = name
    return metrics
