"""The page of windowed predictions (``predict --window ... --report FILE``): a timeline per video.

It reads the windowed result's ``to_dict()`` (this package does not import
inference) and decodes one thumbnail per segment: the middle frame of the
segment's middle window.
"""

from __future__ import annotations

import cv2
import numpy as np

from vidseq.errors import SourceReadError, UsageError
from vidseq.extract.decode.frames import FrameGeometry, read_frames
from vidseq.extract.decode.sampling import SamplingConfig
from vidseq.sequence.report.filmstrip import THUMB_HEIGHT, jpeg_data_uri
from vidseq.sequence.report.pages import render

THUMB = (THUMB_HEIGHT, round(THUMB_HEIGHT * 4 / 3))
"""``(height, width)`` of the box of a segment's thumbnail (the image keeps its aspect)."""


def segment_frame(segment, windows):
    """The source frame index that stands for a segment: its middle window's middle frame."""
    inside = [
        w
        for w in windows
        if w["start"] >= segment["start"] - 1e-9 and w["end"] <= segment["end"] + 1e-9
    ]
    chosen = inside or windows
    window = chosen[len(chosen) // 2]
    indices = window["frame_indices"]
    return int(indices[len(indices) // 2])


def segment_thumbnails(path, frame_indices):
    """``{frame index: data URI}`` of some frames of a video; {} when it cannot be read."""
    wanted = sorted(set(frame_indices))
    try:
        sampled = read_frames(path, SamplingConfig(), FrameGeometry(), frame_indices=wanted)
    except (SourceReadError, UsageError, OSError):
        return {}
    out = {}
    for index, frame in zip(wanted, sampled.frames, strict=False):
        height, width = frame.shape[:2]
        scale = min(THUMB[0] / height, THUMB[1] / width, 1.0)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        out[index] = jpeg_data_uri(
            cv2.resize(np.ascontiguousarray(frame), size, interpolation=cv2.INTER_AREA)
        )
    return out


def timeline_video(video):
    """The template's dict of one video of the windowed result."""
    windows, segments = video.get("windows", []), video.get("segments", [])
    out = {"path": video["path"], "error": video.get("error"), "windows": len(windows)}
    out["window_rows"] = windows
    if not windows:
        out["segments"] = []
        return out
    frames = [segment_frame(s, windows) for s in segments]
    thumbs = segment_thumbnails(video["path"], frames)
    out["segments"] = [{**s, "src": thumbs.get(f)} for s, f in zip(segments, frames, strict=True)]
    return out


def timeline_page(windowed, *, run_dir=""):
    """The HTML of a windowed prediction's page, and its warnings.

    Args:
        windowed: ``WindowedPrediction.to_dict()``.
        run_dir: The run that predicted (for the subtitle).

    Returns:
        ``(html, warnings, facts)``.
    """
    videos = [timeline_video(v) for v in windowed["videos"]]
    warnings = [f"{v['path']}: {v['error']}" for v in videos if v["error"]]
    unthumbed = sum(1 for v in videos for s in v["segments"] if not s["src"])
    if unthumbed:
        warnings.append(f"{unthumbed} segment thumbnails could not be decoded")
    html = render(
        "timeline.html",
        title="Windowed predictions",
        subtitle=f"run {run_dir} · {len(videos)} video(s)",
        warnings=warnings,
        videos=videos,
    )
    return (
        html,
        warnings,
        {"videos": len(videos), "segments": sum(len(v["segments"]) for v in videos)},
    )
