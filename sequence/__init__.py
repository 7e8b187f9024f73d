"""Sequence models on cached features or raw frames: heads, the training engine, evaluation.

Subpackages by purpose, each a layer (top to bottom): ``studies/``, ``export/``,
``infer/``, ``train/``, ``runs/``, ``data/``, ``config/``, ``heads/``; above them
:mod:`.command_params`, the declared parameters of the inference and export
commands (imported by the command line only).

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
    "build_head": "vidseq.sequence.train.model",
    "train_sequence": "vidseq.sequence.train.training",
    "finetune": "vidseq.sequence.train.finetune",
    "train_from_scratch": "vidseq.sequence.train.scratch",
    "TrainResult": "vidseq.sequence.runs.results",
    "EvaluationResult": "vidseq.sequence.runs.results",
    "evaluate_run": "vidseq.sequence.runs.evaluation",
    "evaluate_clips": "vidseq.sequence.runs.evaluation",
    "compute_metrics": "vidseq.sequence.runs.evaluation",
    "load_run": "vidseq.sequence.runs.saved_run",
    "load_run_backbone": "vidseq.sequence.runs.saved_run",
    "SequenceRun": "vidseq.sequence.runs.saved_run",
    "read_run_config": "vidseq.sequence.runs.run_dir",
    "prepare_clip": "vidseq.sequence.data.temporal",
    "Prediction": "vidseq.sequence.infer.predict",
    "predict_videos": "vidseq.sequence.infer.predict",
    "run_demo": "vidseq.sequence.studies.demo",
    "compare": "vidseq.sequence.studies.compare",
    "ComparisonResult": "vidseq.sequence.studies.compare",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vidseq.sequence' has no attribute {name!r}")
