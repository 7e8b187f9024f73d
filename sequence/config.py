"""Settings of the training commands, composed from a head and a fit part.

* :class:`HeadConfig`: the temporal head (passed as is to ``head.build_head``).
* :class:`FitConfig`: the optimisation every training command shares.
* :class:`TrainConfig` (train-sequence), :class:`FinetuneConfig` (finetune)
  and :class:`ScratchConfig` (finetune from scratch) compose them with what
  their own command reads, and nothing else.

Every field is checked in one table, :data:`FIELD_RULES`: one rule per field
name, whichever config holds it. ``to_dict`` writes the nested layout that
``config.json`` records (``{"head": {...}, "fit": {...}, ...}``); ``from_dict``
reads it, and also the flat layout of runs written before the split (every
field at the top level), so old run directories evaluate, predict and resume.

This module imports no TensorFlow: the command line reads its defaults.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from vidseq.bounds import check_bound, is_finite_number
from vidseq.errors import UsageError
from vidseq.extract.decode.faces import FaceCrop
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.decode.sampling import SamplingConfig
from vidseq.sequence.heads.registry import check_options, head_names, head_options

HEAD_TYPES = tuple(head_names())
"""Names of the registered heads (``vidseq.sequence.heads.HEADS``)."""
RNN_TYPES = ("lstm", "gru")
"""The heads ``rnn`` (the older name of ``head``) and ``--rnn`` accept."""
CENTERING_MODES = ("none", "subtract", "concat")
NORMALIZE_MODES = ("rms", "standardize", "none")
"""``HeadConfig.normalize``: one scale for every feature, each feature its own, or none."""
LR_SCHEDULES = ("constant", "step", "cosine", "plateau")
STRATEGIES = ("default", "mirrored", "multiworker")
STREAMING_MODES = ("auto", "memory", "stream")
MIXED_PRECISION_MODES = ("auto", "on", "off")
DEFAULT_LR = 1e-3
"""Adam's learning rate when ``FitConfig.lr`` is None, for heads not in :data:`HEAD_LR`."""
HEAD_LR = {"lstm": 3e-3, "gru": 3e-3}
"""The recurrent heads' default rate (docs/results.md, the default recipe)."""
STEP_BUDGET = 800
"""Optimisation steps ``epochs=None`` aims at (docs/results.md, the default recipe)."""
AUTO_EPOCHS = (20, 200)
"""Fewest and most epochs ``epochs=None`` gives."""
COMPARE_HEADS = ("lstm", "tcn", "transformer", "attention", "pool")
"""The heads ``vidseq compare`` trains when none are named."""
COMPARE_SEEDS = (0, 1, 2)
"""The seeds ``vidseq compare`` trains each head with when none are named."""
DEFAULT_UNFREEZE = 20
"""Backbone layers unfrozen by default, as in Keras' EfficientNet fine-tuning example."""


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _int_at_least(low):
    return (lambda v: _is_int(v) and v >= low), f"an integer >= {low}"


def _optional_int_at_least(low):
    return (lambda v: v is None or (_is_int(v) and v >= low)), f"None or an integer >= {low}"


def _one_of(choices):
    return (lambda v: v in choices), f"one of {choices}"


def _in_unit(low_open):
    if low_open:
        return (lambda v: is_finite_number(v) and 0.0 < v < 1.0), "in (0, 1)"
    return (lambda v: is_finite_number(v) and 0.0 <= v < 1.0), "in [0, 1)"


def _optional_in_unit():
    return (lambda v: v is None or (is_finite_number(v) and 0.0 <= v < 1.0)), "None or in [0, 1)"


