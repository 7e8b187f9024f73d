"""The packed schema-v1 layout, CacheMeta, and the validation of opened files."""

import json
import shutil

import h5py
import numpy as np
import pytest

import vidseq
from vidseq.cache import SCHEMA_VERSION, FailedRecord, FeatureStore, schema, summarize
from vidseq.cli import main
from vidseq.errors import CacheError
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.decode.sampling import SamplingConfig


def test_packed_layout_has_every_attribute_and_dataset(tmp_path, write_cache, make_meta):
    ids = ["b/2", "a/1", "c 3", "a/0"]
    failures = [FailedRecord("zz/broken.avi", "/data/zz/broken.avi", "no frame decoded")]
    meta = make_meta()
    path = write_cache(tmp_path / "c.h5", ids, meta, failures=failures)
    with h5py.File(path, "r") as h5:
        a = h5.attrs
        assert set(a) == {*schema.ROOT_ATTRIBUTES, schema.ATTR_WEIGHTS_SEED}
        assert int(a["weights_seed"]) == meta.weights_seed
        assert a["vidseq_format"] == "features"
        assert int(a["schema_version"]) == SCHEMA_VERSION == 1
        for name in ("backbone", "weights", "weights_sha256", "engine", "vidseq_version"):
            assert isinstance(a[name], str), name
        assert a["backbone"] == "tiny" and a["weights"] == "none"
        assert a["vidseq_version"] == vidseq.__version__
        assert a["input_size"].dtype.kind == "i" and a["input_size"].tolist() == [32, 32]
        assert int(a["feature_dim"]) == 8 and np.asarray(a["feature_dim"]).dtype.kind == "i"
        assert json.loads(a["sampling"]) == meta.sampling
        assert json.loads(a["class_names"]) == ["walk", "run", "jump"]

        n, f = len(ids), sum(len(_rows(h5, i)) for i in range(len(ids)))
        feats = h5["features"]
        assert feats.shape == (f, 8) and feats.dtype == np.float16 and feats.chunks is not None
        assert h5["frame_indices"].shape == (f,) and h5["frame_indices"].dtype == np.int64
        assert h5["timestamps_ms"].shape == (f,) and h5["timestamps_ms"].dtype == np.float64
        assert h5["face_found"].shape == (f,) and h5["face_found"].dtype == bool
        expected = {
            "label": np.int32,
            "offset": np.int64,
            "length": np.int32,
            "num_valid": np.int32,
            "fps": np.float64,
            "num_source_frames": np.int64,
        }
        for column, dtype in expected.items():
            ds = h5[f"videos/{column}"]
            assert ds.shape == (n,) and ds.dtype == dtype, column
        for column in ("video_id", "path", "split", "group"):
            info = h5py.check_string_dtype(h5[f"videos/{column}"].dtype)
            assert info is not None and info.encoding == "utf-8" and info.length is None
            assert h5[f"videos/{column}"].shape == (n,)
        for column in ("video_id", "path", "error"):
            info = h5py.check_string_dtype(h5[f"failed/{column}"].dtype)
            assert info is not None and info.encoding == "utf-8" and info.length is None
        assert h5["failed/video_id"].asstr()[()].tolist() == ["zz/broken.avi"]
        assert h5["failed/error"].asstr()[()].tolist() == ["no frame decoded"]

        # Ordered by video_id, rows packed back to back.
        stored = h5["videos/video_id"].asstr()[()].tolist()
        assert stored == sorted(ids)
        offsets, lengths = h5["videos/offset"][()], h5["videos/length"][()]
        assert offsets[0] == 0
        np.testing.assert_array_equal(offsets[1:], np.cumsum(lengths)[:-1])
        assert offsets[-1] + lengths[-1] == f
        assert (h5["videos/num_valid"][()] <= lengths).all()


def _rows(h5, i):
    start = h5["videos/offset"][i]
    return h5["features"][start : start + h5["videos/length"][i]]


