"""Group-aware train/val/test splitting and checking (pure functions).

Clips cut from one long video (UCF-101 calls such a set a *group*, ``g08``) look
alike. A random per-clip split, as in the keras-io tutorial, puts some of them
in train and others in test, and the test accuracy then measures memory of the
scene rather than recognition of the action. Here a group always lands on one
side of the split; inside that rule the split is stratified by label as far as
the groups allow, and deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from vidseq.errors import UsageError

SPLIT_NAMES = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)


def _normalise_fractions(fractions) -> np.ndarray:
    if isinstance(fractions, Mapping):
        unknown = sorted(set(fractions) - set(SPLIT_NAMES))
        if unknown:
            raise UsageError(
                f"unknown split names in fractions: {unknown}; expected keys among "
                f"train, val, test. Received: fractions={dict(fractions)!r}"
            )
        values = [fractions.get(name, 0.0) for name in SPLIT_NAMES]
    else:
        values = list(fractions)
        if len(values) != len(SPLIT_NAMES):
            raise UsageError(
                "fractions must give 3 numbers (train, val, test). "
                f"Received: fractions={fractions!r}"
            )
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise UsageError(f"fractions must be numbers. Received: fractions={fractions!r}") from None
    if not np.all(np.isfinite(array)) or np.any(array < 0) or array.sum() <= 0:
        raise UsageError(
            "fractions must be non-negative numbers with a positive sum. "
            f"Received: fractions={fractions!r}"
        )
    return array / array.sum()


def group_split(
    groups: Sequence,
    labels: Sequence,
    fractions: Sequence[float] | Mapping[str, float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> list[str]:
    """Assigns every video to train, val or test, keeping each group on one side.

    Groups are placed one at a time, largest first (ties in a seeded random
    order), each on the side that brings the per-label counts closest to their
    targets (``fraction * videos of that label``) and the side totals closest to
    theirs. A side with a positive share that stays empty then receives the
    smallest group of the side holding the most groups (when that has two).
    Singleton groups therefore give a stratified split; big groups that
    mix labels give the best split their sizes allow.

    Args:
        groups: One group name per video (any hashable; compared as strings).
        labels: One label per video (any hashable, e.g. an int or -1).
        fractions: Shares of train, val and test: a sequence of 3 numbers or a
            mapping with keys among ``"train"``, ``"val"``, ``"test"``
            (missing keys count as 0). They are normalised to sum to 1; a side
            with share 0 receives nothing.
        seed: Seed of the order in which equally large groups are placed.

    Returns:
        A list of ``"train"`` / ``"val"`` / ``"test"``, one per video, in input
        order. The same inputs and seed always give the same list.

    Raises:
        UsageError: ``groups`` and ``labels`` differ in length, or bad fractions.
    """
    groups = [str(group) for group in groups]
    labels = list(labels)
    if len(groups) != len(labels):
        raise UsageError(
            f"groups and labels must have the same length. Received: {len(groups)} groups "
            f"and {len(labels)} labels"
        )
    shares = _normalise_fractions(fractions)
    if not groups:
        return []

    group_names = sorted(set(groups))
    group_index = {name: i for i, name in enumerate(group_names)}
    label_index: dict = {}
    for label in labels:
        label_index.setdefault(label, len(label_index))
    counts = np.zeros((len(group_names), len(label_index)), dtype=np.float64)
    for group, label in zip(groups, labels, strict=True):
        counts[group_index[group], label_index[label]] += 1

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(group_names))
    sizes = counts.sum(axis=1)
    order = order[np.argsort(-sizes[order], kind="stable")]

    targets = shares[:, None] * counts.sum(axis=0)[None, :]  # (3, L)
    total_targets = targets.sum(axis=1)
    current = np.zeros_like(targets)
    current_totals = np.zeros(len(SPLIT_NAMES))
    assignment = np.empty(len(group_names), dtype=np.int64)
    for g in order:
        row = counts[g]
        size = row.sum()
        # Growth of the squared distance to the targets if the group went to each side.
        delta = ((2.0 * (current - targets) + row) * row).sum(axis=1)
        delta += size * (2.0 * (current_totals - total_targets) + size)
        delta[shares == 0] = np.inf
        fill = current_totals / np.maximum(total_targets, 1e-12)
        best = min(range(len(SPLIT_NAMES)), key=lambda s: (round(delta[s], 9), fill[s], s))
        assignment[g] = best
        current[best] += row
        current_totals[best] += size
    _fill_empty_sides(assignment, sizes, shares)
    return [SPLIT_NAMES[assignment[group_index[group]]] for group in groups]


def _fill_empty_sides(assignment: np.ndarray, sizes: np.ndarray, shares: np.ndarray) -> None:
    """Gives every side with a positive share at least one group, where groups allow.

    With few, large groups a small share (say 15 % of three groups) would otherwise
    stay empty; the smallest group of the side holding the most groups moves there.
    """
    for side in np.flatnonzero(shares > 0):
        if np.any(assignment == side):
            continue
        held = np.bincount(assignment, minlength=len(shares))
        donor = int(np.argmax(held))
        if held[donor] < 2:
            return
        members = np.flatnonzero(assignment == donor)
        assignment[members[np.argmin(sizes[members])]] = side


def check_group_disjoint(groups: Sequence, splits: Sequence[str], *, names=None) -> None:
    """Checks that no group has videos on two sides of a split.

    Videos whose split is empty (unassigned) are ignored.

    Args:
        groups: One group name per video.
        splits: One split name per video (``"train"``, ``"val"``, ``"test"`` or
            ``""``).
        names: Optional description of each video (a video id, ``"line 7"``),
            quoted in the error.

    Raises:
        UsageError: Naming the first group found on two sides, and the two sides.
    """
    groups = [str(group) for group in groups]
    splits = list(splits)
    if len(groups) != len(splits):
        raise UsageError(
            f"groups and splits must have the same length. Received: {len(groups)} groups "
            f"and {len(splits)} splits"
        )
    first_seen: dict[str, int] = {}
    for i, (group, split) in enumerate(zip(groups, splits, strict=True)):
        if not split:
            continue
        j = first_seen.setdefault(group, i)
        if splits[j] != split:
            where_j = f" ({names[j]})" if names is not None else ""
            where_i = f" ({names[i]})" if names is not None else ""
            raise UsageError(
                f"group {group!r} is on two sides of the split: {splits[j]}{where_j} and "
                f"{split}{where_i}; all videos of a group must share one split"
            )
