"""FeatureStore: index, one video, many videos in large slices, iteration, the docs snippet."""

import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from vidseq.cache import FeatureStore
from vidseq.cache import store as store_module
from vidseq.errors import CacheError

IDS = [f"c{c}/v{i:02d}" for c in range(3) for i in range(5)]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "cache-format.md"


@pytest.fixture
def cache(tmp_path, write_cache):
    return write_cache(tmp_path / "c.h5", IDS)


def _expected(make_video, video_id):
    return make_video(video_id)[1].astype(np.float16).astype(np.float32)


def test_index_columns(cache, make_video):
    with FeatureStore(cache) as store:
        assert len(store) == len(IDS)
        assert store.class_names == ["walk", "run", "jump"]
        for i, video_id in enumerate(sorted(IDS)):
            record = make_video(video_id)[0]
            assert store.index_of(video_id) == i
            assert store.labels[i] == record.label and store.splits[i] == record.split
        assert store.labels.dtype == np.int32 and store.offsets.dtype == np.int64
        with pytest.raises(CacheError, match="no video with id 'nope'"):
            store.index_of("nope")
        with pytest.raises(CacheError, match="no row-aligned dataset 'depth'"):
            store.rows("depth", 0)
        with pytest.raises(IndexError):
            store.features(len(IDS))


def test_mask_of_one_video(cache, make_video):
    with FeatureStore(cache) as store:
        for i, video_id in enumerate(store.video_ids):
            record = make_video(video_id)[0]
            mask = store.mask(i)
            assert mask.sum() == record.num_valid and mask[: record.num_valid].all()


def test_load_pads_masks_and_keeps_the_order(cache, make_video):
    with FeatureStore(cache) as store:
        x, mask, y = store.load()
        longest = int(store.lengths.max())
        assert x.shape == (len(IDS), longest, 8) and x.dtype == np.float32
        for i, video_id in enumerate(store.video_ids):
            record, feats = make_video(video_id)[0], _expected(make_video, video_id)
            np.testing.assert_array_equal(x[i, : len(feats)], feats)
            assert not x[i, len(feats) :].any()
            assert mask[i].tolist() == [t < record.num_valid for t in range(longest)]
            assert y[i] == record.label
        picked = [7, 2, 2, 11]
        x2, mask2, y2 = store.load(picked, dtype=np.float16)
        assert x2.dtype == np.float16
        np.testing.assert_array_equal(x2, x[picked].astype(np.float16))
        np.testing.assert_array_equal(mask2, mask[picked])
        np.testing.assert_array_equal(y2, y[picked])
        train = np.flatnonzero(store.splits == "train")
        x3, _, y3 = store.load(split="train")
        np.testing.assert_array_equal(x3, x[train])
        np.testing.assert_array_equal(y3, y[train])
        assert store.load(split="nope")[0].shape == (0, longest, 8)


def test_small_read_blocks_give_the_same_arrays(cache, monkeypatch):
    with FeatureStore(cache) as store:
        x = store.load()[0]
        order = list(range(len(IDS)))[::-3]
        whole = dict(store.iter_videos(order))
    monkeypatch.setattr(store_module, "READ_BLOCK_BYTES", 40)
    monkeypatch.setattr(store_module, "GAP_BYTES", 0)
    with FeatureStore(cache) as store:
        np.testing.assert_array_equal(x, store.load()[0])
        got = list(store.iter_videos(order))
    assert [i for i, _ in got] == order
    for i, feats in got:
        np.testing.assert_array_equal(feats, whole[i])


def test_load_reads_few_large_slices(cache):
    with FeatureStore(cache) as store:
        calls = []
        original = store._read

        def counting(name, start, end):
            calls.append((start, end))
            return original(name, start, end)

        store._read = counting
        store.load()
        assert calls == [(0, store.num_rows)]


def _docs_snippet():
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    snippets = [b for b in blocks if "def read_video" in b]
    assert len(snippets) == 1, "docs/cache-format.md must hold one read_video snippet"
    return snippets[0]


def test_docs_snippet_reads_one_video_without_vidseq(tmp_path, write_cache, make_video):
    ids = ["a/b c.avi", "../x", "émotion/😀"]
    path = write_cache(tmp_path / "c.h5", ids)
    code = _docs_snippet()
    assert "import vidseq" not in code and "from vidseq" not in code
    namespace = {}
    exec(compile(code, str(DOCS), "exec"), namespace)
    for video_id in ids:
        feats = namespace["read_video"](str(path), video_id)
        np.testing.assert_array_equal(feats, make_video(video_id)[1].astype(np.float16))
    with pytest.raises(KeyError):
        namespace["read_video"](str(path), "missing")


def test_reads_a_file_written_by_plain_h5py(tmp_path):
    path = tmp_path / "hand.h5"
    text = h5py.string_dtype("utf-8")
    with h5py.File(path, "w") as h5:
        h5.attrs.update(
            {
                "vidseq_format": "features",
                "schema_version": 1,
                "backbone": "b",
                "weights": "w",
                "weights_sha256": "h",
                "engine": "tf",
                "input_size": np.array([8, 8]),
                "feature_dim": 2,
                "sampling": "{}",
                "class_names": '["k"]',
                "vidseq_version": "0",
            }
        )
        h5["features"] = np.arange(6, dtype=np.float32).reshape(3, 2)
        h5["frame_indices"] = np.arange(3)
        h5["timestamps_ms"] = np.arange(3.0)
        for name, value, dtype in [
            ("video_id", ["x"], text),
            ("path", ["p"], text),
            ("label", [0], "i4"),
            ("split", [""], text),
            ("group", [""], text),
            ("offset", [0], "i8"),
            ("length", [3], "i4"),
            ("num_valid", [2], "i4"),
            ("fps", [1.0], "f8"),
            ("num_source_frames", [3], "i8"),
        ]:
            h5.create_dataset(
                f"videos/{name}",
                data=np.array(value, dtype=object if dtype is text else dtype),
                dtype=dtype,
            )
        for name in ("video_id", "path", "error"):
            h5.create_dataset(f"failed/{name}", shape=(0,), dtype=text)
    with FeatureStore(path) as store:
        assert store.meta.dtype == "float32"
        x, mask, y = store.load()
        np.testing.assert_array_equal(x[0], np.arange(6).reshape(3, 2))
        assert mask.tolist() == [[True, True, False]] and y.tolist() == [0]
