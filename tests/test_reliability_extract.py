"""Fault injection into extract-features: kills, a full disk, a second writer, bad inputs.

Every fault is real: processes are killed with SIGKILL or stopped with SIGSTOP,
the file size limit is set with ``setrlimit(RLIMIT_FSIZE)`` in the child, files
are really corrupt, and the unreadable file is unreadable for root too (the
child runs without CAP_DAC_OVERRIDE). See docs/reliability.md.
"""

import ctypes
import json
import os
import random
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from vidseq.cache.packing import PACK_OVERHEAD_BYTES
from vidseq.cache.store import FeatureStore
from vidseq.cli import main
from vidseq.extract.sources.sample_data import make_sample

FLAGS = ["--frames", "4", "--batch-size", "4", "--decode-workers", "1", "--commit-every", "1"]
FLAGS += ["--quiet"]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def vidseq_command(*args):
    return [sys.executable, "-m", "vidseq", *(str(a) for a in args)]


def error_lines(stderr):
    """The lines vidseq itself wrote to stderr (TensorFlow's start-up chatter left out)."""
    return [line for line in stderr.splitlines() if line.startswith("vidseq:")]


def cache_contents(path):
    """Every dataset and root attribute of a cache but ``vidseq_version``, as plain values."""
    contents = {}
    with h5py.File(path, "r") as h5:
        for key, value in h5.attrs.items():
            if key != "vidseq_version":
                contents[f"@{key}"] = np.asarray(value).tolist()

        def visit(name, node):
            if isinstance(node, h5py.Dataset):
                if h5py.check_string_dtype(node.dtype) is not None:
                    contents[name] = node.asstr()[()].tolist()
                else:
                    contents[name] = node[()]
                for key, value in node.attrs.items():
                    contents[f"{name}@{key}"] = np.asarray(value).tolist()

        h5.visititems(visit)
    return contents


def assert_same_cache(a, b):
    left, right = cache_contents(a), cache_contents(b)
    assert sorted(left) == sorted(right)
    for key in left:
        np.testing.assert_array_equal(np.asarray(left[key]), np.asarray(right[key]), err_msg=key)


def committed_ids(parts_dir):
    """Ids in the committed part files; each part must be a complete, valid cache."""
    ids = set()
    for part in sorted(Path(parts_dir).glob("part-*.h5")):
        with FeatureStore(part) as store:
            ids.update(store.video_ids)
    return ids


def tree(root):
    """{relative path: (size, mtime_ns)} of every file under ``root``."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            stat = path.lstat()
            out[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """20 real videos (2 classes x 10)."""
    root = tmp_path_factory.mktemp("reliability") / "sample"
    return make_sample(root, seed=5, classes=["FadeIn", "FadeOut"], videos_per_class=10)


@pytest.fixture(scope="module")
def reference(sample, tmp_path_factory):
    """The cache of one uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "features.h5"
    assert (
        main(["extract-features", "--backbone", "tiny", str(sample), "--out", str(out), *FLAGS])
        == 0
    )
    return out


# -------------------------------------------------------------------------- SIGKILL


