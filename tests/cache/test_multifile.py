"""Several shard files read as one cache through FeatureStore (no merge)."""

import json
import os

import numpy as np
import pytest

from vidseq.cache import FailedRecord, FeatureStore, merge_caches, summarize
from vidseq.cache.files import absolute_cache_spec, cache_files
from vidseq.cache.inspection import describe_video, format_summary
from vidseq.cli import main
from vidseq.errors import CacheError

INDEX = ("video_ids", "paths", "labels", "splits", "groups", "lengths", "num_valid", "fps")
INDEX += ("num_source_frames",)


def _ids(n, prefix="v"):
    return [f"{prefix}{k:03d}/clip.avi" for k in range(n)]


@pytest.fixture
def shards(tmp_path, write_cache, hostile_ids):
    """Three shards (split by a hash, like extraction) and the single file of all ids."""
    ids = _ids(20) + hostile_ids
    parts = [[v for k, v in enumerate(ids) if (k * 7) % 3 == s] for s in range(3)]
    failures = [FailedRecord("bad/one.avi", "/data/bad/one.avi", "cannot decode")]
    files = [
        write_cache(tmp_path / f"feats-{s}.h5", part, failures=failures if s == 1 else ())
        for s, part in enumerate(parts)
    ]
    single = write_cache(tmp_path / "single" / "all.h5", ids, failures=failures)
    return files, single


def assert_same_store(a, b):
    assert len(a) == len(b)
    assert a.meta == b.meta
    assert a.row_names == b.row_names
    assert a.num_rows == b.num_rows
    for name in INDEX:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.failed == b.failed
    xa, ma, ya = a.load()
    xb, mb, yb = b.load()
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ma, mb)
    np.testing.assert_array_equal(ya, yb)
    for i in range(len(a)):
        np.testing.assert_array_equal(a.features(i), b.features(i))
        for name in a.row_names:
            np.testing.assert_array_equal(a.rows(name, i), b.rows(name, i), err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["list", "glob", "globs"])
def test_shards_read_together_equal_the_single_file(shards, tmp_path, how):
    files, single = shards
    spec = {
        "list": [str(f) for f in reversed(files)],  # any order: videos are sorted by id
        "glob": str(tmp_path / "feats-*.h5"),
        "globs": [str(tmp_path / "feats-[01].h5"), str(tmp_path / "feats-2.h5")],
    }[how]
    with FeatureStore(spec) as many, FeatureStore(single) as one:
        assert sorted(many.files) == sorted(files)
        assert list(many.video_ids) == sorted(many.video_ids)
        assert_same_store(many, one)
        for i in (0, 5, len(many) - 1):
            assert many.index_of(one.video_ids[i]) == i
            assert many.file_of(i) in files
        # A shuffled selection, with repeats, through both slice readers.
        rng = np.random.default_rng(0)
        pick = rng.integers(0, len(one), size=40)
        np.testing.assert_array_equal(many.load(pick)[0], one.load(pick)[0])
        got = [(i, x) for i, x in many.iter_videos(pick)]
        want = [(i, x) for i, x in one.iter_videos(pick)]
        assert [i for i, _ in got] == [i for i, _ in want]
        for (_, x), (_, y) in zip(got, want, strict=True):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(many.select(split="train"), one.select(split="train"))


def test_shards_read_together_equal_their_merge(shards, tmp_path):
    files, _ = shards
    merged = merge_caches(tmp_path / "merged" / "m.h5", files)
    with FeatureStore(files) as many, FeatureStore(merged) as one:
        assert_same_store(many, one)


def test_open_file_limit(shards, monkeypatch):
    from vidseq.cache import store as store_module

    monkeypatch.setattr(store_module, "MAX_OPEN_FILES", 1)
    files, single = shards
    with FeatureStore(files) as many, FeatureStore(single) as one:
        assert_same_store(many, one)
        assert len(many._handles) == 1
    assert many._handles is None  # closed


def test_single_file_keeps_its_fast_path(shards):
    files, _ = shards
    for spec in (files[0], str(files[0]), [files[0]]):
        with FeatureStore(spec) as store:
            assert store.files == [store.path] and store.path == files[0]
            assert store._bases is None and store._h5 is not None


def test_disagreeing_files_are_refused_with_the_differences(tmp_path, write_cache, make_meta):
    a = write_cache(tmp_path / "a.h5", _ids(3))
    b = write_cache(tmp_path / "b.h5", _ids(3, "w"), meta=make_meta(backbone="resnet50"))
    c = write_cache(tmp_path / "c.h5", _ids(3, "x"), meta=make_meta(dtype="float32"))
    with pytest.raises(CacheError, match=r"b\.h5 disagrees with .*a\.h5: backbone: 'tiny'"):
        FeatureStore([a, b])
    with pytest.raises(CacheError, match="dtype: 'float16' vs 'float32'"):
        FeatureStore([a, c])


def test_shared_video_id_is_refused(tmp_path, write_cache):
    a = write_cache(tmp_path / "a.h5", _ids(4))
    b = write_cache(tmp_path / "b.h5", [*_ids(2, "w"), "v002/clip.avi"])
    with pytest.raises(CacheError, match=r"'v002/clip\.avi' is in both .*a\.h5 and .*b\.h5"):
        FeatureStore([a, b])


def test_bad_specs(tmp_path, write_cache):
    a = write_cache(tmp_path / "a.h5", _ids(2))
    with pytest.raises(CacheError, match="no cache file matches"):
        FeatureStore(str(tmp_path / "nothing-*.h5"))
    with pytest.raises(CacheError, match="is a directory"):
        FeatureStore(tmp_path)
    with pytest.raises(CacheError, match="given twice"):
        FeatureStore([a, str(a)])
    with pytest.raises(CacheError, match="no such cache file"):
        FeatureStore([a, tmp_path / "missing.h5"])
    with pytest.raises(CacheError, match="empty list"):
        cache_files([])


def test_unfinished_shard_is_refused(tmp_path, write_cache):
    a = write_cache(tmp_path / "a.h5", _ids(2))
    b = write_cache(tmp_path / "b.h5", _ids(2, "w"))
    (tmp_path / "b.h5.parts").mkdir()
    with pytest.raises(CacheError, match="unfinished parts"):
        FeatureStore([a, b])


def test_absolute_cache_spec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_cache_spec("f-*.h5") == str(tmp_path / "f-*.h5")
    assert absolute_cache_spec(["a.h5", tmp_path / "b.h5"]) == [
        str(tmp_path / "a.h5"),
        str(tmp_path / "b.h5"),
    ]


def test_inspect_reads_several_files(shards, tmp_path, capsys):
    files, single = shards
    summary = summarize([str(f) for f in files])
    one = summarize(single)
    assert summary["files"] == [str(f) for f in files]
    assert summary["file_size"] == sum(os.path.getsize(f) for f in files)
    for key in ("num_videos", "num_rows", "videos_per_split", "videos_per_class", "failed"):
        assert summary[key] == one[key], key
    assert "3 files" in format_summary(summary)
    video = describe_video(str(tmp_path / "feats-*.h5"), "v004/clip.avi")
    assert video["file"] in map(str, files)
    assert video["frame_indices"] == describe_video(single, "v004/clip.avi")["frame_indices"]

    capsys.readouterr()
    assert main(["inspect", *map(str, files), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_videos"] == one["num_videos"]
    assert main(["inspect", str(tmp_path / "feats-*.h5")]) == 0
    assert "3 files" in capsys.readouterr().out
