"""CacheWriter: round trips, resume after SIGKILL, locking, mismatches, overwrite, failures."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from vidseq.cache import CacheWriter, FailedRecord, FeatureStore
from vidseq.cache.writer import parts_dir_for, recorded_precision_check
from vidseq.errors import CacheError

IDS = [f"class{c}/v_{i:02d}.avi" for c in range(3) for i in range(4)]


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_round_trip(tmp_path, write_cache, make_meta, make_video, dtype):
    meta = make_meta(dtype=dtype)
    path = write_cache(tmp_path / "c.h5", IDS[::-1], meta)
    with FeatureStore(path) as store:
        assert list(store.video_ids) == sorted(IDS)
        assert store.row_names == ["features", "face_found", "frame_indices", "timestamps_ms"]
        for video_id in IDS:
            record, x, fi, ts, extras = make_video(video_id, meta)
            i = store.index_of(video_id)
            got = store.features(i)
            assert got.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(got, x.astype(dtype))
            np.testing.assert_array_equal(store.frame_indices(i), fi)
            np.testing.assert_array_equal(store.timestamps_ms(i), ts)
            np.testing.assert_array_equal(store.rows("face_found", i), extras["face_found"])
            assert store.paths[i] == record.path and store.labels[i] == record.label
            assert store.splits[i] == record.split and store.groups[i] == record.group
            assert store.num_valid[i] == record.num_valid and store.fps[i] == record.fps
            assert store.num_source_frames[i] == record.num_source_frames
    assert not parts_dir_for(path).exists()


def test_hostile_ids_round_trip(tmp_path, write_cache, make_video, hostile_ids):
    path = write_cache(tmp_path / "c.h5", hostile_ids)
    with FeatureStore(path) as store:
        assert sorted(store.video_ids) == sorted(hostile_ids)
        for video_id in hostile_ids:
            i = store.index_of(video_id)
            assert store.video_ids[i] == video_id
            assert store.paths[i] == f"/data/{video_id}"
            np.testing.assert_array_equal(
                store.features(i), make_video(video_id)[1].astype(np.float16)
            )
    assert sorted(os.listdir(tmp_path)) == ["c.h5"]


def test_parts_are_committed_atomically_every_n_videos(tmp_path, make_meta, make_video):
    out = tmp_path / "c.h5"
    with CacheWriter(out, make_meta(), commit_every=2) as writer:
        for video_id in IDS[:5]:
            writer.add(*make_video(video_id)[:4])
        parts = sorted(p.name for p in parts_dir_for(out).iterdir())
        assert parts == ["lock", "part-000001.h5", "part-000002.h5"]
        assert writer.done_ids == set(IDS[:4])
        # every part is itself a valid schema-v1 cache
        with FeatureStore(parts_dir_for(out) / "part-000002.h5") as part:
            assert list(part.video_ids) == sorted(IDS[2:4])
    assert not out.exists()  # closed without finalize: pending committed, nothing packed
    assert len(list(parts_dir_for(out).glob("part-*.h5"))) == 3


def test_commit_seconds_bounds_the_lost_work(tmp_path, make_meta, make_video):
    out = tmp_path / "c.h5"
    with CacheWriter(out, make_meta(), commit_every=1000, commit_seconds=1e-9) as writer:
        writer.add(*make_video("a")[:4])
        assert writer.done_ids == {"a"}


_CHILD = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    from vidseq.cache import CacheMeta, CacheWriter, VideoRecord
    out, data_path, meta_json = sys.argv[1:4]
    data = np.load(data_path, allow_pickle=False)
    meta = CacheMeta(**json.loads(meta_json))
    records = json.loads(str(data["records"]))
    with CacheWriter(out, meta, commit_every=2, commit_seconds=3600) as writer:
        for k, rec in enumerate(records):
            writer.add(VideoRecord(**rec), data[f"x{k}"], data[f"fi{k}"], data[f"ts{k}"],
                       row_extras={"face_found": data[f"ff{k}"]})
        print("committed", sorted(writer.done_ids), flush=True)
        time.sleep(120)
    """
)


def _run_and_kill(tmp_path, out, meta, make_video, ids):
    arrays, records = {}, []
    for k, video_id in enumerate(ids):
        record, x, fi, ts, extras = make_video(video_id, meta)
        records.append(record.__dict__)
        arrays.update({f"x{k}": x, f"fi{k}": fi, f"ts{k}": ts, f"ff{k}": extras["face_found"]})
    data_path = tmp_path / "data.npz"
    np.savez(data_path, records=json.dumps(records), **arrays)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(out), str(data_path), json.dumps(meta.to_dict())],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline()
        assert line.startswith("committed"), line
        with pytest.raises(CacheError, match="another vidseq process is writing"):
            CacheWriter(out, meta)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL


