"""Offline sample data: real videos, promised lengths and rates, UCF-101 lists, determinism."""

import hashlib
import json

import cv2
import numpy as np
import pytest

from vidseq.errors import UsageError
from vidseq.extract.sources.dataset import load_dataset
from vidseq.extract.sources.sample_data import (
    FPS_RANGE,
    FRAME_COUNT_RANGE,
    FRAME_SIZE,
    MARKER_FILE,
    SAMPLE_CLASSES,
    SAMPLE_PAIRS,
    make_sample,
    sample_video,
)

SMALL = {"classes": ["Grow", "Shrink", "RotateCW"], "videos_per_class": 4}


def _decode(path):
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return frames, fps


def _digests(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small_sample(tmp_path_factory):
    return make_sample(tmp_path_factory.mktemp("sample") / "data", seed=7, **SMALL)


def test_layout_and_lists_parse_back(small_sample):
    root = small_sample
    assert sorted(p.name for p in root.iterdir()) == sorted(
        ["Grow", "RotateCW", "Shrink", "ucfTrainTestlist", MARKER_FILE]
    )
    lists = root / "ucfTrainTestlist"
    assert lists.joinpath("classInd.txt").read_bytes() == b"1 Grow\r\n2 RotateCW\r\n3 Shrink\r\n"
    train = lists.joinpath("trainlist01.txt").read_text().splitlines()
    test = lists.joinpath("testlist01.txt").read_text().splitlines()
    # 4 videos per class = groups g01, g02 of 2 clips; g01 is the test group.
    assert train[0] == "Grow/v_Grow_g02_c01.avi 1"
    assert test[0] == "Grow/v_Grow_g01_c01.avi"
    assert len(train) == 6 and len(test) == 6

    dataset = load_dataset(root, "ucf101", split=1)
    assert dataset.class_names == ["Grow", "RotateCW", "Shrink"]
    assert dataset.warnings == []
    assert len(dataset) == 12
    by_id = {item.video_id: item for item in dataset.items}
    item = by_id["Shrink/v_Shrink_g02_c02.avi"]
    assert (item.label, item.split, item.group) == (2, "train", "g02")
    assert {i.split for i in dataset.items if i.group == "g01"} == {"test"}
    assert load_dataset(root).source == "ucf101"  # auto detection
    folder = load_dataset(root, "folder")
    assert folder.class_names == dataset.class_names
    assert [i.label for i in folder.items] == [i.label for i in dataset.items]


def test_videos_decode_with_promised_counts_and_rates(small_sample):
    marker = json.loads((small_sample / MARKER_FILE).read_text())
    assert len(marker["videos"]) == 12
    for video in marker["videos"]:
        frames, fps = _decode(small_sample / video["path"])
        assert len(frames) == video["frames"], video  # counted, not the header's claim
        assert FRAME_COUNT_RANGE[0] <= len(frames) <= FRAME_COUNT_RANGE[1]
        assert fps == pytest.approx(video["fps"])
        assert FPS_RANGE[0] <= fps <= FPS_RANGE[1]
        assert frames[0].shape == (*FRAME_SIZE, 3)
    assert len({v["frames"] for v in marker["videos"]}) > 1
    assert len({v["fps"] for v in marker["videos"]}) > 1


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, small_sample):
    again = make_sample(tmp_path / "again", seed=7, **SMALL)
    assert _digests(again) == _digests(small_sample)
    other = make_sample(tmp_path / "other", seed=8, **SMALL)
    first, second = _digests(small_sample), _digests(other)
    assert first.keys() == second.keys()
    videos = [name for name in first if name.endswith(".avi")]
    assert all(first[name] != second[name] for name in videos)


DRAWN = {  # sha256 of the drawn frames of clip g02_c01, seed 0 (the demo's data), first 16
    "Grow": "bd7005407d2545a5",
    "FadeIn": "e06f5727d5b21634",
    "RedToBlue": "de6da042117ff3fd",
    "RotateCW": "e801f0e0791b99ef",
}


@pytest.mark.parametrize(("name", "digest"), DRAWN.items())
def test_drawn_frames_stay_the_frames_the_docs_measured(name, digest):
    """One clip per kind of change (size, opacity, colour, rotation), pixel for pixel.

    docs/results.md reports the demo on these frames; a change to the drawing (or to the
    way it is computed) must not change a pixel unless those figures are measured again.
    """
    frames, _ = sample_video(name, 2, 1, seed=0)
    assert hashlib.sha256(b"".join(f.tobytes() for f in frames)).hexdigest()[:16] == digest


