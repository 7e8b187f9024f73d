"""train_sequence: run directory, reproducibility, resume of old runs, refusals, settings.

The SIGKILL-and-resume test of train-sequence is tests/test_reliability_runs.py's.
"""

import csv
import importlib.util
import json
import math

import keras
import pytest

from vidseq.cache.store import FeatureStore
from vidseq.errors import CacheError, UsageError
from vidseq.sequence.config import FitConfig, HeadConfig, TrainConfig
from vidseq.sequence.runs.evaluation import evaluate_run
from vidseq.sequence.runs.saved_run import load_run
from vidseq.sequence.train import checkpoint
from vidseq.sequence.train.loop import scheduled_lr
from vidseq.sequence.train.training import train_sequence


@pytest.mark.slow
def test_run_directory_holds_model_config_reports_and_checkpoints(trained_run, assert_run_files):
    cache, run_dir, result, tensorboard = trained_run
    assert_run_files(run_dir)
    if importlib.util.find_spec("tensorboard") is not None:  # the test extra has it
        events = tensorboard.rglob("events.out.tfevents.*")
        # One folder per run, DIR/RUN_NAME, as tensorboard --logdir DIR shows them.
        assert {p.relative_to(tensorboard).parts[:2] for p in events} == {
            ("run", "train"),
            ("run", "validation"),
        }

    config = json.loads((run_dir / "config.json").read_text())
    with FeatureStore(cache) as store:
        for key, value in store.meta.to_dict().items():
            assert config[key] == value, key
    assert config["frames"] == 6
    assert config["head"]["head"] == "lstm" and config["head"]["units"] == 16
    assert config["head"]["options"] == {
        "units": 16,
        "layers": 1,
        "bidirectional": False,
        "dropout": 0.0,
    }
    assert config["head"]["normalize"] == "rms"
    assert config["train"]["fit"]["seed"] == 0 and config["train"]["frames"] == 6
    assert TrainConfig.from_dict(config["train"]).head == HeadConfig(units=16, dropout=0.0)
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
    as_json = json.loads(json.dumps(result.to_dict()))
    assert as_json["run_dir"] == str(run_dir) and as_json["best_epoch"] == result.best_epoch


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
    return train_sequence(
        cache, out, TrainConfig.from_dict(settings, strict=True), verbose=0
    ).history


@pytest.mark.slow
def test_same_seed_gives_the_same_history_in_memory_and_streamed(cache_factory, tmp_path, eagerly):
    cache = cache_factory(length=12, num_valid=lambda i: 7 + i % 6)
    with eagerly():
        first = _history(cache, tmp_path / "a", streaming="memory")
        streamed = _history(cache, tmp_path / "c", streaming="stream")
        other_seed = _history(cache, tmp_path / "d", seed=6)
    # A second run of the same seed gives the same history, whether it reads the features
    # from memory or streams them (float-exact: a run that did not repeat itself would not).
    assert streamed == first
    assert other_seed != first
    # The cosine schedule reached the optimizer, epoch by epoch.
    assert [r["lr"] for r in first] == pytest.approx(
        [scheduled_lr("cosine", e, 0.01, 3, None) for e in range(3)]
    )


@pytest.mark.slow
def test_occupied_run_directory_is_refused_unless_overwrite(
    cache_factory, tmp_path, small_config, eagerly
):
    cache = cache_factory()
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "model.keras").write_text("old")
    with pytest.raises(UsageError, match="not empty"):
        train_sequence(cache, out, small_config(epochs=1), verbose=0)
    assert (out / "model.keras").read_text() == "old"
    with eagerly():
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
    bad_head = TrainConfig(head=HeadConfig(head="rnn"))
    with pytest.raises(UsageError, match="head='rnn'"):
        train_sequence(cache_factory(), tmp_path / "run", bad_head, verbose=0)
    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(UsageError, match="needs the tensorboard package"):
            config = TrainConfig(fit=FitConfig(tensorboard="tb"))
            train_sequence(cache_factory(), tmp_path / "run", config)
    with pytest.raises(UsageError, match="lr_schedule"):
        TrainConfig(fit=FitConfig(lr_schedule="exp")).validate()
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (FitConfig(batch_size=0), "batch_size must be an integer >= 1. Received: batch_size=0"),
        (HeadConfig(dropout=1.0), r"dropout must be None or in \[0, 1\). Received: dropout=1.0"),
        (TrainConfig(eval_clips=0), "eval_clips must be an integer >= 1. Received: eval_clips=0"),
        (TrainConfig(fit=FitConfig(seed=1.5)), "seed must be an integer >= 0. Received: seed=1.5"),
    ],
)
def test_every_setting_is_checked_once_and_quotes_what_it_received(config, message):
    with pytest.raises(UsageError, match=message):
        config.validate()
    with pytest.raises(
        UsageError,
        match=r"TrainConfig has no setting unit \(did you mean units\?\)\. Received: unit=3",
    ):
        TrainConfig.from_dict({"unit": 3})
    assert TrainConfig.from_dict({"unit": 3}, strict=False) == TrainConfig()


