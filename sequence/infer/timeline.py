"""Reports of windowed predictions: a terminal table, CSV, and a PNG timeline."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend

from vidseq.outputs import atomic_output, check_output, refuse_inputs

CSV_COLUMNS = ("path", "start", "end", "label", "probability", "frame_indices")
"""The fixed CSV columns; one probability column per class follows them."""


def format_table(prediction) -> str:
    """A terminal table: per video, one line per window, then its segments.

    Args:
        prediction: A :class:`~vidseq.sequence.infer.windowed.WindowedPrediction`.
    """
    lines = []
    for video in prediction.videos:
        lines.append(f"{video.path}")
        if video.error:
            lines.append(f"  failed: {video.error}")
            continue
        lines.append(f"  {'start':>8} {'end':>8}  top labels")
        for w in video.windows:
            top = ", ".join(f"{label} {p:.3f}" for label, p in w.top)
            lines.append(f"  {w.start:8.2f} {w.end:8.2f}  {top}")
        lines.append("  segments:")
        for s in video.segments:
            lines.append(
                f"  {s.start:8.2f} {s.end:8.2f}  {s.label} (mean {s.probability:.3f}, "
                f"{s.windows} windows)"
            )
    return "\n".join(lines)


def check_timeline_outputs(run, videos, *, csv=None, plot=None, report=None, overwrite=False):
    """Refuses, before any work, a ``csv``, ``plot`` or ``report`` path that would lose data.

    None may be one of the ``videos``, the run (or export) directory or a
    file in it, or another of them; an existing file needs ``overwrite``.

    Raises:
        UsageError: Naming the flag and the path.
    """
    outputs = [(flag, path) for flag, path in (("csv", csv), ("plot", plot), ("report", report))]
    outputs = [(flag, path) for flag, path in outputs if path is not None]
    for index, (flag, path) in enumerate(outputs):
        refuse_inputs(path, [other for _, other in outputs[:index]], flag=flag)
        check_output(path, [run, *videos], within=[run], overwrite=overwrite, flag=flag)


def write_csv(prediction, path) -> Path:
    """Writes one row per window of every video: times, top label, indices, class probabilities.

    Args:
        prediction: A :class:`~vidseq.sequence.infer.windowed.WindowedPrediction`.
        path: The CSV file to write.

    Returns:
        The path.
    """
    path = Path(path)
    videos = [v for v in prediction.videos if not v.error]
    names = videos[0].class_names if videos else []
    with atomic_output(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow([*CSV_COLUMNS, *names])
        for video in videos:
            for w in video.windows:
                label, probability = w.top[0]
                indices = " ".join(str(i) for i in w.frame_indices)
                row = [video.path, f"{w.start:.4f}", f"{w.end:.4f}", label, f"{probability:.6f}"]
                writer.writerow([*row, indices, *(f"{p:.6f}" for p in w.probabilities)])
    return path


def plot_timeline(prediction, path) -> Path:
    """Draws each video's class probabilities over time, segments as coloured bands.

    One panel per readable video. A window's probabilities are drawn at its
    centre; the bands behind them are the merged segments, in the colour of
    their label's curve.

    Args:
        prediction: A :class:`~vidseq.sequence.infer.windowed.WindowedPrediction`.
        path: The PNG file to write.

    Returns:
        The path.
    """
    videos = [v for v in prediction.videos if not v.error and v.windows]
    figure, axes = plt.subplots(
        max(1, len(videos)), 1, figsize=(10, 2.6 * max(1, len(videos))), squeeze=False
    )
    for ax, video in zip(axes[:, 0], videos, strict=False):
        colours = {name: f"C{i % 10}" for i, name in enumerate(video.class_names)}
        centres = [(w.start + w.end) / 2 for w in video.windows]
        for segment in video.segments:
            ax.axvspan(segment.start, segment.end, color=colours[segment.label], alpha=0.15, lw=0)
        for i, name in enumerate(video.class_names):
            probabilities = [float(w.probabilities[i]) for w in video.windows]
            ax.plot(centres, probabilities, color=colours[name], label=name, lw=1.5)
        ax.set_ylim(0, 1)
        ax.set_ylabel("probability")
        ax.set_title(Path(video.path).name, fontsize=10)
        ax.legend(loc="upper right", fontsize=8, ncol=min(4, len(video.class_names)))
    axes[-1, 0].set_xlabel("time (s)")
    figure.tight_layout()
    with atomic_output(path) as out:
        figure.savefig(out, format="png", dpi=100)
    plt.close(figure)
    return Path(path)
