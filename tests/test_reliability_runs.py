"""Fault injection after extraction: a killed train-sequence, bad caches, bad run directories.

train-sequence is killed with SIGKILL in a real CLI subprocess while an epoch
runs (the one SIGKILL-and-resume test of train-sequence; finetune's resume is
tests/sequence/test_finetune.py's); caches and run directories are really
damaged on disk; a model file with a Lambda layer is really written. See
docs/reliability.md.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from vidseq.cache.schema import CacheMeta, VideoRecord
from vidseq.cache.writer import CacheWriter
from vidseq.cli import main
from vidseq.sequence.runs import run_dir as rd
from vidseq.sequence.runs.report_files import read_json
from vidseq.sequence.runs.saved_run import load_run

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
TRAIN = ["--units", "8", "--batch-size", "8", "--patience", "0", "--seed", "1", "--quiet"]


def write_cache(path, videos, *, frames=8, feature_dim=16):
    """A finished cache of a learnable two-class task (a rising or falling ramp)."""
    meta = CacheMeta(
        backbone="tiny",
        weights="none",
        weights_sha256="0" * 64,
        engine="tf",
        input_size=(32, 32),
        feature_dim=feature_dim,
        sampling={"mode": "uniform", "num_frames": frames},
        class_names=["up", "down"],
    )
    rng = np.random.default_rng(0)
    ramp = np.linspace(-1, 1, frames)[:, None]
    with CacheWriter(path, meta, commit_every=10**6) as writer:
        for i in range(videos):
            label = i % 2
            split = ("train", "train", "train", "val", "test")[i % 5]
            features = rng.normal(scale=0.3, size=(frames, feature_dim)) + ramp * (1 - 2 * label)
            record = VideoRecord(f"v{i:05d}", f"/d/v{i}.avi", label, split, f"g{i}", frames, 25, 9)
            writer.add(record, features, np.arange(frames), np.arange(frames) * 40.0)
        writer.finalize()
    return Path(path)


def snapshot(root):
    """{relative path: (bytes, mtime_ns)} of every file under ``root`` (or of one file)."""
    root = Path(root)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root.parent)): (p.read_bytes(), p.stat().st_mtime_ns) for p in files}


def one_error_line(capsys):
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("vidseq: error: ")
    return lines[0]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return write_cache(tmp_path_factory.mktemp("cache") / "features.h5", 60)


@pytest.fixture(scope="module")
def run(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["train-sequence", str(cache), "--out", str(out), "--epochs", "1", *TRAIN]) == 0
    return out


# -------------------------------------------------------------- SIGKILL mid-epoch


def _history_rows(path):
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return 0
    return max(0, len([line for line in lines if line.strip()]) - 1)


@pytest.mark.slow
def test_train_sequence_killed_mid_epoch_resumes_from_its_last_checkpoint(tmp_path, capsys):
    cache = write_cache(tmp_path / "big.h5", 300)
    out = tmp_path / "run"
    # --no-report: the synthetic cache's videos do not exist, so each page would warn.
    args = ["train-sequence", cache, "--out", out, "--epochs", "4", "--no-report", *TRAIN]
    process = subprocess.Popen(
        [sys.executable, "-m", "vidseq", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    history = out / rd.HISTORY_FILE
    seen = {}
    deadline = time.monotonic() + 300
    while len(seen) < 2 and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()[-2000:]
        rows = _history_rows(history)
        if rows and rows not in seen:
            seen[rows] = time.monotonic()
        time.sleep(0.005)
    epoch_seconds = seen[2] - seen[1]
    time.sleep(random.Random(7).uniform(0.2, 0.5) * epoch_seconds)  # inside epoch 3
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL

    state = read_json(out / rd.CHECKPOINT_DIR / "state.json")
    assert state["epochs_done"] in (2, 3) and not state["finished"]
    assert (out / rd.CHECKPOINT_DIR / state["checkpoint"]).is_file()
    assert not (out / rd.MODEL_FILE).exists()
    killed_at = state["epochs_done"]

    assert main([*map(str, args)]) == 2  # not without --resume
    assert "not empty" in one_error_line(capsys)
    assert main([*map(str, args), "--resume"]) == 0
    state = read_json(out / rd.CHECKPOINT_DIR / "state.json")
    assert state["finished"] and state["epochs_done"] == 4
    assert [row["epoch"] for row in state["history"]] == [1, 2, 3, 4]
    assert history.read_text().splitlines()[0].startswith("epoch,")
    epochs = [int(line.split(",")[0]) for line in history.read_text().splitlines()[1:]]
    assert epochs == [1, 2, 3, 4]
    for name in rd.RUN_FILES:
        assert (out / name).exists() or name == rd.REPORT_PAGE, name  # --no-report
    assert load_run(out).model is not None
    assert killed_at < 4

    # The resumed run finishes like an uninterrupted one, epoch for epoch.
    straight = tmp_path / "straight"
    assert main([*map(str, args[:3]), str(straight), *map(str, args[4:])]) == 0
    assert state["history"] == read_json(straight / rd.CHECKPOINT_DIR / "state.json")["history"]
    assert main([*map(str, args), "--resume"]) == 2
    assert "already finished" in one_error_line(capsys)


# ------------------------------------------------------------------- bad caches


def _truncated(good, bad):
    data = good.read_bytes()
    bad.write_bytes(data[: len(data) // 2])


def _foreign(good, bad):
    with h5py.File(bad, "w") as h5:
        h5["data"] = np.arange(10)
        h5.attrs["creator"] = "another tool"


def _newer(good, bad):
    shutil.copyfile(good, bad)
    with h5py.File(bad, "r+") as h5:
        h5.attrs["schema_version"] = np.int64(2)


def _missing_attribute(good, bad):
    shutil.copyfile(good, bad)
    with h5py.File(bad, "r+") as h5:
        del h5.attrs["class_names"]


BAD_CACHES = {
    "truncated": (_truncated, "truncated HDF5 file"),
    "foreign": (_foreign, "not a vidseq cache"),
    "newer": (_newer, "schema_version 2 is newer than this vidseq"),
    "missing attribute": (_missing_attribute, "missing root attribute 'class_names'"),
}


@pytest.mark.slow
@pytest.mark.parametrize("command", ["inspect", "train-sequence", "evaluate", "cache merge"])
@pytest.mark.parametrize("damage", sorted(BAD_CACHES))
def test_bad_caches_are_refused_with_one_line_and_nothing_is_written(
    cache, run, tmp_path, capsys, command, damage
):
    make, problem = BAD_CACHES[damage]
    bad = tmp_path / "bad cache.h5"
    make(cache, bad)
    argv = {
        "inspect": ["inspect", bad],
        "train-sequence": ["train-sequence", bad, "--out", tmp_path / "new run", *TRAIN],
        "evaluate": ["evaluate", run, bad],
        "cache merge": ["cache", "merge", tmp_path / "merged.h5", cache, bad],
    }[command]
    before = {**snapshot(tmp_path), **snapshot(run), **snapshot(cache)}
    assert main([str(arg) for arg in argv]) == 2
    line = one_error_line(capsys)
    assert str(bad) in line and problem in line, line
    assert {**snapshot(tmp_path), **snapshot(run), **snapshot(cache)} == before


# -------------------------------------------------------------- bad run directories


def _garbage_model(run_copy):
    (run_copy / rd.MODEL_FILE).write_bytes(b"not a zip archive at all")


def _truncated_model(run_copy):
    data = (run_copy / rd.MODEL_FILE).read_bytes()
    (run_copy / rd.MODEL_FILE).write_bytes(data[: len(data) // 2])


def _half_config(run_copy):
    text = (run_copy / rd.CONFIG_FILE).read_text()
    (run_copy / rd.CONFIG_FILE).write_text(text[: len(text) // 2])


def _config_without_frames(run_copy):
    config = json.loads((run_copy / rd.CONFIG_FILE).read_text())
    del config["frames"]
    (run_copy / rd.CONFIG_FILE).write_text(json.dumps(config))


BAD_RUNS = {
    "garbage model.keras": (_garbage_model, rd.MODEL_FILE, "not a valid .keras archive"),
    "truncated model.keras": (
        _truncated_model,
        rd.MODEL_FILE,
        "cannot load the model (not a valid .keras archive: truncated or corrupt)",
    ),
    "truncated config.json": (_half_config, rd.CONFIG_FILE, "corrupt run config"),
    "config.json without frames": (_config_without_frames, rd.CONFIG_FILE, "missing frames"),
}


@pytest.mark.slow
@pytest.mark.parametrize("command", ["evaluate", "predict"])
@pytest.mark.parametrize("damage", sorted(BAD_RUNS))
def test_corrupt_run_directories_are_refused_and_left_as_they_are(
    cache, run, tmp_path, capsys, command, damage
):
    make, name, problem = BAD_RUNS[damage]
    broken = tmp_path / "broken run"
    shutil.copytree(run, broken)
    make(broken)
    argv = {
        "evaluate": ["evaluate", broken, cache],
        "predict": ["predict", broken, tmp_path / "clip.avi"],
    }[command]
    before = snapshot(tmp_path)
    assert main([str(arg) for arg in argv]) == 2
    line = one_error_line(capsys)
    assert str(broken / name) in line and problem in line, line
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------- safe_mode


@pytest.mark.slow
def test_a_model_file_with_a_lambda_is_refused_and_its_code_never_runs(run, tmp_path, capsys):
    import keras

    marker = tmp_path / "the lambda ran"
    config = rd.read_run_config(run)
    inputs = keras.Input((int(config["frames"]), int(config["feature_dim"])))
    # The path is a constant of the lambda's own code (Keras stores the bytecode).
    touch = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]")
    payload = keras.layers.Lambda(touch)(inputs)
    pooled = keras.layers.GlobalAveragePooling1D()(payload)
    outputs = keras.layers.Dense(len(config["class_names"]), activation="softmax")(pooled)
    hostile = tmp_path / "hostile run"
    shutil.copytree(run, hostile)
    keras.Model(inputs, outputs).save(hostile / rd.MODEL_FILE)
    marker.unlink()  # building the model ran it once, here in the test
    before = snapshot(hostile)

    for argv in (["evaluate", hostile], ["predict", hostile, tmp_path / "clip.avi"]):
        assert main([str(arg) for arg in argv]) == 2
        line = one_error_line(capsys)
        assert str(hostile / rd.MODEL_FILE) in line and "Lambda" in line, line
        assert not marker.exists(), "the model file ran code"
    assert snapshot(hostile) == before

    # The file is a real threat: without safe_mode, loading it runs the lambda.
    keras.saving.load_model(hostile / rd.MODEL_FILE, safe_mode=False)
    assert marker.exists()