def test_meta_differences_ignore_the_weights_label(make_meta):
    a = make_meta(weights="imagenet")
    b = make_meta(weights="/models/resnet50.h5")
    assert a.differences(b) == []
    c = make_meta(backbone="resnet50", weights_sha256="f" * 64, dtype="float32")
    diffs = a.differences(c)
    assert [d.split(":")[0] for d in diffs] == ["backbone", "weights_sha256", "dtype"]
    assert "'tiny' vs 'resnet50'" in diffs[0]
    assert make_meta(class_names=["x"]).differences(a)[0].startswith("class_names")
    assert make_meta(sampling={"mode": "fps"}).differences(a)[0].startswith("sampling")
    assert make_meta(input_size=(64, 64)).differences(a)[0].startswith("input_size")
    assert make_meta(feature_dim=9).differences(a)[0].startswith("feature_dim")
    assert make_meta(engine="openvino").differences(a)[0].startswith("engine")


def test_meta_normalises_values_like_a_reader_gets_them(make_meta):
    meta = make_meta(input_size=np.array([224, 224]), sampling={"b": (1, 2), "a": 1}, dtype="f2")
    assert meta.input_size == (224, 224)
    assert meta.sampling == {"a": 1, "b": [1, 2]}
    assert meta.dtype == "float16"
    with pytest.raises(ValueError, match="dtype"):
        make_meta(dtype="int8")
    with pytest.raises(ValueError, match="input_size"):
        make_meta(input_size=(224,))


def test_meta_round_trips_through_a_file(tmp_path, write_cache, make_meta):
    meta = make_meta(class_names=["é", "a/b", "c d"], dtype="float32")
    path = write_cache(tmp_path / "c.h5", ["v"], meta)
    with FeatureStore(path) as store:
        assert store.meta == meta


@pytest.fixture
def good(tmp_path, write_cache):
    return write_cache(tmp_path / "good.h5", ["a", "b", "c"])


def test_truncated_file_is_a_cache_error(tmp_path, good):
    data = good.read_bytes()
    bad = tmp_path / "truncated.h5"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CacheError, match=r"truncated\.h5"):
        FeatureStore(bad)


def test_not_hdf5_is_a_cache_error(tmp_path):
    bad = tmp_path / "notes.h5"
    bad.write_text("hello")
    with pytest.raises(CacheError, match=r"notes\.h5.*not an HDF5 file"):
        FeatureStore(bad)
    with pytest.raises(CacheError, match="no such cache file"):
        FeatureStore(tmp_path / "missing.h5")
    with pytest.raises(CacheError, match="directory"):
        FeatureStore(tmp_path)


def test_plain_hdf5_is_a_cache_error(tmp_path):
    bad = tmp_path / "plain.h5"
    with h5py.File(bad, "w") as h5:
        h5["x"] = np.arange(3)
    with pytest.raises(CacheError, match=r"plain\.h5: not a vidseq cache"):
        FeatureStore(bad)


def test_other_vidseq_format_is_a_cache_error(tmp_path, good):
    with h5py.File(good, "a") as h5:
        h5.attrs["vidseq_format"] = "run"
    with pytest.raises(CacheError, match="not a vidseq feature cache"):
        FeatureStore(good)


def test_newer_schema_version_is_a_cache_error(tmp_path, good):
    with h5py.File(good, "a") as h5:
        h5.attrs["schema_version"] = np.int64(SCHEMA_VERSION + 1)
    with pytest.raises(CacheError, match=r"good\.h5: schema_version 2 is newer"):
        FeatureStore(good)


@pytest.mark.parametrize("name", ["schema_version", "backbone", "weights_sha256", "class_names"])
def test_missing_attribute_is_a_cache_error(tmp_path, good, name):
    copy = tmp_path / f"no-{name}.h5"
    shutil.copy(good, copy)
    with h5py.File(copy, "a") as h5:
        del h5.attrs[name]
    with pytest.raises(CacheError, match=f"missing root attribute '{name}'"):
        FeatureStore(copy)


@pytest.mark.parametrize("name", ["features", "videos/offset", "failed/error", "timestamps_ms"])
def test_missing_dataset_is_a_cache_error(tmp_path, good, name):
    with h5py.File(good, "a") as h5:
        del h5[name]
    with pytest.raises(CacheError, match=f"missing dataset '{name}'"):
        FeatureStore(good)


def test_offsets_outside_the_rows_are_a_cache_error(good):
    with h5py.File(good, "a") as h5:
        h5["videos/offset"][-1] = h5["features"].shape[0]
    with pytest.raises(CacheError, match="point outside"):
        FeatureStore(good)