def _wait_for(condition, process, timeout=120.0):
    """Polls ``condition()`` every 2 ms; False if ``process`` ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.002)
    raise AssertionError("timed out waiting for the extraction")


@pytest.mark.slow
def test_sigkill_at_random_points_then_rerun_equals_an_uninterrupted_run(
    sample, reference, tmp_path, capsys
):
    out = tmp_path / "features.h5"
    parts = Path(f"{out}.parts")
    argv = ["extract-features", "--backbone", "tiny", sample, "--out", out, *FLAGS]
    command = vidseq_command(*argv)
    rng = random.Random(20260508)
    # Where each run is killed: during start-up (imports, backbone, taking the lock),
    # between or during part commits (twice: a run that resumed is killed again), and as
    # soon as finalize writes <out>.tmp-PID. The last one may come too late (the run
    # finished): that run is then the rerun. Each kill costs a TensorFlow start-up.
    points = ["startup", "commit", "commit", "finalize"]
    kills, done, finished = 0, set(), None
    for point in points:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
        )
        if point == "startup":
            time.sleep(rng.uniform(0.3, 2.0))
            hit = process.poll() is None
        elif point == "commit":
            target = len(list(parts.glob("part-*.h5"))) + rng.randint(1, 2)
            hit = _wait_for(lambda t=target: len(list(parts.glob("part-*.h5"))) >= t, process)
            time.sleep(rng.uniform(0.0, 0.015))
        else:
            hit = _wait_for(lambda: any(out.parent.glob(f"{out.name}.tmp-*")), process)
        process.send_signal(signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=300)
        if point == "finalize" and process.returncode == 0:
            finished = stdout
            break
        assert hit and process.returncode == -signal.SIGKILL, (point, stderr[-2000:])
        kills += 1
        now = committed_ids(parts) if parts.exists() else set()
        if out.exists():  # killed between the final rename and the parts' removal
            with FeatureStore(out) as store:
                now |= set(store.video_ids)
        assert now >= done, "committed videos were lost"
        done = now
    assert kills >= 3 and 0 < len(done) <= 20

    if finished is None:  # the rerun: in this process (no kill, no TensorFlow start-up)
        capsys.readouterr()
        code = main([str(a) for a in argv])
        finished, stderr = capsys.readouterr()
        assert code == 0, stderr[-2000:]
    skipped = int(finished.split(" failed, ")[1].split(" skipped")[0])
    assert skipped == len(done)  # each rerun continued where the last kill stopped it
    assert not parts.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.h5"]
    assert_same_cache(out, reference)


# ----------------------------------------------------------------- disk full (EFBIG)


def _limited(limit):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _run_limited(command, limit):
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
        preexec_fn=_limited(limit),  # SIGXFSZ: CPython ignores it at start-up
    )


def _assert_storage_error(result, names):
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    (line,) = error_lines(result.stderr)
    assert f"cannot write {names}" in line and "file size limit" in line
    assert "rerun the same command" in line


@pytest.mark.slow
def test_file_size_limit_at_finalize_keeps_every_part_and_a_rerun_completes(
    sample, reference, tmp_path
):
    out = tmp_path / "features.h5"
    parts = Path(f"{out}.parts")
    command = vidseq_command("extract-features", "--backbone", "tiny", sample, "--out", out, *FLAGS)
    # Room for each one-video part, not for the 20-video file.
    result = _run_limited(command, PACK_OVERHEAD_BYTES + 8 * 1024)
    _assert_storage_error(result, out)
    assert not out.exists()
    assert not any(tmp_path.glob("features.h5.tmp-*"))
    with FeatureStore(reference) as store:
        assert committed_ids(parts) == set(store.video_ids)
    assert (
        main(["extract-features", "--backbone", "tiny", str(sample), "--out", str(out), *FLAGS])
        == 0
    )
    assert not parts.exists()
    assert_same_cache(out, reference)


WRITER_UNDER_LIMIT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import vidseq.cache.storage as storage
    from vidseq.cache.schema import CacheMeta, VideoRecord
    from vidseq.cache.writer import CacheWriter
    from vidseq.errors import StorageError

    if sys.argv[2] == "kernel":
        storage.check_room = lambda *args: None  # let the kernel refuse the write itself
    meta = CacheMeta("tiny", "none", "0" * 64, "tf", (32, 32), 64, {"num_frames": 4}, ["a", "b"])
    try:
        with CacheWriter(sys.argv[1], meta, commit_every=1) as writer:
            for i in range(30):
                record = VideoRecord(f"v{i:02d}", f"v{i}.avi", i % 2, "train", "", 4, 25.0, 9)
                writer.add(record, np.full((4, 64), i), np.arange(4), np.arange(4) * 40.0)
            writer.finalize()
    except StorageError as error:
        print(error)
        sys.exit(1)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["kernel", "first commit"])
def test_file_size_limit_in_the_writer_is_a_storage_error(tmp_path, where):
    """``kernel``: the preflight check is off, write(2) itself fails with EFBIG inside
    HDF5 while finalize packs; ``first commit``: no room even for the first part."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER_UNDER_LIMIT)
    out = tmp_path / "c.h5"
    parts = Path(f"{out}.parts")
    if where == "kernel":
        free = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "free.h5"), where],
            capture_output=True,
            text=True,
        )
        assert free.returncode == 0, free.stderr[-2000:]
        limit = (tmp_path / "free.h5").stat().st_size - 1  # parts fit, the final file does not
    else:
        limit = 4096
    result = _run_limited([sys.executable, str(script), str(out), where], limit)
    assert result.returncode == 1, result.stderr[-2000:]
    failed_file = out if where == "kernel" else parts / "part-000001.h5"
    assert result.stdout.startswith(f"cannot write {failed_file}: file too large")
    assert "EFBIG" in result.stdout
    assert not out.exists()
    assert not any(tmp_path.glob("c.h5.tmp-*")) and not any(parts.glob("*.tmp"))
    assert len(committed_ids(parts)) == (30 if where == "kernel" else 0)


