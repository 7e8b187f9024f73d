"""Rules 2 and 3 of docs/reliability.md: bounded sizes, finite numbers, valid JSON.

Real run directories (the shared tiny-CNN run, copied before tampering), real
caches written with CacheWriter, real training; every command is run
in-process through ``cli.main``.
"""

import json
import math
import shutil
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from vidseq.bounds import json_safe
from vidseq.cli import main
from vidseq.errors import VidseqError
from vidseq.sequence.runs.saved_run import load_model_file
from vidseq.sequence.train.training import train_sequence


def one_line(argv, capsys, code=2):
    """Runs the command line; asserts the exit code and one line on stderr; returns it."""
    got = main([str(a) for a in argv])
    lines = capsys.readouterr().err.strip().splitlines()
    assert got == code, lines
    assert len(lines) == 1 and lines[0].startswith("vidseq: error: "), lines
    return lines[0]


@pytest.fixture(scope="module")
def files(feature_run_files, tmp_path_factory):
    sample, cache, run = feature_run_files
    return {"sample": Path(sample), "cache": Path(cache), "run": Path(run)}


@pytest.fixture
def tampered_run(files, tmp_path):
    """Returns ``make(**changes) -> run dir``: a copy of the run with config.json changed."""

    def make(**changes):
        run = tmp_path / "run"
        shutil.copytree(files["run"], run, dirs_exist_ok=True)
        config = json.loads((run / "config.json").read_text())
        for key, value in changes.items():
            section, _, field = key.partition("__")
            if field:
                config[section][field] = value
            else:
                config[section] = value
        (run / "config.json").write_text(json.dumps(config))
        return run

    return make


@pytest.mark.slow
@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"sampling__num_frames": 1e9}, ["num_frames must be an integer between 1 and 4096"]),
        ({"frames": 1_000_000_000}, ["frames must be an integer between 1 and 4096"]),
        ({"input_size": [32, 10**9]}, ["input_size must be an integer between 1 and 8192"]),
        ({"class_names": 5}, ["class_names has the wrong type"]),
        ({"sampling": "uniform"}, ["sampling has the wrong type"]),
        ({"train": {"val_fraction": "a lot"}}, ["corrupt run config"]),
        ({"num_classes": 3}, ["class_names must list num_classes names"]),
    ],
)
def test_a_tampered_config_json_is_one_line_for_every_reader(
    tampered_run, files, changes, words, capsys
):
    run = tampered_run(**changes)
    before = (run / "config.json").read_bytes()
    video = next(files["sample"].glob("Grow/*.avi"))
    for argv in (["evaluate", run], ["predict", run, video], ["export", run, "--format", "onnx"]):
        if argv[0] == "export":
            argv += ["--out", run.parent / "export"]
        line = one_line(argv, capsys)
        assert "config.json: corrupt run config" in line, line
        for word in words:
            assert word in line, line
    assert (run / "config.json").read_bytes() == before
    assert not (run.parent / "export").exists()


@pytest.mark.slow
def test_a_model_with_non_finite_normalisation_statistics_is_refused_by_every_reader(
    files, tmp_path, capsys
):
    run = tmp_path / "run"
    shutil.copytree(files["run"], run)
    model = load_model_file(run / "model.keras")
    means = [w for w in model.weights if "normalization" in w.path and w.name == "mean"]
    assert len(means) == 1, [w.path for w in model.weights]
    means[0].assign(np.full(means[0].shape, np.nan, dtype="float32"))
    model.save(run / "model.keras")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    video = next(files["sample"].glob("Grow/*.avi"))
    export = tmp_path / "export"
    for argv in (
        ["evaluate", run],
        ["predict", run, video],
        ["export", run, "--format", "savedmodel", "--out", export],
        ["watch", run, video],
    ):
        line = one_line(argv, capsys)
        assert line.startswith(f"vidseq: error: {run / 'model.keras'}: the model's weight "), line
        assert means[0].path in line and "NaN or infinite" in line
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert not export.exists()


@pytest.mark.slow
def test_training_reads_no_more_frames_than_the_cache_has(files, tmp_path, capsys):
    out = tmp_path / "run"
    line = one_line(["train-sequence", files["cache"], "--out", out, "--frames", "7"], capsys)
    assert "--frames must be at most 6, the rows per video of" in line
    line = one_line(["train-sequence", files["cache"], "--out", out, "--frames", "100000"], capsys)
    assert "--frames must be at most 4096" in line
    line = one_line(
        ["train-sequence", files["cache"], "--out", out, "--units", "1000000000"], capsys
    )
    assert "--units must be at most 4096. Received: --units=1000000000" in line
    assert not out.exists()


