"""motion and keyframes sampling: selection rules, real encoded videos, caches, predict."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from vidseq.cache.store import FeatureStore
from vidseq.cli import main
from vidseq.errors import UsageError
from vidseq.extract.decode import frames as frames_module
from vidseq.extract.decode.cheap_motion import JPEG_STRIDE
from vidseq.extract.decode.frames import FrameGeometry, read_frames
from vidseq.extract.decode.motion import MotionSignal, motion_indices
from vidseq.extract.decode.sampling import SamplingConfig, uniform_indices
from vidseq.extract.decode.shots import detect_cuts, keyframe_indices, shot_frames
from vidseq.extract.decode.signal_scan import FrameSignal, scan_video
from vidseq.extract.sources.sample_data import make_sample, sparse_event_video

GEOMETRY = FrameGeometry(size=(16, 16))
EVENT = (60, 72)  # frames [60, 72) of EVENT_LENGTH move
EVENT_LENGTH = 120


def event_frames(length=EVENT_LENGTH, event=EVENT):
    """A still textured picture with a bright square crossing it during ``event``."""
    still = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    still = np.repeat(np.repeat(still[::4, ::4], 4, 0), 4, 1)  # blocky: survives MJPG
    frames = [still.copy() for _ in range(length)]
    for t in range(*event):
        x = (t - event[0]) * 4
        frames[t][10:30, x : x + 12] = 255
    return frames


def shot_frames_video(lengths=(30, 45, 45)):
    """Shots of different flat colours with a slow brightness drift, cut hard."""
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    frames = []
    for length, colour in zip(lengths, colours, strict=False):
        for t in range(length):
            frames.append(
                np.full((48, 64, 3), np.clip(np.array(colour) + t // 3, 0, 255), np.uint8)
            )
    return frames


def test_motion_selection_is_deterministic_and_static_video_is_uniform(video_writer, tmp_path):
    signal = np.abs(np.sin(np.arange(200) / 7.0)) * 5
    first = motion_indices(signal, 16, floor=1.0)
    assert np.array_equal(first.indices, motion_indices(signal, 16, floor=1.0).indices)
    still = motion_indices(np.full(200, 0.3), 16, floor=1.0)
    assert np.array_equal(still.indices, uniform_indices(200, 16).indices)

    frames = event_frames()
    static = video_writer(tmp_path / "static.avi", [frames[0]] * 90)
    read = read_frames(static, SamplingConfig(mode="motion", num_frames=8), GEOMETRY)
    assert read.frame_indices.tolist() == uniform_indices(90, 8).indices.tolist()
    assert read.num_source_frames == 90


def test_motion_frames_concentrate_in_the_event_of_a_real_video(video_writer, tmp_path):
    path = video_writer(tmp_path / "event.avi", event_frames())
    sampling = SamplingConfig(mode="motion", num_frames=8)
    read = read_frames(path, sampling, GEOMETRY)
    again = read_frames(path, sampling, GEOMETRY)
    assert np.array_equal(read.frame_indices, again.frame_indices)
    in_event = (read.frame_indices >= EVENT[0]) & (read.frame_indices <= EVENT[1])
    assert in_event.sum() >= 4  # uniform puts 1 of 8 there
    assert np.all(np.diff(read.frame_indices) > 0) and read.num_valid == 8
    # The same pixels as the sequential reader gives for these indices (finetune, predict).
    by_index = read_frames(path, sampling, GEOMETRY, frame_indices=read.frame_indices)
    assert np.array_equal(read.frames, by_index.frames)
    np.testing.assert_allclose(read.timestamps_ms, by_index.timestamps_ms, atol=1e-6)


def test_planned_second_pass_gives_the_frames_holding_gives(video_writer, tmp_path, monkeypatch):
    path = video_writer(tmp_path / "event.avi", event_frames())
    sampling = SamplingConfig(mode="motion", num_frames=8, motion_signal="full")
    assert scan_video(path, sampling, hold=True).held.keys() == set(range(EVENT_LENGTH))
    assert scan_video(path, sampling).held is None
    held = read_frames(path, sampling, GEOMETRY)
    monkeypatch.setattr(frames_module, "MAX_HELD_BYTES", 0)  # too long to hold: by plan
    planned = read_frames(path, sampling, GEOMETRY)
    monkeypatch.setenv("VIDSEQ_DECODER", "opencv")  # no index: sequentially by the scan's choice
    sequential = read_frames(path, sampling, GEOMETRY)
    for other in (planned, sequential):
        assert np.array_equal(held.frame_indices, other.frame_indices)
        assert np.array_equal(held.frames, other.frames)
        np.testing.assert_allclose(held.timestamps_ms, other.timestamps_ms, atol=1e-6)
        assert held.num_source_frames == other.num_source_frames == EVENT_LENGTH


def test_motion_between_decoded_frames_is_shared_by_the_skipped_ones():
    signal = MotionSignal()
    signal.add(np.zeros((4, 4), np.uint8), 0)
    signal.add(np.full((4, 4), 30, np.uint8), 3)  # frames 1 and 2 were not decoded
    signal.pad_to(5)  # nor was frame 4, after the last decoded one
    assert signal.values().tolist() == [0.0, 10.0, 10.0, 10.0, 0.0]
    with pytest.raises(ValueError, match="position=2"):
        signal.add(np.zeros((4, 4), np.uint8), 2)


def test_random_motion_variant_stays_in_its_motion_segments():
    signal = 1.0 + 3.0 * (np.arange(300) % 50 < 10)  # bursts, none heavier than a segment
    cumulative = np.cumsum(signal)
    k = 12
    bounds = np.arange(k + 1) * cumulative[-1] / k
    seen = set()
    for seed in range(20):
        chosen = motion_indices(signal, k, floor=1.0, rng=np.random.default_rng(seed)).indices
        start = np.concatenate([[0.0], cumulative[:-1]])[chosen]
        # Frame i covers [start, cumulative[i]): it overlaps motion segment j.
        assert np.all(start < bounds[1:]) and np.all(cumulative[chosen] > bounds[:-1])
        seen.add(tuple(chosen))
    assert len(seen) > 10


def test_shot_cuts_are_found_and_frames_follow_shot_lengths(video_writer, tmp_path):
    frames = shot_frames_video()
    signal = FrameSignal(SamplingConfig(mode="keyframes"))
    for frame in frames:
        signal.add_image(frame[:, :, ::-1].copy())
    change = signal.values()
    assert detect_cuts(change, 0.3, 3.0).tolist() == [30, 75]
    assert shot_frames(120, [30, 75], 12).tolist() == [3, 5, 4]

    path = video_writer(tmp_path / "shots.avi", frames)
    sampling = SamplingConfig(mode="keyframes", num_frames=12)
    read = read_frames(path, sampling, GEOMETRY)
    shot_of = np.searchsorted([30, 75], read.frame_indices, side="right")
    assert np.bincount(shot_of, minlength=3).tolist() == [3, 5, 4]
    for seed in range(10):  # random variant: every segment inside one shot
        rng = np.random.default_rng(seed)
        chosen = keyframe_indices(change, 12, 0.3, 3.0, rng=rng).indices
        shot_of = np.searchsorted([30, 75], chosen, side="right")
        assert np.bincount(shot_of, minlength=3).tolist() == [3, 5, 4]
        assert np.all(np.diff(chosen) > 0)


def test_short_video_is_padded_and_unknown_mode_is_exit_2(video_writer, tmp_path, capsys):
    path = video_writer(tmp_path / "short.avi", event_frames(5, (1, 4)))
    for mode in ("motion", "keyframes"):
        read = read_frames(path, SamplingConfig(mode=mode, num_frames=8), GEOMETRY)
        assert read.frame_indices.tolist() == [0, 1, 2, 3, 4, 4, 4, 4] and read.num_valid == 5
    with pytest.raises(UsageError, match="mode='sideways'"):
        SamplingConfig(mode="sideways")
    with pytest.raises(UsageError, match="motion_floor"):
        SamplingConfig(mode="motion", motion_floor=0)
    argv = [
        "extract-features",
        "--backbone",
        "tiny",
        str(tmp_path),
        "--out",
        str(tmp_path / "f.h5"),
    ]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--sampling", "sideways"])
    assert exit_info.value.code == 2
    assert "sideways" in capsys.readouterr().err


def test_sparse_event_sample_has_the_same_still_before_and_after(tmp_path):
    frames, _ = sparse_event_video("Grow", 1, 1, event_fraction=0.1)
    assert np.array_equal(frames[0], frames[-1])
    moving = sum(not np.array_equal(frame, frames[0]) for frame in frames)
    assert 0.08 <= moving / len(frames) <= 0.12
    with pytest.raises(UsageError, match="event_fraction"):
        sparse_event_video("Grow", 1, 1, event_fraction=0)
    root = make_sample(
        tmp_path / "s", classes=["Grow", "Shrink"], videos_per_class=2, event_fraction=0.5
    )
    marker = json.loads((root / "vidseq_sample.json").read_text())
    assert marker["event_fraction"] == 0.5
    assert all(v["frames"] >= 80 for v in marker["videos"])


def zero_one_jpeg(path, number):
    """Blanks the JPEG of frame ``number`` of an MJPG AVI: decoding then fails there."""
    data = bytearray(Path(path).read_bytes())
    starts = [m.start() for m in re.finditer(b"\xff\xd8", bytes(data))]
    start, end = starts[number], starts[number + 1] - 8  # keep the next chunk's header
    data[start:end] = bytes(end - start)
    Path(path).write_bytes(bytes(data))


def write_ucf_layout(root, video_writer, videos_per_class=3):
    """Two classes of event videos, the second class played backwards, in UCF-101 layout."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    train, test = [], []
    for label, name in enumerate(("Forward", "Backward"), 1):
        (root / name).mkdir()
        for group in range(1, videos_per_class + 1):
            start = 20 + 15 * group
            frames = event_frames(event=(start, start + 12))
            rel = f"{name}/v_{name}_g{group:02d}_c01.avi"
            video_writer(root / rel, frames[::-1] if label == 2 else frames)
            (test if group == 1 else train).append(f"{rel} {label}")
    (lists / "classInd.txt").write_text("1 Forward\n2 Backward\n")
    (lists / "trainlist01.txt").write_text("".join(f"{line}\n" for line in train))
    (lists / "testlist01.txt").write_text("".join(f"{line.split()[0]}\n" for line in test))


