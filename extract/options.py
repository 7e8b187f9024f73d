"""The declared parameters of the extraction and cache commands (see :mod:`vidseq.extract.params`).

:data:`FRAME_PARAMS` are the keywords of
:meth:`~vidseq.extract.decode.framespec.FrameSpec.from_options` (which frames a
command takes and how it frames them; ``finetune --from-scratch`` reads them
too); :data:`EXTRACT_PARAMS` are :func:`~vidseq.extract.pipeline.extract_features`'
keywords as the command line gives them; :data:`MAKE_SAMPLE_PARAMS`,
:data:`INSPECT_PARAMS` and :data:`CACHE_MERGE_PARAMS` those of ``make-sample``,
``inspect`` and ``cache merge``. The flags, their checks and the tables of
``docs/cli.md`` come from these declarations.
"""

from __future__ import annotations

from vidseq.cache.schema import ENGINES, FEATURE_DTYPES, PRECISIONS
from vidseq.extract.calibration import DEFAULT_CALIBRATION_VIDEOS
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.decode.geometry import CROP_MODES
from vidseq.extract.decode.sampling import MOTION_SIGNALS, SAMPLING_MODES, SamplingConfig
from vidseq.extract.models.backbones import backbone_names
from vidseq.extract.models.hub import HUB_PREFIX, POOLINGS, is_hub_name
from vidseq.extract.params import Param, is_size, parse_size
from vidseq.extract.sharding import Shard
from vidseq.extract.sources.dataset import source_choices
from vidseq.extract.sources.sample_data import DEFAULT_VIDEOS_PER_CLASS

DEFAULT_BACKBONE = "resnet50"
"""The tutorial's network, with ImageNet weights: what ``extract-features`` runs by default."""
_SAMPLING = SamplingConfig()
PRECISION_HELP = "fp32; bf16 (CPUs with AVX512_BF16 or AMX); int8 (--engine openvino)"
"""The help of every ``--precision`` flag."""
PRECISION_DOC = (
    "`bf16` (either engine; CPUs with AVX512_BF16 or AMX, refused in one line elsewhe"
    "re) or `int8` (`--engine openvino`: NNCF post-training quantisation calibrated o"
    'n the dataset\'s own frames, `pip install "vidseq[openvino]"`); recorded in the c'
    "ache with its agreement with FP32 features on up to 16 held-out videos (cosine; "
    "`vidseq inspect` shows it), never mixed with another precision's features"
)
"""Its meaning in docs/cli.md."""

SAMPLING_PARAMS = (
    Param(
        "sampling",
        default=_SAMPLING.mode,
        choices=SAMPLING_MODES,
        help="uniform: K equal segments; fps: --frame-rate from the start; motion: equal "
        "steps of cumulative motion; keyframes: frames per shot in proportion to its length",
        doc="`uniform`: centre frame of K equal segments of the whole video; `fps`: the "
        "tutorial's, one frame every `fps/frame-rate` from the start, padded; `motion`: K "
        "frames at equal steps of cumulative motion (a static video falls back to uniform); "
        "`keyframes`: HSV-histogram cuts split the video into shots, each gets frames in "
        "proportion to its length",
    ),
    Param(
        "frame_rate",
        kind=float,
        default=_SAMPLING.frame_rate,
        help="fps mode: frames/s",
    ),
    Param(
        "motion_floor",
        kind=float,
        default=_SAMPLING.motion_floor,
        help="motion mode: least weight of a frame, in grey levels of mean frame difference",
    ),
    Param(
        "motion_signal",
        default=_SAMPLING.motion_signal,
        choices=MOTION_SIGNALS,
        help="motion mode: auto reads packet sizes (H.264, HEVC, VP9, MPEG-4) or reduced JPEG "
        "decodes (MJPEG) where it can; full decodes every frame",
        doc=(
            "motion: `auto` reads the signal without a full decode where it can: P/B packet s"
            "izes of inter-coded streams (H.264, HEVC, VP9, MPEG-4; nothing decoded); for Mot"
            "ion-JPEG, one frame in 8 and both frames of every JPEG-size jump decoded at 1/2-"
            "1/8 size, bisecting where they differ; else (and with `full`) every frame is dec"
            "oded. The signal of each frame is recorded (`motion_signal` rows); see [performa"
            "nce.md](performance.md)"
        ),
    ),
    Param(
        "cut_threshold",
        kind=float,
        default=_SAMPLING.cut_threshold,
        help="keyframes mode: least HSV-histogram change (0-1) of a shot cut",
    ),
    Param(
        "cut_ratio",
        kind=float,
        default=_SAMPLING.cut_ratio,
        help="keyframes mode: least ratio of a cut's change to its neighbours' (adaptive)",
    ),
)
"""How frames are sampled: the fields of a SamplingConfig but ``num_frames``."""

