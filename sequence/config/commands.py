"""The settings of each training command: TrainConfig, FinetuneConfig, ScratchConfig.

Each composes the :class:`~vidseq.sequence.config.head.HeadConfig` and the
:class:`~vidseq.sequence.config.fit.FitConfig` with what its own command reads,
and nothing else; every field is declared once (:func:`vidseq.extract.params.setting`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vidseq.errors import UsageError
from vidseq.extract.decode.faces import FaceCrop
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.decode.geometry import CROP_MODES
from vidseq.extract.decode.sampling import SamplingConfig
from vidseq.extract.models.backbones import backbone_names
from vidseq.extract.options import frame_spec, is_backbone_name
from vidseq.extract.params import is_size, parse_size, setting
from vidseq.extract.sources.dataset import source_choices
from vidseq.sequence.config.base import Config
from vidseq.sequence.config.fit import FitConfig
from vidseq.sequence.config.head import HeadConfig

STREAMING_MODES = ("auto", "memory", "stream")
MIXED_PRECISION_MODES = ("auto", "on", "off")
COMPARE_HEADS = ("lstm", "tcn", "transformer", "attention", "attentive", "pool")
"""The heads ``vidseq compare`` trains when none are named."""
COMPARE_SEEDS = (0, 1, 2)
"""The seeds ``vidseq compare`` trains each head with when none are named."""
COMPARE_SETTINGS = (
    "units",
    "normalize",
    "lr",
    "epochs",
    "batch_size",
    "patience",
    "lr_schedule",
    "frames",
    "streaming",
)
"""The :class:`TrainConfig` settings ``vidseq compare`` takes as flags (shared by every run)."""
DEFAULT_UNFREEZE = 20
"""Backbone layers unfrozen by default, as in Keras' EfficientNet fine-tuning example."""
RESUME_OVERRIDABLE = ("streaming", "tensorboard", "strategy", "workers")
"""Fields a resumed run takes from the new call instead of its saved settings."""


def _val_fraction():
    return setting(
        0.15,
        kind=float,
        low=0.0,
        high=1.0,
        low_open=True,
        high_open=True,
        help="share of training groups held out for validation when the data has no val split",
    )


def _eval_clips():
    return setting(
        5,
        kind=int,
        low=1,
        help="temporal samples averaged per video in evaluation on a denser cache",
    )


def _flag(help_text, flag=None):
    return setting(False, kind=bool, help=help_text, flag=flag)


