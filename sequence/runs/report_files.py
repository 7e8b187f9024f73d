"""Report files of a run: JSON, CSV and the text classification report (figures: plots.py)."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from vidseq.bounds import json_safe
from vidseq.errors import UsageError
from vidseq.outputs import atomic_output


def write_json(path, data):
    """Writes ``data`` as indented JSON atomically (temporary file + rename).

    NaN and infinities are written as ``null``: the file is always valid JSON.
    """
    text = json.dumps(
        json_safe(data), indent=2, ensure_ascii=False, default=_json_default, allow_nan=False
    )
    return write_text(path, text + "\n")


def write_text(path, text):
    """Writes ``text`` (UTF-8) atomically: a temporary file beside ``path``, then a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_json(path, what=None):
    """Reads a JSON file; UsageError naming it when missing or corrupt.

    Args:
        path: The file.
        what: What the file is, for the error (``"run config"``); None says JSON.
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        problem = f"corrupt {what}" if what else "unreadable or corrupt JSON"
        raise UsageError(f"{path}: {problem} ({e})") from None


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_history_csv(path, history):
    """Writes per-epoch rows (dicts with the same keys, ``epoch`` first)."""
    keys = []
    for row in history:
        keys.extend(k for k in row if k not in keys)
    with atomic_output(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    return Path(path)


def format_classification_report(metrics):
    """Plain-text report of an evaluation dict (see ``compute_metrics``)."""
    names = metrics["class_names"]
    width = max([len(n) for n in names] + [len("weighted avg"), 12])
    lines = [
        f"split: {metrics.get('split', '?')}   videos: {metrics['num_videos']}   "
        f"clips per video: {metrics.get('clips', 1)}",
        "",
        f"{'':>{width}}  precision     recall   f1-score    support",
        "",
    ]
    for name in names:
        c = metrics["per_class"][name]
        lines.append(
            f"{name:>{width}}  {c['precision']:9.4f}  {c['recall']:9.4f}  "
            f"{c['f1']:9.4f}  {c['support']:9d}"
        )
    lines.append("")
    lines.append(
        f"{'accuracy':>{width}}  {'':9}  {'':9}  {metrics['accuracy']:9.4f}  "
        f"{metrics['num_videos']:9d}"
    )
    for avg in ("macro", "weighted"):
        lines.append(
            f"{avg + ' avg':>{width}}  {metrics[f'precision_{avg}']:9.4f}  "
            f"{metrics[f'recall_{avg}']:9.4f}  {metrics[f'f1_{avg}']:9.4f}  "
            f"{metrics['num_videos']:9d}"
        )
    if "top5_accuracy" in metrics:
        lines.append(f"{'top-5 accuracy':>{width}}  {metrics['top5_accuracy']:.4f}")
    if "single_clip_accuracy" in metrics:
        lines.append(f"{'1-clip accuracy':>{width}}  {metrics['single_clip_accuracy']:.4f}")
    baseline = metrics.get("baseline")
    if baseline:
        lines += [
            "",
            "bag-of-frames baseline (mean of valid frame features + logistic regression, "
            "same training split):",
            f"  accuracy {baseline['accuracy']:.4f}   f1 macro {baseline['f1_macro']:.4f}   "
            f"(sequence model: accuracy {metrics['accuracy']:.4f}, "
            f"f1 macro {metrics['f1_macro']:.4f})",
        ]
    return "\n".join(lines) + "\n"