def test_default_set_size():
    assert len(SAMPLE_CLASSES) == 8
    assert sorted(SAMPLE_CLASSES) == sorted(n for pair in SAMPLE_PAIRS for n in pair)


def _spread(frame):
    return float(frame.astype(np.float64).reshape(-1, 3).var(axis=0).sum())


def _red_minus_blue(frame):
    return float(frame[..., 0].astype(np.float64).sum() - frame[..., 2].astype(np.float64).sum())


@pytest.mark.parametrize("group", [1, 2, 3])
@pytest.mark.parametrize(
    ("forward", "backward", "measure"),
    [("Grow", "Shrink", _spread), ("FadeIn", "FadeOut", _spread)],
)
def test_shape_appears_in_forward_class_and_vanishes_in_backward(group, forward, backward, measure):
    # A larger or more opaque contrasting shape spreads the frame's colours more.
    frames, _ = sample_video(forward, group, 1, seed=0)
    assert measure(frames[-1]) > measure(frames[0])
    frames, _ = sample_video(backward, group, 1, seed=0)
    assert measure(frames[-1]) < measure(frames[0])


@pytest.mark.parametrize("group", [1, 2, 3])
def test_colour_classes_go_the_way_they_are_named(group):
    frames, _ = sample_video("RedToBlue", group, 2, seed=0)
    assert _red_minus_blue(frames[-1]) < _red_minus_blue(frames[0])
    frames, _ = sample_video("BlueToRed", group, 2, seed=0)
    assert _red_minus_blue(frames[-1]) > _red_minus_blue(frames[0])


def _orientation(frame_or_mask):
    moments = cv2.moments(frame_or_mask.astype(np.float32))
    return 0.5 * np.arctan2(2 * moments["mu11"], moments["mu20"] - moments["mu02"])


def _turns(frames):
    """Summed change of the principal-axis angle of the shape, frame to frame (radians)."""
    total = 0.0
    previous = None
    for frame in frames:
        angle = _orientation(_shape_mask(frame))
        if previous is not None:
            step = (angle - previous + np.pi / 2) % np.pi - np.pi / 2
            total += step
        previous = angle
    return total


def _shape_mask(frame):
    # Shapes are bright (every channel above 150), backgrounds dark (every channel below 50).
    return frame.min(axis=-1) > 100


@pytest.mark.parametrize("group", [1, 2])
def test_rotation_direction_on_screen(group):
    # In image coordinates (y down) a growing moment angle is a clockwise turn.
    clockwise, _ = sample_video("RotateCW", group, 1, seed=0)
    counter, _ = sample_video("RotateCCW", group, 1, seed=0)
    assert _turns(clockwise) > np.deg2rad(60)
    assert _turns(counter) < -np.deg2rad(60)


def test_bad_arguments(tmp_path):
    with pytest.raises(UsageError, match="unknown sample class"):
        make_sample(tmp_path / "a", classes=["Grow", "Walk"])
    with pytest.raises(UsageError, match="videos_per_class"):
        make_sample(tmp_path / "b", videos_per_class=0)
    with pytest.raises(UsageError, match="seed"):
        make_sample(tmp_path / "c", seed=-1)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    with pytest.raises(UsageError, match="exists and is not empty"):
        make_sample(busy, classes=["Grow"], videos_per_class=1)
    with pytest.raises(UsageError, match="not a make-sample output"):
        make_sample(busy, classes=["Grow"], videos_per_class=1, overwrite=True)
    assert (busy / "mine.txt").read_text() == "keep me"


def test_overwrite_replaces_an_earlier_sample(tmp_path):
    out = make_sample(tmp_path / "s", classes="Grow,Shrink", videos_per_class=1)
    assert (out / "ucfTrainTestlist" / "testlist01.txt").read_text() == ""  # one group: no test
    make_sample(out, classes=["FadeIn"], videos_per_class=1, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["FadeIn", "ucfTrainTestlist", MARKER_FILE]
    assert not list(tmp_path.glob(".s.partial-*"))
