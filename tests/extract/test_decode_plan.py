"""The decode planner's choices, on packet indexes with known keyframes."""

from fractions import Fraction

import numpy as np
import pytest

from vidseq.errors import UsageError
from vidseq.extract.decode.decode_plan import SEEK_PENALTY_FRAMES, DecodeRun, plan_cost, plan_decode
from vidseq.extract.decode.packet_index import PacketIndex


def make_index(num_frames, keyframes):
    return PacketIndex(
        pts=np.arange(num_frames, dtype=np.int64) * 512,
        keyframes=np.asarray(keyframes, dtype=np.int64),
        time_base=Fraction(1, 12800),
        start_time=0,
        fps=25.0,
        codec="h264",
    )


def test_every_frame_a_keyframe_seeks_to_each_distant_target():
    index = make_index(100, range(100))
    runs = plan_decode(index, [10, 50, 90])
    assert runs == [DecodeRun(10, (10,)), DecodeRun(50, (50,)), DecodeRun(90, (90,))]
    assert plan_cost(runs) == 3


def test_one_keyframe_is_one_sequential_run():
    index = make_index(100, [0])
    runs = plan_decode(index, [90, 10, 50, 50])  # any order, repeats allowed
    assert runs == [DecodeRun(0, (10, 50, 90))]
    assert plan_cost(runs) == 91


def test_each_gap_takes_the_cheaper_way():
    index = make_index(300, range(0, 300, 50))
    # 10 -> 240: through decodes 230, a seek to 200 decodes 41 (+ penalty): seek.
    # 245 -> 290: through decodes 45, a seek to 250 decodes 41 (+ penalty): seek.
    runs = plan_decode(index, [0, 10, 240, 245, 290])
    assert runs == [DecodeRun(0, (0, 10)), DecodeRun(200, (240, 245)), DecodeRun(250, (290,))]
    assert plan_cost(runs) == 11 + 46 + 41
    # A keyframe right after the position saves nothing: decode through.
    assert plan_decode(index, [249, 262]) == [DecodeRun(200, (249, 262))]


def test_a_tie_decodes_through():
    index = make_index(100, [0, 20])
    seek = 25 - 20 + 1 + SEEK_PENALTY_FRAMES  # frames a seek to 20 costs for target 25
    assert len(plan_decode(index, [25 - seek, 25])) == 1  # through costs the same
    assert len(plan_decode(index, [25 - seek - 1, 25])) == 2  # through costs one more


@pytest.mark.parametrize("seed", range(5))
def test_a_plan_never_costs_more_than_sequential_decoding(seed):
    rng = np.random.default_rng(seed)
    count = int(rng.integers(20, 2000))
    keyframes = np.union1d([0], rng.choice(count, size=int(rng.integers(1, 40)), replace=False))
    index = make_index(count, keyframes)
    targets = rng.choice(count, size=16)
    runs = plan_decode(index, targets)
    assert plan_cost(runs) <= max(targets) + 1
    assert sorted({t for run in runs for t in run.targets}) == sorted(set(targets.tolist()))
    for run in runs:
        assert run.start in keyframes
        assert run.start <= run.targets[0]


@pytest.mark.parametrize("targets", [[], [-1], [100]])
def test_targets_outside_the_video_are_refused(targets):
    with pytest.raises(UsageError, match=r"targets must be frame indices in \[0, 100\)"):
        plan_decode(make_index(100, [0]), targets)


def test_keyframe_before():
    index = make_index(100, [0, 30, 60])
    assert [index.keyframe_before(i) for i in (0, 29, 30, 59, 99)] == [0, 0, 30, 30, 60]
    assert index.frame_of(512 * 7) == 7
    assert index.frame_of(513) == -1
    assert index.frame_of(None) == -1
