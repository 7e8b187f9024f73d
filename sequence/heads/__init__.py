"""Temporal heads on cached frame features: one factory per module, and their registry.

``lstm``/``gru`` (:mod:`.rnn`), ``tcn`` (:mod:`.tcn`), ``transformer``
(:mod:`.transformer`), ``attention`` (:mod:`.attention`) and ``pool``
(:mod:`.pool`). Importing this package does not import TensorFlow; the
factories are imported when :func:`get_head` asks for them.
"""

from vidseq.sequence.heads.registry import (
    HEADS,
    apply_head,
    check_options,
    get_head,
    head_names,
    head_options,
)

__all__ = ["HEADS", "apply_head", "check_options", "get_head", "head_names", "head_options"]
