"""FER-2013 sources on tiny generated copies of the CSV and the image-folder layout."""

import json
import os

import cv2
import numpy as np
import pytest

from vidseq.cache.store import FeatureStore
from vidseq.cli import main
from vidseq.errors import SourceReadError, UsageError
from vidseq.extract.decode.frames import FrameGeometry, read_frames
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.decode.sampling import SamplingConfig
from vidseq.extract.pipeline import extract_features
from vidseq.extract.sources.dataset import detect_source, load_dataset
from vidseq.extract.sources.fer2013_csv import (
    FER2013_CLASSES,
    read_fer2013_csv,
    row_image_loader,
    row_reference,
)

ANGRY, HAPPY, SAD = 0, 3, 4
# (emotion, Usage) of each data row, interleaved as in the real file.
ROWS = [
    (HAPPY, "Training"),  # line 2
    (ANGRY, "Training"),  # line 3
    (HAPPY, "Training"),  # line 4
    (HAPPY, "PublicTest"),  # line 5
    (HAPPY, "Training"),  # line 6
    (ANGRY, "Training"),  # line 7
    (SAD, "PrivateTest"),  # line 8
    (HAPPY, "Training"),  # line 9
    (HAPPY, "PublicTest"),  # line 10
    (ANGRY, "Training"),  # line 11
    (HAPPY, "Training"),  # line 12
    (HAPPY, "PublicTest"),  # line 13
    (HAPPY, "Training"),  # line 14
    (SAD, "PrivateTest"),  # line 15
    (HAPPY, "PublicTest"),  # line 16
    (HAPPY, "Training"),  # line 17
]


def face_image(seed):
    """A 48x48 grey image with structure (smooth gradient plus noise), unique per seed."""
    rng = np.random.default_rng(seed)
    ramp = np.add.outer(np.arange(48), np.arange(48)) * 2
    return ((ramp + rng.integers(0, 60, (48, 48)) + seed * 13) % 256).astype(np.uint8)


def pixels_text(image):
    return " ".join(str(int(v)) for v in image.ravel())


def write_csv(path, rows, extra_lines=()):
    """Writes a FER-2013 CSV; image of line N is face_image(N). Returns the path."""
    lines = ["emotion,pixels,Usage"]
    for number, (emotion, usage) in enumerate(rows, start=2):
        lines.append(f"{emotion},{pixels_text(face_image(number))},{usage}")
    lines.extend(extra_lines)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def fer_csv(tmp_path):
    return write_csv(tmp_path / "fer2013.csv", ROWS)


def lines_of(item):
    return [int(entry.rsplit("#line=", 1)[1]) for entry in item.source]


def test_csv_clips_per_class_and_split_in_row_order(fer_csv):
    dataset = load_dataset(fer_csv, clip_length=3)
    assert dataset.source == "fer2013"
    assert dataset.class_names == list(FER2013_CLASSES)
    clips = {item.video_id: item for item in dataset.items}
    assert sorted(clips) == [
        "fer2013.csv:train/angry/clip00000",
        "fer2013.csv:train/happy/clip00000",
        "fer2013.csv:train/happy/clip00001",
        "fer2013.csv:val/happy/clip00000",
    ]
    assert lines_of(clips["fer2013.csv:train/happy/clip00000"]) == [2, 4, 6]
    assert lines_of(clips["fer2013.csv:train/happy/clip00001"]) == [9, 12, 14]
    assert lines_of(clips["fer2013.csv:train/angry/clip00000"]) == [3, 7, 11]
    assert lines_of(clips["fer2013.csv:val/happy/clip00000"]) == [5, 10, 13]
    for item in dataset.items:
        assert item.label == FER2013_CLASSES.index(item.video_id.split("/")[1])
        assert item.split == item.video_id.split(":")[1].split("/")[0]
        assert all(entry.startswith(str(fer_csv) + "#line=") for entry in item.source)
    # Left out: train/happy line 17, val/happy line 16, test/sad lines 8 and 15.
    assert dataset.dropped == 4
    assert any("4 images left out" in w and "sad 2" in w for w in dataset.warnings)
    assert dataset.rejected == []


def test_clip_length_changes_the_cut_and_is_validated(fer_csv):
    dataset = load_dataset(fer_csv, "fer2013", clip_length=2)
    assert len(dataset) == 3 + 1 + 2 + 1  # train happy 7, angry 3, val happy 4, test sad 2
    assert dataset.dropped == 1 + 1
    assert dataset.split_counts() == {"train": 4, "val": 2, "test": 1}
    for bad in (0, -1, 2.5, "3"):
        with pytest.raises(UsageError, match="clip_length"):
            load_dataset(fer_csv, clip_length=bad)