def test_unknown_datasets_are_ignored(good, make_video):
    with h5py.File(good, "a") as h5:
        h5["videos/new_column"] = np.arange(3)
        h5["not_row_aligned"] = np.arange(2)
        h5.create_group("future")["thing"] = np.arange(5)
    with FeatureStore(good) as store:
        assert len(store) == 3
        np.testing.assert_array_equal(
            store.features(store.index_of("b"), np.float32),
            make_video("b")[1].astype(np.float16).astype(np.float32),
        )
        assert "not_row_aligned" not in store.row_names


def write_first_layout(path, engine="tf"):
    """A cache as the first schema-v1 writer made it, written by hand with literal names.

    No ``weights_seed`` attribute, a sampling dict without ``crop``, no ``face_found``
    rows, two videos (4 and 3 rows, the second padded) and one failure.
    """
    text = h5py.string_dtype("utf-8")
    with h5py.File(path, "w") as h5:
        h5.attrs.update(
            {
                "vidseq_format": "features",
                "schema_version": np.int64(1),
                "backbone": "tiny",
                "weights": "none",
                "weights_sha256": "ab" * 32,
                "engine": engine,
                "input_size": np.asarray([32, 32], dtype=np.int64),
                "feature_dim": np.int64(2),
                "sampling": '{"frame_rate": 5.0, "mode": "uniform", "num_frames": 4}',
                "class_names": '["walk", "run"]',
                "vidseq_version": "0.1.0",
            }
        )
        h5["features"] = np.arange(14, dtype=np.float16).reshape(7, 2)
        h5["frame_indices"] = np.asarray([0, 3, 6, 9, 1, 2, 2], dtype=np.int64)
        h5["timestamps_ms"] = np.asarray([0, 120, 240, 360, 40, 80, 80], dtype=np.float64)
        columns = {
            "video_id": (["run/b.avi", "walk/a.avi"], text),
            "path": (["/d/run/b.avi", "/d/walk/a.avi"], text),
            "label": ([1, 0], "int32"),
            "split": (["test", "train"], text),
            "group": (["g02", "g01"], text),
            "offset": ([4, 0], "int64"),
            "length": ([3, 4], "int32"),
            "num_valid": ([2, 4], "int32"),
            "fps": ([25.0, 25.0], "float64"),
            "num_source_frames": ([3, 10], "int64"),
        }
        for name, (values, dtype) in columns.items():
            h5.create_dataset(f"videos/{name}", data=values, dtype=dtype)
        for name, values in (("video_id", ["x.avi"]), ("path", ["/d/x.avi"]), ("error", ["bad"])):
            h5.create_dataset(f"failed/{name}", data=values, dtype=text)
    return path


def test_a_cache_of_the_first_layout_opens_inspects_and_reads(tmp_path, capsys):
    path = write_first_layout(tmp_path / "old.h5")
    with FeatureStore(path) as store:
        assert store.meta.engine == "tf" and store.meta.weights_seed == 0
        assert FrameSpec.from_dict(store.meta.sampling) == FrameSpec(SamplingConfig(num_frames=4))
        assert list(store.video_ids) == ["run/b.avi", "walk/a.avi"]
        walk = store.index_of("walk/a.avi")
        np.testing.assert_array_equal(store.features(walk), np.arange(8).reshape(4, 2))
        np.testing.assert_array_equal(store.frame_indices(store.index_of("run/b.avi")), [1, 2, 2])
        assert [f.video_id for f in store.failed] == ["x.avi"]
    info = summarize(str(path))
    assert info["num_videos"] == 2 and info["engine"] == "tf"
    assert main(["inspect", str(path)]) == 0
    assert main(["inspect", str(path), "--video", "run/b.avi", "--json"]) == 0
    assert '"num_valid": 2' in capsys.readouterr().out


def test_engine_must_be_a_known_one(tmp_path, make_meta):
    with pytest.raises(
        ValueError, match=r"engine must be one of \['tf', 'openvino'\]\. Received: "
    ):
        make_meta(engine="tensorflow")
    assert make_meta(engine="openvino").engine == "openvino"
    path = write_first_layout(tmp_path / "odd.h5", engine="tensorflow")
    with pytest.raises(CacheError, match=r"bad root attributes \(engine must be one of"):
        FeatureStore(path)