FIELD_RULES = {
    # the head
    "head": _one_of(HEAD_TYPES),
    "units": _optional_int_at_least(1),
    "layers": _optional_int_at_least(1),
    "bidirectional": ((lambda v: v is None or isinstance(v, bool)), "None, True or False"),
    "dropout": _optional_in_unit(),
    "kernel_size": _optional_int_at_least(1),
    "dilations": (
        lambda v: v is None or (len(v) >= 1 and all(_is_int(x) and x >= 1 for x in v)),
        "None or a tuple of integers >= 1",
    ),
    "num_heads": _optional_int_at_least(1),
    "ff_multiplier": _optional_int_at_least(1),
    "attention_units": _optional_int_at_least(1),
    "positional": ((lambda v: v is None or isinstance(v, bool)), "None, True or False"),
    "clip_dropout": _optional_in_unit(),
    "centering": _one_of(CENTERING_MODES),
    "normalize": _one_of(NORMALIZE_MODES),
    # the fit
    "lr": ((lambda v: v is None or (is_finite_number(v) and v > 0)), "None or finite and > 0"),
    "epochs": _optional_int_at_least(1),
    "batch_size": _int_at_least(1),
    "patience": _int_at_least(0),
    "lr_schedule": _one_of(LR_SCHEDULES),
    "label_smoothing": _in_unit(False),
    "class_weight": ((lambda v: v in (None, "balanced")), "None or 'balanced'"),
    "seed": _int_at_least(0),
    "strategy": _one_of(STRATEGIES),
    "tensorboard": ((lambda v: v is None or isinstance(v, str)), "None or a directory path"),
    # the data of a run
    "frames": _optional_int_at_least(1),
    "temporal_shift": _int_at_least(0),
    "streaming": _one_of(STREAMING_MODES),
    "val_fraction": _in_unit(True),
    "eval_clips": _int_at_least(1),
    # end to end
    "unfreeze": _int_at_least(0),
    "unfreeze_from": ((lambda v: v is None or isinstance(v, str)), "None or a layer name"),
    "augment": ((lambda v: isinstance(v, bool)), "True or False"),
    "mixed_precision": _one_of(MIXED_PRECISION_MODES),
    "workers": _optional_int_at_least(1),
    "backbone": ((lambda v: isinstance(v, str) and v != ""), "a backbone name"),
    "input_size": (
        lambda v: v is None or (len(v) == 2 and all(_is_int(x) and x >= 1 for x in v)),
        "None or (height, width) integers",
    ),
    "grayscale": ((lambda v: isinstance(v, bool)), "True or False"),
    "source": _one_of(("auto", "folder", "ucf101", "manifest", "fer2013")),
    "split": _one_of((1, 2, 3)),
    "sampling": (
        lambda v: v is None or isinstance(v, SamplingConfig),
        "None or a SamplingConfig",
    ),
    "crop": _one_of(("resize", "center")),
    "face_crop": ((lambda v: v is None or isinstance(v, FaceCrop)), "None or a FaceCrop"),
    "clip_length": _int_at_least(1),
}
"""``field name -> (check, what it must be)``: the one place a setting is validated."""


def check_value(name, value):
    """Raises UsageError unless ``value`` is valid for the setting ``name``."""
    check, expected = FIELD_RULES[name]
    try:
        ok = bool(check(value))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise UsageError(f"{name} must be {expected}. Received: {name}={value!r}")
    check_bound(name, value)


class _Config:
    """validate / to_dict / from_dict of the config dataclasses (sub-configs nested)."""

    def validate(self):
        """Raises UsageError naming the first bad field; returns self."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, _Config):
                value.validate()
            else:
                check_value(f.name, value)
        return self

    def to_dict(self):
        """The fields as a JSON-ready dict (sub-configs as nested dicts)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (_Config, SamplingConfig, FaceCrop)):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = [int(v) for v in value]
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data, *, strict=False):
        """Builds a config from :meth:`to_dict` output, or from a flat dict.

        A sub-config is read from its nested dict when there is one, else from
        the keys of ``data`` itself (the flat layout of older runs and of the
        command line's arguments, e.g. ``{"units": 16, "epochs": 3}``). Missing
        keys keep their defaults.

        Args:
            data: The dict.
            strict: Refuse keys that name no setting (by default they are ignored).

        Raises:
            UsageError: With ``strict``, a key that names no setting.
        """
        if strict:
            unknown = sorted(set(data) - cls.setting_names())
            if unknown:
                raise UsageError(
                    f"{cls.__name__} has no setting {', '.join(unknown)}. "
                    f"Received: {', '.join(f'{k}={data[k]!r}' for k in unknown)}"
                )
        defaults = cls()
        values = {}
        for f in dataclasses.fields(cls):
            default = getattr(defaults, f.name)
            if isinstance(default, _Config):
                nested = data.get(f.name)
                source = nested if isinstance(nested, dict) else data
                values[f.name] = dataclasses.replace(default, **type(default).read_fields(source))
        values.update(
            {
                k: v
                for k, v in cls.read_fields(data).items()
                if not isinstance(getattr(defaults, k), _Config)
            }
        )
        return cls(**values)

    ALIASES: ClassVar[dict] = {}
    """Older names of settings, read as the new ones: ``{old: new}``."""

    @classmethod
    def read_fields(cls, data):
        """The values in ``data`` of this config's own fields (aliases and JSON forms read)."""
        known = {f.name for f in dataclasses.fields(cls)}
        out = {}
        for key, value in data.items():
            name = cls.ALIASES.get(key, key)
            if name in known and (name == key or name not in data):
                out[name] = _decode(name, value)
        return out

    @classmethod
    def setting_names(cls):
        """Every field name, those of the sub-configs included."""
        names = set(cls.ALIASES)
        for f in dataclasses.fields(cls):
            names.add(f.name)
            default = f.default_factory() if callable(f.default_factory) else f.default
            if isinstance(default, _Config):
                names |= default.setting_names()
        return names


