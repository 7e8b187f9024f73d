"""The search space of ``vidseq tune``: what each trial may set, and how it is drawn.

A space maps setting names to how a trial draws them:

* a mapping ``{"low": a, "high": b}`` (optionally ``"log": true``,
  ``"step": s``): a number in ``[a, b]``, an integer when ``a`` and ``b`` both are;
* a list: one of its values (a list inside it, e.g. a TCN's ``dilations``, is one value);
* a scalar: that value, fixed (not searched);
* ``null`` (in a ``--space`` file): leave the setting out of the search (its default).

The space has the settings every head shares (:data:`COMMON_SPACE`: the fit,
feature scaling, centering, the clip dropout) and one section per head with
its own size options (:data:`HEAD_SPACES`). A ``--space`` file (JSON, or YAML:
PyYAML comes with Optuna) is merged over the default: a top-level key that
names a head merges into that head's section, any other into the common part::

    {"lr": {"low": 0.0003, "high": 0.003, "log": true},
     "label_smoothing": 0.0,
     "gru": {"units": [64, 128]}}

Every value a space can draw is checked by the settings' own rules
(each setting's declared :class:`~vidseq.extract.params.Param`) when the space is made, so a bad
space fails before the first trial.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import yaml  # PyYAML: a dependency of Optuna

from vidseq.errors import UsageError
from vidseq.sequence.config import HEAD_TYPES, FitConfig, HeadConfig, TrainConfig
from vidseq.sequence.heads.registry import head_options

STUDY_NAME = "vidseq-tune"
"""The study's name in its storage, unless ``study_name`` says otherwise."""

DEFAULT_HEADS = tuple(h for h in HEAD_TYPES if h != "pool")
"""The heads ``vidseq tune`` searches when none are named: all but the order-blind ``pool``."""

COMMON_SPACE = {
    "lr": {"low": 1e-4, "high": 1e-2, "log": True},
    "batch_size": [8, 16, 32],
    "epochs": {"low": 10, "high": 80, "step": 10},
    "normalize": ["rms", "standardize", "none"],
    "centering": ["concat", "subtract", "none"],
    "label_smoothing": {"low": 0.0, "high": 0.2},
    "clip_dropout": {"low": 0.0, "high": 0.6},
}
"""The settings every trial draws, whatever its head."""

_RNN_SPACE = {
    "units": [32, 64, 128, 256],
    "layers": [1, 2],
    "bidirectional": [False, True],
    "dropout": {"low": 0.0, "high": 0.6},
}
HEAD_SPACES = {
    "lstm": _RNN_SPACE,
    "gru": _RNN_SPACE,
    "tcn": {
        "units": [32, 64, 128, 256],
        "kernel_size": [2, 3, 5],
        "dilations": [[1, 2, 4], [1, 2, 4, 8]],
        "dropout": {"low": 0.0, "high": 0.5},
    },
    "transformer": {
        "units": [32, 64, 128],
        "layers": [1, 2],
        "num_heads": [2, 4],
        "ff_multiplier": [2, 4],
        "dropout": {"low": 0.0, "high": 0.3},
    },
    "attention": {
        "units": [32, 64, 128, 256],
        "attention_units": [32, 64, 128],
        "positional": [True, False],
    },
    "attentive": {
        "units": [32, 64, 128],
        "num_heads": [2, 4],
        "ff_multiplier": [2, 4],
        "dropout": {"low": 0.0, "high": 0.3},
    },
    "pool": {"units": [32, 64, 128, 256]},
}
"""Each head's own size options (the heads' defaults are one of the choices)."""

FIT_FIELDS = {f.name for f in dataclasses.fields(FitConfig)} - {"seed", "strategy", "tensorboard"}
HEAD_FIELDS = {"clip_dropout", "centering", "normalize"}
DATA_FIELDS = {"frames", "temporal_shift"}
COMMON_FIELDS = FIT_FIELDS | HEAD_FIELDS | DATA_FIELDS
"""The settings the common part of a space may hold (the seed is the study's)."""


def _is_range(spec):
    return isinstance(spec, dict)


def _values_to_check(name, spec):
    """The values of ``spec`` that the setting's rule must accept (a range: its ends)."""
    if _is_range(spec):
        unknown = sorted(set(spec) - {"low", "high", "log", "step"})
        if unknown or "low" not in spec or "high" not in spec or spec["low"] > spec["high"]:
            raise UsageError(
                f"a range of {name} must be {{low, high[, log][, step]}} with low <= high. "
                f"Received: {name}={spec!r}"
            )
        return [spec["low"], spec["high"]]
    if isinstance(spec, list):
        if not spec:
            raise UsageError(f"the choices of {name} must not be empty. Received: {name}=[]")
        return [tuple(v) if isinstance(v, list) else v for v in spec]
    return [tuple(spec) if isinstance(spec, list) else spec]


