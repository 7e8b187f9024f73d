"""Sequence models on cached features or raw frames: heads, the training engine, evaluation.

The names below are imported lazily, so ``import vidseq.sequence`` does not
import TensorFlow until one of them is used.
"""

import importlib

_EXPORTS = {
    "HeadConfig": "vidseq.sequence.config",
    "FitConfig": "vidseq.sequence.config",
    "TrainConfig": "vidseq.sequence.config",
    "FinetuneConfig": "vidseq.sequence.config",
    "ScratchConfig": "vidseq.sequence.config",
    "build_head": "vidseq.sequence.head",
    "train_sequence": "vidseq.sequence.training",
    "finetune": "vidseq.sequence.finetune",
    "train_from_scratch": "vidseq.sequence.scratch",
    "TrainResult": "vidseq.sequence.results",
    "EvaluationResult": "vidseq.sequence.results",
    "evaluate_run": "vidseq.sequence.evaluation",
    "evaluate_clips": "vidseq.sequence.evaluation",
    "compute_metrics": "vidseq.sequence.evaluation",
    "load_run": "vidseq.sequence.saved_run",
    "load_run_backbone": "vidseq.sequence.saved_run",
    "SequenceRun": "vidseq.sequence.saved_run",
    "read_run_config": "vidseq.sequence.run_dir",
    "prepare_clip": "vidseq.sequence.temporal",
    "Prediction": "vidseq.sequence.predict",
    "predict_videos": "vidseq.sequence.predict",
    "run_demo": "vidseq.sequence.demo",
    "compare": "vidseq.sequence.compare",
    "ComparisonResult": "vidseq.sequence.compare",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vidseq.sequence' has no attribute {name!r}")
