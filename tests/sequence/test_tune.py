"""vidseq tune: the space, validation-only trials, outputs, failures, kill-and-resume, workers."""

import contextlib
import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import h5py
import numpy as np
import optuna
import pytest

from vidseq.cli import main
from vidseq.errors import UsageError
from vidseq.sequence.runs.evaluation import evaluate_run
from vidseq.sequence.studies.tune import run_trials, tune
from vidseq.sequence.studies.tune_report import TuneResult
from vidseq.sequence.studies.tune_space import DEFAULT_HEADS, SearchSpace, params_config
from vidseq.sequence.studies.tune_study import best_trial
from vidseq.sequence.train.training import train_sequence

TINY_SPACE = {
    "epochs": 1,
    "batch_size": 16,
    "gru": {"units": [8, 16], "layers": 1, "bidirectional": False},
    "pool": {"units": [8, 16]},
}


def _study(out, name="vidseq-tune", storage=None):
    """The study, read without creating anything (a worker may be creating it)."""
    storage = storage or f"sqlite:///{out / 'study.db'}"
    if storage.startswith("sqlite"):
        storage = optuna.storages.RDBStorage(storage, skip_table_creation=True)
    elif storage.startswith("journal:"):
        backend = optuna.storages.journal.JournalFileBackend(storage[len("journal:") :])
        storage = optuna.storages.JournalStorage(backend)
    return optuna.load_study(study_name=name, storage=storage)


def test_default_space_covers_each_head_and_a_file_narrows_it(tmp_path):
    space = SearchSpace.make()
    assert space.heads == DEFAULT_HEADS and "pool" not in space.heads
    assert {"lr", "batch_size", "epochs", "label_smoothing"} <= set(space.common)
    narrowed = tmp_path / "space.yaml"
    narrowed.write_text("lr: 0.001\ncentering: null\ngru:\n  units: [64]\n")
    from vidseq.sequence.studies.tune_space import load_space_file

    space = SearchSpace.make(["gru"], load_space_file(narrowed))
    assert space.common["lr"] == 0.001 and "centering" not in space.common
    assert space.per_head == {"gru": {**space.per_head["gru"], "units": [64]}}
    trial = optuna.trial.FixedTrial(
        {"head": "gru", "batch_size": 8, "epochs": 10, "normalize": "rms",
         "label_smoothing": 0.1, "clip_dropout": 0.2, "gru.units": 64, "gru.layers": 2,
         "gru.bidirectional": True, "gru.dropout": 0.3}
    )  # fmt: skip
    from vidseq.sequence.config import TrainConfig

    config = params_config(space.suggest(trial), TrainConfig(), seed=5)
    assert (config.head.head, config.head.units, config.head.layers) == ("gru", 64, 2)
    assert (config.fit.lr, config.fit.batch_size, config.fit.seed) == (0.001, 8, 5)
    assert config.head.centering == "concat"  # left out of the search: the default


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lr": {"low": 0.1, "high": 0.01}}, "low <= high"),
        ({"batch_size": [16, 0]}, "batch_size must be an integer >= 1. Received: batch_size=0"),
        ({"gru": {"kernel_size": [3]}}, "head 'gru' takes the settings"),
        ({"seed": 3}, "the common part of a space takes"),
    ],
)
def test_bad_spaces_are_refused_before_any_trial(overrides, message):
    with pytest.raises(UsageError, match=message):
        SearchSpace.make(["gru"], overrides)


def test_cli_refuses_bad_input_with_exit_2_and_writes_nothing(cache_factory, tmp_path, capsys):
    cache = cache_factory(per_class={"train": 6, "val": 2, "test": 3})
    bad = tmp_path / "space.json"
    bad.write_text("{not json")
    out = tmp_path / "out"
    assert main(["tune", str(cache), "--out", str(out), "--space", str(bad)]) == 2
    assert "space file" in capsys.readouterr().err
    assert main(["tune", str(cache), "--out", str(out), "--trials", "0"]) == 2
    assert "--trials must be an integer >= 1. Received: --trials=0" in capsys.readouterr().err
    assert not out.exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert main(["tune", str(cache), "--out", str(tmp_path / "busy")]) == 2
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _shuffled_test_labels(cache, out):
    out.write_bytes(cache.read_bytes())
    with h5py.File(out, "r+") as handle:
        videos = handle["videos"]
        split = videos["split"].asstr()[...]
        labels = np.asarray(videos["label"])
        test = np.flatnonzero(split == "test")
        labels[test] = np.random.default_rng(0).permutation(labels[test])[::-1]
        videos["label"][...] = labels
    return out


