"""Opening a cache file and validating it before anything is read.

:func:`open_cache` checks the format, the schema version, every root attribute
(types, bounds, JSON) and the datasets' shapes and types against
:mod:`vidseq.cache.schema`, and returns the open file with its
:class:`~vidseq.cache.schema.CacheMeta`; :func:`check_labels` refuses labels
outside the class names. Imports neither TensorFlow nor any vidseq package
but the schema, the version and the errors.
"""

from __future__ import annotations

import json

import h5py
import numpy as np

from vidseq.cache.schema import (
    ATTR_BACKBONE,
    ATTR_BACKBONE_CONFIG,
    ATTR_CLASS_NAMES,
    ATTR_ENGINE,
    ATTR_FEATURE_DIM,
    ATTR_FORMAT,
    ATTR_INPUT_SIZE,
    ATTR_PRECISION,
    ATTR_PRECISION_CHECK,
    ATTR_SAMPLING,
    ATTR_SCHEMA_VERSION,
    ATTR_WEIGHTS,
    ATTR_WEIGHTS_SEED,
    ATTR_WEIGHTS_SHA256,
    FAILED,
    FAILED_COLUMNS,
    FEATURES,
    FORMAT_NAME,
    ROOT_ATTRIBUTES,
    ROW_DATASETS,
    SCHEMA_VERSION,
    VIDEO_COLUMNS,
    VIDEOS,
    CacheMeta,
)
from vidseq.errors import CacheError
from vidseq.version import __version__


def _text_attr(h5: h5py.File, name: str) -> str:
    value = h5.attrs[name]
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
        if isinstance(value, bytes):
            return value.decode("utf-8")
    return str(value)


def _int_attr(h5: h5py.File, name: str, where: str) -> int:
    value = np.asarray(h5.attrs[name])
    if value.size != 1 or not np.issubdtype(value.dtype, np.integer):
        raise CacheError(f"{where}: root attribute {name!r} must be an integer, found {value!r}")
    return int(value.reshape(-1)[0])


def validate_file(h5: h5py.File, where: str | None = None) -> CacheMeta:
    """Checks that an opened HDF5 file is a vidseq feature cache this code can read.

    Checks ``vidseq_format``, ``schema_version`` (present, not newer than
    :data:`SCHEMA_VERSION`), every required root attribute and dataset, and that
    their shapes agree with each other. Unknown extra datasets are allowed.

    Args:
        h5: The open file.
        where: Name used in messages (defaults to the file's name).

    Returns:
        The file's :class:`CacheMeta`.

    Raises:
        CacheError: One line naming the file and the problem.
    """
    where = where or h5.filename
    _check_format(h5, where)
    features = _check_datasets(h5, where)
    sampling, class_names = _json_attrs(h5, where)
    attrs = h5.attrs
    try:
        return CacheMeta(
            backbone=_text_attr(h5, ATTR_BACKBONE),
            weights=_text_attr(h5, ATTR_WEIGHTS),
            weights_sha256=_text_attr(h5, ATTR_WEIGHTS_SHA256),
            engine=_text_attr(h5, ATTR_ENGINE),
            input_size=tuple(np.asarray(attrs[ATTR_INPUT_SIZE]).reshape(-1)),
            feature_dim=features.shape[1],
            sampling=sampling,
            class_names=class_names,
            dtype=features.dtype.name,
            weights_seed=_int_attr(h5, ATTR_WEIGHTS_SEED, where)
            if ATTR_WEIGHTS_SEED in attrs
            else 0,
            backbone_config=_backbone_config(h5, where),
            precision=_text_attr(h5, ATTR_PRECISION) if ATTR_PRECISION in attrs else "fp32",
            precision_check=json.loads(_text_attr(h5, ATTR_PRECISION_CHECK))
            if ATTR_PRECISION_CHECK in attrs
            else {},
        )
    except ValueError as exc:
        raise CacheError(f"{where}: bad root attributes ({exc})") from exc


def _check_format(h5: h5py.File, where: str) -> None:
    """The format name, a schema version this code reads, and every root attribute."""
    attrs = h5.attrs
    if ATTR_FORMAT not in attrs:
        raise CacheError(
            f"{where}: not a vidseq cache (HDF5 file without the {ATTR_FORMAT!r} attribute)"
        )
    fmt = _text_attr(h5, ATTR_FORMAT)
    if fmt != FORMAT_NAME:
        raise CacheError(
            f"{where}: not a vidseq feature cache ({ATTR_FORMAT}={fmt!r}, expected {FORMAT_NAME!r})"
        )
    if ATTR_SCHEMA_VERSION not in attrs:
        raise CacheError(f"{where}: missing root attribute {ATTR_SCHEMA_VERSION!r}")
    version = _int_attr(h5, ATTR_SCHEMA_VERSION, where)
    if version > SCHEMA_VERSION:
        raise CacheError(
            f"{where}: schema_version {version} is newer than this vidseq "
            f"({__version__}) understands (up to {SCHEMA_VERSION}); upgrade vidseq"
        )
    if version < 1:
        raise CacheError(f"{where}: invalid schema_version {version} (expected 1)")
    for name in ROOT_ATTRIBUTES:
        if name not in attrs:
            raise CacheError(f"{where}: missing root attribute {name!r}")


