"""train_sequence: run directory, reproducibility, resume after a kill, refusals."""

import csv
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from vidseq.cache.store import FeatureStore
from vidseq.errors import CacheError, UsageError
from vidseq.sequence.run_dir import load_run
from vidseq.sequence.training import TrainConfig, scheduled_lr, train_sequence


def test_run_directory_holds_model_config_reports_and_checkpoints(trained_run, assert_run_files):
    cache, run_dir, result, tensorboard = trained_run
    assert_run_files(run_dir)
    if importlib.util.find_spec("tensorboard") is not None:
        assert any(tensorboard.rglob("*"))

    config = json.loads((run_dir / "config.json").read_text())
    with FeatureStore(cache) as store:
        for key, value in store.meta.to_dict().items():
            assert config[key] == value, key
    assert config["frames"] == 6
    assert config["head"]["rnn"] == "lstm" and config["head"]["units"] == 16
    assert config["train"]["seed"] == 0 and config["train"]["frames"] == 6
    assert config["cache_path"] == str(cache.resolve())
    assert config["splits"] == {"train": 48, "val": 16, "test": 16, "val_source": "cache"}
    assert config["vidseq_version"]

    with open(run_dir / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == result.epochs_completed == len(result.history)
    assert {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(rows[0])
    best = min(result.history, key=lambda r: r["val_loss"])
    assert result.best_epoch == best["epoch"]

    run = load_run(run_dir)  # safe_mode=True
    assert run.frames == 6 and run.class_names == config["class_names"]

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_videos"] == 16
    assert metrics["accuracy"] >= 0.9  # the RNN reads the order...
    assert metrics["baseline"]["accuracy"] <= 0.75  # ...mean pooling cannot
    assert "videos/s" in result.summary() and result.videos > 0


def _history(cache, out, **overrides):
    settings = {
        "units": 16,
        "epochs": 3,
        "batch_size": 16,
        "lr": 0.01,
        "patience": 0,
        "dropout": 0.3,
        "frames": 6,
        "temporal_shift": 1,
        "lr_schedule": "cosine",
        "label_smoothing": 0.1,
        "class_weight": "balanced",
        "seed": 5,
    }
    settings.update(overrides)
    return train_sequence(cache, out, TrainConfig(**settings), verbose=0).history


def test_same_seed_gives_the_same_history_in_memory_and_streamed(cache_factory, tmp_path):
    cache = cache_factory(length=12, num_valid=lambda i: 7 + i % 6)
    first = _history(cache, tmp_path / "a", streaming="memory")
    again = _history(cache, tmp_path / "b", streaming="memory")
    streamed = _history(cache, tmp_path / "c", streaming="stream")
    other_seed = _history(cache, tmp_path / "d", seed=6)
    assert first == again
    assert streamed == first
    assert other_seed != first
    # The cosine schedule reached the optimizer, epoch by epoch.
    assert [r["lr"] for r in first] == pytest.approx(
        [scheduled_lr("cosine", e, 0.01, 3, None) for e in range(3)]
    )


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import keras
    from vidseq.sequence.training import TrainConfig, train_sequence

    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                os.kill(os.getpid(), signal.SIGKILL)

    config = TrainConfig(**{settings!r})
    train_sequence(sys.argv[1], sys.argv[2], config, verbose=0, callbacks=[Kill()])
    """
)


def test_resume_after_sigkill_finishes_like_an_uninterrupted_run(cache_factory, tmp_path):
    cache = cache_factory(length=12, num_valid=lambda i: 7 + i % 6)
    settings = {
        "units": 16,
        "epochs": 4,
        "batch_size": 16,
        "lr": 0.01,
        "patience": 0,
        "dropout": 0.3,
        "frames": 6,
        "temporal_shift": 1,
        "lr_schedule": "step",
        "seed": 9,
    }
    run = tmp_path / "killed"
    script = tmp_path / "kill.py"
    script.write_text(KILLER.format(settings=settings))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, str(script), str(cache), str(run)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    assert state["epochs_done"] == 2 and not state["finished"]
    assert not (run / "model.keras").exists()

    with pytest.raises(UsageError, match="not empty"):
        train_sequence(cache, run, TrainConfig(**settings), verbose=0)
    resumed = train_sequence(cache, run, TrainConfig(**settings, resume=True), verbose=0)
    assert resumed.resumed_from == 2 and resumed.epochs_completed == 4
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    assert (run / "model.keras").is_file()

    straight = train_sequence(cache, tmp_path / "straight", TrainConfig(**settings), verbose=0)
    assert resumed.history == straight.history
    with pytest.raises(UsageError, match="already finished"):
        train_sequence(cache, run, TrainConfig(**settings, resume=True), verbose=0)


def test_occupied_run_directory_is_refused_unless_overwrite(cache_factory, tmp_path, small_config):
    cache = cache_factory()
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "model.keras").write_text("old")
    with pytest.raises(UsageError, match="not empty"):
        train_sequence(cache, out, small_config(epochs=1), verbose=0)
    assert (out / "model.keras").read_text() == "old"
    train_sequence(cache, out, small_config(epochs=1), overwrite=True, verbose=0)
    assert (out / "notes.txt").read_text() == "mine"
    load_run(out)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"labels": [-1] * 80}, UsageError, "no labelled video"),
        ({"splits": ["test"] * 80}, UsageError, "no labelled video in the 'train' split"),
        (
            {"class_names": ("only",), "per_class": {"train": 8, "val": 2}},
            UsageError,
            "single class",
        ),
        ({"shared_group": True}, UsageError, "on two sides of the split"),
    ],
)
def test_unusable_caches_are_refused_before_anything_is_written(
    cache_factory, tmp_path, small_config, options, error, message
):
    cache = cache_factory(**options)
    with pytest.raises(error, match=message):
        train_sequence(cache, tmp_path / "run", small_config(), verbose=0)
    assert not (tmp_path / "run").exists()


def test_not_a_cache_and_bad_settings_are_usage_errors(tmp_path, cache_factory):
    bogus = tmp_path / "notes.h5"
    bogus.write_text("hello")
    with pytest.raises(CacheError, match=r"notes\.h5"):
        train_sequence(bogus, tmp_path / "run", TrainConfig(), verbose=0)
    with pytest.raises(UsageError, match="rnn='rnn'"):
        train_sequence(cache_factory(), tmp_path / "run", TrainConfig(rnn="rnn"), verbose=0)
    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(UsageError, match="needs the tensorboard package"):
            train_sequence(cache_factory(), tmp_path / "run", TrainConfig(tensorboard="tb"))
    with pytest.raises(UsageError, match="lr_schedule"):
        TrainConfig(lr_schedule="exp").validate()
    assert not (tmp_path / "run").exists()


def test_learning_rate_schedules():
    assert scheduled_lr("constant", 50, 0.1, 60, None) == 0.1
    assert [scheduled_lr("step", e, 1.0, 20, None) for e in (0, 9, 10, 11, 12)] == [
        1.0,
        1.0,
        0.5,
        0.25,
        0.125,
    ]
    assert scheduled_lr("cosine", 0, 1.0, 10, None) == 1.0
    assert scheduled_lr("cosine", 5, 1.0, 10, None) == pytest.approx(0.5)
    assert scheduled_lr("cosine", 9, 1.0, 10, None) == pytest.approx(
        0.5 * (1 + math.cos(math.pi * 0.9))
    )
    assert scheduled_lr("plateau", 3, 1.0, 10, 0.25) == 0.25