def _decode(name, value):
    """A field's value from its JSON form (tuples, SamplingConfig, FaceCrop)."""
    if name in ("input_size", "dilations") and value is not None:
        return tuple(value)
    if name == "sampling" and isinstance(value, dict):
        return SamplingConfig.from_dict(value)
    if name == "face_crop" and isinstance(value, dict):
        return FaceCrop.from_dict(value)
    return value


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


@dataclass
class HeadConfig(_Config):
    """The temporal head that reads a clip's per-frame features (see ``head.build_head``).

    ``head`` names a factory of :data:`vidseq.sequence.heads.HEADS`; the
    option fields are its keyword options. An option left None takes the
    head's own default (:func:`vidseq.sequence.heads.head_options`); setting
    one the head does not take is refused. ``rnn``, the older name of
    ``head``, is read as ``head`` (runs written before the other heads).

    Attributes:
        head: ``"lstm"``, ``"gru"``, ``"tcn"``, ``"transformer"``,
            ``"attention"`` or ``"pool"``.
        units: Width of the head (recurrent units, channels, embedding size).
        layers: Stacked recurrent layers or Transformer blocks.
        bidirectional: Bidirectional recurrent layers (lstm, gru).
        dropout: The head's own dropout (lstm/gru: on each layer's inputs;
            tcn: after each block; transformer: attention and residuals).
        kernel_size: Taps of each dilated convolution (tcn).
        dilations: One residual block per dilation rate (tcn).
        num_heads: Attention heads (transformer).
        ff_multiplier: Feed-forward width in ``units`` (transformer).
        attention_units: Hidden size of the gated attention (attention).
        positional: Sinusoidal position code before the pooling (attention).
        clip_dropout: Dropout on the clip vector before the softmax; None:
            0 for lstm and gru (they drop their inputs), 0.5 for the others.
        centering: What the head reads: ``"concat"`` (each frame's features
            and their deviation from the clip mean), ``"subtract"`` (the
            deviation only) or ``"none"`` (the features as they are).
        normalize: Feature scaling by the training frames' statistics (a
            ``Normalization`` in the model, :mod:`vidseq.sequence.train.normalization`):
            ``"rms"`` (one scale, the features' root mean square),
            ``"standardize"`` (per feature) or ``"none"``. A recorded ``True`` /
            ``False`` reads as ``"standardize"`` / ``"none"``, a head recorded as
            ``rnn`` (before any scaling) as ``"none"``.
    """

    ALIASES: ClassVar[dict] = {"rnn": "head"}

    head: str = "lstm"
    units: int | None = None
    layers: int | None = None
    bidirectional: bool | None = None
    dropout: float | None = None
    kernel_size: int | None = None
    dilations: tuple[int, ...] | None = None
    num_heads: int | None = None
    ff_multiplier: int | None = None
    attention_units: int | None = None
    positional: bool | None = None
    clip_dropout: float | None = None
    centering: str = "concat"
    normalize: str = "rms"

    @classmethod
    def read_fields(cls, data):
        """As :meth:`_Config.read_fields`; an older run's ``normalize`` read as a mode."""
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