FACE_PARAMS = (
    Param(
        "face_crop",
        kind=bool,
        default=False,
        help="cut each frame around its largest face (OpenCV Haar cascade); "
        "records per-frame face_found",
    ),
    Param(
        "face_gray",
        kind=bool,
        default=False,
        help="face crops in grey, replicated to 3 channels (implies --face-crop)",
    ),
    Param(
        "face_margin",
        kind=float,
        default=0.2,
        help="room around the face on each side, as a fraction of its size (default 0.2)",
    ),
)
"""How faces are cut."""

CROP_PARAM = Param(
    "crop",
    choices=CROP_MODES,
    default="resize",
    flag="",
    exclusive="crop",
    aliases=(
        ("--resize", {"action": "store_const", "const": "resize", "help": "plain resize"}),
        (
            "--center-crop",
            {
                "action": "store_const",
                "const": "center",
                "help": "shorter side resized to fit, then the centre cropped",
            },
        ),
    ),
    doc="`--resize`: plain resize; `--center-crop`: shorter side resized, then the centre cropped",
)

FRAME_PARAMS = (
    Param("num_frames", kind=int, low=1, default=16, flag="--frames", help="frames per video (K)"),
    *SAMPLING_PARAMS,
    CROP_PARAM,
    Param(
        "clip_length",
        kind=int,
        low=1,
        default=10,
        help="fer2013: faces per pseudo-clip (the remainder of each split and class is left out)",
    ),
    *FACE_PARAMS,
)
"""The keywords of ``FrameSpec.from_options``, as flags."""


def _flag(name, help_text):
    return Param(name, kind=bool, default=False, help=help_text)


def is_backbone_name(name) -> bool:
    """A registered backbone name, or a ``hub:PRESET`` handle."""
    return isinstance(name, str) and (name in backbone_names() or is_hub_name(name))


EXTRACT_PARAMS = (
    Param("source", default="auto", choices=source_choices, help="dataset layout"),
    Param("split", kind=int, default=1, choices=(1, 2, 3), help="UCF-101 split"),
    Param(
        "backbone",
        default=DEFAULT_BACKBONE,
        check=is_backbone_name,
        expected=f"a registered backbone name or {HUB_PREFIX}PRESET",
        help="registry name of the CNN (tiny: a small random-init network for tests), or "
        f"{HUB_PREFIX}PRESET: a keras-hub preset name, kaggle:// or hf:// handle, or local "
        "preset directory (pip install 'vidseq[hub]')",
        doc="a registry name (`resnet50`, `mobilenetv2`, ...; `tiny`: a small random-init "
        f"network for tests), or `{HUB_PREFIX}PRESET`: a keras-hub preset name, `kaggle://` "
        "or `hf://` handle, or local preset directory ([backbones.md](backbones.md))",
    ),
    Param(
        "weights",
        optional=True,
        kind=str,
        help="imagenet | none | PATH of a weights file | preset (default: imagenet, none "
        "for tiny, preset for hub:PRESET)",
        doc="`imagenet` (Keras' download and cache), `none` (random init from `--seed`), or "
        "the path of a `.weights.h5` file of the same architecture; default `imagenet` "
        "(`none` for `tiny`, the preset's own for `hub:PRESET`). Offline without the file: "
        "exit 2, naming `--weights=PATH` and `--backbone=tiny`",
    ),
    Param(
        "pooling",
        optional=True,
        choices=POOLINGS,
        help="hub:PRESET only: the class token or the patch-token mean instead of the "
        "family's own pooled feature",
    ),
    Param(
        "input_size",
        optional=True,
        check=is_size,
        expected="None or (height, width) integers",
        flag_type=parse_size,
        help="SIZE or HEIGHTxWIDTH (default: the backbone's)",
        doc="SIZE or HEIGHTxWIDTH (default: the backbone's); of a `hub:` preset, DINOv2 "
        "and DINOv3 take another multiple of the patch size, the others their own size only",
    ),
    *FRAME_PARAMS,
    Param("batch_size", kind=int, low=1, default=32, help="frames per CNN batch"),
    Param("dtype", default="float16", choices=FEATURE_DTYPES, help="features stored as"),
    Param(
        "num_shards",
        kind=int,
        low=1,
        optional=True,
        help="split the dataset into N disjoint shards (default: $VIDSEQ_NUM_SHARDS, "
        "$SLURM_ARRAY_TASK_COUNT, else 1)",
        doc="extract a deterministic, disjoint part of the dataset; without the flags the "
        "shard comes from `VIDSEQ_NUM_SHARDS`/`VIDSEQ_SHARD_INDEX`, a SLURM array or a "
        "Kubernetes Indexed Job; `--out` may hold `{shard}` and `{num_shards}` (see "
        "[scaling.md](scaling.md))",
    ),
    Param(
        "shard_index",
        kind=int,
        low=0,
        optional=True,
        help="the shard to extract (default: $VIDSEQ_SHARD_INDEX, $SLURM_ARRAY_TASK_ID - "
        "$SLURM_ARRAY_TASK_MIN, $JOB_COMPLETION_INDEX, else 0)",
    ),
    Param("decode_workers", kind=int, low=1, optional=True, help="decoder threads"),
    Param(
        "engine",
        default="tf",
        choices=ENGINES,
        help="what runs the CNN: tf, or openvino (faster on CPUs; pip install 'vidseq[openvino]')",
        doc='`tf` (TensorFlow) or `openvino` (CPU, faster; `pip install "vidseq[openvino]"`; '
        "same features to float32 rounding; recorded in the cache, never mixed with another "
        "engine's; see [performance.md](performance.md))",
    ),
    Param(
        "precision",
        choices=PRECISIONS,
        default="fp32",
        help=PRECISION_HELP,
        doc=PRECISION_DOC,
    ),
    Param(
        "calibration_videos",
        kind=int,
        low=1,
        default=DEFAULT_CALIBRATION_VIDEOS,
        help="int8: videos whose frames calibrate the quantisation",
        doc=(
            "int8: videos (training split first, spread evenly) whose sampled frames calibrat"
            "e the quantisation; the quantised model is kept in `.vidseq-int8/` beside the ca"
            "che, keyed by backbone, input size, weights hash and calibration set, so a rerun"
            " does not calibrate again"
        ),
    ),
    Param(
        "check_against",
        kind=str,
        optional=True,
        metavar="RUN",
        help="bf16/int8: also record how often RUN's top-1 label changes on held-out videos",
        doc=(
            "bf16/int8: also record the fraction of held-out videos whose top-1 label under R"
            "UN (trained on FP32 features of the same network) changes"
        ),
    ),
    Param(
        "commit_every",
        kind=int,
        low=1,
        default=32,
        help="videos per commit (work lost on a crash)",
    ),
    Param("seed", kind=int, low=0, default=0, help="seed of random-init weights"),
    _flag("strict", "stop at the first bad video"),
    _flag("overwrite", "replace a cache made with other settings"),
    _flag("quiet", "no progress bar"),
)
"""The flags of ``extract-features`` (after DATA and --out), in the order ``--help`` lists them."""


