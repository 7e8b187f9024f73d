"""The head registry: head names -> factories, importable without TensorFlow.

A factory is ``factory(x, mask, **options) -> pooled`` with ``x`` the (batch,
T, D) frame features (padding rows zero), ``mask`` the (batch, T) boolean
mask of the real frames, plain keyword options, and the (batch, C) clip
representation as result. The classifier (dropout, softmax) and what comes
before the head (masking, normalisation, centering) are shared by all heads.
"""

from __future__ import annotations

import importlib
import inspect

from vidseq.errors import UsageError

HEADS = {
    "lstm": "vidseq.sequence.heads.rnn:lstm",
    "gru": "vidseq.sequence.heads.rnn:gru",
    "tcn": "vidseq.sequence.heads.tcn:tcn",
    "transformer": "vidseq.sequence.heads.transformer:transformer",
    "attention": "vidseq.sequence.heads.attention:attention",
    "pool": "vidseq.sequence.heads.pool:pool",
    "attentive": "vidseq.sequence.heads.attentive:attentive",
}


def head_names():
    """The registered head names, in registry order (no TensorFlow import)."""
    return list(HEADS)


def get_head(name):
    """The factory registered under ``name``.

    Raises:
        UsageError: ``name`` is not a registered head.
    """
    if name not in HEADS:
        raise UsageError(f"head must be one of {tuple(HEADS)}. Received: head={name!r}")
    module, function = HEADS[name].split(":")
    return getattr(importlib.import_module(module), function)


def head_options(name):
    """The keyword options of a head and their defaults, e.g. for ``config.json``.

    Returns:
        A dict ``{option: default}`` (``name``, the layer-name prefix, excluded).
    """
    parameters = inspect.signature(get_head(name)).parameters.values()
    return {
        p.name: p.default
        for p in parameters
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "name"
    }


def check_options(name, options):
    """Refuses options that head ``name`` does not take.

    Raises:
        UsageError: Unknown head, or an option the head does not take (the
            accepted ones are listed).
    """
    accepted = head_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise UsageError(
            f"head {name!r} takes the options {sorted(accepted)}. "
            f"Received: {', '.join(f'{k}={options[k]!r}' for k in unknown)}"
        )


def apply_head(name, x, mask, **options):
    """Builds head ``name`` on ``x`` and ``mask`` with ``options``.

    Raises:
        UsageError: Unknown head, or an option the head does not take.
    """
    check_options(name, options)
    return get_head(name)(x, mask, **options)
