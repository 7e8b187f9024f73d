"""--strategy: the custom loop, MirroredStrategy on 2 logical CPUs, two local workers.

The distributed runs happen in subprocesses: logical devices and
MultiWorkerMirroredStrategy must be configured before TensorFlow starts, once
per process. Every subprocess has a timeout and is killed if the test fails.
"""

import contextlib
import csv
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from vidseq.cache.store import FeatureStore
from vidseq.errors import UsageError
from vidseq.extract.models.backbones import weights_sha256
from vidseq.sequence.config import FitConfig, HeadConfig, TrainConfig
from vidseq.sequence.data.batches import MemoryFeatures, SequenceBatches
from vidseq.sequence.runs.saved_run import load_run
from vidseq.sequence.train.distribute import Distribution, make_distribution
from vidseq.sequence.train.loop import compile_classifier, fit_custom
from vidseq.sequence.train.model import build_head
from vidseq.sequence.train.training import train_sequence

TIMEOUT = 240
SETTINGS = {
    "units": 16,
    "epochs": 4,
    "lr": 0.01,
    "patience": 0,
    "dropout": 0.2,
    "seed": 3,
    "eval_clips": 3,
}
GLOBAL_BATCH = 16


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    return env


@contextlib.contextmanager
def _processes():
    """Started processes, killed on the way out whatever happened."""
    started = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _run_two_workers(tmp_path, command, outs):
    """Runs ``vidseq COMMAND --out OUT --strategy multiworker`` as 2 local workers.

    Returns each worker's output; the final-weights digests they printed must agree.
    """
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    logs = []
    with _processes() as procs:
        for index, out in enumerate(outs):
            env = _env()
            env["TF_CONFIG"] = json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            )
            env["TMPDIR"] = str(tmp_path / f"tmp{index}")
            os.makedirs(env["TMPDIR"])
            full = [sys.executable, "-m", "vidseq", *command, "--out", str(out)]
            procs.append(
                subprocess.Popen(
                    [*full, "--strategy", "multiworker", "--quiet"],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=TIMEOUT)
            logs.append(stdout + stderr)
            assert proc.returncode == 0, (stdout + stderr)[-3000:]
    digests = [re.search(r"final weights sha256 ([0-9a-f]{64})", log) for log in logs]
    assert all(digests), logs
    assert digests[0].group(1) == digests[1].group(1)  # the two replicas end identical
    assert "worker done" in logs[1] and "the chief writes" in logs[1]
    leftovers = [p.name for p in (tmp_path / "tmp1").iterdir() if p.name.startswith("vidseq")]
    assert not leftovers  # the worker removed its temporary checkpoints
    return digests[0].group(1)


@pytest.fixture
def check_run_dir(assert_run_files):
    """Returns ``check(run_dir, epochs) -> (run, metrics)`` for a finished run."""

    def check(run_dir, epochs):
        assert_run_files(run_dir)
        run = load_run(run_dir)  # safe_mode=True, shapes checked against config.json
        with open(run_dir / "history.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
        state = json.loads((run_dir / "checkpoints" / "state.json").read_text())
        assert state["finished"] and state["epochs_done"] == epochs
        return run, json.loads((run_dir / "metrics.json").read_text())

    return check


@pytest.fixture(scope="module")
def cache_and_baseline(tmp_path_factory, eagerly):
    """The order-task cache and a default-strategy run with a global batch of 16."""
    spec = importlib.util.spec_from_file_location(
        "_conftest", Path(__file__).with_name("conftest.py")
    )
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    root = tmp_path_factory.mktemp("distribute")
    cache = conftest.write_cache(root / "features.h5")
    config = TrainConfig.from_dict({**SETTINGS, "batch_size": GLOBAL_BATCH}, strict=True)
    with eagerly():
        result = train_sequence(cache, root / "default", config, verbose=0)
    return cache, result


def test_strategy_is_validated_and_multiworker_needs_tf_config(monkeypatch):
    with pytest.raises(UsageError, match="strategy must be one of"):
        TrainConfig(fit=FitConfig(strategy="horovod")).validate()
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UsageError, match="needs the TF_CONFIG"):
        make_distribution("multiworker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(UsageError, match="TF_CONFIG is not JSON"):
        make_distribution("multiworker")


class _Interrupt(Exception):
    pass


class _StopAfterSecondEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise _Interrupt


class _StopTraining(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            self.model.stop_training = True


class _Logs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(dict(logs))


class _SameEpochPlan(keras.callbacks.Callback):
    """Gives every epoch its own batch plan, as the run's state callback does.

    (Keras' ``fit`` advances a ``PyDataset`` by one epoch before the first one.)
    """

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)


@pytest.mark.slow
def test_fit_custom_equals_model_fit_step_for_step(cache_and_baseline):
    """Same seed, same batches (a short last one included), default strategy: same numbers."""
    cache, _ = cache_and_baseline
    with FeatureStore(cache) as store:
        features = MemoryFeatures(store, np.arange(len(store)))
        labels, num_valid = np.asarray(store.labels), np.asarray(store.num_valid)
        splits = np.asarray(store.splits)
    train, val = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "val")
    assert len(train) % 20  # the last training batch is a short one

    def run(loop):
        keras.utils.set_random_seed(7)
        model = build_head(4, 8, HeadConfig(units=8, dropout=0.0), num_frames=8)
        compile_classifier(model, FitConfig(lr=0.01, label_smoothing=0.1))
        common = {"frames": 8, "length": 8, "batch_size": 20}
        weights = np.linspace(0.5, 2.0, 4)  # class weights: sample weights in the loss
        batches = SequenceBatches(
            features,
            train,
            labels,
            num_valid,
            4,
            training=True,
            seed=3,
            class_weights=weights,
            **common,
        )
        val_batches = SequenceBatches(features, val, labels, num_valid, 4, **common)
        logs = _Logs()
        callbacks = [_SameEpochPlan(batches), logs]
        if loop == "fit":
            model.fit(
                batches,
                validation_data=val_batches,
                epochs=3,
                shuffle=False,
                verbose=0,
                callbacks=callbacks,
            )
        else:
            fit_custom(
                model,
                tf.distribute.get_strategy(),
                batches,
                val_batches,
                epochs=3,
                verbose=0,
                callbacks=callbacks,
            )
        return model.get_weights(), logs.epochs

    fit_weights, fit_logs = run("fit")
    custom_weights, custom_logs = run("custom")
    assert len(custom_logs) == len(fit_logs) == 3
    for got, want in zip(custom_logs, fit_logs, strict=True):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert got[key] == pytest.approx(float(want[key]), rel=1e-5, abs=1e-6), key
    for got, want in zip(custom_weights, fit_weights, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_custom_loop_keeps_fits_bookkeeping_and_numbers(
    cache_and_baseline, tmp_path, monkeypatch, check_run_dir, eagerly
):
    """The strategy.run loop (multiworker's) equals fit, resume and early stopping included.

    Eagerly, as the baseline: the loop in graph mode is the multi-worker tests'.
    """
    cache, baseline = cache_and_baseline
    settings = {**SETTINGS, "batch_size": GLOBAL_BATCH}
    # Every run below takes the custom loop; Model.fit would fail the test.
    monkeypatch.setattr(Distribution, "loop", property(lambda self: "custom"))

    def no_fit(*args, **kwargs):
        raise AssertionError("Model.fit ran instead of the custom loop")

    monkeypatch.setattr(keras.Model, "fit", no_fit)
    config = TrainConfig.from_dict(settings, strict=True)
    with eagerly():
        custom = train_sequence(cache, tmp_path / "custom", config, verbose=0)
    assert load_run(tmp_path / "custom").config["distribute"]["loop"] == "custom"
    # Same batches, learning rates and dropout masks (reseeded per epoch) as fit.
    assert [r["epoch"] for r in custom.history] == [1, 2, 3, 4]
    for got, want in zip(custom.history, baseline.history, strict=True):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
            assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-5), key
    assert custom.weights_sha256 and custom.metrics["accuracy"] == baseline.metrics["accuracy"]
    check_run_dir(tmp_path / "custom", 4)

    with eagerly(), pytest.raises(_Interrupt):
        train_sequence(
            cache, tmp_path / "resumed", config, verbose=0, callbacks=[_StopAfterSecondEpoch()]
        )
    with eagerly():
        resumed = train_sequence(cache, tmp_path / "resumed", config, resume=True, verbose=0)
        stopped = train_sequence(  # model.stop_training (early stopping's flag) ends the loop
            cache, tmp_path / "stopped", config, verbose=0, callbacks=[_StopTraining()]
        )
    assert resumed.resumed_from == 2 and resumed.history == custom.history
    assert stopped.epochs_completed == 2 and stopped.history == custom.history[:2]
    check_run_dir(tmp_path / "stopped", 2)


MIRRORED = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    from vidseq.sequence.config import TrainConfig
    from vidseq.sequence.train.training import train_sequence

    config = TrainConfig.from_dict(json.loads(sys.argv[3]), strict=True)
    result = train_sequence(sys.argv[1], sys.argv[2], config, verbose=0)
    print(json.dumps({"replicas": result.replicas, "history": result.history}))
    """
)


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus_matches_the_default_strategy(
    cache_and_baseline, tmp_path, check_run_dir, eagerly
):
    """A convolutional head (the multi-worker tests train the LSTM)."""
    cache, _ = cache_and_baseline
    tcn = {**SETTINGS, "head": "tcn", "dropout": 0.0, "clip_dropout": 0.0, "epochs": 2}
    with eagerly():
        baseline = train_sequence(
            cache,
            tmp_path / "default",
            TrainConfig.from_dict({**tcn, "batch_size": GLOBAL_BATCH}, strict=True),
            verbose=0,
        )
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    per_replica = {**tcn, "batch_size": GLOBAL_BATCH // 2, "strategy": "mirrored"}
    run_dir = tmp_path / "mirrored"
    proc = subprocess.run(
        [sys.executable, str(script), str(cache), str(run_dir), json.dumps(per_replica)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    run, metrics = check_run_dir(run_dir, tcn["epochs"])
    assert run.config["distribute"] == {
        "strategy": "mirrored",
        "replicas": 2,
        "num_workers": 1,
        "loop": "fit",
    }
    assert run.config["train"]["fit"]["batch_size"] == GLOBAL_BATCH // 2
    assert run.config["head"]["head"] == "tcn"
    assert abs(metrics["accuracy"] - baseline.metrics["accuracy"]) <= 0.15
    # Same global batches: the losses follow the single-device run's.
    for got, want in zip(out["history"], baseline.history, strict=True):
        assert got["loss"] == pytest.approx(want["loss"], abs=0.1)


@pytest.mark.slow
def test_two_local_workers_train_in_sync_and_only_the_chief_writes(
    cache_and_baseline, tmp_path, check_run_dir
):
    cache, baseline = cache_and_baseline
    chief_out, worker_out = tmp_path / "run", tmp_path / "worker-out"
    args = [f"--{k.replace('_', '-')}={v}" for k, v in SETTINGS.items()]
    # The worker gets its own --out, which it must never create.
    digest = _run_two_workers(
        tmp_path,
        ["train-sequence", str(cache), f"--batch-size={GLOBAL_BATCH // 2}", *args],
        [chief_out, worker_out],
    )
    run, metrics = check_run_dir(chief_out, SETTINGS["epochs"])
    assert not worker_out.exists()  # the worker wrote nothing into its --out
    assert run.config["distribute"] == {
        "strategy": "multiworker",
        "replicas": 2,
        "num_workers": 2,
        "loop": "custom",
    }
    assert abs(metrics["accuracy"] - baseline.metrics["accuracy"]) <= 0.15
    assert weights_sha256(run.model) == digest  # model.keras holds those weights


@pytest.mark.slow
def test_two_local_workers_finetune_end_to_end(tmp_path, check_run_dir, feature_run_files):
    _, _, run = feature_run_files
    fine, worker_out = tmp_path / "fine", tmp_path / "worker-out"
    command = ["finetune", str(run), "--epochs=1", "--batch-size=1", "--unfreeze=2"]
    digest = _run_two_workers(tmp_path, [*command, "--workers=2"], [fine, worker_out])
    finetuned, metrics = check_run_dir(fine, 1)
    assert not worker_out.exists()
    assert finetuned.end_to_end and finetuned.config["distribute"]["num_workers"] == 2
    assert metrics["num_videos"] == 4
    assert weights_sha256(finetuned.model) == digest