# ------------------------------------------------------------------- two writers


@pytest.mark.slow
def test_second_writer_of_the_same_output_is_refused_and_the_first_finishes(
    sample, reference, tmp_path, capsys
):
    out = tmp_path / "features.h5"
    parts = Path(f"{out}.parts")
    command = vidseq_command("extract-features", "--backbone", "tiny", sample, "--out", out, *FLAGS)
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    try:
        assert _wait_for(lambda: any(parts.glob("part-*.h5")), first)
        first.send_signal(signal.SIGSTOP)  # it holds the lock, mid-run
        before = tree(tmp_path)
        started = time.monotonic()
        code = main(
            ["extract-features", "--backbone", "tiny", str(sample), "--out", str(out), *FLAGS]
        )
        seconds = time.monotonic() - started
        assert code == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("vidseq: error: another vidseq process is writing")
        assert str(out) in line and str(parts / "lock") in line
        assert tree(tmp_path) == before  # the refused run touched nothing
        assert seconds < 30  # refused at once: it never waits for the lock
    finally:
        first.send_signal(signal.SIGCONT)
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-2000:]
    assert_same_cache(out, reference)


# ------------------------------------------------------------ bad videos and images


def _dac_capabilities_droppable():
    """True if a child can give up CAP_DAC_OVERRIDE/READ_SEARCH (root is then bound by modes)."""
    try:
        subprocess.run(["true"], preexec_fn=_drop_dac, check=True)
    except (subprocess.SubprocessError, OSError):
        return False
    return True


def _drop_dac():
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _write_video(path, count, height=48, width=64, fourcc="MJPG"):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25.0, (width, height))
    assert writer.isOpened()
    frame = np.zeros((height, width, 3), np.uint8)
    for i in range(count):
        frame[:] = (i * 8) % 256
        writer.write(frame)
    writer.release()
    return path


@pytest.mark.slow
def test_bad_videos_are_recorded_and_the_run_goes_on(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _write_video(data / "good.avi", 20)
    _write_video(data / "one frame.avi", 1)
    _write_video(data / "short.avi", 2)
    _write_video(data / "huge.avi", 5, height=3000, width=4000)
    (data / "zero.mp4").write_bytes(b"")
    (data / "noise.mp4").write_bytes(np.random.default_rng(1).bytes(50_000))
    (data / "notes.avi").write_text("this is not a video\n" * 100)
    mp4 = _write_video(data / "truncated.mp4", 30, fourcc="mp4v")
    mp4.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])
    _write_video(data / "locked.avi", 10)
    (data / "locked.avi").chmod(0)
    names = [*sorted(p.name for p in data.iterdir()), "missing.avi"]
    manifest = data / "videos.csv"
    manifest.write_text(
        "path,label\n" + "".join(f"{n},{'ab'[i % 2]}\n" for i, n in enumerate(names))
    )
    locked_is_unreadable = os.geteuid() != 0 or _dac_capabilities_droppable()
    out = tmp_path / "features.h5"
    result = subprocess.run(
        vidseq_command(
            "extract-features",
            "--backbone",
            "tiny",
            manifest,
            "--out",
            out,
            "--frames",
            "4",
            "--quiet",
        ),
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
        preexec_fn=_drop_dac if os.geteuid() == 0 and locked_is_unreadable else None,
    )
    assert result.returncode == 3, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    with FeatureStore(out) as store:
        ok = {vid: i for i, vid in enumerate(store.video_ids)}
        failed = {f.video_id: f.error for f in store.failed}
        rows = {vid: store.features(i).astype(np.float32) for vid, i in ok.items()}
        assert {vid: int(store.num_valid[i]) for vid, i in ok.items()} == {
            "good.avi": 4,
            "huge.avi": 4,  # 4000x3000 frames, resized one at a time
            "one frame.avi": 1,
            "short.avi": 2,
        }
        assert store.frame_indices(ok["one frame.avi"]).tolist() == [0, 0, 0, 0]
        assert store.frame_indices(ok["short.avi"]).tolist() == [0, 1, 1, 1]
    for features in rows.values():  # padding rows repeat the last real frame
        assert features.shape == (4, 64) and np.isfinite(features).all()
    np.testing.assert_array_equal(rows["short.avi"][2:], rows["short.avi"][[1, 1]])
    expected_failures = {
        "zero.mp4": "empty file (0 bytes)",
        "missing.avi": "no such file or directory",
        "noise.mp4": "cannot open it as a video",
        "notes.avi": "cannot open it as a video",
        "truncated.mp4": "cannot open it as a video",  # mp4v writes its index at the end
    }
    if locked_is_unreadable:
        expected_failures["locked.avi"] = "permission denied"
    for vid, reason in expected_failures.items():
        assert reason in failed.get(vid, ""), (vid, failed)
        assert any(
            line.startswith("failed: ") and vid in line for line in result.stderr.split("\n")
        )
    assert set(ok) | set(failed) == set(names)
    assert f"line {names.index('missing.avi') + 2} ('missing.avi')" in result.stderr


