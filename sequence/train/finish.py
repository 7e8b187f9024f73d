"""The end of a training run: the model to evaluate, the split, the files a finished run holds.

:func:`finish_run` marks a run finished, writes its metrics, final state and
report page (on the chief), and returns its
:class:`~vidseq.sequence.runs.results.TrainResult`. Every training command
(train-sequence, finetune, from scratch) ends here.
"""

from __future__ import annotations

from pathlib import Path

from vidseq.sequence.report.build import report_after_training
from vidseq.sequence.runs import run_dir as rd
from vidseq.sequence.runs.evaluation import write_evaluation
from vidseq.sequence.runs.results import TrainResult
from vidseq.sequence.runs.saved_run import load_model_file


def model_to_evaluate(model, dist, run_path):
    """The trained model, or under a distributed strategy its saved copy (one device)."""
    if dist.name == "default":
        return model
    return load_model_file(Path(run_path) / rd.MODEL_FILE)


def evaluation_split(splits):
    """``("test", indices)``, or ``("val", indices)`` when there is no test video."""
    return ("test", splits.test) if len(splits.test) else ("val", splits.val)


def finish_run(
    run_path,
    state,
    metrics,
    *,
    cache,
    dist,
    splits,
    resumed_from,
    seconds,
    report=True,
    **details,
):
    """Marks the run finished; the chief writes its metrics, final state and report page.

    Args:
        run_path: The run directory.
        state: The :class:`~vidseq.sequence.runs.run_dir.RunState`.
        metrics: The evaluation dict (empty on a worker that is not the chief).
        cache: The cache (or dataset) the run trained on, recorded in the metrics.
        dist: The ``distribute.Distribution``.
        splits: The ``splits.SplitIndices`` the run trained on.
        resumed_from: Epochs done when this call started.
        seconds: Wall time of the fitting in this call.
        report: Also write ``report.html`` (a failure to write it becomes a
            warning: the run is already saved).
        **details: ``streaming``, ``warnings``, ``weights_sha256`` of the result.

    Returns:
        The :class:`~vidseq.sequence.runs.results.TrainResult` of the call.
    """
    state.finished = True
    state.failed = None  # a resumed run that finishes is no longer failed
    if dist.chief:
        metrics["cache"] = cache
        metrics["run_dir"] = str(Path(run_path).resolve())
        write_evaluation(metrics, run_path)
        rd.write_state(run_path, state)
        if report:
            report_after_training(run_path, details.setdefault("warnings", []))
    return TrainResult(
        run_dir=Path(run_path),
        history=list(state.history),
        best_epoch=int(state.best_epoch),
        epochs_completed=int(state.epochs_done),
        stopped_early=bool(state.stopped_early),
        resumed_from=resumed_from,
        metrics=metrics,
        splits=splits.sizes(),
        seconds=seconds,
        videos=len(splits.train) * (int(state.epochs_done) - resumed_from),
        chief=dist.chief,
        replicas=dist.replicas,
        **details,
    )
