"""Group-aware splitting: no group on two sides, stratified, deterministic."""

from collections import Counter, defaultdict

import numpy as np
import pytest

from vidseq.errors import UsageError
from vidseq.extract.sources.group_split import check_group_disjoint, group_split


def _random_dataset(rng, num_videos, num_groups, num_labels):
    groups = [f"g{int(g):02d}" for g in rng.integers(0, num_groups, num_videos)]
    labels = [int(label) for label in rng.integers(0, num_labels, num_videos)]
    return groups, labels


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    ("num_videos", "num_groups", "num_labels"),
    [(1, 1, 1), (5, 2, 2), (40, 7, 3), (200, 25, 5), (300, 300, 4), (57, 11, 9)],
)
def test_no_group_on_two_sides(seed, num_videos, num_groups, num_labels):
    rng = np.random.default_rng([seed, num_videos, num_groups])
    groups, labels = _random_dataset(rng, num_videos, num_groups, num_labels)
    splits = group_split(groups, labels, (0.7, 0.15, 0.15), seed)
    assert len(splits) == num_videos
    assert set(splits) <= {"train", "val", "test"}
    sides = defaultdict(set)
    for group, split in zip(groups, splits, strict=True):
        sides[group].add(split)
    assert all(len(s) == 1 for s in sides.values()), sides
    check_group_disjoint(groups, splits)  # agrees: raises nothing


def test_deterministic_for_a_seed_and_seed_matters():
    rng = np.random.default_rng(1)
    groups, labels = _random_dataset(rng, 120, 120, 3)
    first = group_split(groups, labels, (0.7, 0.15, 0.15), 5)
    assert group_split(groups, labels, (0.7, 0.15, 0.15), 5) == first
    assert group_split(groups, labels, (0.7, 0.15, 0.15), 6) != first


def test_result_does_not_depend_on_input_order():
    rng = np.random.default_rng(2)
    groups, labels = _random_dataset(rng, 80, 20, 3)
    splits = group_split(groups, labels, (0.7, 0.15, 0.15), 3)
    order = rng.permutation(80)
    shuffled = group_split(
        [groups[i] for i in order], [labels[i] for i in order], (0.7, 0.15, 0.15), 3
    )
    assert shuffled == [splits[i] for i in order]


def test_singleton_groups_give_a_stratified_split():
    labels = [label for label in range(4) for _ in range(40)]
    groups = [f"video{i}" for i in range(len(labels))]
    splits = group_split(groups, labels, (0.7, 0.15, 0.15), 0)
    per_label = Counter(zip(labels, splits, strict=True))
    for label in range(4):
        assert per_label[label, "train"] == 28
        assert per_label[label, "val"] == 6
        assert per_label[label, "test"] == 6


def test_groups_of_one_label_are_balanced_per_label():
    # 3 labels x 10 groups of 3 clips: per label 7 / 1.5 / 1.5 groups.
    labels, groups = [], []
    for label in range(3):
        for g in range(10):
            labels += [label] * 3
            groups += [f"{label}-g{g}"] * 3
    splits = group_split(groups, labels, (0.7, 0.15, 0.15), 4)
    per_label = Counter(zip(labels, splits, strict=True))
    for label in range(3):
        assert 18 <= per_label[label, "train"] <= 24
        assert per_label[label, "val"] >= 3
        assert per_label[label, "test"] >= 3


def test_zero_fraction_side_gets_nothing_and_mapping_fractions():
    groups = [str(i) for i in range(50)]
    labels = [i % 2 for i in range(50)]
    splits = group_split(groups, labels, {"train": 0.8, "test": 0.2}, 0)
    assert "val" not in splits
    assert Counter(splits) == {"train": 40, "test": 10}


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (-1, 1, 1), (0, 0, 0), {"dev": 1.0}])
def test_bad_fractions(fractions):
    with pytest.raises(UsageError, match="fractions"):
        group_split(["a"], [0], fractions, 0)


def test_lengths_must_agree():
    with pytest.raises(UsageError, match="same length"):
        group_split(["a", "b"], [0], (0.7, 0.15, 0.15), 0)


def test_check_group_disjoint_names_the_first_bad_group():
    groups = ["g01", "g02", "g02", "g01", "g03"]
    splits = ["train", "test", "train", "val", "train"]
    with pytest.raises(UsageError, match=r"group 'g02' .*test \(line 3\) and train \(line 4\)"):
        check_group_disjoint(groups, splits, names=[f"line {i + 2}" for i in range(5)])


def test_check_group_disjoint_ignores_unassigned():
    check_group_disjoint(["g01", "g01", "g02"], ["train", "", "test"])


def test_a_small_share_still_gets_a_group_when_groups_are_few():
    groups = ["g1"] * 4 + ["g2"] * 4 + ["g3"] * 4
    labels = [0, 1, 0, 1] * 3
    splits = group_split(groups, labels, {"train": 0.85, "val": 0.15}, seed=0)
    assert splits.count("val") == 4 and splits.count("train") == 8
    assert group_split(["g1"] * 4, [0, 1, 0, 1], {"train": 0.85, "val": 0.15}) == ["train"] * 4
