"""HeadConfig: the temporal head that reads a clip's per-frame features, declared field by field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from vidseq.extract.params import is_int, setting
from vidseq.sequence.config.base import Config
from vidseq.sequence.heads.registry import check_options, head_names, head_options

HEAD_TYPES = tuple(head_names())
"""Names of the registered heads (``vidseq.sequence.heads.HEADS``)."""
RNN_TYPES = ("lstm", "gru")
"""The heads ``rnn`` (the older name of ``head``) and ``--rnn`` accept."""
CENTERING_MODES = ("none", "subtract", "concat")
NORMALIZE_MODES = ("rms", "standardize", "none")
"""``HeadConfig.normalize``: one scale for every feature, each feature its own, or none."""
HEAD_OPTION_FIELDS = (
    "units",
    "layers",
    "bidirectional",
    "dropout",
    "kernel_size",
    "dilations",
    "num_heads",
    "ff_multiplier",
    "attention_units",
    "positional",
)
"""The :class:`HeadConfig` fields that are keyword options of a head factory."""
UNPOOLED_CLIP_DROPOUT = {"lstm": 0.0, "gru": 0.0}
"""Default ``clip_dropout`` of the heads that drop their inputs instead; 0.5 for the others."""

NORMALIZE_DOC = (
    "how the features are scaled before the head, from the training split's valid frames "
    "(a `Normalization` layer in `model.keras`, adapted in one batched pass over the cache): "
    "`rms` divides every feature by one number, the features' root mean square (their means "
    "and relative sizes are kept); `standardize` centres each feature and divides it by its "
    "own standard deviation; `none` (also `--no-normalize`) leaves them as they are. See "
    "[results.md](results.md#the-default-recipe)"
)


def _unit_dropout(help_text, doc=None):
    return setting(
        None, kind=float, low=0.0, high=1.0, high_open=True, optional=True, help=help_text, doc=doc
    )


def _width(help_text, flag=None):
    return setting(None, kind=int, low=1, optional=True, help=help_text, flag=flag)


@dataclass
class HeadConfig(Config):
    """The temporal head that reads a clip's per-frame features (see ``model.build_head``).

    ``head`` names a factory of :data:`vidseq.sequence.heads.HEADS`; the
    option fields are its keyword options. An option left None takes the
    head's own default (:func:`vidseq.sequence.heads.head_options`); setting
    one the head does not take is refused. ``rnn``, the older name of
    ``head``, is read as ``head`` (runs written before the other heads).
    A recorded ``normalize`` of ``True`` / ``False`` reads as ``"standardize"``
    / ``"none"``, a head recorded as ``rnn`` (before any scaling) as ``"none"``.
    Each field's meaning is its declaration's ``help``.
    """

    ALIASES: ClassVar[dict] = {"rnn": "head"}

    head: str = setting(
        "lstm",
        choices=head_names,
        help="temporal head (docs/results.md compares them; attentive: the probe of frozen "
        "foundation encoders; pool is the order-blind baseline)",
        aliases=(("--rnn", {"choices": RNN_TYPES, "help": "alias of --head"}),),
    )
    units: int | None = _width("head width: recurrent units, channels, embedding (default: 128)")
    layers: int | None = _width("lstm/gru layers or transformer blocks (default: 1)")
    bidirectional: bool | None = setting(
        None, kind=bool, optional=True, help="bidirectional lstm/gru layers"
    )
    dropout: float | None = _unit_dropout(
        "the head's own dropout (lstm/gru inputs 0.5, tcn and transformer 0.1)"
    )
    kernel_size: int | None = _width("tcn taps (default: 3)")
    dilations: tuple[int, ...] | None = setting(
        None,
        optional=True,
        check=lambda v: len(v) >= 1 and all(is_int(x) and x >= 1 for x in v),
        expected="None or a tuple of integers >= 1",
        help="tcn: one residual block per dilation rate",
        flag="",
    )
    num_heads: int | None = _width("transformer attention heads (default: 4)")
    ff_multiplier: int | None = _width("transformer feed-forward width, in units", flag="")
    attention_units: int | None = _width("hidden size of the gated attention", flag="")
    positional: bool | None = setting(
        None, kind=bool, optional=True, help="attention: sinusoidal position code", flag=""
    )
    clip_dropout: float | None = _unit_dropout(
        "dropout before the softmax (default: 0 for lstm/gru, 0.5 for the others)"
    )
    centering: str = setting(
        "concat",
        choices=CENTERING_MODES,
        help="head input: features and their deviation from the clip mean (concat), "
        "the deviation only (subtract), or the features as they are (none)",
    )
    normalize: str = setting(
        "rms",
        choices=NORMALIZE_MODES,
        help="feature scaling from the training frames: rms (every feature divided by "
        "the features' root mean square, the default), standardize (each feature to "
        "mean 0, variance 1) or none",
        doc=NORMALIZE_DOC,
        aliases=(
            (
                "--no-normalize",
                {"action": "store_const", "const": "none", "help": "as --normalize none"},
            ),
        ),
    )

    @classmethod
    def read_fields(cls, data):
        """As :meth:`Config.read_fields`; an older run's ``normalize`` read as a mode."""
        out = super().read_fields(data)
        if isinstance(out.get("normalize"), bool):
            out["normalize"] = "standardize" if out["normalize"] else "none"
        if "rnn" in data and "normalize" not in data:
            out["normalize"] = "none"
        return out

    def validate(self):
        """Raises UsageError naming the first bad field, or an option the head does not take."""
        super().validate()
        check_options(self.head, self.options())
        return self

    def options(self):
        """The head options set here (not None), as ``{name: value}``."""
        values = {name: getattr(self, name) for name in HEAD_OPTION_FIELDS}
        return {name: value for name, value in values.items() if value is not None}

    def resolved_options(self):
        """Every option of the head: those set here over the head's defaults."""
        return {**head_options(self.head), **self.options()}

    @property
    def resolved_clip_dropout(self):
        """``clip_dropout``, or the head's default when it is None."""
        if self.clip_dropout is not None:
            return float(self.clip_dropout)
        return UNPOOLED_CLIP_DROPOUT.get(self.head, 0.5)

    @property
    def name(self):
        """The registered head these settings build."""
        return self.head
