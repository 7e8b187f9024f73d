"""What ``vidseq tune`` returns and writes: tune.json, trials.csv and Optuna's plots."""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib import pyplot
from optuna.trial import TrialState
from optuna.visualization import matplotlib as optuna_plots

from vidseq.sequence.runs import report_files as reports
from vidseq.sequence.studies import tune_study as ts

TUNE_FILE = "tune.json"
TRIALS_FILE = "trials.csv"
HISTORY_PLOT = "optimization_history.png"
IMPORTANCE_PLOT = "param_importances.png"


@dataclass
class TuneResult:
    """What :func:`~vidseq.sequence.studies.tune.tune` found (``tune.json`` holds :meth:`to_dict`).

    Attributes:
        out_dir: The tune's directory.
        cache: The cache tuned on.
        study_name: The study's name in its storage.
        trials_requested: Trials the study was asked to hold (None: a timeout only).
        counts: Trials ``complete``, ``pruned``, ``failed`` (these three are
            the study's trials), and ``interrupted`` (retried), ``surplus``,
            ``running``, ``waiting``.
        best_trial: Number of the best trial (None when none completed).
        best_params: The best trial's settings (``head`` and every value drawn).
        best_val_accuracy: Its validation accuracy (with ``folds`` > 1, the mean
            over the folds).
        best_val_loss: Its validation loss (at the kept epoch), the tie-break
            between trials of equal validation accuracy.
        folds: Cross-validation folds each trial was scored on (1: the validation split).
        best_fold_accuracies: The best trial's validation accuracy on each
            fold (empty when ``folds`` is 1).
        test_accuracy: The final run's accuracy on the test split.
        test_metrics: The final run's evaluation (``metrics.json`` of ``best/``).
        best_run: The final run directory (``DIR/best``).
        seconds: Wall time of this call.
        files: The files written.
        warnings: Things the caller should know (a plot that could not be drawn).
    """

    FILE_NAMES = (TUNE_FILE, TRIALS_FILE, HISTORY_PLOT, IMPORTANCE_PLOT)

    out_dir: Path
    cache: str
    study_name: str
    trials_requested: int | None
    counts: dict
    best_trial: int | None = None
    best_params: dict = field(default_factory=dict)
    best_val_accuracy: float | None = None
    best_val_loss: float | None = None
    folds: int = 1
    best_fold_accuracies: list = field(default_factory=list)
    test_accuracy: float | None = None
    test_metrics: dict = field(default_factory=dict)
    best_run: str | None = None
    seconds: float = 0.0
    files: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    @classmethod
    def of_study(cls, study, out_dir, *, cache, trials_requested):
        """The counts and best trial of ``study`` (no final run yet)."""
        trials = study.get_trials(deepcopy=False)
        result = cls(Path(out_dir), cache, study.study_name, trials_requested, ts.counts(trials))
        result.folds = int(study.user_attrs.get("vidseq_tune", {}).get("folds", 1))
        best = ts.best_trial(study)
        if best is not None:
            result.best_trial = best.number
            result.best_params = dict(best.user_attrs["settings"])
            result.best_val_accuracy = float(best.value)
            result.best_val_loss = best.user_attrs.get("val_loss")
            result.best_fold_accuracies = list(best.user_attrs.get("fold_accuracies", []))
        return result

    def set_final(self, train_result, *, seconds):
        """Records the final run (a ``TrainResult`` evaluated on test) and the call's time."""
        metrics = train_result.metrics
        self.best_run = str(train_result.run_dir)
        self.test_accuracy = float(metrics["accuracy"])
        keys = ("split", "num_videos", "accuracy", "f1_macro", "baseline")
        self.test_metrics = {k: metrics[k] for k in keys if k in metrics}
        self.seconds = float(seconds)

    def summary(self):
        """Counts, the best trial's settings and scores, where the final run is."""
        c = self.counts
        requested = f" of {self.trials_requested}" if self.trials_requested else ""
        lines = [
            f"{c['complete'] + c['pruned'] + c['failed']}{requested} trials: "
            f"{c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed"
            + (f", {c['running']} still running" if c["running"] else "")
        ]
        if self.best_trial is not None:
            settings = ", ".join(f"{k}={_short(v)}" for k, v in self.best_params.items())
            lines.append(f"best trial #{self.best_trial}: {settings}")
            loss = f", loss {self.best_val_loss:.4f}" if self.best_val_loss is not None else ""
            folds = ", ".join(f"{a:.3f}" for a in self.best_fold_accuracies)
            folds = f" (mean of {self.folds} folds: {folds})" if folds else ""
            lines.append(f"validation accuracy {self.best_val_accuracy:.3f}{folds}{loss}")
        if self.test_accuracy is not None:
            split = self.test_metrics.get("split", "test")
            lines.append(
                f"final run {self.best_run}: {split} accuracy {self.test_accuracy:.3f} "
                f"({self.seconds:.0f} s in all)"
            )
        return "\n".join(lines)

    def to_dict(self):
        """JSON-ready form (what ``tune.json`` holds)."""
        return {
            "out_dir": str(self.out_dir),
            "cache": self.cache,
            "study_name": self.study_name,
            "trials_requested": self.trials_requested,
            "counts": dict(self.counts),
            "best_trial": self.best_trial,
            "best_params": dict(self.best_params),
            "best_val_accuracy": self.best_val_accuracy,
            "best_val_loss": self.best_val_loss,
            "folds": self.folds,
            "best_fold_accuracies": list(self.best_fold_accuracies),
            "test_accuracy": self.test_accuracy,
            "test_metrics": dict(self.test_metrics),
            "best_run": self.best_run,
            "seconds": self.seconds,
            "files": [str(p) for p in self.files],
            "warnings": list(self.warnings),
        }