def test_resume_after_sigkill_equals_a_single_run(
    tmp_path, make_meta, make_video, write_cache, assert_same_cache
):
    meta = make_meta()
    out = tmp_path / "resumed.h5"
    _run_and_kill(tmp_path, out, meta, make_video, IDS[:5])
    # commit_every=2: four videos are in two parts, the fifth was pending and is lost
    assert not out.exists()
    with CacheWriter(out, meta, commit_every=2) as writer:
        assert writer.done_ids == set(IDS[:4])
        for video_id in IDS:
            if video_id not in writer.done_ids:
                record, x, fi, ts, extras = make_video(video_id, meta)
                writer.add(record, x, fi, ts, row_extras=extras)
        writer.finalize()
    single = write_cache(tmp_path / "single.h5", IDS, meta, commit_every=100)
    assert_same_cache(out, single)
    assert out.read_bytes() == single.read_bytes()
    assert not parts_dir_for(out).exists()
    assert sorted(os.listdir(tmp_path)) == ["data.npz", "resumed.h5", "single.h5"]


def test_resume_on_top_of_a_final_file(tmp_path, make_meta, make_video, write_cache):
    meta = make_meta()
    out = write_cache(tmp_path / "c.h5", IDS[:6], meta)
    with CacheWriter(out, meta.__class__(**{**meta.to_dict(), "weights": "/x.h5"})) as writer:
        assert writer.done_ids == set(IDS[:6])  # same sha256, other label: same network
        for video_id in IDS[6:]:
            writer.add(*make_video(video_id, meta)[:4], row_extras=make_video(video_id)[4])
        writer.finalize()
    single = write_cache(tmp_path / "single.h5", IDS, meta)
    with FeatureStore(out) as a, FeatureStore(single) as b:
        assert list(a.video_ids) == list(b.video_ids)
        np.testing.assert_array_equal(a.load()[0], b.load()[0])


def test_second_concurrent_writer_is_refused(tmp_path, make_meta):
    out = tmp_path / "c.h5"
    with (
        CacheWriter(out, make_meta()),
        pytest.raises(CacheError, match=f"another vidseq process is writing {out}"),
    ):
        CacheWriter(out, make_meta())
    with CacheWriter(out, make_meta()) as writer:  # released on close
        writer.finalize()


def _snapshot(paths):
    out = {}
    for root in paths:
        for p in [root, *(root.rglob("*") if root.is_dir() else [])]:
            if p.is_file():
                out[str(p)] = (p.read_bytes(), p.stat().st_mtime_ns)
    return out


def test_mismatched_meta_is_refused_without_touching_anything(
    tmp_path, make_meta, make_video, write_cache
):
    meta = make_meta()
    out = write_cache(tmp_path / "c.h5", IDS[:3], meta)
    with CacheWriter(out, meta, commit_every=1) as writer:  # leaves one part
        writer.add(*make_video(IDS[3])[:4], row_extras=make_video(IDS[3])[4])
    before = _snapshot([tmp_path])
    other = make_meta(backbone="resnet50", weights_sha256="f" * 64)
    with pytest.raises(CacheError) as info:
        CacheWriter(out, other)
    message = str(info.value)
    assert "backbone: 'tiny' vs 'resnet50'" in message or "'resnet50' vs 'tiny'" in message
    assert "weights_sha256" in message and "overwrite" in message
    assert _snapshot([tmp_path]) == before
    # without parts: the final file alone is compared
    for p in parts_dir_for(out).iterdir():
        p.unlink()
    parts_dir_for(out).rmdir()
    before = _snapshot([tmp_path])
    with pytest.raises(CacheError, match=r"c\.h5 was made with other settings.*backbone"):
        CacheWriter(out, other)
    assert _snapshot([tmp_path]) == before
    assert not parts_dir_for(out).exists()


def test_overwrite_replaces_only_when_the_new_file_is_complete(
    tmp_path, make_meta, make_video, assert_same_cache, write_cache
):
    old_meta = make_meta()
    out = write_cache(tmp_path / "c.h5", IDS[:3], old_meta)
    old_bytes = out.read_bytes()
    new_meta = make_meta(feature_dim=4, sampling={"mode": "fps"})
    with CacheWriter(out, new_meta, overwrite=True, commit_every=1) as writer:
        assert writer.done_ids == set()
        writer.add(*make_video("n1", new_meta)[:4])
        assert out.read_bytes() == old_bytes  # old final intact until finalize
    # killed/closed before finalize: a rerun without overwrite resumes the new run
    with CacheWriter(out, new_meta, commit_every=1) as writer:
        assert writer.done_ids == {"n1"}
        assert out.read_bytes() == old_bytes
        writer.add(*make_video("n2", new_meta)[:4])
        writer.finalize()
    with FeatureStore(out) as store:
        assert store.meta == new_meta and list(store.video_ids) == ["n1", "n2"]
    single = tmp_path / "single.h5"
    with CacheWriter(single, new_meta) as writer:
        for video_id in ("n2", "n1"):
            writer.add(*make_video(video_id, new_meta)[:4])
        writer.finalize()
    assert_same_cache(out, single)


