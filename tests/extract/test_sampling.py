"""Frame sampling: pure functions, checked against hand-computed cases."""

import numpy as np
import pytest

from vidseq.errors import UsageError
from vidseq.extract.decode.sampling import (
    FrameSelection,
    SamplingConfig,
    fps_indices,
    select_frames,
    uniform_indices,
)


def tutorial_fps_sampling(num_source_frames, fps, frame_rate, max_frames):
    """The tutorial's loop, written as it reads frames one by one from the start."""
    frame_interval = max(int(fps / frame_rate), 1)
    frames = []
    for count in range(num_source_frames):
        if len(frames) >= max_frames:
            break
        if count % frame_interval == 0:
            frames.append(count)
    num_valid = len(frames)
    while len(frames) < max_frames:
        frames.append(frames[-1])
    return frames, num_valid


def segment_of(index, n, k):
    """The segment (k*n//K ... (k+1)*n//K - 1) that holds ``index``."""
    bounds = np.arange(k + 1) * n // k
    return int(np.searchsorted(bounds, index, side="right") - 1)


@pytest.mark.parametrize(
    ("n", "k", "expected"),
    [
        (10, 5, [1, 3, 5, 7, 9]),
        (100, 4, [12, 37, 62, 87]),
        (16, 16, list(range(16))),
        (6, 5, [0, 1, 2, 3, 5]),
        (7, 1, [3]),
        (101, 4, [12, 37, 62, 88]),  # last segment 75..100 holds 26 frames
    ],
)
def test_uniform_centres_hand_computed(n, k, expected):
    selection = uniform_indices(n, k)
    assert isinstance(selection, FrameSelection)
    assert selection.indices.dtype == np.int64
    assert selection.indices.tolist() == expected
    assert selection.num_valid == k


@pytest.mark.parametrize(("n", "k"), [(16, 16), (17, 16), (31, 16), (100, 16), (1000, 7), (9, 8)])
def test_uniform_covers_whole_video(n, k):
    indices = uniform_indices(n, k).indices
    assert len(indices) == k
    assert indices[0] < n // k  # inside the first segment
    assert indices[-1] >= (k - 1) * n // k  # inside the last segment
    assert indices[-1] < n
    assert [segment_of(i, n, k) for i in indices] == list(range(k))
    assert np.all(np.diff(indices) > 0)


@pytest.mark.parametrize(("n", "k"), [(3, 5), (1, 16), (15, 16)])
def test_uniform_short_video_is_padded(n, k):
    selection = uniform_indices(n, k)
    assert selection.indices.tolist() == list(range(n)) + [n - 1] * (k - n)
    assert selection.num_valid == n


def test_uniform_short_video_with_rng_is_padded_the_same_way():
    selection = uniform_indices(3, 5, rng=np.random.default_rng(0))
    assert selection.indices.tolist() == [0, 1, 2, 2, 2]
    assert selection.num_valid == 3


@pytest.mark.parametrize(("n", "k"), [(100, 16), (17, 16), (50, 3)])
def test_uniform_random_variant_stays_inside_segments(n, k):
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(50):
        indices = uniform_indices(n, k, rng=rng).indices
        assert [segment_of(i, n, k) for i in indices] == list(range(k))
        seen.add(tuple(indices.tolist()))
    if n >= 2 * k:
        assert len(seen) > 1  # really random


def test_uniform_random_variant_is_reproducible_for_a_seed():
    first = uniform_indices(300, 16, rng=np.random.default_rng(7)).indices
    again = uniform_indices(300, 16, rng=np.random.default_rng(7)).indices
    other = uniform_indices(300, 16, rng=np.random.default_rng(8)).indices
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first, uniform_indices(300, 16).indices)


@pytest.mark.parametrize(
    ("n", "fps", "frame_rate", "k", "expected", "num_valid"),
    [
        (100, 25.0, 5.0, 16, [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75], 16),
        (30, 25.0, 5.0, 8, [0, 5, 10, 15, 20, 25, 25, 25], 6),
        (10, 30.0, 4.0, 4, [0, 7, 7, 7], 2),  # int(7.5) = 7
        (50, 10.0, 20.0, 5, [0, 1, 2, 3, 4], 5),  # step would be 0.5: at least 1
        (100, 29.97, 5.0, 3, [0, 5, 10], 3),  # int(5.994) = 5
        (1, 25.0, 5.0, 3, [0, 0, 0], 1),
    ],
)
def test_fps_indices_hand_computed(n, fps, frame_rate, k, expected, num_valid):
    selection = fps_indices(n, fps, frame_rate, k)
    assert selection.indices.dtype == np.int64
    assert selection.indices.tolist() == expected
    assert selection.num_valid == num_valid


@pytest.mark.parametrize("n", [1, 7, 29, 30, 31, 200])
@pytest.mark.parametrize(
    ("fps", "frame_rate"), [(25.0, 5.0), (30.0, 4.0), (24.0, 30.0), (60.0, 1.0)]
)
def test_fps_indices_match_the_tutorial_loop(n, fps, frame_rate):
    expected, num_valid = tutorial_fps_sampling(n, fps, frame_rate, 16)
    selection = fps_indices(n, fps, frame_rate, 16)
    assert selection.indices.tolist() == expected
    assert selection.num_valid == num_valid


def test_select_frames_dispatches_on_mode():
    uniform = select_frames(SamplingConfig(num_frames=4), 40, 25.0)
    assert uniform.indices.tolist() == uniform_indices(40, 4).indices.tolist()
    fps = select_frames(SamplingConfig(mode="fps", num_frames=4, frame_rate=2.5), 40, 25.0)
    assert fps.indices.tolist() == [0, 10, 20, 30]
    rng_pick = select_frames(SamplingConfig(num_frames=4), 400, 25.0, rng=np.random.default_rng(3))
    expected = uniform_indices(400, 4, rng=np.random.default_rng(3)).indices
    assert rng_pick.indices.tolist() == expected.tolist()


@pytest.mark.parametrize(
    "call",
    [
        lambda: uniform_indices(0, 4),
        lambda: uniform_indices(10, 0),
        lambda: fps_indices(0, 25.0, 5.0, 4),
        lambda: fps_indices(10, float("nan"), 5.0, 4),
        lambda: fps_indices(10, 25.0, 0.0, 4),
    ],
)
def test_bad_arguments_raise_value_error(call):
    with pytest.raises(ValueError, match="Received"):
        call()


def test_sampling_config_round_trip_and_validation():
    config = SamplingConfig(mode="fps", num_frames=8, frame_rate=2)
    d = config.to_dict()
    assert d == {"mode": "fps", "num_frames": 8, "frame_rate": 2.0}
    assert SamplingConfig.from_dict(d) == config
    assert SamplingConfig.from_dict({**d, "crop": "center"}) == config  # unknown keys ignored
    assert SamplingConfig.from_dict({}) == SamplingConfig()
    with pytest.raises(UsageError, match="mode='dense'"):
        SamplingConfig(mode="dense")
    with pytest.raises(UsageError, match="num_frames=0"):
        SamplingConfig(num_frames=0)
    with pytest.raises(UsageError, match="frame_rate"):
        SamplingConfig(frame_rate=-1)
