"""Settings of the training commands, each field declared once.

* ``head.py``: :class:`HeadConfig`, the temporal head;
* ``fit.py``: :class:`FitConfig`, the optimisation every training command shares;
* ``commands.py``: :class:`TrainConfig` (train-sequence), :class:`FinetuneConfig`
  (finetune) and :class:`ScratchConfig` (finetune --from-scratch), composed of
  them and of what their own command reads;
* ``base.py``: what they share: validation, ``to_dict`` / ``from_dict``.

Every field is a :class:`vidseq.extract.params.Param` (type, bounds, choices
from the registries, default, help): its validation, its ``config.json`` key
and the command line's flag come from it. ``from_dict`` reads the nested
layout that ``config.json`` records and the flat layout of older runs, and
refuses a key that names no setting, naming the nearest one.

May import: ``sequence.heads`` (the head registry), ``extract`` (frame
settings, registries, parameter declarations) and ``errors``. Imports no
TensorFlow: the command line reads its defaults.
"""

from vidseq.sequence.config.base import Config
from vidseq.sequence.config.commands import (
    COMPARE_HEADS,
    COMPARE_SEEDS,
    COMPARE_SETTINGS,
    DEFAULT_UNFREEZE,
    MIXED_PRECISION_MODES,
    RESUME_OVERRIDABLE,
    STREAMING_MODES,
    FinetuneConfig,
    ScratchConfig,
    TrainConfig,
    resumed_config,
    scratch_config_from_flags,
)
from vidseq.sequence.config.fit import (
    AUTO_EPOCHS,
    DEFAULT_LR,
    HEAD_LR,
    LR_SCHEDULES,
    STEP_BUDGET,
    STRATEGIES,
    FitConfig,
)
from vidseq.sequence.config.head import (
    CENTERING_MODES,
    HEAD_OPTION_FIELDS,
    HEAD_TYPES,
    NORMALIZE_MODES,
    RNN_TYPES,
    UNPOOLED_CLIP_DROPOUT,
    HeadConfig,
)

__all__ = [
    "AUTO_EPOCHS",
    "CENTERING_MODES",
    "COMPARE_HEADS",
    "COMPARE_SEEDS",
    "COMPARE_SETTINGS",
    "DEFAULT_LR",
    "DEFAULT_UNFREEZE",
    "HEAD_LR",
    "HEAD_OPTION_FIELDS",
    "HEAD_TYPES",
    "LR_SCHEDULES",
    "MIXED_PRECISION_MODES",
    "NORMALIZE_MODES",
    "RESUME_OVERRIDABLE",
    "RNN_TYPES",
    "STEP_BUDGET",
    "STRATEGIES",
    "STREAMING_MODES",
    "UNPOOLED_CLIP_DROPOUT",
    "Config",
    "FinetuneConfig",
    "FitConfig",
    "HeadConfig",
    "ScratchConfig",
    "TrainConfig",
    "resumed_config",
    "scratch_config_from_flags",
]
