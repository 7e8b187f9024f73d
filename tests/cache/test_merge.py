"""merge_caches: shards merge into the file one run would have written; bad inputs refused."""

import pytest

from vidseq.cache import CacheWriter, FailedRecord, FeatureStore, merge_caches
from vidseq.cache.merge import cache_merge
from vidseq.errors import CacheError

IDS = [f"class{c}/v_{i:02d}.avi" for c in range(3) for i in range(4)]


def test_shards_merge_into_the_single_run_file(tmp_path, write_cache, assert_same_cache):
    failures = [FailedRecord("class9/bad.avi", "/data/bad", "cannot open")]
    shards = [
        write_cache(tmp_path / f"shard{k}.h5", IDS[k::3], failures=failures if k == 1 else ())
        for k in range(3)
    ]
    out = merge_caches(tmp_path / "merged.h5", shards[::-1])
    single = write_cache(tmp_path / "single.h5", IDS, failures=failures, commit_every=100)
    assert_same_cache(out, single)
    assert out.read_bytes() == single.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "merged.h5",
        "shard0.h5",
        "shard1.h5",
        "shard2.h5",
        "single.h5",
    ]


def test_disagreeing_shards_are_refused(tmp_path, write_cache, make_meta):
    a = write_cache(tmp_path / "a.h5", IDS[:2])
    b = write_cache(tmp_path / "b.h5", IDS[2:4], make_meta(sampling={"mode": "fps"}))
    c = write_cache(tmp_path / "c.h5", IDS[4:6], make_meta(class_names=["x", "y", "z"]))
    with pytest.raises(CacheError, match=r"b\.h5 disagrees with .*a\.h5: sampling"):
        merge_caches(tmp_path / "m.h5", [a, b])
    with pytest.raises(CacheError, match="class_names"):
        merge_caches(tmp_path / "m.h5", [a, c])
    assert not (tmp_path / "m.h5").exists()


def test_shared_video_id_is_refused(tmp_path, write_cache):
    a = write_cache(tmp_path / "a.h5", IDS[:3])
    b = write_cache(tmp_path / "b.h5", IDS[2:5])
    with pytest.raises(CacheError, match=f"video id '{IDS[2]}' is in both"):
        merge_caches(tmp_path / "m.h5", [a, b])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "b.h5"]


def test_output_rules(tmp_path, write_cache, make_meta, make_video):
    a = write_cache(tmp_path / "a.h5", IDS[:3])
    b = write_cache(tmp_path / "b.h5", IDS[3:6])
    with pytest.raises(CacheError, match="also an input"):
        merge_caches(a, [a, b], overwrite=True)
    out = merge_caches(tmp_path / "m.h5", [a, b])
    with pytest.raises(CacheError, match="already exists"):
        merge_caches(out, [a])
    merge_caches(out, [a], overwrite=True)
    with FeatureStore(out) as store:
        assert list(store.video_ids) == sorted(IDS[:3])
    with pytest.raises(CacheError, match="at least one"):
        merge_caches(tmp_path / "n.h5", [])
    with pytest.raises(CacheError, match="twice"):
        merge_caches(tmp_path / "n.h5", [a, a])
    with CacheWriter(tmp_path / "u.h5", make_meta(), commit_every=1) as writer:
        writer.add(*make_video("zzz")[:4])
        writer.finalize()
    with CacheWriter(tmp_path / "u.h5", make_meta(), commit_every=1) as writer:
        writer.add(*make_video("zzzz")[:4])  # leaves unfinished parts
    with pytest.raises(CacheError, match="unfinished parts"):
        merge_caches(tmp_path / "n.h5", [a, tmp_path / "u.h5"])
    with pytest.raises(CacheError, match=r"missing\.h5: no such cache file"):
        merge_caches(tmp_path / "n.h5", [a, tmp_path / "missing.h5"])


def test_cache_merge_is_the_command_s_api_and_its_result_prints_itself(tmp_path, write_cache):
    shards = [write_cache(tmp_path / f"s{k}.h5", IDS[k::2]) for k in range(2)]
    result = cache_merge(tmp_path / "m.h5", shards)
    assert result.out == tmp_path / "m.h5" and result.out.is_file()
    assert result.summary() == f"merged 2 caches into {tmp_path / 'm.h5'}"
    assert result.to_dict() == {"out": str(result.out), "inputs": [str(p) for p in shards]}
