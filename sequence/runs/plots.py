"""Figures of a run: the confusion matrix and the training curves (PNG).

Drawn on a bare ``matplotlib.figure.Figure`` (the Agg canvas): no pyplot, so no
global backend is chosen and no figure is left open.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from vidseq.outputs import atomic_output


def plot_confusion_matrix(path, matrix, class_names, title="Confusion matrix"):
    """Saves a confusion-matrix heat map (rows: true class, columns: predicted)."""
    matrix = np.asarray(matrix)
    n = len(class_names)
    size = min(4 + 0.4 * n, 24)
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    ax.set_xticks(range(n), class_names, rotation=90 if n > 6 else 0)
    ax.set_yticks(range(n), class_names)
    if n <= 30:
        threshold = matrix.max() / 2 if matrix.size else 0
        for i in range(n):
            for j in range(n):
                color = "white" if matrix[i, j] > threshold else "black"
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", color=color)
    fig.tight_layout()
    with atomic_output(path) as file:
        fig.savefig(file, format="png", dpi=100)
    return Path(path)


def plot_training_curves(path, history):
    """Saves loss and accuracy per epoch (training and validation)."""
    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        for prefix, label in (("", "train"), ("val_", "validation")):
            values = [row.get(prefix + key) for row in history]
            if any(v is not None for v in values):
                ax.plot(epochs, values, marker="o", label=label)
        ax.set(xlabel="epoch", ylabel=key, title=key)
        ax.grid(alpha=0.3)
        ax.legend()
    # Fixed labels, so fixed margins: tight_layout would draw the figure twice.
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.92, wspace=0.25)
    with atomic_output(path) as file:
        fig.savefig(file, format="png", dpi=100)
    return Path(path)


def plot_bars(path, names, values, lows, highs, *, reference, reference_label, ylabel):
    """Saves a bar per name with low-high whiskers and a dashed reference line (y in [0, 1])."""
    fig = Figure(figsize=(1.2 * max(len(names), 3) + 2, 4))
    ax = fig.subplots()
    errors = [
        [v - lo for v, lo in zip(values, lows, strict=True)],
        [hi - v for v, hi in zip(values, highs, strict=True)],
    ]
    ax.bar(list(names), list(values), yerr=errors, capsize=6, color="tab:blue")
    ax.axhline(reference, color="tab:red", linestyle="--", label=reference_label)
    ax.set(ylim=(0, 1), ylabel=ylabel)
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_output(path) as file:
        fig.savefig(file, format="png", dpi=100)
    return Path(path)