def test_overwrite_drops_stale_parts_of_another_run(tmp_path, make_meta, make_video):
    out = tmp_path / "c.h5"
    with CacheWriter(out, make_meta(), commit_every=1) as writer:
        writer.add(*make_video("old")[:4])
    new_meta = make_meta(dtype="float32")
    with pytest.raises(CacheError, match="holds parts of an unfinished run"):
        CacheWriter(out, new_meta)
    with CacheWriter(out, new_meta, overwrite=True) as writer:
        assert writer.done_ids == set()
        writer.add(*make_video("new", new_meta)[:4])
        writer.finalize()
    with FeatureStore(out) as store:
        assert list(store.video_ids) == ["new"] and store.meta.dtype == "float32"


def test_existing_non_cache_output_is_not_replaced_without_overwrite(
    tmp_path, make_meta, make_video
):
    out = tmp_path / "precious.h5"
    out.write_text("not a cache")
    with pytest.raises(CacheError, match="exists and is not a usable vidseq cache"):
        CacheWriter(out, make_meta())
    assert out.read_text() == "not a cache" and not parts_dir_for(out).exists()
    with CacheWriter(out, make_meta(), overwrite=True) as writer:
        writer.add(*make_video("a")[:4])
        writer.finalize()
    with FeatureStore(out) as store:
        assert list(store.video_ids) == ["a"]


def test_failures_are_retried_and_dropped_when_they_later_succeed(tmp_path, make_meta, make_video):
    out = tmp_path / "c.h5"
    meta = make_meta()
    with CacheWriter(out, meta) as writer:
        writer.add(*make_video("good")[:4])
        writer.add_failure(FailedRecord("flaky", "/data/flaky", "timeout"))
        writer.add_failure(FailedRecord("broken", "/data/broken", "no frames"))
    with CacheWriter(out, meta) as writer:
        assert writer.done_ids == {"good"}  # failures are not done: a rerun retries them
        writer.add(*make_video("flaky")[:4])
        writer.add_failure(FailedRecord("broken", "/data/broken", "still no frames"))
        writer.finalize()
    with FeatureStore(out) as store:
        assert list(store.video_ids) == ["flaky", "good"]
        assert store.failed == [FailedRecord("broken", "/data/broken", "still no frames")]


def test_exception_inside_the_block_keeps_committed_work(tmp_path, make_meta, make_video):
    out = tmp_path / "c.h5"
    with pytest.raises(KeyboardInterrupt), CacheWriter(out, make_meta()) as writer:
        writer.add(*make_video("a")[:4])
        raise KeyboardInterrupt
    with CacheWriter(out, make_meta()) as writer:
        assert writer.done_ids == {"a"}


def test_add_rejects_what_the_format_cannot_hold(tmp_path, make_meta, make_video):
    with CacheWriter(tmp_path / "c.h5", make_meta()) as writer:
        record, x, fi, ts, extras = make_video("a")
        with pytest.raises(ValueError, match=r"shape \(T, 8\)"):
            writer.add(record, x[:, :4], fi, ts)
        with pytest.raises(ValueError, match="frame_indices"):
            writer.add(record, x, fi[:-1], ts)
        with pytest.raises(ValueError, match="label"):
            writer.add(make_video("a", label=7)[0], x, fi, ts)
        record.video_id = "nul\x00id"
        with pytest.raises(ValueError, match="NUL"):
            writer.add(record, x, fi, ts)
        record.video_id = "a"
        writer.add(record, x, fi, ts, row_extras=extras)
        with pytest.raises(ValueError, match="row datasets"):
            writer.add(*make_video("b")[:4])  # without the extras of the first video


def test_empty_run_writes_an_empty_valid_cache(tmp_path, make_meta):
    with CacheWriter(tmp_path / "c.h5", make_meta()) as writer:
        path = writer.finalize()
    with FeatureStore(path) as store:
        assert len(store) == 0 and store.num_rows == 0
        x, mask, y = store.load()
        assert x.shape == (0, 0, 8) and mask.shape == (0, 0) and y.shape == (0,)


def test_recorded_precision_check_is_what_a_resumed_run_keeps(tmp_path, make_meta, make_video):
    check = {"precision": "int8", "reference": "tf fp32", "cosine_mean": 0.9999}
    written, new = make_meta(precision="int8", precision_check=check), make_meta(precision="int8")
    out = tmp_path / "c.h5"
    with CacheWriter(out, written, commit_every=1) as writer:  # interrupted: parts only
        writer.add(*make_video(IDS[0], written)[:4])
    assert recorded_precision_check(out, new) == check
    assert recorded_precision_check(out, make_meta(precision="bf16")) == {}  # other precision
    assert recorded_precision_check(out, make_meta(precision="int8", engine="openvino")) == {}
    assert recorded_precision_check(out, new, overwrite=True) == {}  # starts again
    with CacheWriter(out, written) as writer:
        writer.finalize()
    assert recorded_precision_check(out, new) == check  # the final file
    assert recorded_precision_check(tmp_path / "none.h5", new) == {}
