"""The cache format, schema version 1: the one place that names its attributes and datasets.

A cache is one HDF5 file (see ``docs/cache-format.md``). This module holds the
names and types of its root attributes and datasets, the :class:`CacheMeta`
that says what produced the features, the per-video and per-failure records;
opening and validating a file is :mod:`vidseq.cache.reading`. It imports neither TensorFlow nor any
other vidseq package than :mod:`vidseq.errors`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from vidseq.version import __version__

SCHEMA_VERSION = 1
"""The newest schema version this code reads and the one it writes."""

FORMAT_NAME = "features"
"""Value of the ``vidseq_format`` root attribute of a feature cache."""

# Root attributes.
ATTR_FORMAT = "vidseq_format"
ATTR_SCHEMA_VERSION = "schema_version"
ATTR_BACKBONE = "backbone"
ATTR_WEIGHTS = "weights"
ATTR_WEIGHTS_SHA256 = "weights_sha256"
ATTR_ENGINE = "engine"
ATTR_INPUT_SIZE = "input_size"
ATTR_FEATURE_DIM = "feature_dim"
ATTR_SAMPLING = "sampling"
ATTR_CLASS_NAMES = "class_names"
ATTR_VIDSEQ_VERSION = "vidseq_version"
ATTR_WEIGHTS_SEED = "weights_seed"
"""Optional root attribute: the seed of random-init weights (``weights == "none"``)."""
ATTR_BACKBONE_CONFIG = "backbone_config"
"""Optional root attribute: JSON object describing a keras-hub backbone (preset,
class, family, pooling, clip_frames, config, image_converter); absent otherwise."""
ATTR_PRECISION = "precision"  # optional: the arithmetic the network ran in (absent: "fp32")
ATTR_PRECISION_CHECK = "precision_check"  # optional JSON object: agreement with FP32 features

ROOT_ATTRIBUTES = (
    ATTR_FORMAT,
    ATTR_SCHEMA_VERSION,
    ATTR_BACKBONE,
    ATTR_WEIGHTS,
    ATTR_WEIGHTS_SHA256,
    ATTR_ENGINE,
    ATTR_INPUT_SIZE,
    ATTR_FEATURE_DIM,
    ATTR_SAMPLING,
    ATTR_CLASS_NAMES,
    ATTR_VIDSEQ_VERSION,
)
"""Every root attribute a schema-v1 file must carry."""

# Row-aligned datasets at the root: one row per sampled frame, F rows in all.
# Every dataset at the root of the file is row-aligned; extra ones (for example
# ``face_found``) hold per-frame facts.
FEATURES = "features"
FRAME_INDICES = "frame_indices"
TIMESTAMPS_MS = "timestamps_ms"
ROW_DATASETS = {FRAME_INDICES: np.dtype("int64"), TIMESTAMPS_MS: np.dtype("float64")}
"""Required row-aligned datasets besides ``features`` (whose type is ``CacheMeta.dtype``)."""

FEATURE_DTYPES = ("float16", "float32")
"""Types ``features`` may be stored in."""

ENGINES = ("tf", "openvino")
"""What may have run the network of a cache (its ``engine`` attribute): TensorFlow or OpenVINO."""

PRECISIONS = ("fp32", "bf16", "int8")
"""Arithmetic the network may have run in (the ``precision`` attribute)."""

STRING_DTYPE = h5py.string_dtype("utf-8")
"""Every text dataset: variable-length UTF-8."""

# The columnar index: one row per video, N rows in all.
VIDEOS = "videos"
VIDEO_ID = "video_id"
PATH = "path"
LABEL = "label"
SPLIT = "split"
GROUP = "group"
OFFSET = "offset"
LENGTH = "length"
NUM_VALID = "num_valid"
FPS = "fps"
NUM_SOURCE_FRAMES = "num_source_frames"
VIDEO_COLUMNS = {
    VIDEO_ID: STRING_DTYPE,
    PATH: STRING_DTYPE,
    LABEL: np.dtype("int32"),
    SPLIT: STRING_DTYPE,
    GROUP: STRING_DTYPE,
    OFFSET: np.dtype("int64"),
    LENGTH: np.dtype("int32"),
    NUM_VALID: np.dtype("int32"),
    FPS: np.dtype("float64"),
    NUM_SOURCE_FRAMES: np.dtype("int64"),
}
"""Datasets of the ``videos/`` group and their types, in the order they are written."""

# Inputs that could not be read: one row per failure, M rows in all.
FAILED = "failed"
ERROR = "error"
FAILED_COLUMNS = {VIDEO_ID: STRING_DTYPE, PATH: STRING_DTYPE, ERROR: STRING_DTYPE}
"""Datasets of the ``failed/`` group (all text)."""

COMPARED_FIELDS = (
    "backbone",
    "weights_sha256",
    "engine",
    "input_size",
    "feature_dim",
    "sampling",
    "class_names",
    "dtype",
    "backbone_config",
    "precision",
)
"""Fields of :class:`CacheMeta` that must agree for two caches to be mixed.