def test_malformed_rows_are_rejected_with_their_line_and_the_rest_goes_on(tmp_path):
    good = pixels_text(face_image(99))
    short = " ".join(good.split()[:-1])
    broken = [
        f"7,{good},Training",  # line 18: unknown emotion id
        f"happy,{good},Training",  # line 19: not an id
        f"3,{short},Training",  # line 20: 2303 values
        f"3,{good.replace(' ', ' x ', 1)},Training",  # line 21: non-numeric
        f"3,{good},Holdout",  # line 22: unknown Usage
        f"3,{good} 7,Training",  # line 23: 2305 values
        "3,1 2 3",  # line 24: missing a field
        f"3,300 {short},Training",  # line 25: out of range
    ]
    path = write_csv(tmp_path / "fer2013.csv", ROWS, broken)
    dataset = load_dataset(path, clip_length=3)
    assert len(dataset) == 4  # the valid rows give the same clips as before
    reasons = {r.input_id: r.reason for r in dataset.rejected}
    assert sorted(reasons) == [f"fer2013.csv:line {n}" for n in range(18, 26)]
    assert all(r.path == str(path) for r in dataset.rejected)
    expected = {
        18: "unknown emotion id '7'",
        19: "unknown emotion id 'happy'",
        20: "2303 pixel values, expected 2304",
        21: "non-numeric pixel value 'x'",
        22: "unknown Usage 'Holdout'",
        23: "2305 pixel values",
        24: "2 fields, expected 3",
        25: "pixel value 300 out of range",
    }
    for line, text in expected.items():
        assert reasons[f"fer2013.csv:line {line}"].startswith(f"line {line}: ")
        assert text in reasons[f"fer2013.csv:line {line}"]
    assert any("8 malformed rows skipped" in w for w in dataset.warnings)


def test_a_csv_without_any_valid_row_is_a_usage_error(tmp_path):
    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,pixels,Usage\n0,1 2 3,Training\n")
    assert detect_source(path) == "fer2013"
    with pytest.raises(UsageError, match=r"no valid row; 1 malformed \(first: line 2: 3 pixel"):
        load_dataset(path)
    path.write_text("emotion,image,Usage\n")
    with pytest.raises(UsageError, match=r"line 1: header lacks the column\(s\) pixels"):
        load_dataset(path, "fer2013")


def test_csv_without_usage_gets_a_seeded_split(tmp_path):
    lines = ["emotion,pixels"] + [f"{i % 2},{pixels_text(face_image(i))}" for i in range(40)]
    path = tmp_path / "train.csv"
    path.write_text("\n".join(lines) + "\n")
    dataset = load_dataset(path, "fer2013", clip_length=2, seed=1)
    assert len(dataset) == 20
    assert set(dataset.split_counts()) <= {"train", "val", "test"}
    assert dataset.split_counts()["train"] >= 10
    assert any("no Usage column" in w for w in dataset.warnings)
    assert load_dataset(path, "fer2013", clip_length=2, seed=1).items == dataset.items


def test_csv_clip_frames_come_from_the_rows_and_the_csv_is_parsed_once(fer_csv, tmp_path):
    before = sorted(os.listdir(tmp_path))
    item = next(i for i in load_dataset(fer_csv, clip_length=3).items if "angry" in i.video_id)
    frames = read_frames(item.source, SamplingConfig(num_frames=3), FrameGeometry())
    assert frames.frames.shape == (3, 48, 48, 3)
    for row, line in zip(frames.frames, [3, 7, 11], strict=True):
        for channel in range(3):  # grey replicated to 3 channels
            np.testing.assert_array_equal(row[:, :, channel], face_image(line))
    assert frames.num_source_frames == 3 and frames.num_valid == 3
    assert sorted(os.listdir(tmp_path)) == before  # nothing written to disk
    assert read_fer2013_csv(fer_csv) is read_fer2013_csv(fer_csv)
    bad = row_image_loader([row_reference(fer_csv, 1)])  # the header is no image row
    with pytest.raises(SourceReadError, match="line 1 is not a valid FER-2013 row"):
        bad(0)


def write_folder(root, split, emotion, names_and_seeds):
    folder = root / split / emotion
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, seed in names_and_seeds:
        cv2.imwrite(str(folder / name), face_image(seed))
        paths.append(str(folder / name))
    return paths