@dataclass
class TrainConfig(Config):
    """Settings of train-sequence: the head, the fit, and how features are read.

    ``frames`` left None uses all cached rows; when the cache holds more,
    training draws a TSN random-offset sample each epoch and evaluation the
    centre (and multi-clip) sample.
    """

    head: HeadConfig = field(default_factory=HeadConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    frames: int | None = setting(
        None, kind=int, low=1, optional=True, help="feature rows per video (default: all cached)"
    )
    temporal_shift: int = setting(
        0, kind=int, low=0, help="roll the valid frames by up to ±S frames per video and epoch"
    )
    streaming: str = setting(
        "auto",
        choices=STREAMING_MODES,
        help="memory, stream (read batches from the HDF5 file), auto (by size against memory)",
    )
    val_fraction: float = _val_fraction()
    folds: int = setting(
        1,
        kind=int,
        low=1,
        help="cross-validation: pool the train and val videos into K group-aware folds",
        doc="cross-validation: pool the cache's train and val videos into K group-aware, "
        "stratified folds; `--fold` validates, the others train (1: the cache's own split)",
    )
    fold: int = setting(0, kind=int, low=0, help="the fold that validates (0 to --folds - 1)")
    eval_clips: int = _eval_clips()

    def split_keywords(self):
        """How runs of these settings split their data, as keywords of ``splits_of``."""
        return {
            "val_fraction": self.val_fraction,
            "seed": self.fit.seed,
            "folds": self.folds,
            "fold": self.fold,
        }

    def validate(self):
        """Raises UsageError naming the first bad field, or a ``fold`` outside ``folds``."""
        super().validate()
        if self.fold >= self.folds:
            raise UsageError(
                f"fold must be in [0, {self.folds - 1}] for folds={self.folds}. "
                f"Received: fold={self.fold!r}"
            )
        return self


def _finetune_fit():
    return FitConfig(lr=1e-4, epochs=10, batch_size=8, patience=5)


def _augment():
    return _flag("random TSN segment offsets and horizontal flips")


def _mixed_precision():
    return setting(
        "auto",
        choices=MIXED_PRECISION_MODES,
        help="mixed_float16 backbone (auto: when a GPU is present)",
    )


def _workers():
    return setting(None, kind=int, low=1, optional=True, help="decoder threads (default: 2 to 8)")


@dataclass
class FinetuneConfig(Config):
    """Settings of finetune: the fit, and which backbone layers train.

    The backbone, frames, head and splits are the feature run's. The fit
    defaults to a pretrained network's: lr 1e-4, 10 epochs, batches of 8,
    patience 5; memory is about ``batch_size`` x T frames per replica.
    """

    fit: FitConfig = field(default_factory=_finetune_fit)
    unfreeze: int = setting(
        DEFAULT_UNFREEZE,
        kind=int,
        low=0,
        metavar="N",
        exclusive="unfreeze",
        help=f"unfreeze the last N backbone layers (default {DEFAULT_UNFREEZE}; 0: head only)",
        doc="unfreeze the last N backbone layers (`0`: head only); BatchNormalization layers "
        "stay frozen. For a `hub:` encoder N counts transformer blocks; the layers with "
        "weights after the first of them (final norms, SigLIP's pooling head) train with them",
    )
    unfreeze_from: str | None = setting(
        None,
        kind=str,
        optional=True,
        expected="None or a layer name",
        metavar="LAYER",
        exclusive="unfreeze",
        help="unfreeze from this backbone layer on (instead of --unfreeze)",
        doc="unfreeze from this backbone layer on (instead of --unfreeze); for a `hub:` "
        "encoder, from this transformer block on (its name, or its path where two blocks "
        "share one: `temporal_encoder/transformer_block_0`)",
    )
    augment: bool = _augment()
    mixed_precision: str = _mixed_precision()
    workers: int | None = _workers()


def _scratch_head():
    return HeadConfig(normalize="none")


@dataclass
class ScratchConfig(Config):
    """Settings of finetune from scratch: a random-init CNN and a fresh head.

    The head's ``normalize`` is ignored (the CNN trains, so its features have
    no fixed statistics). ``sampling`` None takes ``frames`` uniform frames
    (else ``clip_length`` for FER-2013, 16 otherwise); a cache's own
    sampling, crop and face crop are always reused.
    """

    head: HeadConfig = field(default_factory=_scratch_head)
    fit: FitConfig = field(default_factory=_finetune_fit)
    backbone: str = setting(
        "vgg16",
        check=is_backbone_name,
        expected="a registered backbone name",
        help=f"registry name of the CNN: {' | '.join(backbone_names())}",
    )
    input_size: tuple[int, int] | None = setting(
        None,
        optional=True,
        check=is_size,
        expected="None or (height, width) integers",
        flag_type=parse_size,
        help="SIZE or HEIGHTxWIDTH (default: the backbone's)",
    )
    grayscale: bool = _flag("the CNN reads one grey channel")
    frames: int | None = setting(None, kind=int, low=1, optional=True, help="frames per clip (T)")
    val_fraction: float = _val_fraction()
    eval_clips: int = _eval_clips()
    augment: bool = _augment()
    mixed_precision: str = _mixed_precision()
    workers: int | None = _workers()
    source: str = setting("auto", choices=source_choices, help="dataset source (not for a cache)")
    split: int = setting(1, choices=(1, 2, 3), kind=int, help="UCF-101 split")
    sampling: SamplingConfig | None = setting(
        None,
        optional=True,
        check=lambda v: isinstance(v, SamplingConfig),
        expected="None or a SamplingConfig",
        flag="",
    )
    crop: str = setting(
        "resize",
        choices=CROP_MODES,
        flag="",
        aliases=(("--center-crop", {"action": "store_const", "const": "center"}),),
        help="shorter side resized, then the centre cropped (default: plain resize)",
    )
    face_crop: FaceCrop | None = setting(
        None,
        optional=True,
        check=lambda v: isinstance(v, FaceCrop),
        expected="None or a FaceCrop",
        flag="",
    )
    clip_length: int = setting(10, kind=int, low=1, help="fer2013: faces per clip")

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


def resumed_config(saved, config, warnings):
    """The interrupted run's settings ``saved``, with the new call's overridable fields.

    Appends to ``warnings`` the other fields whose new values are ignored.

    Returns:
        The validated settings.
    """
    old, new = _flat_json(saved), _flat_json(config)
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


def _flat_json(config):
    out = {}
    for key, value in config.to_dict().items():
        if isinstance(getattr(config, key), Config):
            out.update(value)
        else:
            out[key] = value
    return out


def scratch_config_from_flags(flags: dict) -> ScratchConfig:
    """The :class:`ScratchConfig` of ``finetune --from-scratch``: its flags and frame settings.

    The default sampling is ``--frames`` uniform frames, or a FER-2013 clip's images.
    """
    frames = frame_spec(**{**flags, "num_frames": flags["frames"] or 16})
    custom = flags["frames"] or flags["sampling"] != "uniform"
    names = ScratchConfig.setting_names()
    settings = {key: value for key, value in flags.items() if key in names}
    settings.update(sampling=frames.sampling if custom else None, face_crop=frames.face_crop)
    return ScratchConfig.from_dict(settings)
