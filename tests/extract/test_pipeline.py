"""extract-features end to end: real sample videos, the tiny CNN, real HDF5 caches."""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from vidseq.cache.merge import merge_caches
from vidseq.cache.store import FeatureStore
from vidseq.cli import main
from vidseq.errors import UsageError
from vidseq.extract.decode.faces import FaceCrop
from vidseq.extract.decode.frames import FrameGeometry, read_frames
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.decode.sampling import SamplingConfig
from vidseq.extract.models.backbones import load_backbone
from vidseq.extract.pipeline import extract_features
from vidseq.extract.sharding import Shard
from vidseq.extract.sources.dataset import load_dataset
from vidseq.extract.sources.sample_data import make_sample

SAMPLING = SamplingConfig(mode="uniform", num_frames=6)


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory):
    return make_sample(tmp_path_factory.mktemp("data") / "sample", seed=3, videos_per_class=4)


@pytest.fixture(scope="module")
def reference_cache(sample_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "features.h5"
    summary = extract_features(
        sample_root, out, frames=FrameSpec(SAMPLING), batch_size=5, backbone="tiny", progress=False
    )
    assert summary.failures == []
    return out


def run_cli(*args):
    return main([str(a) for a in args])


@pytest.mark.slow
def test_cache_holds_every_video_with_consistent_layout(sample_root, reference_cache):
    with FeatureStore(reference_cache) as store:
        assert len(store) == sum(1 for _ in Path(sample_root).glob("*/*.avi"))
        assert store.meta.backbone == "tiny"
        assert store.meta.sampling["num_frames"] == 6
        assert set(store.splits) == {"train", "test"}
        assert np.all(store.lengths == 6)
        np.testing.assert_array_equal(store.offsets, np.arange(len(store)) * 6)
        assert list(store.video_ids) == sorted(store.video_ids)
        assert np.all(store.labels >= 0)


@pytest.mark.slow
def test_features_equal_the_backbone_on_the_same_frames(reference_cache):
    net = load_backbone("tiny", "none", seed=0)
    with FeatureStore(reference_cache) as store:
        for i in (0, len(store) - 1):
            frames = read_frames(store.paths[i], SAMPLING, FrameGeometry(size=net.input_size))
            np.testing.assert_array_equal(store.frame_indices(i), frames.frame_indices)
            expected = np.asarray(net.model(frames.frames)).astype(np.float16)
            np.testing.assert_allclose(
                store.features(i).astype(np.float32),
                expected.astype(np.float32),
                rtol=2e-3,
                atol=1e-4,
            )


@pytest.mark.slow
def test_shards_merged_equal_a_single_run(
    sample_root, reference_cache, tmp_path, assert_same_cache
):
    shards = []
    for index in range(3):
        out = tmp_path / f"shard{index}.h5"
        extract_features(
            sample_root,
            out,
            frames=FrameSpec(SAMPLING),
            batch_size=5,
            shard=Shard(3, index),
            backbone="tiny",
            progress=False,
        )
        shards.append(out)
    sizes = [len(FeatureStore(path)) for path in shards]
    assert all(size > 0 for size in sizes)
    merged = merge_caches(tmp_path / "merged.h5", shards)
    assert_same_cache(merged, reference_cache)


def test_unreadable_video_is_recorded_and_exit_code_is_3(tmp_path, video_factory):
    good = video_factory("good clip.avi", 20)
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(os.urandom(2048))
    manifest = tmp_path / "videos.csv"
    manifest.write_text(f"path,label,split\n{Path(good).name},a,train\n{bad.name},b,test\n")
    out = tmp_path / "features.h5"
    assert (
        run_cli(
            "extract-features",
            "--backbone",
            "tiny",
            manifest,
            "--out",
            out,
            "--frames",
            "4",
            "--quiet",
        )
        == 3
    )
    with FeatureStore(out) as store:
        assert list(store.video_ids) == ["good clip.avi"]
        assert [f.video_id for f in store.failed] == ["broken.mp4"]
        assert store.failed[0].error


def test_odd_ids_round_trip(tmp_path, video_factory):
    folder = tmp_path / "sub dir" / "..dots.. ünï"
    folder.mkdir(parents=True)
    name = "a b.c.d " + "x" * 150 + ".avi"
    os.replace(video_factory("v.avi", 12), folder / name)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,label\n{folder.relative_to(tmp_path) / name},only\n")
    out = tmp_path / "features.h5"
    extract_features(
        manifest,
        out,
        frames=FrameSpec(SamplingConfig(num_frames=3)),
        backbone="tiny",
        progress=False,
    )
    with FeatureStore(out) as store:
        video_id = str(folder.relative_to(tmp_path) / name)
        assert list(store.video_ids) == [video_id]
        assert store.features(store.index_of(video_id)).shape[0] == 3


def test_incompatible_existing_cache_is_refused_and_left_untouched(
    sample_root, reference_cache, tmp_path, capsys
):
    out = tmp_path / "features.h5"
    out.write_bytes(Path(reference_cache).read_bytes())
    before = hashlib.sha256(out.read_bytes()).hexdigest()
    code = run_cli(
        "extract-features",
        "--backbone",
        "tiny",
        sample_root,
        "--out",
        out,
        "--frames",
        "8",
        "--quiet",
    )
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("vidseq: error:") and "\n" not in error
    assert hashlib.sha256(out.read_bytes()).hexdigest() == before
    code = run_cli(
        "extract-features",
        "--backbone",
        "tiny",
        sample_root,
        "--out",
        out,
        "--frames",
        "8",
        "--overwrite",
    )
    assert code == 0
    with FeatureStore(out) as store:
        assert store.meta.sampling["num_frames"] == 8


def test_decoders_default_to_every_core_when_a_gpu_runs_the_network(monkeypatch):
    from vidseq.extract.pipeline import default_decode_workers

    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert default_decode_workers(gpu=False) == 8  # the CNN needs the cores
    assert default_decode_workers(gpu=True) == 16  # decoding is the bottleneck
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert default_decode_workers(gpu=False) == default_decode_workers(gpu=True) == 2


def test_shard_comes_from_the_environment_and_fills_the_output_path(
    sample_root, tmp_path, monkeypatch
):
    monkeypatch.setenv("VIDSEQ_NUM_SHARDS", "3")
    monkeypatch.setenv("VIDSEQ_SHARD_INDEX", "1")
    summary = extract_features(
        sample_root,
        tmp_path / "f-{shard}-of-{num_shards}.h5",
        frames=FrameSpec(SAMPLING),
        batch_size=5,
        backbone="tiny",
        progress=False,
    )
    assert summary.shard == Shard(3, 1)
    assert summary.out == tmp_path / "f-1-of-3.h5" and summary.out.is_file()
    expected = [item.video_id for item in Shard(3, 1).select(load_dataset(sample_root).items)]
    with FeatureStore(summary.out) as store:
        assert list(store.video_ids) == expected and expected
    record = json.loads(json.dumps(summary.to_dict()))
    assert record["shard"] == {"num_shards": 3, "index": 1}
    assert record["done"] == len(expected) and record["out"] == str(summary.out)
    assert summary.summary().startswith(f"{len(expected)} videos extracted, 0 failed")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"dtype": "float64"},
            r"dtype must be one of \['float16', 'float32'\]\. Received: dtype='float64'",
        ),
        ({"batch_size": 0}, r"batch_size must be an integer >= 1\. Received: batch_size=0"),
        ({"frames": SamplingConfig()}, r"frames must be a FrameSpec\. Received: frames=Sampling"),
        ({"engine": "onnx"}, "engine"),
    ],
)
def test_bad_arguments_name_the_parameter_and_write_nothing(sample_root, tmp_path, kwargs, message):
    out = tmp_path / "f.h5"
    with pytest.raises(UsageError, match=message):
        extract_features(sample_root, out, backbone="tiny", progress=False, **kwargs)
    assert not out.exists() and not (tmp_path / "f.h5.parts").exists()


def test_face_gray_implies_a_face_crop():
    assert FrameSpec.from_options().face_crop is None
    grey = FrameSpec.from_options(face_gray=True, face_margin=0.3)
    assert grey.face_crop == FaceCrop(margin=0.3, gray=True)
    assert FrameSpec.from_options(face_crop=True).face_crop == FaceCrop()
    spec = FrameSpec.from_options(sampling="fps", num_frames=4, frame_rate=2.0, crop="center")
    assert spec == FrameSpec(SamplingConfig("fps", 4, 2.0), crop="center")