def test_extract_motion_records_failures_indices_and_parameters(tmp_path, video_writer):
    root = tmp_path / "data"
    write_ucf_layout(root, video_writer)
    # Fails midway through, at a frame that the reduced-JPEG signal decodes (one in
    # JPEG_STRIDE: a broken frame that no signal or sampled frame needs goes unnoticed).
    broken = 6 * JPEG_STRIDE
    zero_one_jpeg(root / "Forward/v_Forward_g03_c01.avi", broken)
    out = tmp_path / "f.h5"
    argv = [
        "extract-features",
        "--backbone",
        "tiny",
        str(root),
        "--out",
        str(out),
        "--sampling",
        "motion",
    ]
    options = ["--frames", "6", "--motion-floor", "0.5", "--input-size", "16", "--quiet"]
    assert main([*argv, *options]) == 3  # partial: one video failed
    with FeatureStore(out) as store:
        failed = {f.video_id: f.error for f in store.failed}
        assert list(failed) == ["Forward/v_Forward_g03_c01.avi"]
        assert f"decoding failed after frame {broken}" in failed["Forward/v_Forward_g03_c01.avi"]
        assert len(store) == 5
        assert store.meta.sampling["mode"] == "motion"
        assert store.meta.sampling["motion_floor"] == 0.5
        # What predict does with a run's recorded sampling: the same frames again
        # (tests/sequence/test_predict.py checks it end to end on a motion run).
        sampling = SamplingConfig.from_dict(store.meta.sampling)
        for i in range(len(store)):
            again = read_frames(store.paths[i], sampling, FrameGeometry(size=(16, 16)))
            assert store.frame_indices(i).tolist() == again.frame_indices.tolist()
            uniform = uniform_indices(store.num_source_frames[i], 6).indices
            assert store.frame_indices(i).tolist() != uniform.tolist()
