"""Inspection of a cache (``vidseq inspect``): summaries as dicts and as human text.

Only the columnar index is read for a summary (no feature rows); describing one
video reads its rows. Timings: docs/performance.md (``bench/inspect_speed.py``).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidseq.cache.store import FeatureStore

NO_SPLIT = "(none)"
UNLABELLED = "(unlabelled)"


def _stats(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {"min": 0, "mean": 0.0, "max": 0}
    return {"min": int(values.min()), "mean": float(values.mean()), "max": int(values.max())}


def summarize(path) -> dict[str, Any]:
    """Summarises a cache from its attributes and index (JSON-serialisable).

    Args:
        path: The cache file; or several as one cache: a glob pattern or a list
            (see :class:`~vidseq.cache.store.FeatureStore`).

    Returns:
        A dict with ``path``, ``files`` (the cache files), ``file_size`` (their
        total), ``schema_version``, ``vidseq_version``,
        ``backbone``, ``weights``, ``weights_sha256``, ``engine``, ``precision``,
        ``precision_check`` (agreement with FP32 features; empty for FP32), ``input_size``,
        ``feature_dim``, ``dtype``, ``sampling``, ``backbone_config`` (keras-hub
        backbones; else empty), ``class_names``, ``num_videos``,
        ``num_rows``, ``videos_per_split``, ``videos_per_class``,
        ``frames_per_video`` (real frames: min/mean/max), ``rows_per_video``
        (min/mean/max), ``row_datasets``, ``num_failed`` and ``failed`` (list of
        ``{video_id, path, error}``).

    Raises:
        CacheError: Not a valid cache.
    """
    with FeatureStore(path) as store:
        meta = store.meta
        names = store.class_names
        splits = Counter(s or NO_SPLIT for s in store.splits.tolist())
        labels = Counter(store.labels.tolist())
        per_class = {}
        for label in sorted(labels):
            name = names[label] if 0 <= label < len(names) else UNLABELLED
            per_class[name] = per_class.get(name, 0) + labels[label]
        return {
            "path": str(store.path),
            "files": [str(f) for f in store.files],
            "file_size": sum(os.path.getsize(f) for f in store.files),
            "schema_version": store.schema_version,
            "vidseq_version": store.vidseq_version,
            "backbone": meta.backbone,
            "weights": meta.weights,
            "weights_sha256": meta.weights_sha256,
            "engine": meta.engine,
            "precision": meta.precision,
            "precision_check": meta.precision_check,
            "input_size": list(meta.input_size),
            "feature_dim": meta.feature_dim,
            "dtype": meta.dtype,
            "sampling": meta.sampling,
            "backbone_config": meta.backbone_config,
            "class_names": names,
            "num_videos": len(store),
            "num_rows": store.num_rows,
            "videos_per_split": dict(sorted(splits.items())),
            "videos_per_class": per_class,
            "frames_per_video": _stats(store.num_valid),
            "rows_per_video": _stats(store.lengths),
            "row_datasets": store.row_names,
            "num_failed": len(store.failed),
            "failed": [
                {"video_id": f.video_id, "path": f.path, "error": f.error} for f in store.failed
            ],
        }


def describe_video(path, video_id: str) -> dict[str, Any]:
    """Describes one video of a cache (JSON-serialisable).

    Args:
        path: The cache file, or several as for :func:`summarize`.
        video_id: The video's id.

    Returns:
        A dict with ``cache``, ``file`` (the file holding the video),
        ``video_id``, ``index``, ``path``, ``label``, ``label_name``,
        ``split``, ``group``, ``shape`` ([T, D]), ``dtype``, ``num_valid``,
        ``fps``, ``num_source_frames``, ``frame_indices``, ``timestamps_ms``,
        ``feature_stats`` (min/max/mean/std over all its rows, and over its real
        rows as ``feature_stats_valid``) and ``extras`` (other row datasets, as lists).

    Raises:
        CacheError: Not a valid cache, or no video with this id (named).
    """
    with FeatureStore(path) as store:
        i = store.index_of(video_id)
        features = store.features(i).astype(np.float64)
        label = int(store.labels[i])
        valid = int(store.num_valid[i])
        known = {"features", "frame_indices", "timestamps_ms"}
        return {
            "cache": str(store.path),
            "file": str(store.file_of(i)),
            "video_id": str(store.video_ids[i]),
            "index": i,
            "path": str(store.paths[i]),
            "label": label,
            "label_name": store.class_names[label] if 0 <= label < len(store.class_names) else None,
            "split": str(store.splits[i]),
            "group": str(store.groups[i]),
            "shape": list(features.shape),
            "dtype": store.meta.dtype,
            "num_valid": valid,
            "fps": float(store.fps[i]),
            "num_source_frames": int(store.num_source_frames[i]),
            "frame_indices": store.frame_indices(i).tolist(),
            "timestamps_ms": store.timestamps_ms(i).tolist(),
            "feature_stats": _feature_stats(features),
            "feature_stats_valid": _feature_stats(features[:valid]),
            "extras": {
                name: store.rows(name, i).tolist() for name in store.row_names if name not in known
            },
        }


def _feature_stats(x: np.ndarray) -> dict[str, float] | None:
    if x.size == 0:
        return None
    return {
        "min": float(x.min()),
        "max": float(x.max()),
        "mean": float(x.mean()),
        "std": float(x.std()),
    }


def _size(num_bytes: int) -> str:
    value = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{num_bytes} B"


def _counts(counts: dict[str, int], limit: int = 20) -> list[str]:
    items = list(counts.items())
    lines = [f"    {name}: {n}" for name, n in items[:limit]]
    if len(items) > limit:
        rest = sum(n for _, n in items[limit:])
        lines.append(f"    ... {len(items) - limit} more ({rest} videos)")
    return lines


def format_summary(d: dict[str, Any]) -> str:
    """Human text of a :func:`summarize` dict (long lists are shortened)."""
    sampling = ", ".join(f"{k}={v}" for k, v in d["sampling"].items()) or "(not recorded)"
    frames, rows = d["frames_per_video"], d["rows_per_video"]
    files = d.get("files", [d["path"]])
    where = f"{len(files)} files, " if len(files) > 1 else ""
    lines = [
        f"cache:          {d['path']} ({where}{_size(d['file_size'])})",
        f"format:         schema_version {d['schema_version']}, "
        f"written by vidseq {d['vidseq_version']}",
        f"backbone:       {d['backbone']} ({d['engine']}, {d.get('precision', 'fp32')}), "
        f"input {d['input_size'][0]}x{d['input_size'][1]}",
        f"weights:        {d['weights']} (sha256 {d['weights_sha256']})",
        *_hub_lines(d.get("backbone_config") or {}),
        f"features:       {d['feature_dim']} x {d['dtype']}, {d['num_rows']} rows",
        f"sampling:       {sampling}",
        *([describe_check(d["precision_check"])] if d.get("precision_check") else []),
        f"videos:         {d['num_videos']} in {len(d['class_names'])} classes",
        f"frames/video:   min {frames['min']}, mean {frames['mean']:.1f}, max {frames['max']}"
        f" (rows min {rows['min']}, mean {rows['mean']:.1f}, max {rows['max']})",
        "per split:",
        *_counts(d["videos_per_split"]),
        "per class:",
        *_counts(d["videos_per_class"]),
    ]
    known = ("features", "frame_indices", "timestamps_ms")
    extras = [n for n in d["row_datasets"] if n not in known]
    if extras:
        lines.append(f"extra rows:     {', '.join(extras)}")
    lines.append(f"failed:         {d['num_failed']}")
    for f in d["failed"][:20]:
        lines.append(f"    {f['video_id']}: {f['error']}")
    if d["num_failed"] > 20:
        lines.append(f"    ... {d['num_failed'] - 20} more")
    return "\n".join(lines)


def describe_check(check: dict[str, Any]) -> str:
    """One line on a ``precision_check``: cosine to FP32 features, and top-1 changes if measured."""
    line = (
        f"agreement:      {check.get('precision')} vs {check.get('reference', 'fp32')}: cosine "
        f"mean {check.get('cosine_mean', float('nan')):.4f}, "
        f"1st percentile {check.get('cosine_p01', float('nan')):.4f}, "
        f"min {check.get('cosine_min', float('nan')):.4f} "
        f"({check.get('frames', 0)} frames of {check.get('videos', 0)} held-out videos)"
    )
    if "top1_changed" in check:
        line += (
            f"; top-1 changed for {check['top1_changed']:.3f} of "
            f"{check.get('top1_videos', 0)} videos under {check.get('check_against')}"
        )
    return line


def _short(values: list, limit: int = 32) -> str:
    if len(values) <= limit:
        return ", ".join(_num(v) for v in values)
    return ", ".join(_num(v) for v in values[:limit]) + f", ... ({len(values)} in all)"


def _num(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def format_video(d: dict[str, Any]) -> str:
    """Human text of a :func:`describe_video` dict."""
    label = f"{d['label']} ({d['label_name']})" if d["label_name"] is not None else "unlabelled"
    lines = [
        f"video:          {d['video_id']} (index {d['index']})",
        f"path:           {d['path']}",
        f"label:          {label}",
        f"split / group:  {d['split'] or NO_SPLIT} / {d['group'] or '(none)'}",
        f"features:       {d['shape'][0]} x {d['shape'][1]} {d['dtype']}, "
        f"{d['num_valid']} real frames",
        f"source:         {d['num_source_frames']} frames at {d['fps']:g} fps",
        f"frame indices:  {_short(d['frame_indices'])}",
        f"timestamps ms:  {_short(d['timestamps_ms'])}",
    ]
    for key, title in (("feature_stats", "stats (all)"), ("feature_stats_valid", "stats (real)")):
        s = d[key]
        if s is not None:
            lines.append(
                f"{title + ':':<16}min {s['min']:.4g}, max {s['max']:.4g}, "
                f"mean {s['mean']:.4g}, std {s['std']:.4g}"
            )
    for name, values in d["extras"].items():
        lines.append(f"{name + ':':<16}{_short(values)}")
    return "\n".join(lines)


@dataclass
class CacheReport:
    """What ``vidseq inspect`` says about a cache, or about one video in it.

    Attributes:
        info: The :func:`summarize` dict, or the :func:`describe_video` dict.
        video: The video id described, or None for the whole cache.
    """

    info: dict[str, Any]
    video: str | None = None

    def summary(self) -> str:
        """Human text (long lists shortened)."""
        return format_summary(self.info) if self.video is None else format_video(self.info)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict."""
        return self.info


def inspect_cache(cache, *, video: str | None = None) -> CacheReport:
    """Summarises a cache, or describes one of its videos (``vidseq inspect``).

    Args:
        cache: A cache file, a glob of shard files, or a list of files (read as one).
        video: A video id: describe this video instead of the whole cache.

    Returns:
        The :class:`CacheReport`.
    """
    if video is not None:
        return CacheReport(describe_video(cache, video), video)
    return CacheReport(summarize(cache))


def _hub_lines(config: dict) -> list[str]:
    """What made a keras-hub backbone's features: preset, class, pooling, size."""
    if not config:
        return []
    settings = config.get("config", {})
    shape = ", ".join(
        f"{key}={settings[key]}"
        for key in (
            "num_layers",
            "num_spatial_layers",
            "num_temporal_layers",
            "hidden_dim",
            "patch_size",
            "num_frames",
        )
        if key in settings
    )
    clip = config.get("clip_frames", 1)
    group = f", {clip} frames at a time" if clip > 1 else ""
    return [
        f"preset:         {config.get('preset')}",
        f"hub backbone:   {config.get('class')} ({shape}), pooling {config.get('pooling')}{group}",
    ]
