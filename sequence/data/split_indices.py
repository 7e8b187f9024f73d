"""Train / validation / test indices from a cache's split and group columns."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from vidseq.errors import UsageError
from vidseq.extract.sources.group_split import check_group_disjoint, group_split


@dataclass
class SplitIndices:
    """Cache row indices (into ``FeatureStore``'s video order) of each split.

    Attributes:
        train: Labelled videos the model is fitted on.
        val: Labelled validation videos (early stopping, learning-rate plateau).
        test: Labelled test videos (may be empty).
        val_source: ``"cache"`` when the cache has ``val`` videos, ``"carved"``
            when they were split off the training videos, group-aware, and
            ``"fold I of K"`` for a cross-validation fold (:func:`resolve_splits`).
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    val_source: str

    def sizes(self):
        """Returns ``{"train": n, "val": n, "test": n, "val_source": ...}``."""
        return {
            "train": len(self.train),
            "val": len(self.val),
            "test": len(self.test),
            "val_source": self.val_source,
        }


def effective_groups(groups, video_ids):
    """Groups with an empty group replaced by the video's own id (its own group)."""
    return [g if g else f"video:{v}" for g, v in zip(groups, video_ids, strict=True)]


def resolve_splits(
    labels, splits, groups, video_ids, *, val_fraction=0.15, seed=0, folds=1, fold=0, source=""
):
    """Decides which cached videos train, validate and test.

    ``train`` and ``test`` are the cache's own. Validation is the cache's
    ``val`` videos if it has any, else a group-aware fraction of ``train``
    (``vidseq.extract.sources.group_split.group_split``) so no group is on both sides.
    Videos labelled -1 are left out everywhere.

    With ``folds`` K > 1 (cross-validation), the cache's ``train`` and ``val``
    videos are pooled and cut into K folds by scikit-learn's
    ``StratifiedGroupKFold`` (a group in one fold only; classes balanced as far
    as the groups allow; shuffled by ``seed``): fold ``fold`` validates, the
    other K - 1 train. ``test`` is the cache's, as always.

    Args:
        labels: (N,) int labels (-1 unlabelled).
        splits: (N,) split names (``train``/``val``/``test``/empty).
        groups: (N,) group names (empty: the video is its own group).
        video_ids: (N,) video ids.
        val_fraction: Fraction of training videos carved out for validation
            when the cache has no ``val`` split.
        seed: Seed of the carving and of the folds.
        folds: Cross-validation folds K (1: no cross-validation).
        fold: The fold that validates, 0 to K - 1.
        source: Name of the cache, for error messages.

    Returns:
        A :class:`SplitIndices`.

    Raises:
        UsageError: no labelled video, no training split, a single class, a
            group on both sides of the cache's splits, too few training
            groups to carve a validation set, or fewer groups than folds.
    """
    where = f"{source}: " if source else ""
    labels = np.asarray(labels, dtype=np.int64)
    splits = np.asarray([str(s) for s in splits], dtype=object)
    groups = np.asarray(effective_groups(list(groups), list(video_ids)), dtype=object)
    labelled = labels >= 0
    if not labelled.any():
        raise UsageError(
            f"{where}the cache has no labelled video (every label is -1); "
            "train-sequence needs labels"
        )
    train = np.flatnonzero(labelled & (splits == "train"))
    val = np.flatnonzero(labelled & (splits == "val"))
    test = np.flatnonzero(labelled & (splits == "test"))
    if len(train) == 0:
        found = sorted({str(s) or "(empty)" for s in splits[labelled]})
        raise UsageError(
            f"{where}the cache has no labelled video in the 'train' split "
            f"(splits found: {', '.join(found)}); re-extract with a split or a manifest "
            "split column"
        )
    classes = np.unique(labels[train])
    if len(classes) < 2:
        raise UsageError(
            f"{where}the training split holds a single class (label {int(classes[0])}); "
            "a classifier needs at least 2"
        )
    sided = np.concatenate([train, val, test])
    check_group_disjoint(list(groups[sided]), list(splits[sided]))

    if folds > 1:
        return _fold_splits(
            np.sort(np.concatenate([train, val])), test, labels, groups, folds, fold, seed, where
        )
    if len(val):
        return SplitIndices(train, val, test, "cache")
    if not 0.0 < float(val_fraction) < 1.0:
        raise UsageError(
            f"{where}the cache has no 'val' videos and val_fraction must be in (0, 1) to "
            f"carve them from train. Received: val_fraction={val_fraction!r}"
        )
    carved = np.asarray(
        group_split(
            list(groups[train]),
            list(labels[train]),
            {"train": 1.0 - float(val_fraction), "val": float(val_fraction)},
            seed,
        ),
        dtype=object,
    )
    new_train, new_val = train[carved == "train"], train[carved == "val"]
    if len(new_val) == 0 or len(new_train) == 0:
        raise UsageError(
            f"{where}cannot carve a validation set from {len(train)} training videos in "
            f"{len(set(groups[train]))} groups with val_fraction={val_fraction}; give the cache "
            "a 'val' split or more groups"
        )
    check_group_disjoint(
        list(groups[np.concatenate([new_train, new_val])]),
        ["train"] * len(new_train) + ["val"] * len(new_val),
    )
    return SplitIndices(new_train, new_val, test, "carved")


def _fold_splits(pool, test, labels, groups, folds, fold, seed, where):
    """Fold ``fold`` of ``folds`` group-aware, stratified folds of the ``pool`` videos."""
    if not 0 <= fold < folds:
        raise UsageError(f"fold must be in [0, {folds - 1}]. Received: fold={fold!r}")
    if len(set(groups[pool])) < folds:
        raise UsageError(
            f"{where}cannot cut {len(set(groups[pool]))} groups of training and validation "
            f"videos into {folds} folds; use fewer folds. Received: folds={folds}"
        )
    cutter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a class with fewer groups than folds: as balanced as it can
        warnings.simplefilter("ignore", UserWarning)
        cuts = list(cutter.split(pool, labels[pool], groups[pool]))
    fit, held = cuts[fold]
    return SplitIndices(pool[fit], pool[held], test, f"fold {fold} of {folds}")


def splits_of(videos, *, val_fraction=0.15, seed=0, folds=1, fold=0, source=""):
    """:func:`resolve_splits` of anything listing videos (``FeatureStore``, ``FrameVideos``).

    Args:
        videos: An object with ``labels``, ``splits``, ``groups`` and ``video_ids``.
        val_fraction: See :func:`resolve_splits`.
        seed: See :func:`resolve_splits`.
        folds: See :func:`resolve_splits`.
        fold: See :func:`resolve_splits`.
        source: Name of the data, for error messages.
    """
    return resolve_splits(
        videos.labels,
        videos.splits,
        videos.groups,
        videos.video_ids,
        val_fraction=val_fraction,
        seed=seed,
        folds=folds,
        fold=fold,
        source=source,
    )


def split_indices(videos, split, *, val_fraction=0.15, seed=0, folds=1, fold=0, source=""):
    """The labelled videos of one split, as a run resolved them (same seed, same carved val).

    Data that cannot be split for training (no train split, a single class)
    still has its labelled ``test`` videos.

    Returns:
        ``(indices, resolved)``: the split's indices, and the :class:`SplitIndices`
        (None when only the test videos could be found).

    Raises:
        UsageError: ``split`` is unknown; a ``train`` or ``val`` split of data
            that cannot be split; no labelled video in ``split``.
    """
    if split not in ("train", "val", "test"):
        raise UsageError(f"split must be 'train', 'val' or 'test'. Received: split={split!r}")
    try:
        resolved = splits_of(
            videos, val_fraction=val_fraction, seed=seed, folds=folds, fold=fold, source=source
        )
        indices = getattr(resolved, split)
    except UsageError:
        if split != "test":
            raise
        labels = np.asarray(videos.labels)
        names = np.asarray([str(s) for s in videos.splits], dtype=object)
        resolved, indices = None, np.flatnonzero((labels >= 0) & (names == "test"))
    if len(indices) == 0:
        where = f"{source}: " if source else ""
        raise UsageError(f"{where}no labelled video in the {split!r} split to evaluate")
    return np.asarray(indices, dtype=np.int64), resolved