def _json_attrs(h5: h5py.File, where: str) -> tuple[dict, list]:
    """The ``sampling`` (a JSON object) and ``class_names`` (a JSON list) root attributes."""
    try:
        sampling = json.loads(_text_attr(h5, ATTR_SAMPLING))
        class_names = json.loads(_text_attr(h5, ATTR_CLASS_NAMES))
    except ValueError as exc:
        raise CacheError(f"{where}: root attribute is not valid JSON text ({exc})") from exc
    if not isinstance(sampling, dict):
        raise CacheError(f"{where}: root attribute 'sampling' must be a JSON object")
    if not isinstance(class_names, list):
        raise CacheError(f"{where}: root attribute 'class_names' must be a JSON list")
    return sampling, class_names


def _backbone_config(h5: h5py.File, where: str) -> dict:
    """The optional ``backbone_config`` root attribute (a JSON object), or ``{}``."""
    if ATTR_BACKBONE_CONFIG not in h5.attrs:
        return {}
    try:
        config = json.loads(_text_attr(h5, ATTR_BACKBONE_CONFIG))
    except ValueError as exc:
        raise CacheError(f"{where}: root attribute is not valid JSON text ({exc})") from exc
    if not isinstance(config, dict):
        raise CacheError(f"{where}: root attribute 'backbone_config' must be a JSON object")
    return config


def _check_datasets(h5: h5py.File, where: str) -> h5py.Dataset:
    """Every required dataset, with shapes that agree; returns ``features``."""
    required = [FEATURES, *ROW_DATASETS]
    required += [f"{VIDEOS}/{c}" for c in VIDEO_COLUMNS]
    required += [f"{FAILED}/{c}" for c in FAILED_COLUMNS]
    for name in required:
        if not isinstance(h5.get(name), h5py.Dataset):
            raise CacheError(f"{where}: missing dataset {name!r}")
    features = h5[FEATURES]
    feature_dim = _int_attr(h5, ATTR_FEATURE_DIM, where)
    if features.ndim != 2 or features.shape[1] != feature_dim:
        raise CacheError(
            f"{where}: dataset 'features' has shape {features.shape}, "
            f"expected (F, {feature_dim}) for feature_dim={feature_dim}"
        )
    num_rows = features.shape[0]
    for name in ROW_DATASETS:
        if h5[name].shape != (num_rows,):
            raise CacheError(
                f"{where}: dataset {name!r} has shape {h5[name].shape}, "
                f"expected ({num_rows},) like the rows of 'features'"
            )
    for group, columns in ((VIDEOS, VIDEO_COLUMNS), (FAILED, FAILED_COLUMNS)):
        lengths = {h5[f"{group}/{c}"].shape for c in columns}
        if len(lengths) != 1 or len(next(iter(lengths))) != 1:
            raise CacheError(f"{where}: the datasets of '{group}/' differ in shape: {lengths}")
    return features


def open_cache(path, where: str | None = None) -> tuple[h5py.File, CacheMeta]:
    """Opens a cache read-only and validates it.

    Args:
        path: The cache file.
        where: Name used in messages (defaults to ``path``).

    Returns:
        ``(open h5py.File, CacheMeta)``; the caller closes the file.

    Raises:
        CacheError: Missing file, not HDF5, truncated, or not a valid vidseq cache.
    """
    where = where or str(path)
    try:
        h5 = h5py.File(path, "r")
    except FileNotFoundError as exc:
        raise CacheError(f"{where}: no such cache file") from exc
    except IsADirectoryError as exc:
        raise CacheError(f"{where}: is a directory, expected an HDF5 cache file") from exc
    except OSError as exc:
        reason = str(exc).split("(")[0].strip() or type(exc).__name__
        if "signature not found" in str(exc):
            reason = "not an HDF5 file"
        elif "truncated" in str(exc):
            reason = "truncated HDF5 file (an interrupted copy or write?)"
        raise CacheError(f"{where}: cannot open as a vidseq cache: {reason}") from exc
    try:
        meta = validate_file(h5, where)
    except CacheError:
        h5.close()
        raise
    except (OSError, KeyError, RuntimeError) as exc:
        h5.close()
        raise CacheError(f"{where}: damaged HDF5 file ({exc})") from exc
    return h5, meta


def check_labels(where: str, labels, num_classes: int) -> None:
    """Refuses labels that are neither -1 (no label) nor the index of a class name.

    Raises:
        CacheError: Naming the file and the first bad label.
    """
    labels = np.asarray(labels, dtype=np.int64)
    bad = labels[(labels < -1) | (labels >= num_classes)]
    if len(bad):
        raise CacheError(
            f"{where}: videos/label holds {int(bad[0])}, which is neither -1 (no label) nor "
            f"one of the {num_classes} class indices"
        )