NON_FINITE_FLAGS = [
    ("train-sequence", "{cache}", "--out", "{tmp}/r", "--lr={x}"),
    ("train-sequence", "{cache}", "--out", "{tmp}/r", "--dropout={x}"),
    ("train-sequence", "{cache}", "--out", "{tmp}/r", "--label-smoothing={x}"),
    ("train-sequence", "{cache}", "--out", "{tmp}/r", "--val-fraction={x}"),
    ("compare", "{cache}", "--out", "{tmp}/c", "--lr={x}"),
    ("finetune", "{run}", "--out", "{tmp}/f", "--lr={x}"),
    ("extract-features", "{sample}", "--out", "{tmp}/f.h5", "--frame-rate={x}"),
    ("extract-features", "{sample}", "--out", "{tmp}/f.h5", "--face-margin={x}"),
    ("extract-features", "{sample}", "--out", "{tmp}/f.h5", "--cut-ratio={x}"),
    ("predict", "{run}", "{video}", "--window={x}"),
    ("predict", "{run}", "{video}", "--window", "1", "--stride={x}"),
    ("watch", "{run}", "{video}", "--stride={x}"),
    ("watch", "{run}", "{video}", "--max-seconds={x}"),
    ("make-sample", "{tmp}/s", "--event-fraction={x}"),
]


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_every_float_flag_refuses_non_finite_values(files, tmp_path, value, capsys):
    names = {
        "cache": files["cache"],
        "run": files["run"],
        "sample": files["sample"],
        "video": next(files["sample"].glob("Grow/*.avi")),
        "tmp": tmp_path,
        "x": value,
    }
    for template in NON_FINITE_FLAGS:
        argv = [part.format(**names) for part in template]
        line = one_line(argv, capsys)
        assert value in line.lower() or "nan" in line.lower(), (argv, line)
    assert list(tmp_path.iterdir()) == []


def test_a_cache_with_nan_features_is_refused_before_training(cache_factory, tmp_path, capsys):
    cache = cache_factory(per_class={"train": 4, "val": 1, "test": 1})
    with h5py.File(cache, "r+") as f:
        features = f["features"][...]
        features[5, 3] = np.nan
        f["features"][...] = features
    before = cache.read_bytes()
    for argv in (
        ["train-sequence", cache, "--out", tmp_path / "run", "--units", "8", "--epochs", "1"],
        ["compare", cache, "--out", tmp_path / "cmp", "--heads", "pool", "--seeds", "0"],
    ):
        line = one_line(argv, capsys)
        assert "has NaN or infinite features" in line
    assert cache.read_bytes() == before
    assert not (tmp_path / "run" / "model.keras").exists()


def test_a_loss_that_becomes_nan_stops_the_run_marked_failed(
    cache_factory, tmp_path, capsys, eagerly
):
    cache = cache_factory(per_class={"train": 4, "val": 1, "test": 1})
    run = tmp_path / "run"
    argv = ["train-sequence", cache, "--out", run, "--units", "8", "--epochs", "3"]
    with eagerly():
        line = one_line([*argv, "--lr", "1e38", "--batch-size", "4", "--quiet"], capsys, code=1)
    assert "training failed" in line and "became nan in epoch 1" in line
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    assert state["finished"] is False and state["failed"].startswith("loss became nan")
    assert not (run / "model.keras").exists() and not (run / "metrics.json").exists()


class _NaNWeightsInEpoch2(keras.callbacks.Callback):
    """A fault injected once: the weights become NaN as epoch 2 begins."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            for weight in self.model.trainable_weights:
                weight.assign(np.full(weight.shape, np.nan, dtype=weight.dtype))


@pytest.mark.slow
def test_a_resumed_run_that_finishes_is_no_longer_marked_failed(
    cache_factory, tmp_path, small_config, eagerly
):
    cache = cache_factory(per_class={"train": 4, "val": 1, "test": 1})
    run, config = tmp_path / "run", small_config(epochs=2, eval_clips=1)
    fault = [_NaNWeightsInEpoch2()]
    with eagerly(), pytest.raises(VidseqError, match="became nan in epoch 2"):
        train_sequence(cache, run, config, verbose=0, callbacks=fault, report=False)
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    assert state["failed"].startswith("loss became nan") and state["epochs_done"] == 1
    with eagerly():
        result = train_sequence(cache, run, config, resume=True, verbose=0, report=False)
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    assert result.resumed_from == 1 and state["finished"] and state["epochs_done"] == 2
    assert state["failed"] is None


def test_json_output_is_always_valid_json():
    value = {"p": np.float32("nan"), "q": [math.inf, 1.5, np.arange(2)], "n": np.int64(3)}
    text = json.dumps(json_safe(value), allow_nan=False)
    assert json.loads(text) == {"p": None, "q": [None, 1.5, [0, 1]], "n": 3}


def test_evaluate_refuses_a_clip_count_out_of_bounds(files, tmp_path, capsys):
    for clips in ("-5", "0", "100000"):
        argv = ["evaluate", files["run"], f"--clips={clips}", "--out", tmp_path / "report"]
        line = one_line(argv, capsys)
        assert f"--clips must be an integer between 1 and 1024. Received: --clips={clips}" in line
    assert not (tmp_path / "report").exists()


def test_a_negative_seed_is_one_line_for_every_command_that_takes_one(files, tmp_path, capsys):
    """Found by HYPOTHESIS_PROFILE=thorough: extract-features --seed=-1 was a NumPy traceback."""
    cases = [
        ["extract-features", files["sample"], "--out", tmp_path / "f.h5", "--seed=-1"],
        ["compare", files["cache"], "--out", tmp_path / "c", "--seeds=-1"],
        ["train-sequence", files["cache"], "--out", tmp_path / "r", "--seed=-1"],
        ["make-sample", tmp_path / "s", "--seed=-1"],
    ]
    for argv in cases:
        line = one_line(argv, capsys)
        assert "seed" in line and "-1" in line, line
    assert list(tmp_path.iterdir()) == []