def _declared(name):
    """The declaration of the training setting ``name``."""
    return {param.name: param for param in TrainConfig.params()}[name]


def _check_section(section, allowed, where):
    for name, spec in section.items():
        if name not in allowed:
            raise UsageError(
                f"{where} takes the settings {sorted(allowed)}. Received: {name}={spec!r}"
            )
        param = _declared(name)
        for value in _values_to_check(name, spec):
            param.validate(value)


def _merge(base, override):
    out = {**base}
    for name, spec in override.items():
        if spec is None:
            out.pop(name, None)
        else:
            out[name] = spec
    return out


@dataclass
class SearchSpace:
    """What the trials of one study draw: the heads, common settings, each head's options.

    Attributes:
        heads: The heads a trial chooses from.
        common: ``{setting: spec}`` drawn by every trial.
        per_head: ``{head: {option: spec}}``.
    """

    heads: tuple
    common: dict
    per_head: dict

    @classmethod
    def make(cls, heads=None, overrides=None):
        """The default space for ``heads`` with ``overrides`` (a dict as a ``--space`` file) merged.

        Raises:
            UsageError: Unknown heads, settings or options, or values their rules refuse.
        """
        heads = tuple(DEFAULT_HEADS if heads is None else heads)
        if not heads or len(set(heads)) != len(heads) or not set(heads) <= set(HEAD_TYPES):
            raise UsageError(
                f"heads must name distinct heads of {HEAD_TYPES}. Received: heads={list(heads)!r}"
            )
        try:  # the JSON form, as the study records it (tuples become lists)
            overrides = json.loads(json.dumps(dict(overrides or {})))
        except (TypeError, ValueError) as error:
            raise UsageError(f"a space must be JSON-like. Received: {error}") from None
        common = _merge(COMMON_SPACE, {k: v for k, v in overrides.items() if k not in HEAD_TYPES})
        per_head = {h: _merge(HEAD_SPACES[h], overrides.get(h) or {}) for h in heads}
        _check_section(common, COMMON_FIELDS, "the common part of a space")
        for head, section in per_head.items():
            _check_section(section, set(head_options(head)), f"head {head!r}")
        return cls(heads, copy.deepcopy(common), copy.deepcopy(per_head))

    def to_dict(self):
        """JSON-ready form (recorded with the study, so a resumed study keeps its space)."""
        return {"heads": list(self.heads), "common": self.common, "per_head": self.per_head}

    def suggest(self, trial):
        """Draws a trial's settings: ``{"head": h, setting: value, ...}``.

        Head options are Optuna parameters named ``HEAD.OPTION`` (``gru.units``),
        so that each head's options are their own dimensions.
        """
        params = {"head": _draw(trial, "head", list(self.heads))}
        for name, spec in self.common.items():
            params[name] = _draw(trial, name, spec)
        for name, spec in self.per_head[params["head"]].items():
            params[name] = _draw(trial, f"{params['head']}.{name}", spec)
        return params


def _draw(trial, name, spec):
    """One value of ``spec`` from ``trial`` (lists among the choices drawn as JSON text)."""
    if _is_range(spec):
        low, high = spec["low"], spec["high"]
        if isinstance(low, int) and isinstance(high, int) and not isinstance(low, bool):
            return trial.suggest_int(
                name, low, high, step=int(spec.get("step", 1)), log=bool(spec.get("log"))
            )
        step = spec.get("step")
        return trial.suggest_float(
            name, float(low), float(high), step=step, log=bool(spec.get("log"))
        )
    if isinstance(spec, list):
        if any(isinstance(v, list) for v in spec):
            return tuple(json.loads(trial.suggest_categorical(name, [json.dumps(v) for v in spec])))
        return trial.suggest_categorical(name, spec)
    return tuple(spec) if isinstance(spec, list) else spec


def params_config(params, base, seed):
    """The :class:`TrainConfig` of a trial's settings ``params`` over ``base``, seeded ``seed``."""
    flat = {k.split(".")[-1]: v for k, v in params.items()}
    head = HeadConfig(
        head=flat["head"],
        **{k: v for k, v in flat.items() if k in head_options(flat["head"]) or k in HEAD_FIELDS},
    )
    fit = dataclasses.replace(
        base.fit, seed=int(seed), **{k: v for k, v in flat.items() if k in FIT_FIELDS}
    )
    data = {k: v for k, v in flat.items() if k in DATA_FIELDS}
    return dataclasses.replace(base, head=head, fit=fit, **data).validate()


def load_space_file(path):
    """The dict in a ``--space`` file: JSON (``.json``) or YAML (anything else).

    Raises:
        UsageError: The file is missing, unreadable, or not a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise UsageError(f"space file {path}: {error.strerror or error}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except Exception as error:  # json.JSONDecodeError, yaml.YAMLError
        raise UsageError(f"space file {path}: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UsageError(
            f"space file {path} must hold a mapping of settings. Received: {type(data).__name__}"
        )
    return data