@pytest.mark.slow
def test_a_huge_frame_size_is_resized_frame_by_frame(tmp_path):
    """16 frames of 4000x3000 would take 576 MB if decoded frames were kept."""
    video = _write_video(tmp_path / "huge.avi", 16, height=3000, width=4000)
    probe = textwrap.dedent(
        """
        import resource, sys
        from vidseq.extract.decode.frames import FrameGeometry, read_frames
        from vidseq.extract.decode.sampling import SamplingConfig
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        frames = read_frames(sys.argv[1], SamplingConfig(num_frames=16), FrameGeometry((64, 64)))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(frames.frames.shape, frames.num_valid, (after - before) // 1024)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(video)], capture_output=True, text=True, check=True
    )
    shape, valid, grown_mb = result.stdout.rsplit(" ", 2)
    assert shape == "(16, 64, 64, 3)" and int(valid) == 16
    assert int(grown_mb) < 16 * 36 // 2, f"peak memory grew by {grown_mb} MB"


# ------------------------------------------------------------------- hostile input


HOSTILE_PATHS = [
    "with space/ünï cödé 😀.avi",
    "../outside the manifest/up.avi",
    "x/../y/back and forth.avi",
    "a" * 100 + "/" + "b" * 100 + "/" + "c" * 94 + ".avi",  # 300 characters
]


def test_hostile_ids_round_trip_and_nothing_is_written_outside_out(tmp_path, capsys):
    root = tmp_path / "world"
    manifest_dir = root / "manifests"
    manifest_dir.mkdir(parents=True)
    for i, relative in enumerate(HOSTILE_PATHS):
        target = Path(os.path.normpath(manifest_dir / relative))
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_video(target, 6 + i)
    assert len(HOSTILE_PATHS[3]) == 300
    manifest = manifest_dir / "hostile.csv"
    rows = "".join(f'"{p}",{"ab"[i % 2]}\n' for i, p in enumerate(HOSTILE_PATHS))
    manifest.write_text("path,label\n" + rows, encoding="utf-8")
    out_dir = root / "out"
    out_dir.mkdir()
    out = out_dir / "features.h5"
    before = tree(root)
    assert (
        main(["extract-features", "--backbone", "tiny", str(manifest), "--out", str(out), *FLAGS])
        == 0
    )
    after = tree(root)
    assert set(after) - set(before) == {"out/features.h5"}
    assert {k: v for k, v in after.items() if k in before} == before
    with FeatureStore(out) as store:
        assert sorted(store.video_ids) == sorted(HOSTILE_PATHS)
        for i, video_id in enumerate(HOSTILE_PATHS):
            index = store.index_of(video_id)
            assert store.num_source_frames[index] == 6 + i
            assert Path(store.paths[index]) == Path(os.path.normpath(manifest_dir / video_id))
    capsys.readouterr()
    for video_id in HOSTILE_PATHS:
        assert main(["inspect", str(out), "--video", video_id, "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["video_id"] == video_id and info["shape"] == [4, 64]
    assert tree(root) == after


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("file,label\nv.avi,a\n", r"hostile.csv, line 1: header lacks the column(s) path"),
        ("path,label\nv.avi,a\nw.avi\n", r"hostile.csv, line 3: expected 2 fields"),
        ("path,label,split\nv.avi,a,train\nw.avi,b,later\n", "line 3: unknown split 'later'"),
    ],
)
def test_bad_manifests_name_the_line_and_exit_2(tmp_path, capsys, text, message):
    manifest = tmp_path / "hostile.csv"
    manifest.write_text(text)
    out = tmp_path / "features.h5"
    assert (
        main(
            ["extract-features", "--backbone", "tiny", str(manifest), "--out", str(out), "--quiet"]
        )
        == 2
    )
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("vidseq: error:") and message in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile.csv"]