MAKE_SAMPLE_PARAMS = (
    Param("out", positional=True, help="folder to create"),
    Param("seed", kind=int, low=0, default=0, help="same seed, same bytes"),
    Param("classes", kind=str, nargs="+", optional=True, help="subset of class names"),
    Param(
        "videos_per_class",
        kind=int,
        low=1,
        default=DEFAULT_VIDEOS_PER_CLASS,
        help="videos per class",
    ),
    Param(
        "event_fraction",
        kind=float,
        low=0.0,
        high=1.0,
        low_open=True,
        optional=True,
        help="sparse-event variant: each video is a short event (this share of its frames, "
        "0 < F <= 1) inside a long still shot",
    ),
)
"""``vidseq.make_sample``."""


INSPECT_PARAMS = (
    Param(
        "cache",
        positional=True,
        nargs="+",
        help="cache file; several files or a quoted glob are read as one",
    ),
    Param("video", kind=str, optional=True, help="a video id"),
)
"""``vidseq.inspect_cache`` (the cache package declares nothing: it sits below this one)."""

CACHE_MERGE_PARAMS = (
    Param("out", positional=True, help="the merged cache to write"),
    Param("inputs", positional=True, nargs="+", help="the caches to merge (shards)"),
    Param("overwrite", kind=bool, default=False, help="replace OUT if it exists"),
)
"""``vidseq.cache_merge``."""


def frame_spec(**options) -> FrameSpec:
    """The :class:`FrameSpec` of the :data:`FRAME_PARAMS` keywords (others are ignored)."""
    names = {param.name for param in FRAME_PARAMS}
    return FrameSpec.from_options(**{k: v for k, v in options.items() if k in names})


def extract_kwargs(flags: dict) -> dict:
    """``extract_features``' keyword arguments from extract-features' parsed flags.

    The frame flags become one ``frames`` (:func:`frame_spec`), ``--num-shards``
    and ``--shard-index`` one ``shard``, ``--quiet`` ``progress=False``; the other
    declared parameters pass as they are.
    """
    composed = {p.name for p in FRAME_PARAMS} | {"num_shards", "shard_index", "quiet"}
    composed.add("check_against")  # a run: the caller turns it into agreement_probe
    kwargs = {p.name: flags[p.name] for p in EXTRACT_PARAMS if p.name not in composed}
    kwargs["frames"] = frame_spec(**flags)
    kwargs["shard"] = Shard.resolve(flags["num_shards"], flags["shard_index"])
    kwargs["progress"] = not flags["quiet"]
    return kwargs
