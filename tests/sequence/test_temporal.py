"""Temporal sampling and shifting on cached feature rows (pure NumPy)."""

import numpy as np
import pytest

from vidseq.errors import UsageError
from vidseq.sequence.data.temporal import (
    clip_offsets,
    gather_clip,
    prepare_clip,
    segment_positions,
    temporal_shift,
)


def test_centre_sample_takes_the_middle_of_each_segment():
    # 16 valid rows, 4 segments of 4 rows: centres at 2, 6, 10, 14.
    assert segment_positions(16, 4).tolist() == [2, 6, 10, 14]
    # Offset 0 takes the first row of each segment.
    assert segment_positions(16, 4, 0.0).tolist() == [0, 4, 8, 12]


def test_random_sample_stays_inside_each_segment_and_varies():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        pos = segment_positions(20, 4, rng.random(4))
        for k, p in enumerate(pos):
            assert 5 * k <= p < 5 * (k + 1)
        seen.add(tuple(pos))
    assert len(seen) > 50


def test_short_video_gives_all_valid_rows_in_order():
    assert segment_positions(3, 8).tolist() == [0, 1, 2]
    assert segment_positions(8, None).tolist() == list(range(8))


def test_clip_offsets_spread_evenly():
    assert clip_offsets(1) == [0.5]
    assert clip_offsets(4) == [0.125, 0.375, 0.625, 0.875]
    with pytest.raises(UsageError, match="num_clips"):
        clip_offsets(0)


def test_gather_clip_zeroes_rows_after_the_valid_part():
    feats = np.arange(10 * 3, dtype=np.float32).reshape(10, 3) + 1
    x, valid = gather_clip(feats, 4, 6)  # 4 valid rows (rows 4..9 are padding junk)
    assert valid == 4
    np.testing.assert_array_equal(x[:4], feats[:4])
    assert not x[4:].any()
    x, valid = gather_clip(feats, 10, 5, 0.5)
    assert valid == 5
    np.testing.assert_array_equal(x, feats[[1, 3, 5, 7, 9]])
    assert prepare_clip(feats, 10, 5).shape == (5, 3)


def test_temporal_shift_rolls_inside_the_valid_part_and_signs_differ():
    x = np.zeros((6, 1), dtype=np.float32)
    x[:4, 0] = [1, 2, 3, 4]  # 4 valid rows, 2 padding rows
    later = temporal_shift(x, 4, 1)
    earlier = temporal_shift(x, 4, -1)
    assert later[:, 0].tolist() == [4, 1, 2, 3, 0, 0]
    assert earlier[:, 0].tolist() == [2, 3, 4, 1, 0, 0]
    assert not np.array_equal(later, earlier)
    np.testing.assert_array_equal(temporal_shift(x, 4, 0), x)
    np.testing.assert_array_equal(temporal_shift(x, 4, 4), x)  # full turn
    np.testing.assert_array_equal(temporal_shift(temporal_shift(x, 4, 3), 4, -3), x)
    assert x[:, 0].tolist() == [1, 2, 3, 4, 0, 0]  # input untouched
