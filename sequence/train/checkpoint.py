"""A run's per-epoch checkpoints: its compiled model once, then variable values.

A run saves its compiled model once, before its first epoch
(``checkpoints/initial.keras``: architecture and compile settings). Each epoch
then writes only values: the model's and the optimizer's variables
(``epoch-NNNN.npz``) and, when validation improves, the model's
(``best-NNNN.npz``). Writing values is cheaper than writing a ``.keras``
archive of the same model (``bench/checkpoint_cost.py``; the figures are in
docs/performance.md). Resuming loads
``initial.keras`` and assigns the last epoch's values.

Runs checkpointed by earlier vidseq versions (a ``.keras`` archive per epoch,
``best-NNNN.weights.h5``) resume as before.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from vidseq.errors import UsageError
from vidseq.sequence.runs.saved_run import load_model_file

INITIAL_FILE = "initial.keras"
MODEL_KEY = "model"
OPTIMIZER_KEY = "optimizer"
_UNREADABLE = (zipfile.BadZipFile, OSError, EOFError, ValueError)


def epoch_file(epoch):
    """The checkpoint name of a 1-based epoch."""
    return f"epoch-{epoch:04d}.npz"


def best_file(epoch):
    """The best-weights name of a 1-based epoch."""
    return f"best-{epoch:04d}.npz"


def save_initial(model, ckpt_dir):
    """Saves the compiled model as ``initial.keras`` unless the run already has one."""
    path = Path(ckpt_dir) / INITIAL_FILE
    if not path.is_file():
        model.save(path)


def save_values(path, model, *, optimizer):
    """Writes the values of the model's variables (and the optimizer's) to ``path``."""
    arrays = _keyed(MODEL_KEY, model.weights)
    if optimizer:
        arrays.update(_keyed(OPTIMIZER_KEY, model.optimizer.variables))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def restore_weights(model, path):
    """Assigns the model weights saved in ``path`` (``.npz``, or an older ``.weights.h5``)."""
    path = Path(path)
    if path.suffix == ".h5":
        model.load_weights(path)
        return
    with _open_values(path) as values:
        _assign(model.weights, values, MODEL_KEY, path)


def load_checkpoint(ckpt_dir, name):
    """The compiled model of checkpoint ``name``, with its optimizer state.

    Call it under the strategy's scope: the variables are created there.

    Raises:
        UsageError: ``initial.keras`` or the checkpoint missing, corrupt, or
            holding other variables than the model has.
    """
    ckpt_dir = Path(ckpt_dir)
    if name.endswith(".keras"):  # an earlier version's checkpoint: the whole model
        return load_model_file(ckpt_dir / name, compile=True)
    model = load_model_file(ckpt_dir / INITIAL_FILE, compile=True)
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    with _open_values(ckpt_dir / name) as values:
        _assign(model.weights, values, MODEL_KEY, ckpt_dir / name)
        _assign(model.optimizer.variables, values, OPTIMIZER_KEY, ckpt_dir / name)
    return model


def _corrupt(path):
    return UsageError(f"{path}: not a valid checkpoint (truncated or corrupt)")


def _keyed(prefix, variables):
    return {f"{prefix}/{i:05d}": v.numpy() for i, v in enumerate(variables)}


def _open_values(path):
    if not path.is_file():
        raise UsageError(f"{path}: missing; the run's checkpoints are incomplete")
    try:
        return np.load(path, allow_pickle=False)
    except _UNREADABLE:
        raise _corrupt(path) from None


def _assign(variables, values, prefix, path):
    keys = sorted(k for k in values.files if k.startswith(prefix + "/"))
    if len(keys) != len(variables):
        raise UsageError(
            f"{path}: holds {len(keys)} {prefix} variables; the model has {len(variables)}"
        )
    for key, variable in zip(keys, variables, strict=True):
        try:
            value = values[key]
        except _UNREADABLE:  # a member's data fails its CRC or ends early
            raise _corrupt(path) from None
        if tuple(value.shape) != tuple(variable.shape):
            raise UsageError(
                f"{path}: {prefix} variable {variable.path} has shape {value.shape}; "
                f"the model's is {tuple(variable.shape)}"
            )
        variable.assign(value)
