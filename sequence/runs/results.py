"""What the sequence commands return: each result has ``.summary()`` and ``.to_dict()``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TrainResult:
    """What a training command (train_sequence, finetune, train_from_scratch) did.

    Attributes:
        run_dir: The run directory.
        history: One dict per completed epoch (``epoch`` 1-based, ``loss``,
            ``accuracy``, ``val_loss``, ``val_accuracy``, ``lr``).
        best_epoch: 1-based epoch whose weights were kept.
        epochs_completed: Epochs completed in all (resumed ones included).
        stopped_early: Early stopping ended training.
        resumed_from: Epochs already completed when this call started.
        metrics: The evaluation dict of the final model (see
            ``evaluation.compute_metrics``) on the test split, or on the
            validation split when there is no test video.
        splits: Split sizes and where validation came from.
        seconds: Wall time of the fitting in this call.
        videos: Training videos seen in this call (videos x epochs).
        streaming: Features were streamed from the file (end-to-end runs
            always stream their frames).
        warnings: Things the caller should tell the user.
        weights_sha256: Digest of the final weights
            (``extract.backbones.weights_sha256``): every worker of a
            multi-worker run reports the same one.
        chief: This process wrote the run directory (False for the other
            workers of a multi-worker run, whose ``metrics`` are empty).
        replicas: Replicas that trained in sync.
    """

    run_dir: Path
    history: list
    best_epoch: int
    epochs_completed: int
    stopped_early: bool
    resumed_from: int
    metrics: dict
    splits: dict
    seconds: float
    videos: int
    streaming: bool = False
    warnings: list = field(default_factory=list)
    weights_sha256: str = ""
    chief: bool = True
    replicas: int = 1

    @property
    def videos_per_second(self):
        """Training throughput of this call."""
        return self.videos / self.seconds if self.seconds > 0 else 0.0

    def summary(self):
        """One closing line: videos, seconds, videos/s, result, where."""
        m = self.metrics
        if not self.chief:
            return (
                f"worker done: {self.videos} video-epochs in {self.seconds:.1f} s, best epoch "
                f"{self.best_epoch}/{self.epochs_completed}; weights sha256 "
                f"{self.weights_sha256}; the chief writes the run directory {self.run_dir}"
            )
        baseline = m.get("baseline")
        versus = f", bag-of-frames baseline {baseline['accuracy']:.3f}" if baseline else ""
        return (
            f"trained on {self.splits['train']} videos: {self.videos} video-epochs in "
            f"{self.seconds:.1f} s ({self.videos_per_second:.1f} videos/s), best epoch "
            f"{self.best_epoch}/{self.epochs_completed}; {m['split']} accuracy "
            f"{m['accuracy']:.3f}{versus}; run: {self.run_dir}"
        )

    def to_dict(self):
        """The fields (and ``videos_per_second``) as a JSON-ready dict."""
        out = dataclasses.asdict(self)
        out["run_dir"] = str(self.run_dir)
        out["videos_per_second"] = self.videos_per_second
        return out


@dataclass
class EvaluationResult:
    """What ``evaluate_run`` measured and wrote.

    Attributes:
        metrics: The ``compute_metrics`` dict plus ``split``, ``clips``,
            ``single_clip_accuracy`` (multi-clip only), ``baseline`` (dict or
            None), ``cache``, ``run_dir`` and ``seconds`` (as metrics.json holds it).
        files: The report files written.
    """

    metrics: dict
    files: list = field(default_factory=list)

    def summary(self):
        """The report of the command line: accuracy, F1, baseline, files."""
        m = self.metrics
        cache = m["cache"] if isinstance(m["cache"], str) else f"{len(m['cache'])} cache files"
        lines = [
            f"{m['split']} split of {cache}: {m['num_videos']} videos",
            f"accuracy             {m['accuracy']:.4f}",
        ]
        if "top5_accuracy" in m:
            lines.append(f"top-5 accuracy       {m['top5_accuracy']:.4f}")
        for average in ("macro", "weighted"):
            lines.append(
                f"F1 {average:<8}          {m[f'f1_{average}']:.4f}  (precision "
                f"{m[f'precision_{average}']:.4f}, recall {m[f'recall_{average}']:.4f})"
            )
        if m.get("baseline"):
            lines.append(
                f"bag-of-frames        {m['baseline']['accuracy']:.4f}  (no temporal order)"
            )
        lines.append(f"report, confusion matrix: {', '.join(map(str, self.files))}")
        return "\n".join(lines)

    def to_dict(self):
        """The metrics and ``files`` (paths as text) as one JSON-ready dict."""
        return {**self.metrics, "files": [str(p) for p in self.files]}
