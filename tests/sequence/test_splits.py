"""Train/val/test from the cache's columns; group-aware validation carving."""

import numpy as np
import pytest

from vidseq.errors import UsageError
from vidseq.sequence.data.split_indices import resolve_splits


def _columns(n_train=40, n_val=0, n_test=8, group_size=2, classes=4):
    splits = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    labels = [i % classes for i in range(len(splits))]
    groups = [f"{s}-g{i // group_size}" for i, s in enumerate(splits)]
    ids = [f"v{i}" for i in range(len(splits))]
    return labels, splits, groups, ids


def test_cache_val_split_is_used_as_given():
    labels, splits, groups, ids = _columns(n_val=8)
    result = resolve_splits(labels, splits, groups, ids)
    assert result.val_source == "cache"
    assert result.sizes() == {"train": 40, "val": 8, "test": 8, "val_source": "cache"}


def test_carved_validation_never_shares_a_group_with_training():
    labels, splits, groups, ids = _columns(group_size=4)
    a = resolve_splits(labels, splits, groups, ids, val_fraction=0.25, seed=5)
    b = resolve_splits(labels, splits, groups, ids, val_fraction=0.25, seed=5)
    assert a.val_source == "carved"
    np.testing.assert_array_equal(a.val, b.val)  # seeded
    assert 4 <= len(a.val) <= 16 and len(a.train) + len(a.val) == 40
    groups = np.asarray(groups)
    assert not set(groups[a.train]) & set(groups[a.val])
    assert len(a.test) == 8


def test_empty_groups_count_as_one_group_per_video():
    labels, splits, _, ids = _columns()
    result = resolve_splits(labels, splits, [""] * len(ids), ids, val_fraction=0.2)
    assert len(result.val) > 0


def test_unlabelled_videos_are_left_out():
    labels, splits, groups, ids = _columns()
    labels[0] = -1
    result = resolve_splits(labels, splits, groups, ids)
    assert 0 not in result.train and 0 not in result.val


def test_a_group_on_both_sides_of_the_cache_splits_is_refused():
    labels, splits, groups, ids = _columns(n_val=4)
    groups[-1] = groups[0]  # a test video in a training group
    with pytest.raises(UsageError, match=r"group 'train-g0' is on two sides"):
        resolve_splits(labels, splits, groups, ids)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c[0].__setitem__(slice(None), [-1] * len(c[0])), "no labelled video"),
        (
            lambda c: c[1].__setitem__(slice(None), ["test"] * len(c[1])),
            "no labelled video in the 'train'",
        ),
        (lambda c: c[0].__setitem__(slice(None), [1] * len(c[0])), "single class"),
    ],
)
def test_unusable_columns_are_refused(change, message):
    columns = _columns()
    change(columns)
    with pytest.raises(UsageError, match=message):
        resolve_splits(*columns, source="x.h5")


def test_too_few_groups_to_carve_validation_is_refused():
    labels, splits, groups, ids = _columns(n_train=4, group_size=4, classes=2)
    with pytest.raises(UsageError, match="cannot carve a validation set"):
        resolve_splits(labels, splits, groups, ids)


def test_folds_pool_train_and_val_and_validate_each_video_once():
    labels, splits, groups, ids = _columns(n_train=36, n_val=12, group_size=2)
    groups = np.asarray(groups)
    folds = [resolve_splits(labels, splits, groups, ids, folds=3, fold=k, seed=4) for k in range(3)]
    pool = np.arange(48)  # the 36 train and 12 val videos; the 8 test videos stay test
    for k, split in enumerate(folds):
        assert split.val_source == f"fold {k} of 3"
        np.testing.assert_array_equal(np.sort(np.concatenate([split.train, split.val])), pool)
        assert not set(groups[split.train]) & set(groups[split.val])
        np.testing.assert_array_equal(split.test, np.arange(48, 56))
        assert np.bincount(np.asarray(labels)[split.val], minlength=4).min() >= 2  # stratified
    np.testing.assert_array_equal(np.sort(np.concatenate([s.val for s in folds])), pool)
    again = resolve_splits(labels, splits, groups, ids, folds=3, fold=1, seed=4)
    other = resolve_splits(labels, splits, groups, ids, folds=3, fold=1, seed=5)
    np.testing.assert_array_equal(again.val, folds[1].val)  # seeded
    assert set(other.val) != set(folds[1].val)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"folds": 30}, r"cannot cut 24 groups .* into 30 folds"),
        ({"folds": 3, "fold": 3}, r"fold must be in \[0, 2\]. Received: fold=3"),
    ],
)
def test_impossible_folds_are_refused(options, message):
    with pytest.raises(UsageError, match=message):
        resolve_splits(*_columns(n_train=40, n_val=8), **options)