def _old_flat_layout(run_dir):
    """Rewrites config.json's ``train`` as runs before the composed configs wrote it."""
    path = run_dir / "config.json"
    config = json.loads(path.read_text())
    train = config["train"]
    config["train"] = {**train["head"], **train["fit"], "resume": False}
    config["train"].update({k: v for k, v in train.items() if k not in ("head", "fit")})
    path.write_text(json.dumps(config))
    return config["train"]


def _earlier_checkpoints(run_dir):
    """Rewrites ``checkpoints/`` as earlier versions wrote it: a .keras archive per epoch."""
    ckpt_dir = run_dir / "checkpoints"
    state = json.loads((ckpt_dir / "state.json").read_text())
    model = checkpoint.load_checkpoint(ckpt_dir, state["checkpoint"])
    epoch = state["epochs_done"]
    model.save(ckpt_dir / f"epoch-{epoch:04d}.keras")
    checkpoint.restore_weights(model, ckpt_dir / state["best_weights"])
    model.save_weights(ckpt_dir / f"best-{state['best_epoch']:04d}.weights.h5")
    for name in (checkpoint.INITIAL_FILE, state["checkpoint"], state["best_weights"]):
        (ckpt_dir / name).unlink()
    state["checkpoint"] = f"epoch-{epoch:04d}.keras"
    state["best_weights"] = f"best-{state['best_epoch']:04d}.weights.h5"
    (ckpt_dir / "state.json").write_text(json.dumps(state))


class _Interrupt(Exception):
    pass


class _StopAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise _Interrupt


@pytest.mark.slow
def test_a_run_written_by_an_earlier_version_evaluates_and_resumes(
    trained_run, cache_factory, tmp_path, small_config, eagerly
):
    cache, run_dir, result, _ = trained_run
    old = tmp_path / "old"
    old.mkdir()
    for name in ("config.json", "model.keras"):
        (old / name).write_bytes((run_dir / name).read_bytes())
    flat = _old_flat_layout(old)
    assert flat["units"] == 16 and flat["seed"] == 0 and "fit" not in flat
    evaluation = evaluate_run(old, cache, out_dir=tmp_path / "eval")
    assert evaluation.metrics["accuracy"] == result.metrics["accuracy"]
    assert evaluation.metrics["clips"] == 3  # eval_clips read from the flat layout

    cache = cache_factory()
    config = small_config(epochs=3, dropout=0.3, lr_schedule="cosine")
    interrupted = tmp_path / "interrupted"
    with eagerly(), pytest.raises(_Interrupt):
        train_sequence(cache, interrupted, config, verbose=0, callbacks=[_StopAfterFirstEpoch()])
    _old_flat_layout(interrupted)
    _earlier_checkpoints(interrupted)
    with eagerly():
        resumed = train_sequence(cache, interrupted, config, resume=True, verbose=0)
        straight = train_sequence(cache, tmp_path / "straight", config, verbose=0)
    assert resumed.resumed_from == 1 and resumed.history == straight.history


def test_unset_epochs_and_lr_come_from_the_data_and_the_head():
    fit = FitConfig()
    lstm = fit.resolved(180, head="lstm")  # 12 steps of 16 videos: ceil(800 / 12) epochs
    assert lstm.epochs == 67 and lstm.lr == 3e-3 and fit.resolved(180, head="gru").lr == 3e-3
    assert fit.resolved(180, head="transformer").lr == 1e-3 == fit.resolved(180).lr
    assert fit.resolved(160, replicas=2).epochs == 160  # 5 steps of 32
    assert fit.resolved(10).epochs == 200 and fit.resolved(20_000).epochs == 20
    given = FitConfig(lr=0.01, epochs=5)
    assert given.resolved(180, head="lstm") == given


@pytest.mark.slow
def test_a_run_records_and_trains_with_its_heads_learning_rate(cache_factory, tmp_path):
    config = TrainConfig.from_dict({"head": "gru", "units": 8, "epochs": 1, "lr": None})
    result = train_sequence(cache_factory(), tmp_path / "run", config, verbose=0)
    recorded = json.loads((result.run_dir / "config.json").read_text())
    assert recorded["train"]["fit"]["lr"] == 3e-3
    assert result.history[0]["lr"] == pytest.approx(3e-3)


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
