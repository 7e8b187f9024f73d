"""Sequence models on cached features: the LSTM/GRU head, training, evaluation.

The names below are imported lazily, so ``import vidseq.sequence`` does not
import TensorFlow until one of them is used.
"""

import importlib

_EXPORTS = {
    "build_head": "vidseq.sequence.head",
    "TrainConfig": "vidseq.sequence.training",
    "TrainResult": "vidseq.sequence.training",
    "train_sequence": "vidseq.sequence.training",
    "evaluate_run": "vidseq.sequence.evaluation",
    "compute_metrics": "vidseq.sequence.evaluation",
    "load_run": "vidseq.sequence.run_dir",
    "read_run_config": "vidseq.sequence.run_dir",
    "SequenceRun": "vidseq.sequence.run_dir",
    "prepare_clip": "vidseq.sequence.temporal",
    "FinetuneConfig": "vidseq.sequence.finetune",
    "train_from_scratch": "vidseq.sequence.finetune",
    "predict_videos": "vidseq.sequence.predict",
    "run_demo": "vidseq.sequence.demo",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vidseq.sequence' has no attribute {name!r}")
