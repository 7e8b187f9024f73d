"""vidseq tune: hyperparameter search on a feature cache with Optuna, resumable and shared.

:func:`tune` runs an Optuna study (TPE sampler, median pruner) whose trials
each train one head with ``train_sequence`` on the training split and score
it on the **validation split only** (its accuracy, with the kept best-epoch
weights; between trials of equal accuracy the one of lower validation loss
is the best, :func:`.tune_study.best_trial`); per-epoch validation accuracy
goes to the pruner, which stops bad trials early. Every trial uses the
study's seed: the same validation carve-out and the same initialisation, so
trials differ only by their settings, and any trial is reproduced by training
its settings with that seed. The **test split is read once**, at the end, by
the retrain of the best settings into ``DIR/best`` (a normal run directory).
A failing trial (out of memory, a bad combination) is recorded as failed and
the study goes on.

The study lives in ``DIR/study.db`` (or ``storage``): rerunning the same call
continues it to the requested number of trials (see
:mod:`.tune_study` for how trials of killed processes are retried and
counted), and several workers may share one storage.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import optuna

from vidseq.cache.files import absolute_cache_spec
from vidseq.cache.store import FeatureStore
from vidseq.errors import UsageError, VidseqError
from vidseq.sequence.config import TrainConfig
from vidseq.sequence.report.build import report_after_training
from vidseq.sequence.studies import tune_study as ts
from vidseq.sequence.studies.tune_report import TuneResult, write_outputs
from vidseq.sequence.studies.tune_space import (
    STUDY_NAME,
    SearchSpace,
    load_space_file,
    params_config,
)
from vidseq.sequence.train.training import train_sequence

DEFAULT_TRIALS = 30
"""Trials when neither ``trials`` nor ``timeout`` is given."""
BEST_DIR = "best"
TRIALS_DIR = "trials"
PRUNER_STARTUP_TRIALS = 5
PRUNER_WARMUP_EPOCHS = 5


class _SurplusTrial(Exception):
    """A trial started after the study's budget was filled by other workers."""


class PruningCallback(keras.callbacks.Callback):
    """Reports each epoch's ``val_accuracy`` to an Optuna trial; prunes when the pruner says so.

    Args:
        trial: The ``optuna.Trial``. ``optuna.TrialPruned`` is raised out of
            ``fit`` when ``trial.should_prune()``.
    """

    def __init__(self, trial):
        super().__init__()
        self.trial = trial

    def on_epoch_end(self, epoch, logs=None):
        self.trial.set_user_attr("epochs_run", epoch + 1)
        if "val_accuracy" not in (logs or {}):
            return
        self.trial.report(float(logs["val_accuracy"]), step=epoch + 1)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}")


class _Objective:
    """One trial: draw settings, train on train, score on validation; its run dirs removed.

    With ``folds`` K > 1 the trial trains K runs, one per cross-validation fold
    (:func:`~vidseq.sequence.data.split_indices.resolve_splits`), and scores
    their mean validation accuracy (and loss); the pruner follows the first
    fold's epochs.
    """

    def __init__(self, cache, out_dir, space, base, seed, n_trials, folds=1):
        self.cache, self.out_dir, self.space = cache, Path(out_dir), space
        self.base, self.seed, self.n_trials, self.folds = base, seed, n_trials, folds

    def __call__(self, trial):
        ts.mark_worker(trial)
        if ts.is_surplus(trial.study, trial, self.n_trials):
            trial.set_user_attr("surplus", True)
            raise _SurplusTrial(f"the study already has {self.n_trials} trials")
        settings = self.space.suggest(trial)
        trial.set_user_attr("settings", _json_ready(settings))
        trial.set_user_attr("seed", self.seed)
        start = time.perf_counter()
        try:
            config = params_config(settings, self.base, self.seed)
            results = [self._fold(trial, config, fold) for fold in range(self.folds)]
        except optuna.TrialPruned:
            raise
        except Exception as error:  # recorded on the trial; Optuna marks it failed
            trial.set_user_attr("error", f"{type(error).__name__}: {error}".splitlines()[0])
            raise
        finally:
            trial.set_user_attr("seconds", round(time.perf_counter() - start, 2))
        accuracies = [float(result.metrics["accuracy"]) for result in results]
        losses = [kept_val_loss(result) for result in results]
        trial.set_user_attr("best_epoch", int(results[0].best_epoch))
        trial.set_user_attr("val_loss", None if None in losses else float(np.mean(losses)))
        if self.folds > 1:
            trial.set_user_attr("fold_accuracies", accuracies)
        return float(np.mean(accuracies))

    def _fold(self, trial, config, fold):
        """Trains and scores one fold (the cache's own split when ``folds`` is 1)."""
        run_dir = self.out_dir / TRIALS_DIR / f"trial-{trial.number:04d}"
        if self.folds > 1:
            config = dataclasses.replace(config, folds=self.folds, fold=fold)
        try:
            return train_sequence(
                self.cache,
                run_dir,
                config,
                overwrite=True,
                verbose=0,
                callbacks=[PruningCallback(trial)] if fold == 0 else [],
                evaluate_on="val",
                report=False,
            )
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
            # Trials do not pile up graphs. No forced garbage collection: it would walk
            # every live object, TensorFlow's own included, after each trial, and Python's
            # collector frees the trial's model in its own time (Keras' advice for loops).
            keras.backend.clear_session(free_memory=False)


