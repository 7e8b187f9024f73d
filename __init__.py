"""vidseq: CNN-RNN video classification on cached frozen-CNN features.

The public API, importable from the top level::

    import vidseq

    vidseq.extract_features("UCF-101/", "features.h5", backbone="resnet50")
    result = vidseq.train_sequence("features.h5", "runs/lstm")
    print(result.summary())
    vidseq.evaluate("runs/lstm")
    vidseq.predict("runs/lstm", ["clip.avi"])

The names are resolved on first use, so ``import vidseq`` imports no
TensorFlow (the cache and the command line's help stay fast).
"""

import importlib
import sys

from vidseq.compat import MOVED, MovedModuleFinder
from vidseq.version import __version__

if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.append(MovedModuleFinder(MOVED))

_EXPORTS = {
    # extraction and the cache
    "extract_features": ("vidseq.extract.pipeline", "extract_features"),
    "FrameSpec": ("vidseq.extract.decode.framespec", "FrameSpec"),
    "SamplingConfig": ("vidseq.extract.decode.sampling", "SamplingConfig"),
    "FeatureStore": ("vidseq.cache.store", "FeatureStore"),
    # training, evaluation, prediction
    "train_sequence": ("vidseq.sequence.train.training", "train_sequence"),
    "finetune": ("vidseq.sequence.train.finetune", "finetune"),
    "train_from_scratch": ("vidseq.sequence.train.scratch", "train_from_scratch"),
    "evaluate": ("vidseq.sequence.runs.evaluation", "evaluate_run"),
    "predict": ("vidseq.sequence.infer.predict", "predict_videos"),
    "compare": ("vidseq.sequence.studies.compare", "compare"),
    "tune": ("vidseq.sequence.studies.tune", "tune"),
    "TrainConfig": ("vidseq.sequence.config", "TrainConfig"),
    "HeadConfig": ("vidseq.sequence.config", "HeadConfig"),
    "FitConfig": ("vidseq.sequence.config", "FitConfig"),
    "FinetuneConfig": ("vidseq.sequence.config", "FinetuneConfig"),
    "ScratchConfig": ("vidseq.sequence.config", "ScratchConfig"),
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name):
    if name in _EXPORTS:
        module, attribute = _EXPORTS[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value  # resolved once
        return value
    raise AttributeError(f"module 'vidseq' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_EXPORTS})