@dataclass
class FitConfig(_Config):
    """How every training command fits its model (see ``loop.fit``).

    Attributes:
        lr: Initial Adam learning rate; None: the head's (see :meth:`resolved`):
            :data:`HEAD_LR` for lstm and gru, :data:`DEFAULT_LR` for the others.
        epochs: Most epochs to train; None scales them to the data (see
            :meth:`resolved`): about :data:`STEP_BUDGET` optimisation steps,
            within :data:`AUTO_EPOCHS`.
        batch_size: Videos per batch and replica: a step reads ``batch_size x
            replicas`` videos.
        patience: Early stopping on validation loss after this many epochs
            without improvement (best weights restored); 0 disables it (the
            best epoch's weights are still the ones kept).
        lr_schedule: ``"constant"``; ``"step"`` (halve every epoch after epoch
            10); ``"cosine"`` (to 0 over ``epochs``); ``"plateau"`` (halve after
            ``max(1, patience // 2)`` epochs without validation improvement).
        label_smoothing: Label smoothing of the cross-entropy.
        class_weight: None or ``"balanced"`` (inverse class frequency).
        seed: Seed of weights, shuffling, sampling, dropout and augmentation.
        strategy: ``"default"`` (one device), ``"mirrored"`` (this machine's
            GPUs) or ``"multiworker"`` (the machines of ``TF_CONFIG``).
        tensorboard: Directory for TensorBoard logs, or None.
    """

    lr: float | None = None
    epochs: int | None = None
    batch_size: int = 16
    patience: int = 0
    lr_schedule: str = "constant"
    label_smoothing: float = 0.0
    class_weight: str | None = None
    seed: int = 0
    strategy: str = "default"
    tensorboard: str | None = None

    def resolved(self, num_train, replicas=1, *, head=None):
        """These settings with ``epochs`` and ``lr`` set: as given, or defaulted when None.

        ``epochs``: ``ceil(STEP_BUDGET / steps per epoch)``, clipped to
        :data:`AUTO_EPOCHS`: small data trains for more epochs, large data for
        fewer, each for about the same number of steps. ``lr``: the head's
        from :data:`HEAD_LR`, else :data:`DEFAULT_LR`.

        Args:
            num_train: Training videos.
            replicas: Replicas a step spreads its batch over.
            head: The head trained (a name of :data:`HEAD_TYPES`), or None.
        """
        lr = HEAD_LR.get(head, DEFAULT_LR) if self.lr is None else self.lr
        if self.epochs is not None:
            return dataclasses.replace(self, lr=lr)
        steps = max(1, math.ceil(int(num_train) / (self.batch_size * max(1, int(replicas)))))
        low, high = AUTO_EPOCHS
        epochs = min(max(math.ceil(STEP_BUDGET / steps), low), high)
        return dataclasses.replace(self, lr=lr, epochs=int(epochs))


RESUME_OVERRIDABLE = ("streaming", "tensorboard", "strategy", "workers")
"""Fields a resumed run takes from the new call instead of its saved settings."""


def resumed_config(saved, config, warnings):
    """The interrupted run's settings ``saved``, with the new call's overridable fields.

    Appends to ``warnings`` the other fields whose new values are ignored.

    Returns:
        The validated settings.
    """
    old, new = _flat(saved), _flat(config)
    # A new value of None means "not set" (a head's default, epochs scaled to the data).
    changed = [
        k
        for k in old
        if k not in RESUME_OVERRIDABLE and new.get(k) is not None and old[k] != new.get(k)
    ]
    if changed:
        warnings.append(
            "resume keeps the interrupted run's settings; ignored new values of "
            + ", ".join(changed)
        )
    keep = {k: new[k] for k in RESUME_OVERRIDABLE if k in old}
    return type(saved).from_dict({**old, **keep}).validate()


def _flat(config):
    out = {}
    for key, value in config.to_dict().items():
        if isinstance(getattr(config, key), _Config):
            out.update(value)
        else:
            out[key] = value
    return out


