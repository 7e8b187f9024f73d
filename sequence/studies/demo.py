"""The whole pipeline on offline sample data: sample, extract, train, evaluate, report, predict."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from vidseq.cache.store import FeatureStore
from vidseq.errors import UsageError
from vidseq.extract.pipeline import extract_features
from vidseq.extract.sources.sample_data import make_sample
from vidseq.outputs import check_writable_folder
from vidseq.sequence.config import TrainConfig
from vidseq.sequence.infer.predict import Prediction, predict_videos
from vidseq.sequence.report.build import ReportResult, report
from vidseq.sequence.runs.evaluation import evaluate_run
from vidseq.sequence.runs.results import EvaluationResult
from vidseq.sequence.train.training import train_sequence

DEMO_BACKBONE = "tiny"
"""The demo's CNN: random-init weights work offline; ImageNet weights need a download."""

DEMO_NEXT_STEP = (
    f"The demo's CNN is {DEMO_BACKBONE!r} with random-init weights (offline). With real "
    "data and ImageNet weights:\n"
    "  vidseq extract-features DATA --out features.h5 --backbone resnet50 --weights imagenet\n"
    "(Keras downloads the weights to $KERAS_HOME/models; offline, pass "
    "--weights PATH to a local file)."
)
"""What ``vidseq demo`` says to do next."""

DEMO_TRAIN = TrainConfig()
"""The demo trains with train-sequence's defaults: no setting is tuned to the sample.

The default LSTM, RMS-scaled features, lr 3e-3, epochs scaled to about 800
steps, the best validation epoch kept (docs/results.md, the demo and the
default recipe)."""


@dataclass
class DemoResult:
    """Where the demo put everything, and what it measured.

    Attributes:
        sample: The generated dataset.
        cache: The feature cache.
        run: The run directory.
        evaluation: Test evaluation of the RNN (``metrics["baseline"]``: bag-of-frames).
        predictions: Predictions on a few test videos.
        report: The run's page (``report.html``) and what it took.
    """

    sample: Path
    cache: Path
    run: Path
    evaluation: EvaluationResult
    predictions: list[Prediction]
    report: ReportResult | None = None

    def summary(self) -> str:
        """Where everything is, and the test accuracy against the baseline."""
        m = self.evaluation.metrics
        baseline = m["baseline"]["accuracy"] if m.get("baseline") else float("nan")
        return (
            f"sample data {self.sample}, cache {self.cache}, run {self.run}; test accuracy "
            f"{m['accuracy']:.3f} (RNN) vs {baseline:.3f} (bag-of-frames baseline); "
            f"report {self.report.path if self.report else 'not written'}"
        )

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "sample": str(self.sample),
            "cache": str(self.cache),
            "run": str(self.run),
            "evaluation": self.evaluation.to_dict(),
            "predictions": [p.to_dict() for p in self.predictions],
            "report": self.report.to_dict() if self.report else None,
        }


DEMO_OUTPUTS = ("sample", "features.h5", "run")
"""What the demo writes in its folder."""


def check_demo_workdir(workdir, *, overwrite=False):
    """Refuses a demo folder holding a sample, cache or run, unless ``overwrite``.

    Raises:
        UsageError: ``workdir`` is a file, or holds one of :data:`DEMO_OUTPUTS`
            (named) and ``overwrite`` is False.
    """
    workdir = Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise UsageError(f"workdir must be a folder; it is a file. Received: workdir={workdir}")
    found = [name for name in DEMO_OUTPUTS if (workdir / name).exists()]
    if found and not overwrite:
        raise UsageError(
            f"workdir must not hold a previous demo, and it holds {', '.join(found)}; choose "
            "another folder, or replace "
            f"them with --overwrite. Received: workdir={workdir}"
        )
    check_writable_folder(workdir / DEMO_OUTPUTS[0], flag="workdir")


def run_demo(
    workdir="vidseq-demo", *, seed: int = 0, overwrite: bool = False, log=print
) -> DemoResult:
    """Runs every stage of vidseq offline on generated sample videos.

    Args:
        workdir: Folder for the sample data, the cache and the run (created).
        seed: Seed of the sample data, the random-init CNN and training.
        overwrite: Replace a previous demo's sample, cache and run in ``workdir``
            (without it they are refused, before anything is written).
        log: Called with one line per stage.

    Returns:
        A :class:`DemoResult`.

    Raises:
        UsageError: ``workdir`` holds a previous demo and ``overwrite`` is False.
    """
    check_demo_workdir(workdir, overwrite=overwrite)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"1/6 make-sample → {workdir / 'sample'}")
    sample = make_sample(workdir / "sample", seed=seed, overwrite=True)
    log(
        f"2/6 extract-features with backbone {DEMO_BACKBONE!r}, random-init weights "
        f"(seed {seed}) → {workdir / 'features.h5'}"
    )
    extraction = extract_features(
        sample,
        workdir / "features.h5",
        backbone=DEMO_BACKBONE,
        weights="none",
        seed=seed,
        overwrite=True,
    )
    log(f"    {extraction.summary()}")
    log(f"3/6 train-sequence → {workdir / 'run'}")
    config = dataclasses.replace(DEMO_TRAIN, fit=dataclasses.replace(DEMO_TRAIN.fit, seed=seed))
    training = train_sequence(
        extraction.out, workdir / "run", config, overwrite=True, verbose=0, report=False
    )
    log(f"    {training.summary()}")
    log("4/6 evaluate")
    evaluation = evaluate_run(training.run_dir)
    metrics = evaluation.metrics
    baseline = metrics["baseline"]["accuracy"] if metrics.get("baseline") else float("nan")
    log(
        f"    test accuracy {metrics['accuracy']:.3f} (RNN) vs {baseline:.3f} "
        f"(bag-of-frames baseline: mean-pooled features, no temporal order)"
    )
    log(f"5/6 report → {training.run_dir / 'report.html'}")
    page = report(training.run_dir)
    log(f"    {page.summary()}")
    with FeatureStore(extraction.out) as store:
        test = [i for i in range(len(store)) if store.splits[i] == "test"][:3]
        videos = [store.paths[i] for i in test]
    log("6/6 predict")
    predictions = predict_videos(training.run_dir, videos, top_k=2)
    for prediction in predictions:
        best = ", ".join(f"{label} {p:.2f}" for label, p in prediction.top)
        log(f"    {Path(prediction.video).name}: {best}")
    return DemoResult(sample, extraction.out, training.run_dir, evaluation, predictions, page)
