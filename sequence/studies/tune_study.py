"""The Optuna study of ``vidseq tune``: its storage, its trial counts, interrupted trials.

The study lives in a database (SQLite ``DIR/study.db`` by default; any
SQLAlchemy URL, or ``journal:PATH`` for Optuna's journal file) so that a rerun
continues it and several workers share it.

Counting. A study of ``N`` trials is done when ``N`` trials have *finished*:
complete, pruned, or failed by an error of their own. Two kinds of failed
trial do not count:

* **interrupted**: the process running it was killed (SIGKILL, a lost node)
  or stopped by Ctrl-C. A trial left RUNNING by a dead process on this host
  (its process id is recorded) is marked failed when any worker starts; on a
  database URL the heartbeat (:data:`HEARTBEAT_SECONDS`) catches dead workers
  on other hosts too. Each interrupted trial is enqueued again, same settings
  (``retry_of`` names it), so no trial is lost;
* **surplus**: two workers can start the last trial at the same moment; the
  one whose trial number comes later fails it at once, so none runs twice.

Each of these is marked by a user attribute of the trial: ``error``
(failed by itself), ``surplus``, ``retry_of``.

The best trial (:func:`best_trial`) is the complete trial of highest
validation accuracy (the trial's value, what the sampler and the pruner see);
between trials of equal accuracy, the one of lower validation loss (user
attribute ``val_loss``; a trial without one comes after), then the earlier
one. A small validation split
saturates (many trials at 1.000), and the loss still tells them apart.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from vidseq.errors import UsageError

STUDY_FILE = "study.db"
HEARTBEAT_SECONDS = 30
"""A database worker's heartbeat; a RUNNING trial silent for 4 beats is taken as dead."""
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
CREATE_ATTEMPTS = 3
"""Tries to open a new database whose tables another worker creates at the same moment."""
CREATE_RACES = ("already exists", "UNIQUE constraint failed", "duplicate key value")
"""What opening a database says when another process created its tables or stamped its
version a moment earlier (SQLite, PostgreSQL): the next try finds them."""


def default_storage(out_dir):
    """The SQLite URL of ``DIR/study.db``."""
    return f"sqlite:///{(Path(out_dir) / STUDY_FILE).resolve()}"


def open_storage(url):
    """An Optuna storage for ``url``: ``journal:PATH`` (journal file), else a database URL.

    Raises:
        UsageError: The URL names no storage Optuna can open.
    """
    if url.startswith("journal:"):
        path = url[len("journal:") :].removeprefix("//")
        backend = optuna.storages.journal.JournalFileBackend(path)
        return optuna.storages.JournalStorage(backend)
    for attempt in range(CREATE_ATTEMPTS):
        try:
            return _database_storage(url)
        except Exception as error:  # SQLAlchemy's ArgumentError, ImportError of a driver, ...
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            raced = any(words in message for words in CREATE_RACES)
            if raced and attempt + 1 < CREATE_ATTEMPTS:
                time.sleep(0.5)  # another worker is creating the tables: they exist now
                continue
            raise UsageError(f"storage {url!r} cannot be opened: {message}") from None


def _database_storage(url):
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=kwargs,
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=4 * HEARTBEAT_SECONDS,
        )


def counts(trials):
    """``{complete, pruned, failed, interrupted, surplus, running, waiting}`` of ``trials``."""
    out = dict.fromkeys(
        ("complete", "pruned", "failed", "interrupted", "surplus", "running", "waiting"), 0
    )
    for t in trials:
        if t.state == TrialState.COMPLETE:
            out["complete"] += 1
        elif t.state == TrialState.PRUNED:
            out["pruned"] += 1
        elif t.state == TrialState.RUNNING:
            out["running"] += 1
        elif t.state == TrialState.WAITING:
            out["waiting"] += 1
        elif t.state == TrialState.FAIL:
            out[fail_kind(t)] += 1
    return out


def fail_kind(trial):
    """``"failed"`` (its own error), ``"surplus"`` or ``"interrupted"`` of a failed trial."""
    if "surplus" in trial.user_attrs:
        return "surplus"
    return "failed" if "error" in trial.user_attrs else "interrupted"


def counts_towards_budget(trial):
    """Whether a trial is one of the study's N: finished, running or waiting, and not void."""
    return trial.state != TrialState.FAIL or fail_kind(trial) == "failed"


def finished(trials):
    """The trials that finished and count (complete, pruned, failed by their own error)."""
    return sum(t.state in FINISHED and counts_towards_budget(t) for t in trials)


def best_trial(study):
    """The complete trial of highest value; ties go to lower ``val_loss``, then the earlier trial.

    Returns:
        The ``FrozenTrial``, or None when no trial is complete.
    """
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    return min(complete, key=lambda t: (-t.value, _loss_or_inf(t), t.number))


def _loss_or_inf(trial):
    loss = trial.user_attrs.get("val_loss")
    return float("inf") if loss is None else float(loss)


def is_surplus(study, trial, n_trials):
    """Whether ``trial`` comes after the study's ``n_trials`` counted trials (by number)."""
    if n_trials is None:
        return False
    earlier = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.number < trial.number and counts_towards_budget(t)
    ]
    return len(earlier) >= n_trials


def mark_worker(trial):
    """Records this process (host, pid) on a trial it starts, for :func:`recover_interrupted`."""
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())


def _dead_here(trial):
    """Whether a RUNNING trial belongs to a process of this host that no longer exists."""
    if trial.user_attrs.get("host") != socket.gethostname() or "pid" not in trial.user_attrs:
        return False
    try:
        os.kill(int(trial.user_attrs["pid"]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def recover_interrupted(study):
    """Fails the trials of dead processes of this host, and enqueues every interrupted trial again.

    Returns:
        The numbers of the trials enqueued again.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # heartbeat of database storages
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _dead_here(trial):  # another worker may fail it first: skip_if_finished
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    again = []
    for trial in trials:
        interrupted = trial.state == TrialState.FAIL and fail_kind(trial) == "interrupted"
        if interrupted and trial.number not in retried and "settings" in trial.user_attrs:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            again.append(trial.number)
    return again


def check_same_study(study, identity):
    """Records ``identity`` on a new study; refuses a resumed one made with another.

    Args:
        study: The Optuna study.
        identity: JSON-ready dict of what makes trials comparable (cache, space, seed,
            folds); a key missing on either side counts as a difference.

    Raises:
        UsageError: The study was made with a different identity.
    """
    saved = study.user_attrs.get("vidseq_tune")
    if saved is None:
        study.set_user_attr("vidseq_tune", identity)
        return
    changed = sorted(k for k in {*identity, *saved} if saved.get(k) != identity.get(k))
    if changed:
        raise UsageError(
            f"study {study.study_name!r} was made with another {', '.join(changed)}; "
            "use a new --out, --study-name or --storage. "
            f"Received: {', '.join(f'{k}={identity.get(k)!r}' for k in changed)}"
        )
