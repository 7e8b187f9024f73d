"""Shards from flags and job-array variables; parallel shard processes read together and merged."""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from vidseq.cache.store import FeatureStore
from vidseq.cli import main
from vidseq.errors import CacheError, UsageError
from vidseq.extract.sharding import resolve_shard, shard_output_path
from vidseq.extract.sources.sample_data import make_sample


def slurm(task, count, low=0, **extra):
    env = {
        "SLURM_ARRAY_TASK_ID": str(task),
        "SLURM_ARRAY_TASK_COUNT": str(count),
        "SLURM_ARRAY_TASK_MIN": str(low),
        "SLURM_ARRAY_TASK_MAX": str(low + count - 1),
        "SLURM_ARRAY_TASK_STEP": "1",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


# -- resolve_shard ----------------------------------------------------------------------------


def test_nothing_set_is_one_shard():
    assert resolve_shard(None, None, {}) == (1, 0)
    assert resolve_shard(1, None, {}) == (1, 0)
    assert resolve_shard(None, 0, {}) == (1, 0)


def test_flags():
    assert resolve_shard(4, 3, {}) == (4, 3)


def test_slurm_array_from_zero_and_from_a_non_zero_min():
    assert resolve_shard(None, None, slurm(2, 3)) == (3, 2)
    # --array=1-3: tasks 1, 2, 3 are shards 0, 1, 2
    assert [resolve_shard(None, None, slurm(t, 3, low=1)) for t in (1, 2, 3)] == [
        (3, 0),
        (3, 1),
        (3, 2),
    ]
    # older SLURM without TASK_COUNT: MAX - MIN + 1
    env = slurm(12, 4, low=10)
    del env["SLURM_ARRAY_TASK_COUNT"]
    assert resolve_shard(None, None, env) == (4, 2)


def test_slurm_array_that_is_not_a_range_is_refused():
    # --array=0-10:2 → six tasks 0, 2, ..., 10
    env = slurm(4, 6, SLURM_ARRAY_TASK_MAX=10, SLURM_ARRAY_TASK_STEP=2)
    with pytest.raises(UsageError, match="not a contiguous range"):
        resolve_shard(None, None, env)
    # --array=1,5,9 → three tasks, min 1, max 9
    with pytest.raises(UsageError, match="not a contiguous range"):
        resolve_shard(None, None, slurm(5, 3, low=1, SLURM_ARRAY_TASK_MAX=9))
    # explicit flags bypass it
    assert resolve_shard(3, 1, env) == (3, 1)


def test_kubernetes_indexed_job_needs_a_count():
    env = {"JOB_COMPLETION_INDEX": "4"}
    with pytest.raises(UsageError, match=r"VIDSEQ_NUM_SHARDS.*completions"):
        resolve_shard(None, None, env)
    assert resolve_shard(8, None, env) == (8, 4)
    assert resolve_shard(None, None, {**env, "VIDSEQ_NUM_SHARDS": "5"}) == (5, 4)
    assert resolve_shard(None, None, {"JOB_COMPLETION_INDEX": "0"}) == (1, 0)


def test_vidseq_variables():
    env = {"VIDSEQ_NUM_SHARDS": "6", "VIDSEQ_SHARD_INDEX": "5"}
    assert resolve_shard(None, None, env) == (6, 5)


def test_precedence():
    env = {
        **slurm(1, 3),
        "JOB_COMPLETION_INDEX": "7",
        "VIDSEQ_NUM_SHARDS": "10",
        "VIDSEQ_SHARD_INDEX": "9",
    }
    assert resolve_shard(4, 2, env) == (4, 2)  # flags first
    assert resolve_shard(None, None, env) == (10, 9)  # then VIDSEQ_*
    del env["VIDSEQ_NUM_SHARDS"], env["VIDSEQ_SHARD_INDEX"]
    assert resolve_shard(None, None, env) == (3, 1)  # then SLURM
    assert resolve_shard(None, 2, env) == (3, 2)  # a flag overrides one value
    del env["SLURM_ARRAY_TASK_ID"]
    assert resolve_shard(9, None, env) == (9, 7)  # then Kubernetes


@pytest.mark.parametrize(
    ("num_shards", "shard_index", "env", "message"),
    [
        (0, 0, {}, "at least 1"),
        (
            3,
            3,
            {},
            r"in \[0, 2\].*Received: 3 from num_shards/shard_index \(--num-shards/--shard-index\)",
        ),
        (3, -1, {}, r"in \[0, 2\]"),
        (3, None, {}, "no shard index"),
        (None, 2, {}, "no number of shards"),
        (4, None, slurm(1, 3), "has 3 tasks, but the number of shards is 4"),
        (None, None, slurm(3, 3, low=1, SLURM_ARRAY_TASK_ID=0), r"in \[0, 2\]"),
        (None, None, {"SLURM_ARRAY_TASK_ID": "x"}, "SLURM_ARRAY_TASK_ID must be an integer"),
        (None, None, {"SLURM_ARRAY_TASK_ID": "1"}, "cannot tell the number of shards"),
        (None, None, {"VIDSEQ_NUM_SHARDS": "2", "JOB_COMPLETION_INDEX": "2"}, r"in \[0, 1\]"),
    ],
)
def test_inconsistent_values_are_usage_errors(num_shards, shard_index, env, message):
    with pytest.raises(UsageError, match=message):
        resolve_shard(num_shards, shard_index, env)


def test_shard_output_path():
    assert shard_output_path("feats.h5", 3, 1) == "feats.h5"
    assert shard_output_path("feats-{shard}.h5", 3, 1) == "feats-1.h5"
    assert shard_output_path("f-{shard:05d}-of-{num_shards:05d}.h5", 12, 3) == (
        "f-00003-of-00012.h5"
    )
    assert shard_output_path("f-{{x}}.h5", 1, 0) == "f-{x}.h5"
    for bad in ("f-{x}.h5", "f-{.h5", "f-{}.h5"):
        with pytest.raises(UsageError, match=r"placeholder.*\. Received: out='f-"):
            shard_output_path(bad, 3, 1)


def test_cli_reports_an_inconsistent_array_as_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
    code = main(
        ["extract-features", "--backbone", "tiny", str(tmp_path), "--out", str(tmp_path / "f.h5")]
    )
    code_flags = main(
        [
            "extract-features",
            "--backbone",
            "tiny",
            str(tmp_path),
            "--out",
            str(tmp_path / "f.h5"),
            "--num-shards",
            "2",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and code_flags == 2
    assert "has 3 tasks, but the number of shards is 2" in err


# -- two shard processes in parallel ---------------------------------------------------------

EXTRACT = ["--frames", "5", "--batch-size", "4", "--quiet", "--decode-workers", "1"]


@pytest.fixture(scope="module")
def parallel_shards(tmp_path_factory):
    """A sample set, two shards run at once from SLURM variables, one full run.

    Shard 1 runs in a child process (``python -m vidseq``); once it holds its output's
    lock, shard 0 runs in this process, each shard reading its task from the environment.
    """
    root = tmp_path_factory.mktemp("shards")
    data = make_sample(root / "data", seed=5, videos_per_class=6)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "VIDSEQ_"))}
    env.pop("JOB_COMPLETION_INDEX", None)
    env.update(TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1")
    argv = ["extract-features", "--backbone", "tiny", str(data), *EXTRACT]
    argv += ["--out", str(root / "feats-{shard}-of-{num_shards}.h5")]
    # sbatch --array=1-2: a SLURM array that does not start at 0
    child = subprocess.Popen(
        [sys.executable, "-m", "vidseq", *argv],
        env={**env, **slurm(2, 2, low=1)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock = root / "feats-1-of-2.h5.parts" / "lock"
        deadline = time.monotonic() + 600
        while not lock.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lock.exists(), "the child shard never took its output's lock"
        here = io.StringIO()
        with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(here):
            for name in [*os.environ]:
                if name.startswith(("SLURM_", "VIDSEQ_")) or name == "JOB_COMPLETION_INDEX":
                    patch.delenv(name)
            for name, value in slurm(1, 2, low=1).items():
                patch.setenv(name, value)
            assert main(argv) == 0, here.getvalue()
        _, err = child.communicate(timeout=600)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    assert "shard 0 of 2" in here.getvalue() and "shard 1 of 2" in err
    shards = [root / f"feats-{s}-of-2.h5" for s in range(2)]
    single = root / "single.h5"
    assert (
        main(["extract-features", "--backbone", "tiny", str(data), "--out", str(single), *EXTRACT])
        == 0
    )
    return data, shards, single


@pytest.mark.slow
def test_parallel_shards_are_disjoint_and_cover_the_dataset(parallel_shards):
    _, shards, single = parallel_shards
    ids = []
    for path in shards:
        with FeatureStore(path) as store:
            assert len(store) > 0
            ids += list(store.video_ids)
    with FeatureStore(single) as store:
        assert sorted(ids) == list(store.video_ids)


@pytest.mark.slow
def test_parallel_shards_read_together_equal_the_single_run(parallel_shards, tmp_path):
    _, shards, single = parallel_shards
    pattern = str(shards[0].parent / "feats-*-of-2.h5")
    for spec in (shards, pattern):
        with FeatureStore(spec) as many, FeatureStore(single) as one:
            assert many.meta == one.meta
            assert len(many) == len(one) and many.num_rows == one.num_rows
            for name in ("video_ids", "paths", "labels", "splits", "groups", "lengths"):
                np.testing.assert_array_equal(getattr(many, name), getattr(one, name))
            np.testing.assert_array_equal(many.num_valid, one.num_valid)
            np.testing.assert_array_equal(many.load()[0], one.load()[0])
            for i in range(len(one)):
                np.testing.assert_array_equal(many.features(i), one.features(i))
                np.testing.assert_array_equal(many.frame_indices(i), one.frame_indices(i))
                np.testing.assert_array_equal(many.timestamps_ms(i), one.timestamps_ms(i))


@pytest.mark.slow
def test_parallel_shards_merged_equal_the_single_run(parallel_shards, tmp_path, assert_same_cache):
    _, shards, single = parallel_shards
    merged = tmp_path / "merged.h5"
    assert main(["cache", "merge", str(merged), *map(str, shards)]) == 0
    assert_same_cache(merged, single)


@pytest.mark.slow
def test_mismatched_shards_are_refused(parallel_shards, tmp_path, capsys):
    data, shards, _ = parallel_shards
    other = tmp_path / "other.h5"
    # shard 0 of 2 again, but with 4 frames per video: other sampling settings
    args = [
        "extract-features",
        "--backbone",
        "tiny",
        str(data),
        "--out",
        str(other),
        "--num-shards",
        "2",
    ]
    assert main([*args, "--shard-index", "0", "--frames", "4", "--quiet"]) == 0
    with pytest.raises(CacheError, match="sampling"):
        FeatureStore([shards[1], other])
    capsys.readouterr()
    assert main(["cache", "merge", str(tmp_path / "m.h5"), str(shards[1]), str(other)]) == 2
    assert main(["inspect", str(shards[1]), str(other)]) == 2
    assert "sampling" in capsys.readouterr().err
    # the same shard twice: shared video ids
    with pytest.raises(CacheError, match="is in both"):
        FeatureStore([shards[0], shards[1], shutil.copy(shards[0], tmp_path / "copy.h5")])


@pytest.mark.slow
def test_train_sequence_and_evaluate_on_a_glob_of_shards(
    parallel_shards, tmp_path, capsys, eagerly
):
    _, shards, _ = parallel_shards
    pattern = str(shards[0].parent / "feats-*-of-2.h5")
    run, listed = tmp_path / "run", tmp_path / "r2"
    small = ("--epochs", "1", "--units", "8", "--patience", "0", "--quiet")
    with eagerly():
        code = main(["train-sequence", pattern, "--out", str(run), *small])
        assert code == 0, capsys.readouterr().err
        # several files (an unquoted glob the shell expanded) are read as one cache too
        assert main(["train-sequence", *map(str, shards), "--out", str(listed), *small]) == 0
    listed_config = json.loads((listed / "config.json").read_text())
    assert listed_config["cache_path"] == [str(s) for s in shards]
    config = json.loads((run / "config.json").read_text())
    assert config["cache_path"] == pattern  # reopens the same shards
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["cache"] == pattern
    assert main(["evaluate", str(run), *map(str, shards), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["cache"] == [str(s) for s in shards]
    assert listed["accuracy"] == metrics["accuracy"]