def kept_val_loss(result):
    """The validation loss of the epoch whose weights a run kept (None if unknown or not finite)."""
    losses = [row.get("val_loss") for row in result.history if row["epoch"] == result.best_epoch]
    loss = float(losses[-1]) if losses and losses[-1] is not None else float("nan")
    return loss if np.isfinite(loss) else None


def _json_ready(settings):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}


def _sampler_seed(seed, num_trials, shared):
    """The TPE sampler's seed: the study's, the trials it holds, and (shared) this process."""
    entropy = [int(seed), int(num_trials)] + ([os.getpid()] if shared else [])
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _open_study(url, study_name, seed, *, shared):
    """The study (created, or loaded to resume): TPE sampler, median pruner, maximising."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(
            storage=ts.open_storage(url),
            study_name=study_name,
            direction="maximize",
            load_if_exists=True,
            pruner=optuna.pruners.MedianPruner(
                n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=PRUNER_WARMUP_EPOCHS
            ),
        )
        study.sampler = optuna.samplers.TPESampler(
            seed=_sampler_seed(seed, len(study.trials), shared),
            multivariate=True,
            group=True,
            constant_liar=True,
        )
    return study


def _cache_identity(cache):
    with FeatureStore(cache) as store:
        meta = store.meta
        return {
            "videos": len(store),
            "class_names": list(store.class_names),
            "backbone": meta.backbone,
            "feature_dim": int(meta.feature_dim),
        }


def _check_out_dir(out_dir):
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"out_dir must be a directory. Received: out_dir={str(out_dir)!r}")
    ours = {BEST_DIR, TRIALS_DIR, *TuneResult.FILE_NAMES}
    if out_dir.is_dir():  # study.db, and SQLite's study.db-journal after a crash
        names = [p.name for p in out_dir.iterdir()]
        others = sorted(n for n in names if n not in ours and not n.startswith(ts.STUDY_FILE))
        if others:
            raise UsageError(
                f"{out_dir} holds files that are not a tune's ({', '.join(others[:3])}); "
                "use an empty or new --out"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def _progress_logger(log, n_trials, start):
    """Optuna callback: one line per finished trial, with the count and the best so far."""

    def callback(study, trial):
        trials = study.get_trials(deepcopy=False)
        done = ts.finished(trials)
        total = f" of {n_trials}" if n_trials is not None else ""
        state = trial.state.name.lower()
        if trial.state == optuna.trial.TrialState.FAIL:
            state = ts.fail_kind(trial)
        head = trial.user_attrs.get("settings", {}).get("head", "?")
        value = f" val {trial.value:.3f}" if trial.value is not None else ""
        error = f" ({trial.user_attrs['error']})" if "error" in trial.user_attrs else ""
        line = f"trial {done}{total}: #{trial.number} {head} {state}{value}{error}"
        best = ts.best_trial(study)
        if best is not None:
            line += f"; best val {best.value:.3f} (#{best.number})"
        log(f"{line} [{time.perf_counter() - start:.0f} s]")

    return callback


def run_trials(study, objective, n_trials, timeout, log):
    """Runs trials one at a time until the study holds ``n_trials`` or ``timeout`` has passed.

    Interrupted trials are enqueued again first (:func:`.tune_study.recover_interrupted`).
    As Optuna's own ``timeout``, it is checked between trials: at least one trial starts.

    Args:
        study: The Optuna study.
        objective: Called with each trial; returns its value.
        n_trials: Trials the study should hold in all (see :mod:`.tune_study`), or None.
        timeout: Seconds after which this call starts no trial, or None.
        log: Called with one line per finished trial.
    """
    start = time.perf_counter()
    callback = _progress_logger(log, n_trials, start)
    started = 0
    while True:
        for number in ts.recover_interrupted(study):
            log(f"trial #{number} was interrupted: enqueued again")
        trials = study.get_trials(deepcopy=False)
        running = ts.counts(trials)["running"]
        if n_trials is not None and ts.finished(trials) + running >= n_trials:
            return
        if timeout is not None and started and time.perf_counter() - start >= timeout:
            return
        study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[callback])
        started += 1


def _final_run(cache, out_dir, best, base, seed, verbose, report):
    """Retrains the best trial's settings into ``DIR/best``: the one run that reads test."""
    config = params_config(best.user_attrs["settings"], base, seed)
    best_dir = Path(out_dir) / BEST_DIR
    return train_sequence(cache, best_dir, config, overwrite=True, verbose=verbose, report=report)