@dataclass
class TrainConfig(_Config):
    """Settings of train-sequence: the head, the fit, and how features are read.

    Attributes:
        head: The :class:`HeadConfig`.
        fit: The :class:`FitConfig`.
        frames: Feature rows per video fed to the head; None uses all cached
            rows. When the cache holds more, training draws a TSN random-offset
            sample each epoch and evaluation the centre (and multi-clip) sample.
        temporal_shift: Largest shift (frames) of the temporal-shift
            augmentation, drawn in ``[-s, s]`` per video and epoch; 0 disables.
        streaming: ``"auto"`` (by size against available memory), ``"memory"``
            or ``"stream"`` (read each batch from the HDF5 file).
        val_fraction: Fraction of training videos (by group) used for
            validation when the cache has no ``val`` split.
        eval_clips: Temporal samples averaged per video in evaluation when the
            cache is denser than ``frames``.
    """

    head: HeadConfig = field(default_factory=HeadConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    frames: int | None = None
    temporal_shift: int = 0
    streaming: str = "auto"
    val_fraction: float = 0.15
    eval_clips: int = 5


def _finetune_fit():
    return FitConfig(lr=1e-4, epochs=10, batch_size=8, patience=5)


@dataclass
class FinetuneConfig(_Config):
    """Settings of finetune: the fit, and which backbone layers train.

    The backbone, frames, head and splits are the feature run's.

    Attributes:
        fit: The :class:`FitConfig` (defaults for a pretrained network: lr
            1e-4, 10 epochs, batches of 8, patience 5). Memory is about
            ``batch_size`` x T frames per replica, times the batches decoded ahead.
        unfreeze: Unfreeze the last N layers of the backbone network (its
            input layer not counted); 0 trains the head only.
        unfreeze_from: Unfreeze this layer of the backbone and every later one
            (instead of ``unfreeze``).
        augment: Random TSN segment offsets (uniform sampling) and horizontal flips.
        mixed_precision: ``"auto"`` (mixed_float16 when a GPU is present),
            ``"on"`` or ``"off"``.
        workers: Decoder threads (default: the cores, 2 to 8).
    """

    fit: FitConfig = field(default_factory=_finetune_fit)
    unfreeze: int = DEFAULT_UNFREEZE
    unfreeze_from: str | None = None
    augment: bool = False
    mixed_precision: str = "auto"
    workers: int | None = None


def _scratch_head():
    return HeadConfig(normalize="none")


@dataclass
class ScratchConfig(_Config):
    """Settings of finetune from scratch: a random-init CNN and a fresh head.

    Attributes:
        head: The :class:`HeadConfig` of the fresh head. Its ``normalize`` is
            ignored (the CNN trains, so its features have no fixed statistics):
            the head's features are never scaled, and ``config.json`` says so.
        fit: The :class:`FitConfig` (finetune's defaults).
        backbone: Registry name of the CNN.
        input_size: ``(height, width)``; the backbone's default if None.
        grayscale: The CNN reads one grey channel.
        frames: T, frames per clip (default: the cache's, or the sampling's).
        val_fraction: Fraction of training videos carved for validation when
            the data has no ``val`` split.
        eval_clips: Clips averaged per video in evaluation when the cache is
            denser than ``frames``.
        augment: Random TSN segment offsets (uniform sampling) and horizontal flips.
        mixed_precision: ``"auto"``, ``"on"`` or ``"off"``.
        workers: Decoder threads (default: the cores, 2 to 8).
        source: Dataset source (``"auto"``, ``"folder"``, ``"ucf101"``,
            ``"manifest"``, ``"fer2013"``); ignored for a cache.
        split: UCF-101 official split (1, 2 or 3).
        sampling: How a dataset's frames are sampled; None: ``frames`` uniform
            frames (else ``clip_length`` for FER-2013, 16 otherwise). A cache's
            own sampling, crop and face crop are always reused.
        crop: ``"resize"`` or ``"center"`` (a dataset's frames).
        face_crop: A ``FaceCrop`` for a dataset's frames, or None.
        clip_length: FER-2013 images per pseudo-clip.
    """

    head: HeadConfig = field(default_factory=_scratch_head)
    fit: FitConfig = field(default_factory=_finetune_fit)
    backbone: str = "vgg16"
    input_size: tuple[int, int] | None = None
    grayscale: bool = False
    frames: int | None = None
    val_fraction: float = 0.15
    eval_clips: int = 5
    augment: bool = False
    mixed_precision: str = "auto"
    workers: int | None = None
    source: str = "auto"
    split: int = 1
    sampling: SamplingConfig | None = None
    crop: str = "resize"
    face_crop: FaceCrop | None = None
    clip_length: int = 10

    def frame_spec(self, *, fer2013=False):
        """The :class:`FrameSpec` a dataset's frames are read with.

        Args:
            fer2013: The dataset is FER-2013 (pseudo-clips of ``clip_length`` images).
        """
        sampling = self.sampling
        if sampling is None:
            sampling = SamplingConfig(
                num_frames=self.frames or (self.clip_length if fer2013 else 16)
            )
        return FrameSpec(
            sampling=sampling,
            crop=self.crop,
            face_crop=self.face_crop,
            clip_length=self.clip_length if fer2013 else None,
        )
