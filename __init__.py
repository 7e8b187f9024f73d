"""vidseq: CNN-RNN video classification on cached frozen-CNN features.

The public API, importable from the top level::

    import vidseq

    vidseq.extract_features("UCF-101/", "features.h5", backbone="resnet50")
    result = vidseq.train_sequence("features.h5", "runs/lstm")
    print(result.summary())
    vidseq.evaluate("runs/lstm")
    vidseq.predict("runs/lstm", ["clip.avi"])
    vidseq.report("runs/lstm")           # runs/lstm/report.html

Every command of the command line is one function here, with its flags as
keyword arguments (:data:`COMMANDS`), and every result has ``.summary()`` and
``.to_dict()``. The names are resolved on first use, so ``import vidseq``
imports no TensorFlow (the cache and the command line's help stay fast).
"""

import importlib
import sys

from vidseq.compat import MOVED, MovedModuleFinder
from vidseq.version import __version__

if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.append(MovedModuleFinder(MOVED))

_EXPORTS = {
    # extraction and the cache
    "make_sample": ("vidseq.extract.sources.sample_data", "make_sample"),
    "write_sample": ("vidseq.extract.sources.sample_dataset", "write_sample"),
    "extract_features": ("vidseq.extract.pipeline", "extract_features"),
    "inspect_cache": ("vidseq.cache.inspection", "inspect_cache"),
    "cache_merge": ("vidseq.cache.merge", "cache_merge"),
    "FrameSpec": ("vidseq.extract.decode.framespec", "FrameSpec"),
    "SamplingConfig": ("vidseq.extract.decode.sampling", "SamplingConfig"),
    "FeatureStore": ("vidseq.cache.store", "FeatureStore"),
    # training, evaluation, prediction
    "train_sequence": ("vidseq.sequence.train.training", "train_sequence"),
    "finetune": ("vidseq.sequence.train.finetune", "finetune"),
    "train_from_scratch": ("vidseq.sequence.train.scratch", "train_from_scratch"),
    "evaluate": ("vidseq.sequence.runs.evaluation", "evaluate_run"),
    "predict": ("vidseq.sequence.export.predict_any", "predict"),
    "watch": ("vidseq.sequence.infer.watch", "watch"),
    "export": ("vidseq.sequence.export.build", "export_run"),
    "compare": ("vidseq.sequence.studies.compare", "compare"),
    "demo": ("vidseq.sequence.studies.demo", "run_demo"),
    "report": ("vidseq.sequence.report.build", "report"),
    "tune": ("vidseq.sequence.studies.tune", "tune"),
    "TrainConfig": ("vidseq.sequence.config", "TrainConfig"),
    "HeadConfig": ("vidseq.sequence.config", "HeadConfig"),
    "FitConfig": ("vidseq.sequence.config", "FitConfig"),
    "FinetuneConfig": ("vidseq.sequence.config", "FinetuneConfig"),
    "ScratchConfig": ("vidseq.sequence.config", "ScratchConfig"),
}

COMMANDS = {
    "make-sample": "write_sample",
    "extract-features": "extract_features",
    "inspect": "inspect_cache",
    "cache merge": "cache_merge",
    "train-sequence": "train_sequence",
    "compare": "compare",
    "finetune": "finetune",
    "evaluate": "evaluate",
    "predict": "predict",
    "watch": "watch",
    "export": "export",
    "demo": "demo",
    "report": "report",
    "tune": "tune",
}
"""Each command of the command line, and the function of this package it calls.

``finetune --from-scratch`` calls :func:`train_from_scratch`."""

_FUNCTIONS = {*COMMANDS.values(), "train_from_scratch"}

__all__ = ["COMMANDS", "__version__", *sorted(_EXPORTS)]


def __getattr__(name):
    if name in _EXPORTS:
        module, attribute = _EXPORTS[name]
        value = getattr(importlib.import_module(module), attribute)
        if name in _FUNCTIONS:  # a misspelt keyword names the nearest valid one
            value = importlib.import_module("vidseq.extract.params").checked_keywords(value)
        globals()[name] = value  # resolved once
        return value
    raise AttributeError(f"module 'vidseq' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_EXPORTS})