def _check_folds(folds, base):
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 1:
        raise UsageError(f"folds must be an integer >= 1. Received: folds={folds!r}")
    if base.folds != 1:
        raise UsageError(
            "give the cross-validation folds to tune (folds=K), not in its config; the final "
            f"run trains on the cache's own split. Received: config.folds={base.folds!r}"
        )


def _budget(trials, timeout):
    if trials is None and timeout is None:
        trials = DEFAULT_TRIALS
    bad = isinstance(trials, bool) or not isinstance(trials, int) or trials < 1
    if trials is not None and bad:
        raise UsageError(f"trials must be an integer >= 1. Received: trials={trials!r}")
    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise UsageError(f"timeout must be > 0 seconds. Received: timeout={timeout!r}")
    return trials, timeout


def tune(
    cache,
    out_dir,
    *,
    trials=None,
    timeout=None,
    heads=None,
    space=None,
    storage=None,
    study_name=STUDY_NAME,
    seed=0,
    folds=1,
    config=None,
    verbose=0,
    report=True,
    log=None,
):
    """Searches heads and settings on a cache's validation split; retrains the best into DIR/best.

    Rerunning the same call continues the study (after a crash, Ctrl-C, or to
    add trials); several processes given the same ``storage`` and
    ``study_name`` share its trials.

    Args:
        cache: A feature cache (or several read as one, as for ``train_sequence``).
        out_dir: ``DIR``: ``best/``, ``trials.csv``, ``tune.json``, the plots,
            and ``study.db`` unless ``storage`` is given.
        trials: Trials the study should hold in all (complete, pruned or
            failed); default :data:`DEFAULT_TRIALS` when ``timeout`` is None too.
        timeout: Start no trial after this many seconds of this call (the first
            trial always starts).
        heads: Heads to search (default: all but ``pool``).
        space: A ``--space`` file path, or its dict (see :mod:`.tune_space`).
        storage: Optuna storage URL (``sqlite:///...``, ``postgresql://...``,
            ``mysql://...``, or ``journal:PATH``); default ``DIR/study.db``.
        study_name: The study's name in the storage.
        seed: Every trial's seed (validation carve-out, folds, initialisation, batches).
        folds: Cross-validation folds K: each trial trains K runs, each validated
            on one of K group-aware folds of the train and val videos pooled, and
            scores their mean validation accuracy. 1 (default): one run, scored
            on the validation split. The final run trains on the training split.
        config: :class:`~vidseq.sequence.config.TrainConfig` of the settings no
            trial draws (default settings when None).
        verbose: Keras verbosity of the final run.
        report: Write ``report.html`` for the study and for ``DIR/best``.
        log: Called with one line per trial (default: silent).

    Returns:
        A :class:`~vidseq.sequence.studies.tune_report.TuneResult`.

    Raises:
        UsageError: Bad budget, heads, space or storage; an ``out_dir`` holding
            other files; a resumed study made with another cache, space or seed.
    """
    trials, timeout = _budget(trials, timeout)
    if isinstance(space, (str, Path)):
        space = load_space_file(space)
    search = SearchSpace.make(heads, space)
    base = (config or TrainConfig()).validate()
    _check_folds(folds, base)
    log = log or (lambda line: None)
    identity = {"cache": _cache_identity(cache), "space": search.to_dict(), "seed": int(seed)}
    if folds > 1:  # studies of one split, made before folds existed, keep resuming
        identity["folds"] = folds
    out_dir = _check_out_dir(out_dir)
    start = time.perf_counter()
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        url = storage or ts.default_storage(out_dir)
        study = _open_study(url, study_name, seed, shared=storage is not None)
        ts.check_same_study(study, identity)
        objective = _Objective(cache, out_dir, search, base, seed, trials, folds)
        run_trials(study, objective, trials, timeout, log)
    finally:
        optuna.logging.set_verbosity(verbosity)
    result = TuneResult.of_study(
        study, out_dir, cache=str(absolute_cache_spec(cache)), trials_requested=trials
    )
    if result.best_trial is None:
        write_outputs(result, study)
        raise VidseqError(f"no trial of study {study_name!r} completed; see {out_dir}/trials.csv")
    log(f"retraining trial #{result.best_trial} on the training split into {out_dir / BEST_DIR}")
    final = _final_run(cache, out_dir, ts.best_trial(study), base, seed, verbose, report)
    result.set_final(final, seconds=time.perf_counter() - start)
    write_outputs(result, study)
    if report:
        report_after_training(out_dir, result.warnings)
    _remove_if_empty(out_dir / TRIALS_DIR)
    return result


def _remove_if_empty(folder):
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