@pytest.mark.slow
def test_shuffled_test_labels_choose_the_same_trial(cache_factory, tmp_path, eagerly):
    cache = cache_factory(per_class={"train": 8, "val": 3, "test": 4})
    shuffled = _shuffled_test_labels(cache, tmp_path / "shuffled.h5")
    kwargs = {"trials": 2, "heads": ["gru", "pool"], "space": TINY_SPACE, "seed": 1}
    kwargs["report"] = False  # no report pages: what is checked is the choice and the test read
    with eagerly():
        a = tune(cache, tmp_path / "a", **kwargs)
        b = tune(shuffled, tmp_path / "b", **kwargs)
    assert a.best_trial == b.best_trial and a.best_params == b.best_params
    assert a.best_val_accuracy == b.best_val_accuracy
    rows = [_rows(t / "trials.csv") for t in (tmp_path / "a", tmp_path / "b")]
    strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in rs] for rs in rows]
    assert strip[0] == strip[1] and len(rows[0]) == 2
    assert a.test_accuracy != b.test_accuracy  # the final run did read the (shuffled) test labels


@pytest.mark.slow
def test_folds_score_each_trial_by_the_mean_of_its_k_runs(cache_factory, tmp_path, eagerly):
    cache = cache_factory(per_class={"train": 6, "val": 2, "test": 2})
    # One trial: its score, and the best's, is the mean of its 2 fold runs.
    kwargs = {"trials": 1, "heads": ["pool"], "space": TINY_SPACE, "seed": 1, "report": False}
    with eagerly():
        result = tune(cache, tmp_path / "cv", folds=2, **kwargs)
    (row,) = _rows(tmp_path / "cv" / "trials.csv")
    accuracies = [float(a) for a in row["fold_accuracies"].split()]
    assert len(accuracies) == 2
    assert float(row["val_accuracy"]) == pytest.approx(np.mean(accuracies), abs=1e-4)
    saved = json.loads((tmp_path / "cv" / "tune.json").read_text())
    assert saved["folds"] == 2 and len(saved["best_fold_accuracies"]) == 2
    assert saved["best_val_accuracy"] == pytest.approx(np.mean(saved["best_fold_accuracies"]))
    best = json.loads((tmp_path / "cv" / "best" / "config.json").read_text())
    assert best["train"]["folds"] == 1 and best["splits"]["val_source"] == "cache"
    assert result.test_metrics["split"] == "test"
    with pytest.raises(UsageError, match="made with another folds"):
        tune(cache, tmp_path / "cv", folds=3, **kwargs)


@pytest.mark.slow
def test_a_fold_run_evaluates_on_its_own_fold(cache_factory, small_config, tmp_path, eagerly):
    cache = cache_factory(per_class={"train": 6, "val": 2, "test": 2})
    with eagerly():
        run = train_sequence(
            cache,
            tmp_path / "run",
            small_config(folds=2, fold=1, epochs=1),
            verbose=0,
            evaluate_on="val",
            report=False,
        )
    assert run.splits == {"train": 16, "val": 16, "test": 8, "val_source": "fold 1 of 2"}
    again = evaluate_run(tmp_path / "run", split="val").metrics
    assert again["num_videos"] == 16 and again["accuracy"] == run.metrics["accuracy"]
    with pytest.raises(UsageError, match=r"fold must be in \[0, 1\] for folds=2"):
        small_config(folds=2, fold=2).validate()