def _short(value):
    return f"{value:.3g}" if isinstance(value, float) else value


TRIAL_COLUMNS = (
    "number",
    "state",
    "val_accuracy",
    "val_loss",
    "head",
    "epochs_run",
    "best_epoch",
    "seconds",
)


def trial_rows(study):
    """One dict per trial: number, state, validation accuracy and loss, head, settings, notes."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        state = t.state.name.lower()
        if t.state == TrialState.FAIL:
            state = ts.fail_kind(t)
        settings = t.user_attrs.get("settings", {})
        row = {
            "number": t.number,
            "state": state,
            "val_accuracy": t.value,
            "val_loss": t.user_attrs.get("val_loss"),
            "head": settings.get("head"),
            "epochs_run": t.user_attrs.get("epochs_run"),
            "best_epoch": t.user_attrs.get("best_epoch"),
            "seconds": t.user_attrs.get("seconds"),
        }
        if "fold_accuracies" in t.user_attrs:
            row["fold_accuracies"] = " ".join(f"{a:.4f}" for a in t.user_attrs["fold_accuracies"])
        row.update({k: v for k, v in settings.items() if k != "head"})
        row["retry_of"] = t.user_attrs.get("retry_of")
        row["error"] = t.user_attrs.get("error")
        rows.append(row)
    return rows


def write_trials_csv(path, study):
    """``trials.csv``: :func:`trial_rows`, the settings of every head as columns."""
    rows = trial_rows(study)
    columns = list(TRIAL_COLUMNS)
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot_study(out_dir, study):
    """Optuna's optimisation history and parameter importances as PNGs.

    Returns:
        ``(paths written, warnings)``: importances need two complete trials
        with some setting varying, else their plot is left out with a warning.
    """
    written, notes = [], []
    for name, draw in (
        (HISTORY_PLOT, optuna_plots.plot_optimization_history),
        (IMPORTANCE_PLOT, optuna_plots.plot_param_importances),
    ):
        path = Path(out_dir) / name
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ExperimentalWarning, tight-layout notes
                axes = draw(study)
                axes.figure.savefig(path, dpi=100, bbox_inches="tight")
                pyplot.close(axes.figure)
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            notes.append(f"{name} not drawn: {str(error).splitlines()[0] or type(error).__name__}")
            continue
        written.append(path)
    return written, notes


def write_outputs(result, study):
    """Writes trials.csv, the plots and tune.json into ``result.out_dir``; records them."""
    out = Path(result.out_dir)
    files = [write_trials_csv(out / TRIALS_FILE, study)]
    plotted, notes = plot_study(out, study)
    files += plotted
    result.warnings.extend(notes)
    result.files = [*files, out / TUNE_FILE]
    reports.write_json(out / TUNE_FILE, result.to_dict())
    return result.files
