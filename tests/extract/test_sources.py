"""The source registry, the clip-loader registry, and folder datasets of any image type."""

import json
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from vidseq.cache.store import FeatureStore
from vidseq.errors import SourceReadError, UsageError
from vidseq.extract.decode.frames import FrameGeometry, read_frames
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.decode.sampling import SamplingConfig
from vidseq.extract.pipeline import extract_features
from vidseq.extract.sources.clips import (
    clip_loader_names,
    register_clip_loader,
    unregister_clip_loader,
)
from vidseq.extract.sources.dataset import (
    detect_source,
    load_dataset,
    register_source,
    source_names,
    unregister_source,
)
from vidseq.extract.sources.items import IMAGE_EXTENSIONS, Dataset, VideoItem, finish_dataset


def write_frame_folder(folder, count, value, suffix):
    """``count`` grey 32x32 images of brightness ``value + 5 * i`` named 0000.<suffix>..."""
    folder.mkdir(parents=True)
    for i in range(count):
        image = np.full((32, 32), value + 5 * i, dtype=np.uint8)
        assert cv2.imwrite(str(folder / f"{i:04d}{suffix}"), image)


def test_folder_dataset_of_pgm_frame_folders_extracts(tmp_path):
    root = tmp_path / "data"
    write_frame_folder(root / "dark" / "clip_a", 5, 10, ".pgm")
    write_frame_folder(root / "light" / "clip_b", 4, 200, ".pgm")
    out = tmp_path / "features.h5"
    summary = extract_features(
        root,
        out,
        frames=FrameSpec(SamplingConfig(num_frames=3)),
        input_size=(32, 32),
        dtype="float32",
        backbone="tiny",
        progress=False,
    )
    assert (summary.done, summary.failures) == (2, [])
    with FeatureStore(out) as store:
        assert list(store.video_ids) == ["dark/clip_a", "light/clip_b"]
        assert list(store.labels) == [0, 1]
        assert list(store.num_source_frames) == [5, 4]
        assert store.meta.sampling == FrameSpec(SamplingConfig(num_frames=3)).to_dict()
        dark, light = store.features(0), store.features(1)
        assert dark.shape == light.shape == (3, store.meta.feature_dim)
        assert np.isfinite(dark).all() and not np.allclose(dark, light)


def test_one_image_extension_set_for_sources_and_reader(tmp_path):
    assert {".pgm", ".ppm", ".pbm", ".png", ".jpg", ".webp"} <= IMAGE_EXTENSIONS
    write_frame_folder(tmp_path / "a" / "clip", 2, 50, ".pgm")
    dataset = load_dataset(tmp_path, "folder")
    assert [item.video_id for item in dataset.items] == ["a/clip"]
    frames = read_frames(dataset.items[0].source, SamplingConfig(num_frames=2), FrameGeometry())
    assert frames.num_source_frames == 2


def test_a_dataset_summarises_itself_and_round_trips_through_json(tmp_path):
    write_frame_folder(tmp_path / "a" / "clip_g01_c01", 2, 50, ".png")
    write_frame_folder(tmp_path / "b" / "clip_g02_c01", 2, 90, ".png")
    dataset = load_dataset(tmp_path, "folder", seed=1)
    record = json.loads(json.dumps(dataset.to_dict()))
    assert record["source"] == "folder" and record["class_names"] == ["a", "b"]
    assert [item["video_id"] for item in record["items"]] == ["a/clip_g01_c01", "b/clip_g02_c01"]
    assert record["items"][0]["source"] == str(tmp_path / "a" / "clip_g01_c01")
    assert record["clip_length"] is None and record["rejected"] == []
    counts = dataset.split_counts()
    assert dataset.summary().startswith("folder: 2 videos of 2 classes (")
    assert all(f"{name} {count}" in dataset.summary() for name, count in counts.items())


def test_builtin_sources_in_detection_order():
    assert source_names() == ("ucf101", "fer2013", "manifest", "folder")


def test_a_registered_source_is_detected_before_the_folder_fallback(tmp_path):
    (tmp_path / "marker.txt").write_text("x")
    (tmp_path / "cls").mkdir()
    seen = {}

    def load(path, *, seed=0):  # takes only seed: load_dataset passes no other option
        seen["seed"] = seed
        item = VideoItem("v", str(path / "cls"), 0, "train", "v")
        return finish_dataset(["cls"], [item], [], "marked")

    source = SimpleNamespace(NAME="marked", detect=lambda p: (p / "marker.txt").exists(), load=load)
    register_source(source)
    try:
        assert source_names()[-2:] == ("marked", "folder")
        assert detect_source(tmp_path) == "marked"
        dataset = load_dataset(tmp_path, seed=7, clip_length=3, split=2)
        assert isinstance(dataset, Dataset) and dataset.source == "marked" and seen == {"seed": 7}
    finally:
        unregister_source("marked")
    assert "marked" not in source_names()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (SimpleNamespace(NAME="", detect=bool, load=bool), "NAME must be a non-empty string"),
        (SimpleNamespace(NAME="auto", detect=bool, load=bool), "Received: NAME='auto'"),
        (SimpleNamespace(NAME="x", detect=bool), "callable load"),
    ],
)
def test_a_malformed_source_is_refused(source, message):
    with pytest.raises(UsageError, match=message):
        register_source(source)
    assert source_names() == ("ucf101", "fer2013", "manifest", "folder")


def test_a_registered_clip_loader_feeds_the_reader():
    def make(entries):
        values = [int(entry.split(":", 1)[1]) for entry in entries]

        def load(index):
            if values[index] > 255:
                raise SourceReadError(entries[index], "not a grey level")
            return np.full((8, 8), values[index], dtype=np.uint8)

        return load

    register_clip_loader("solid", lambda entry: entry.startswith("solid:"), make)
    try:
        frames = read_frames(
            ("solid:10", "solid:200"), SamplingConfig(num_frames=2), FrameGeometry()
        )
        assert frames.frames.shape == (2, 8, 8, 3)
        assert frames.frames[:, 0, 0, 0].tolist() == [10, 200]
        with pytest.raises(SourceReadError, match="not a grey level"):
            read_frames(("solid:1", "solid:300"), SamplingConfig(num_frames=2), FrameGeometry())
    finally:
        unregister_clip_loader("solid")
    assert "solid" not in clip_loader_names()
    with pytest.raises(SourceReadError, match="no such file"):
        read_frames(("solid:10",), SamplingConfig(num_frames=1), FrameGeometry())


def test_register_clip_loader_checks_its_arguments():
    with pytest.raises(UsageError, match="Received: name=''"):
        register_clip_loader("", bool, bool)
    with pytest.raises(UsageError, match="make must be callable"):
        register_clip_loader("x", bool, None)


def test_fer_rows_are_readable_after_importing_only_the_frame_reader(tmp_path):
    """finetune and predict import the reader, not dataset.py: the FER loader must be there."""
    pixels = " ".join(["7"] * 2304)
    csv_path = tmp_path / "fer2013.csv"
    csv_path.write_text(f"emotion,pixels,Usage\n3,{pixels},Training\n")
    code = (
        "import sys\n"
        "from vidseq.extract.decode.frames import FrameGeometry, read_frames\n"
        "from vidseq.extract.decode.sampling import SamplingConfig\n"
        f"clip = ({str(csv_path)!r} + '#line=2',)\n"
        "frames = read_frames(clip, SamplingConfig(num_frames=1), FrameGeometry())\n"
        "print(frames.frames.shape, int(frames.frames.max()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1, 48, 48, 3) 7"