``weights`` is a label ("imagenet", or the path of a local copy of the same
file) and is not compared: the SHA-256 says whether the network is the same.
"""


def row_dataset_names(h5: h5py.File) -> list[str]:
    """Names of the row-aligned datasets of a file: root datasets with F rows, sorted.

    ``features`` comes first; datasets at the root whose first dimension is not F
    are not row-aligned and are ignored (a reader ignores what it does not know).
    """
    num_rows = h5[FEATURES].shape[0]
    names = [
        name
        for name, item in h5.items()
        if name != FEATURES
        and isinstance(item, h5py.Dataset)
        and item.ndim >= 1
        and item.shape[0] == num_rows
    ]
    return [FEATURES, *sorted(names)]


@dataclass(frozen=True)
class CacheMeta:
    """What produced the features of a cache: everything that must agree to mix two caches.

    Args:
        backbone: Backbone name from the registry (e.g. ``"resnet50"``).
        weights: ``"imagenet"``, ``"none"`` or the path of the weights file (a label).
        weights_sha256: SHA-256 of the weights actually used.
        engine: What ran the network: ``"tf"`` (TensorFlow) or ``"openvino"``.
        input_size: ``(height, width)`` fed to the CNN.
        feature_dim: D, the length of one feature vector.
        sampling: Frame sampling settings (JSON-serialisable dict).
        class_names: Class names; the index is the label id.
        dtype: Storage type of ``features``: ``"float16"`` or ``"float32"``.
        weights_seed: Seed that initialised random weights, so that a later stage can
            rebuild the very same network (not compared: the SHA-256 is).
        backbone_config: What made a keras-hub backbone's features (preset
            handle, class, family, pooling, clip_frames, config, image
            converter); empty for the ``keras.applications`` registry.
        precision: The arithmetic the network ran in: ``"fp32"``, ``"bf16"`` or ``"int8"``.
        precision_check: bf16/INT8: agreement of the features with FP32 ones on
            held-out frames (JSON-ready dict; not compared); empty for FP32.
    """

    backbone: str
    weights: str
    weights_sha256: str
    engine: str
    input_size: tuple[int, int]
    feature_dim: int
    sampling: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)
    dtype: str = "float16"
    weights_seed: int = 0
    backbone_config: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"
    precision_check: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        size = tuple(int(v) for v in np.asarray(self.input_size).reshape(-1))
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(
                f"input_size must be (height, width) of positive ints. "
                f"Received: input_size={self.input_size!r}"
            )
        object.__setattr__(self, "input_size", size)
        if int(self.feature_dim) <= 0:
            raise ValueError(
                f"feature_dim must be positive. Received: feature_dim={self.feature_dim!r}"
            )
        object.__setattr__(self, "feature_dim", int(self.feature_dim))
        dtype = np.dtype(self.dtype).name
        if dtype not in FEATURE_DTYPES:
            raise ValueError(
                f"dtype must be one of {', '.join(FEATURE_DTYPES)}. Received: dtype={self.dtype!r}"
            )
        object.__setattr__(self, "dtype", dtype)
        if self.engine not in ENGINES:
            raise ValueError(
                f"engine must be one of {list(ENGINES)}. Received: engine={self.engine!r}"
            )
        object.__setattr__(self, "weights_seed", int(self.weights_seed))
        if self.precision not in PRECISIONS or not isinstance(self.precision_check, dict):
            raise ValueError(
                f"precision must be one of {list(PRECISIONS)}, precision_check a dict. Received: "
                f"precision={self.precision!r}, precision_check={self.precision_check!r}"
            )
        check = json.loads(json.dumps(self.precision_check, sort_keys=True))
        object.__setattr__(self, "precision_check", check)
        # A JSON round trip makes the in-memory value equal what a reader gets back
        # (tuples become lists, keys are sorted).
        for name in ("sampling", "backbone_config"):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, json.loads(json.dumps(dict(value), sort_keys=True)))
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"{name} must be a JSON-serialisable dict. Received: {name}={value!r}"
                ) from exc
        names = [str(name) for name in self.class_names]
        object.__setattr__(self, "class_names", names)
        for name in ("backbone", "weights", "weights_sha256"):
            object.__setattr__(self, name, str(getattr(self, name)))

    def differences(self, other: CacheMeta) -> list[str]:
        """Lists the compared fields on which two metas disagree.

        ``weights`` (a label) is not compared; ``weights_sha256`` is.

        Args:
            other: The meta to compare with.

        Returns:
            One human-readable line per disagreeing field, e.g.
            ``"backbone: 'resnet50' vs 'tiny'"``; empty when compatible.
        """
        lines = []
        for name in COMPARED_FIELDS:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine == theirs:
                continue
            if name == "class_names":
                lines.append(f"class_names: {_describe_names(mine)} vs {_describe_names(theirs)}")
            else:
                lines.append(f"{name}: {mine!r} vs {theirs!r}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        """The meta as a JSON-serialisable dict."""
        d = dataclasses.asdict(self)
        d["input_size"] = list(self.input_size)
        return d


def _describe_names(names: list[str]) -> str:
    if len(names) <= 6:
        return repr(names)
    return f"{len(names)} classes [{names[0]!r}, {names[1]!r}, ..., {names[-1]!r}]"


@dataclass
class VideoRecord:
    """The per-video facts stored in the ``videos/`` index beside its feature rows.

    Args:
        video_id: Unique id (dataset-relative path by default); any text.
        path: Source file, or JSON list of image paths for a clip.
        label: Index into ``class_names``; -1 if unlabelled.
        split: ``"train"``, ``"val"``, ``"test"`` or ``""``.
        group: Group that must stay on one side of a split (e.g. ``"g08"``).
        num_valid: Leading rows that are real frames (the rest is padding).
        fps: Frame rate the decoder saw.
        num_source_frames: Frames really decoded.
    """

    video_id: str
    path: str
    label: int
    split: str
    group: str
    num_valid: int
    fps: float
    num_source_frames: int


@dataclass
class FailedRecord:
    """An input that could not be read, kept in the ``failed/`` table.

    Args:
        video_id: The id the video would have had.
        path: Its source.
        error: Why it failed, in a few words.
    """

    video_id: str
    path: str
    error: str


def write_meta(h5: h5py.File, meta: CacheMeta) -> None:
    """Writes the root attributes of a schema-v1 file (the features dtype lives on the dataset).

    Args:
        h5: A file open for writing.
        meta: What produced the features.
    """
    attrs = h5.attrs
    attrs[ATTR_FORMAT] = FORMAT_NAME
    attrs[ATTR_SCHEMA_VERSION] = np.int64(SCHEMA_VERSION)
    attrs[ATTR_BACKBONE] = meta.backbone
    attrs[ATTR_WEIGHTS] = meta.weights
    attrs[ATTR_WEIGHTS_SHA256] = meta.weights_sha256
    attrs[ATTR_ENGINE] = meta.engine
    attrs[ATTR_INPUT_SIZE] = np.asarray(meta.input_size, dtype=np.int64)
    attrs[ATTR_FEATURE_DIM] = np.int64(meta.feature_dim)
    attrs[ATTR_SAMPLING] = json.dumps(meta.sampling, sort_keys=True)
    attrs[ATTR_CLASS_NAMES] = json.dumps(meta.class_names, ensure_ascii=False)
    attrs[ATTR_VIDSEQ_VERSION] = __version__
    attrs[ATTR_WEIGHTS_SEED] = np.int64(meta.weights_seed)
    if meta.backbone_config:
        attrs[ATTR_BACKBONE_CONFIG] = json.dumps(meta.backbone_config, sort_keys=True)
    if meta.precision != "fp32":  # FP32 caches keep the attributes they always had
        attrs[ATTR_PRECISION] = meta.precision
    if meta.precision_check:
        attrs[ATTR_PRECISION_CHECK] = json.dumps(meta.precision_check, sort_keys=True)
