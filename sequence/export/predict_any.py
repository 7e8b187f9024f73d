"""``vidseq predict`` as one function: a run or an export directory, whole videos or windows.

:func:`predict` chooses between the three ways vidseq classifies videos:
whole videos with a run directory
(:func:`~vidseq.sequence.infer.predict.predict_videos`), whole videos with an
export directory in its own runtime
(:func:`~vidseq.sequence.export.runtime.predict_export`), and sliding windows
with a run directory (:func:`~vidseq.sequence.infer.windowed.predict_windows`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vidseq.errors import UsageError
from vidseq.sequence.export.manifest import is_export_dir
from vidseq.sequence.export.runtime import predict_export
from vidseq.sequence.infer.predict import Prediction, predict_videos
from vidseq.sequence.infer.timeline import (
    check_timeline_outputs,
    format_table,
    plot_timeline,
    write_csv,
)
from vidseq.sequence.infer.windowed import WindowedPrediction, predict_windows
from vidseq.sequence.report.build import timeline_report


@dataclass
class Predictions:
    """What :func:`predict` gives: one prediction per video, or each video's windows.

    Attributes:
        videos: One :class:`~vidseq.sequence.infer.predict.Prediction` per video
            (whole videos), in the order given; empty with windows.
        windows: The :class:`~vidseq.sequence.infer.windowed.WindowedPrediction`
            (with ``window``), else None.
        files: The CSV and PNG files written.

    Iterating it, indexing it and ``len`` go over ``videos`` (as the list that
    ``predict`` returned before windows and exports were among its modes).
    """

    videos: list[Prediction] = field(default_factory=list)
    windows: WindowedPrediction | None = None
    files: list[Path] = field(default_factory=list)

    def __iter__(self):
        return iter(self.videos)

    def __len__(self):
        return len(self.videos)

    def __getitem__(self, index):
        return self.videos[index]

    @property
    def failures(self) -> list[tuple[str, str]]:
        """``(video, error)`` of each video that could not be classified."""
        if self.windows is not None:
            return [(str(v.path), v.error) for v in self.windows.videos if v.error]
        return [(str(p.video), p.error) for p in self.videos if p.error]

    def summary(self) -> str:
        """The labels as text: one line per video, or the windows' table."""
        if self.windows is not None:
            return format_table(self.windows)
        return "\n".join(p.summary() for p in self.videos if not p.error)

    def to_dict(self) -> dict:
        """JSON-ready: ``{"predictions": [...]}``, or the windows' dict."""
        if self.windows is not None:
            return self.windows.to_dict()
        return {"predictions": [p.to_dict() for p in self.videos]}


def predict(
    run,
    videos,
    *,
    top_k: int = 5,
    engine: str = "tf",
    precision: str = "fp32",
    window: float | None = None,
    stride: float | None = None,
    plot=None,
    csv=None,
    report=None,
    overwrite: bool = False,
    progress: bool = False,
) -> Predictions:
    """Classifies videos with a run directory or an export directory.

    Args:
        run: A run directory, or an export directory of ``vidseq export``.
        videos: Paths of video files (or frame directories).
        top_k: Classes listed per video or window.
        engine: What runs a run's CNN: ``"tf"`` or ``"openvino"`` (an export
            runs in its own format's runtime).
        precision: A run's CNN in ``"fp32"``, ``"bf16"`` or ``"int8"`` (the
            quantised model beside the run's cache; see ``extract-features
            --precision``).
        window: Seconds per window: classify sliding windows of each video.
        stride: Seconds between windows (default: ``window``).
        plot: PNG file of the windows' timeline (with ``window``).
        csv: CSV file of the windows (with ``window``).
        report: HTML page of the windows' timeline, a thumbnail per segment
            (with ``window``).
        overwrite: Replace existing ``plot``, ``csv`` and ``report`` files
            (never a video or a file of the run).
        progress: A progress bar on stderr (windows).

    Returns:
        The :class:`Predictions`; a video that cannot be read is among its
        ``failures``, the others are classified.

    Raises:
        UsageError: ``stride``, ``plot``, ``csv`` or ``report`` without ``window``, or an
            ``engine`` for an export directory.
    """
    if window is not None:
        outputs = {"plot": plot, "csv": csv, "report": report}
        check_timeline_outputs(run, videos, **outputs, overwrite=overwrite)
        net = {"engine": engine, "precision": precision}
        return _windows(run, videos, top_k, net, window, stride, outputs, progress)
    for name, value in (("stride", stride), ("plot", plot), ("csv", csv), ("report", report)):
        if value is not None:
            raise UsageError(f"{name} needs window. Received: {name}={value!r}")
    if is_export_dir(run):
        for name, value, default in (("engine", engine, "tf"), ("precision", precision, "fp32")):
            if value != default:
                raise UsageError(
                    f"{run}: an export runs in its own format's runtime; {name} applies to "
                    f"run directories. Received: {name}={value!r}"
                )
        return Predictions(videos=predict_export(run, videos, top_k=top_k))
    found = predict_videos(run, videos, top_k=top_k, engine=engine, precision=precision)
    return Predictions(videos=found)


def _windows(run, videos, top_k, net, window, stride, outputs, progress) -> Predictions:
    result = predict_windows(
        run,
        videos,
        window=window,
        stride=stride if stride is not None else window,
        top_k=top_k,
        progress=progress,
        **net,
    )
    writers = {"csv": write_csv, "plot": plot_timeline}
    files = [
        writers[name](result, path) for name, path in outputs.items() if name in writers and path
    ]
    if outputs["report"] is not None:
        page = timeline_report(result.to_dict(), outputs["report"], run_dir=run)
        files.append(page.path)
    return Predictions(windows=result, files=files)
