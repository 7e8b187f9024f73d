"""Window planning and segment merging: pure arithmetic."""

import numpy as np
import pytest

from vidseq.errors import UsageError
from vidseq.extract.decode.sampling import SamplingConfig, uniform_indices
from vidseq.sequence.infer.window_plan import merge_segments, plan_windows, window_starts


def test_a_window_as_long_as_the_video_samples_what_whole_clip_sampling_does():
    plan = plan_windows(
        89, 26.0, window=89 / 26.0, stride=1.0, sampling=SamplingConfig(num_frames=6)
    )
    assert len(plan) == 1
    np.testing.assert_array_equal(plan[0].frame_indices, uniform_indices(89, 6).indices)
    assert (plan[0].start_s, plan[0].end_s) == (0.0, pytest.approx(89 / 26.0))


def test_windows_step_by_the_stride_and_the_last_one_ends_at_the_last_frame():
    assert window_starts(100, 10.0, 2.0, 1.0) == [(k * 10, k * 10 + 20) for k in range(9)]
    assert window_starts(95, 10.0, 2.0, 3.0) == [(0, 20), (30, 50), (60, 80), (75, 95)]
    assert window_starts(7, 10.0, 2.0, 1.0) == [(0, 7)]  # shorter than a window


def test_each_window_is_sampled_inside_its_own_frame_range():
    sampling = SamplingConfig(num_frames=4)
    for window in plan_windows(300, 30.0, window=1.5, stride=0.5, sampling=sampling):
        expected = window.first + uniform_indices(window.stop - window.first, 4).indices
        np.testing.assert_array_equal(window.frame_indices, expected)
    fps_mode = SamplingConfig(mode="fps", num_frames=3, frame_rate=10.0)
    second = plan_windows(300, 30.0, window=1.0, stride=1.0, sampling=fps_mode)[1]
    assert second.frame_indices.tolist() == [30, 33, 36]


@pytest.mark.parametrize("name", ["window", "stride"])
@pytest.mark.parametrize("value", [0, -1.0, float("nan"), "two"])
def test_a_window_or_stride_that_is_not_positive_is_refused_quoting_it(name, value):
    args = {"window": 2.0, "stride": 1.0, name: value}
    with pytest.raises(UsageError, match=f"{name} must be a positive number.*Received: {name}="):
        plan_windows(100, 25.0, sampling=SamplingConfig(), **args)


def test_segments_merge_equal_neighbours_and_tile_the_time_line():
    starts, ends = [0, 1, 2, 3, 4], [2, 3, 4, 5, 6]
    labels = ["a", "a", "b", "b", "a"]
    segments = merge_segments(starts, ends, labels, [0.9, 0.7, 0.6, 0.8, 0.5])
    assert [(s.start, s.end, s.label, s.windows) for s in segments] == [
        (0, 2.5, "a", 2),
        (2.5, 4.5, "b", 2),
        (4.5, 6, "a", 1),
    ]
    assert [s.probability for s in segments] == pytest.approx([0.8, 0.7, 0.5])
    assert merge_segments([], [], [], []) == []