def test_image_folder_layout_is_detected_and_cut_by_file_name(tmp_path):
    root = tmp_path / "fer"
    names = [f"im{i}.png" for i in (3, 1, 10, 2, 5)]  # sorted: im1 im10 im2 im3 im5
    write_folder(root, "train", "happy", [(n, i) for i, n in enumerate(names)])
    write_folder(root, "train", "fear", [("a.png", 1), ("b.png", 2)])
    write_folder(root, "test", "Surprise", [(f"{i}.png", i) for i in range(4)])
    (root / "README.txt").write_text("not a split")
    assert detect_source(root) == "fer2013"
    dataset = load_dataset(root, clip_length=2)
    ids = [item.video_id for item in dataset.items]
    assert ids == [
        "test/Surprise/clip00000",
        "test/Surprise/clip00001",
        "train/fear/clip00000",
        "train/happy/clip00000",
        "train/happy/clip00001",
    ]
    happy = dataset.items[3:]
    assert [os.path.basename(p) for p in happy[0].source] == ["im1.png", "im10.png"]
    assert [os.path.basename(p) for p in happy[1].source] == ["im2.png", "im3.png"]
    assert [item.label for item in dataset.items] == [5, 5, 2, 3, 3]
    assert [item.split for item in dataset.items] == ["test", "test", "train", "train", "train"]
    assert dataset.dropped == 1

    # A split folder with a non-emotion class is another layout.
    other = tmp_path / "other"
    write_folder(other, "train", "walking", [("a.png", 1)])
    assert detect_source(other) == "folder"
    with pytest.raises(UsageError, match="walking: not an emotion"):
        load_dataset(other, "fer2013")


@pytest.mark.slow
def test_csv_clip_features_equal_the_same_clip_as_png_files(fer_csv, tmp_path):
    root = tmp_path / "fer"
    for emotion, usage, folder in ((ANGRY, "Training", "train"), (SAD, "PrivateTest", "test")):
        lines = [n for n, row in enumerate(ROWS, start=2) if row == (emotion, usage)]
        names = [(f"{n:04d}.png", n) for n in lines]
        write_folder(root, folder, FER2013_CLASSES[emotion], names)
    sampling = SamplingConfig(num_frames=2)
    from_csv = tmp_path / "csv.h5"
    from_png = tmp_path / "png.h5"
    extract_features(
        fer_csv,
        from_csv,
        frames=FrameSpec(sampling, clip_length=2),
        backbone="tiny",
        progress=False,
    )
    extract_features(
        root, from_png, frames=FrameSpec(sampling, clip_length=2), backbone="tiny", progress=False
    )
    with FeatureStore(from_csv) as csv_store, FeatureStore(from_png) as png_store:
        assert csv_store.meta.sampling["clip_length"] == 2
        for png_id, csv_id in (
            ("train/angry/clip00000", "fer2013.csv:train/angry/clip00000"),
            ("test/sad/clip00000", "fer2013.csv:test/sad/clip00000"),
        ):
            i, j = csv_store.index_of(csv_id), png_store.index_of(png_id)
            np.testing.assert_array_equal(csv_store.features(i), png_store.features(j))
            assert csv_store.labels[i] == png_store.labels[j]
        paths = json.loads(csv_store.paths[csv_store.index_of("fer2013.csv:test/sad/clip00000")])
        assert paths == [f"{fer_csv}#line=8", f"{fer_csv}#line=15"]


def test_cli_records_malformed_rows_as_failed_and_exits_3(tmp_path, capsys):
    broken = ["9," + pixels_text(face_image(1)) + ",Training", "3,1 2 3,Training"]
    path = write_csv(tmp_path / "fer2013.csv", ROWS, broken)
    out = tmp_path / "cache" / "features.h5"
    argv = ["extract-features", "--backbone", "tiny", str(path), "--out", str(out), "--frames", "3"]
    argv += ["--clip-length", "3", "--quiet", "--source", "fer2013"]
    assert main(argv) == 3
    captured = capsys.readouterr()
    assert f"failed: {path}: line 18: unknown emotion id '9'" in captured.err
    assert "line 19: 3 pixel values, expected 2304" in captured.err
    assert "4 images left out" in captured.err
    assert "4 videos extracted, 2 failed" in captured.out
    assert sorted(os.listdir(tmp_path / "cache")) == ["features.h5"]
    with FeatureStore(out) as store:
        assert len(store) == 4
        assert sorted(f.video_id for f in store.failed) == [
            "fer2013.csv:line 18",
            "fer2013.csv:line 19",
        ]
        assert store.class_names == list(FER2013_CLASSES)
    # A rerun resumes (nothing left to extract), still reports the rows, same failed table.
    assert main(argv) == 3
    assert "0 videos extracted, 2 failed, 4 skipped" in capsys.readouterr().out
    with FeatureStore(out) as store:
        assert len(store.failed) == 2
    # --strict stops at the first malformed row.
    assert main([*argv, "--strict", "--overwrite"]) == 2
    assert "line 18: unknown emotion id" in capsys.readouterr().err