def _png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_cli_tune_records_a_failing_trial_and_best_runs_like_any_run(
    make_sample_cache, tmp_path, capsys, assert_run_files
):
    sample, cache = make_sample_cache(tmp_path, 6)
    space = tmp_path / "space.json"
    # lr=1e38: a real divergence (the loss becomes NaN, the run fails) in the trials that draw it
    settings = {"epochs": 2, "batch_size": 4, "lr": [1e-3, 1e38], "pool": {"units": [8]}}
    space.write_text(json.dumps(settings))
    out = tmp_path / "tune"
    argv = ["tune", str(cache), "--out", str(out), "--heads", "pool", "--space", str(space)]
    assert main([*argv, "--trials", "3", "--seed", "2", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((out / "tune.json").read_text())
    counts = printed["counts"]
    assert counts["complete"] >= 1 and counts["failed"] >= 1
    assert counts["complete"] + counts["pruned"] + counts["failed"] == 3
    rows = _rows(out / "trials.csv")
    failed = [r for r in rows if r["state"] == "failed"]
    assert failed and all("training failed" in r["error"] for r in failed)
    assert printed["best_params"]["lr"] == 1e-3 and printed["test_metrics"]["split"] == "test"
    complete = [r for r in rows if r["state"] == "complete"]
    assert all(float(r["val_loss"]) > 0 for r in complete)  # the tie-break is recorded
    assert _png(out / "optimization_history.png")
    assert not (out / "trials").exists()  # trial runs are removed once scored

    best = out / "best"
    assert_run_files(best)
    assert json.loads((best / "metrics.json").read_text())["accuracy"] == printed["test_accuracy"]
    assert main(["evaluate", str(best), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == printed["test_accuracy"]
    video = next((sample / "Grow").glob("*.avi"))
    assert main(["predict", str(best), str(video), "--json"]) == 0
    capsys.readouterr()
    export = tmp_path / "export"
    assert (
        main(
            ["export", str(best), "--format", "savedmodel", "--part", "head", "--out", str(export)]
        )
        == 0
    )
    assert (export / "vidseq-export.json").is_file()


EAGER_VIDSEQ = """
import sys
from vidseq.quiet import quiet_tensorflow
quiet_tensorflow()
import tensorflow as tf
tf.config.run_functions_eagerly(True)
from vidseq.cli import main
sys.exit(main(sys.argv[1:]))
"""
"""``python -c EAGER_VIDSEQ ARGS``: the ``vidseq`` command line, its Keras functions untraced.

The workers' trials are a few steps each, which tracing would cost several
times over (as the ``eagerly`` fixture says); the process, the study and the
kill are as real as with ``python -m vidseq``.
"""


def _tune_args(cache, out, space, *extra):
    """A worker's ``vidseq tune`` arguments (no report pages: these tests check the study)."""
    flags = ["--heads", "gru", "--space", str(space), "--quiet", "--no-report"]
    return ["tune", str(cache), "--out", str(out), *flags, *map(str, extra)]


def _tune_command(cache, out, space, *extra):
    """A ``vidseq tune`` worker process: ``python -c EAGER_VIDSEQ`` with :func:`_tune_args`."""
    return [sys.executable, "-c", EAGER_VIDSEQ, *_tune_args(cache, out, space, *extra)]


def _created(db):
    """Whether a worker has created the SQLite study's tables (read-only: writes nothing)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as handle:
            return handle.execute("SELECT count(*) FROM alembic_version").fetchone()[0] > 0
    except sqlite3.Error:  # no file yet, or the tables are being created
        return False


def _sqlite_study(db):
    """The study of ``db`` once a worker has created it, else None.

    Opened only once the worker has created the tables: Optuna's storage stamps a
    database it opens, so opened earlier, it would race the worker's own creation.
    """
    if not _created(db):
        return None
    try:
        return _study(db.parent)
    except KeyError:  # the tables exist, the study not yet
        return None


def _journal_study(log):
    """The study of the journal ``log`` once a worker has written it, else None."""
    if not log.is_file() or not log.stat().st_size:
        return None
    try:
        return _study(log.parent, storage=f"journal:{log}")
    except KeyError:  # the log exists, the study not yet
        return None


def _running_trial(worker, open_study, number, timeout=120):
    """Polls every 50 ms until ``worker`` runs trial ``number`` (or a later one); returns it.

    ``open_study()`` returns the study once it exists (else None); it is opened
    once and read through that one storage. Returns None if the worker ends first.
    """
    study, deadline = None, time.monotonic() + timeout
    while worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        study = study or open_study()
        trials = study.get_trials(deepcopy=False) if study is not None else []
        running = [t for t in trials if t.state.name == "RUNNING" and "settings" in t.user_attrs]
        if running and running[0].number >= number:
            return running[0]
    return None


@pytest.mark.slow
def test_killed_tune_resumes_to_exactly_the_requested_trials(cache_factory, tmp_path, eagerly):
    cache = cache_factory(per_class={"train": 8, "val": 3, "test": 3})
    space = tmp_path / "space.json"
    # 2 epochs: a trial (a second or more, mostly building the model) is caught running
    space.write_text(json.dumps({**TINY_SPACE, "epochs": 2}))
    out = tmp_path / "tune"
    # 3 trials: #0 completes, #1 is killed; the rerun must count #0, retry #1 once, add one
    worker = subprocess.Popen(_tune_command(cache, out, space, "--trials", 3))
    killed = _running_trial(worker, lambda: _sqlite_study(out / "study.db"), number=1)
    if killed is not None:
        os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    assert killed is not None, "the worker finished before it could be killed"

    rerun = ["tune", str(cache), "--out", str(out), "--heads", "gru", "--space", str(space)]
    with eagerly():  # the rerun, in this process: its tiny trials run faster untraced
        assert main([*rerun, "--trials", "3", "--quiet", "--no-report"]) == 0
    trials = _study(out).get_trials()
    by_state = {}
    for t in trials:
        by_state.setdefault(t.state.name, []).append(t)
    counted = by_state.get("COMPLETE", []) + by_state.get("PRUNED", [])
    assert len(counted) == 3  # the requested number: none lost, none run twice
    assert min(t.number for t in counted) < killed.number  # a trial before the kill counted
    assert [t.number for t in by_state["FAIL"]] == [killed.number]
    (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
    # The killed trial's params as stored (the snapshot polled while it ran may miss a
    # param: a read is not atomic with the worker's writes).
    (stored,) = by_state["FAIL"]
    assert retry.params == stored.params and retry.state.name in ("COMPLETE", "PRUNED")
    saved = json.loads((out / "tune.json").read_text())["counts"]
    assert (saved["complete"] + saved["pruned"], saved["failed"], saved["interrupted"]) == (3, 0, 1)


@pytest.mark.slow
def test_two_workers_on_one_journal_study_add_up(cache_factory, tmp_path, capsys, eagerly):
    cache = cache_factory(per_class={"train": 8, "val": 3, "test": 3})
    space = tmp_path / "space.json"
    space.write_text(json.dumps(TINY_SPACE))
    log = tmp_path / "study.log"
    flags = ["--trials", 4, "--storage", f"journal:{log}", "--json"]
    # One worker is a process of its own; the other is this process, started once the
    # first one runs a trial, so that both run trials while the study fills up.
    command = _tune_command(cache, tmp_path / "w0", space, *flags)
    worker = subprocess.Popen(command, stdout=subprocess.PIPE)
    try:
        first = _running_trial(worker, lambda: _journal_study(log), number=0)
        assert first is not None, "the worker finished before the second one started"
        with eagerly():
            assert main(_tune_args(cache, tmp_path / "w1", space, *flags)) == 0
        reports = [json.loads(capsys.readouterr().out)]
        reports.append(json.loads(worker.communicate(timeout=300)[0]))
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0
    trials = _study(tmp_path, storage=f"journal:{log}").get_trials()
    ran = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(ran) == 4
    pids = (worker.pid, os.getpid())
    per_worker = {pid: sum(t.user_attrs["pid"] == pid for t in ran) for pid in pids}
    assert sum(per_worker.values()) == 4 and all(per_worker.values())  # both worked, none twice
    assert all(t.user_attrs.get("surplus") for t in trials if t.state.name == "FAIL")
    # Each retrains the best trial when it stops; the last to stop saw every trial.
    best = best_trial(_study(tmp_path, storage=f"journal:{log}")).number
    assert best in [r["best_trial"] for r in reports]


def test_run_trials_fills_the_budget_and_a_timeout_still_runs_one_trial(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize")
    lines = []

    def objective(trial):
        return trial.suggest_float("x", 0.0, 1.0)

    run_trials(study, objective, None, 1e-6, lines.append)
    assert len(study.trials) == 1 and lines[0].startswith("trial 1: #0 ? complete val")
    run_trials(study, objective, 3, None, lines.append)
    assert len(study.trials) == 3 and lines[-1].startswith("trial 3 of 3: #2")
    run_trials(study, objective, 3, None, lines.append)  # a finished study runs nothing
    assert len(study.trials) == 3 and len(lines) == 3


def test_validation_ties_go_to_the_lower_loss_then_the_earlier_trial(tmp_path):
    study = optuna.create_study(direction="maximize")
    assert best_trial(study) is None
    draws = ((0.9, 0.1), (1.0, None), (1.0, 0.6), (1.0, 0.3), (1.0, 0.3), (0.95, 0.01))
    for value, loss in draws:
        attrs = {"val_loss": loss, "settings": {"head": "gru"}}
        study.add_trial(optuna.trial.create_trial(value=value, user_attrs=attrs))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED))
    # 1.000 beats 0.95 whatever the loss; then 0.3 < 0.6 < no loss; then the earlier of #3, #4
    assert best_trial(study).number == 3
    result = TuneResult.of_study(study, tmp_path, cache="c.h5", trials_requested=7)
    assert (result.best_trial, result.best_val_accuracy, result.best_val_loss) == (3, 1.0, 0.3)
    assert "validation accuracy 1.000, loss 0.3000" in result.summary()


def test_opening_a_database_that_another_worker_is_creating_retries(monkeypatch):
    from vidseq.sequence.studies.tune_study import open_storage

    calls = []
    race = "(sqlite3.IntegrityError) UNIQUE constraint failed: alembic_version.version_num"

    def database(url, **kwargs):  # the first open loses the race to stamp the new database
        calls.append(url)
        if len(calls) == 1:
            raise RuntimeError(race)
        if url.startswith("bad"):
            raise RuntimeError("Could not parse SQLAlchemy URL")
        return "storage"

    monkeypatch.setattr(optuna.storages, "RDBStorage", database)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    assert open_storage("sqlite:///s.db") == "storage" and len(calls) == 2
    calls[:] = ["first"]  # a URL Optuna cannot parse fails at once, without another try
    with pytest.raises(UsageError, match="cannot be opened: Could not parse"):
        open_storage("bad://")
    assert calls == ["first", "bad://"]
