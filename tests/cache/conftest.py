"""Fixtures for the cache tests: metas, deterministic per-id video data, whole-file dumps."""

import zlib

import h5py
import numpy as np
import pytest

from vidseq.cache import CacheMeta, CacheWriter, VideoRecord

HOSTILE_IDS = [
    "a/b/c.avi",
    "../../etc/passwd",
    "..",
    "with spaces/and  two.avi",
    "émotion/😀 clip",
    "x" * 300,
    "/leading/slash",
    "trailing/",
    "videos",
]


def _meta(**overrides):
    fields = {
        "backbone": "tiny",
        "weights": "none",
        "weights_sha256": "0" * 64,
        "engine": "tf",
        "input_size": (32, 32),
        "feature_dim": 8,
        "sampling": {"mode": "uniform", "num_frames": 5, "frame_rate": 5.0},
        "class_names": ["walk", "run", "jump"],
        "dtype": "float16",
    }
    fields.update(overrides)
    return CacheMeta(**fields)


def _video(video_id, meta=None, *, label=None):
    """Deterministic data for one id: (record, features, frame_indices, timestamps_ms, extras)."""
    meta = meta or _meta()
    seed = zlib.crc32(video_id.encode("utf-8"))
    rng = np.random.default_rng(seed)
    length = 3 + seed % 3
    num_valid = length - seed % 2
    record = VideoRecord(
        video_id=video_id,
        path=f"/data/{video_id}",
        label=int(seed % len(meta.class_names)) if label is None else label,
        split=("train", "val", "test", "")[seed % 4],
        group=f"g{seed % 7:02d}",
        num_valid=int(num_valid),
        fps=25.0 + seed % 5,
        num_source_frames=int(100 + seed % 50),
    )
    features = rng.normal(size=(length, meta.feature_dim)).astype(np.float32)
    frame_indices = np.arange(length, dtype=np.int64) * 7 + seed % 3
    timestamps = frame_indices * 1000.0 / record.fps
    extras = {"face_found": rng.random(length) > 0.5}
    return record, features, frame_indices, timestamps, extras


@pytest.fixture
def make_meta():
    """Returns ``make(**overrides) -> CacheMeta`` (tiny backbone, D=8, three classes)."""
    return _meta


@pytest.fixture
def make_video():
    """Returns ``make(video_id, meta=None, label=None)`` -> deterministic video data."""
    return _video


@pytest.fixture
def write_cache():
    """Returns ``write(path, ids, meta=None, failures=(), **writer_kwargs) -> Path``."""

    def write(path, ids, meta=None, failures=(), **kwargs):
        meta = meta or _meta()
        kwargs.setdefault("commit_every", 3)
        with CacheWriter(path, meta, **kwargs) as writer:
            for video_id in ids:
                record, x, fi, ts, extras = _video(video_id, meta)
                writer.add(record, x, fi, ts, row_extras=extras)
            for failed in failures:
                writer.add_failure(failed)
            return writer.finalize()

    return write


def _dump(path):
    """Every attribute and dataset of an HDF5 file as plain Python/numpy values."""
    out = {}
    with h5py.File(path, "r") as h5:
        out["attrs"] = {k: np.asarray(v).tolist() for k, v in h5.attrs.items()}

        def visit(name, item):
            if isinstance(item, h5py.Dataset):
                if h5py.check_string_dtype(item.dtype) is not None:
                    out[name] = ("str", item.asstr()[()].tolist())
                else:
                    out[name] = (str(item.dtype), item[()])

        h5.visititems(visit)
    return out


def _assert_same(a, b):
    da, db = _dump(a), _dump(b)
    assert sorted(da) == sorted(db)
    assert da["attrs"] == db["attrs"]
    for name in da:
        if name == "attrs":
            continue
        assert da[name][0] == db[name][0], name
        if da[name][0] == "str":
            assert da[name][1] == db[name][1], name
        else:
            np.testing.assert_array_equal(da[name][1], db[name][1], err_msg=name)


@pytest.fixture
def dump_cache():
    """Returns ``dump(path) -> dict`` of every attribute and dataset."""
    return _dump


@pytest.fixture
def assert_same_cache():
    """Returns ``check(a, b)``: the two files hold the same attributes and datasets."""
    return _assert_same


@pytest.fixture
def hostile_ids():
    """Ids with ``/``, ``..``, spaces, unicode, 300 characters."""
    return list(HOSTILE_IDS)
