"""Filmstrips: the exact frames a model saw, decoded again at the cache's frame indices.

Each frame is read with the cache's own ``FrameSpec`` (crop mode and face crop)
at a small size of the same aspect as the CNN's input, and encoded as a JPEG
data URI. Size budget: thumbnails at most :data:`THUMB_HEIGHT` pixels high,
JPEG quality :data:`JPEG_QUALITY`; about 1 to 3 kB a frame, so 50 videos of 16
frames stay under 5 MB of page (``tests/sequence/test_report.py`` checks it).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import cv2
import numpy as np

from vidseq.errors import SourceReadError, UsageError
from vidseq.extract.decode.frames import read_frames
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.sources.items import source_from_text

THUMB_HEIGHT = 80
"""Height in pixels of a filmstrip thumbnail."""

JPEG_QUALITY = 70
"""JPEG quality of the thumbnails (OpenCV's 0-100 scale)."""


@dataclass
class Filmstrip:
    """The frames of one video as the page shows them.

    Attributes:
        path: The video's source, as the cache lists it.
        frames: One ``{"src": data URI, "index": frame index, "ms": timestamp}``
            per real (not padding) frame, in order.
        face_found: Per frame, whether a face was found (face-crop runs), or None.
        missing: Why the frames could not be read (the video moved or is
            unreadable), or None.
    """

    path: str
    frames: list = field(default_factory=list)
    face_found: list | None = None
    missing: str | None = None


def thumb_size(input_size, height=THUMB_HEIGHT):
    """``(height, width)`` of a thumbnail: the CNN input's aspect, at most ``height`` high."""
    h, w = (int(v) for v in input_size)
    scale = min(1.0, height / h)
    return max(1, round(h * scale)), max(1, round(w * scale))


def display_size(size, minimum=64):
    """``(height, width)`` a thumbnail is shown at: ``size``, enlarged to ``minimum`` high."""
    h, w = size
    scale = max(1.0, minimum / h)
    return round(h * scale), round(w * scale)


def jpeg_data_uri(rgb, quality=JPEG_QUALITY):
    """A uint8 RGB image as a ``data:image/jpeg;base64,...`` URI."""
    ok, encoded = cv2.imencode(
        ".jpg",
        cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
        [cv2.IMWRITE_JPEG_QUALITY, int(quality)],
    )
    if not ok:
        raise UsageError(f"cannot encode a JPEG thumbnail of shape {np.shape(rgb)}")
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def read_filmstrip(source_text, frame_indices, timestamps_ms, num_valid, frame_spec, size):
    """The filmstrip of one cached video.

    Args:
        source_text: The cache's ``path`` of the video.
        frame_indices: The cache's frame indices of the video (padding included).
        timestamps_ms: The cache's timestamps of those rows.
        num_valid: How many leading rows are real frames.
        frame_spec: The cache's :class:`FrameSpec`.
        size: ``(height, width)`` of the thumbnails.

    Returns:
        A :class:`Filmstrip`; ``missing`` says why when the source cannot be read.
    """
    num_valid = max(1, int(num_valid))
    indices = np.asarray(frame_indices, dtype=np.int64)[:num_valid]
    strip = Filmstrip(path=str(source_text))
    try:
        sampled = read_frames(
            source_from_text(source_text),
            frame_spec.sampling,
            frame_spec.geometry(size),
            frame_indices=indices,
        )
    except (SourceReadError, UsageError, OSError) as e:
        strip.missing = str(e).splitlines()[0] if str(e) else type(e).__name__
        return strip
    times = np.asarray(timestamps_ms, dtype=np.float64)[:num_valid]
    strip.frames = [
        {"src": jpeg_data_uri(frame), "index": int(index), "ms": float(ms)}
        for frame, index, ms in zip(sampled.frames[:num_valid], indices, times, strict=True)
    ]
    if sampled.face_found is not None:
        strip.face_found = [bool(v) for v in sampled.face_found[:num_valid]]
    return strip


def read_filmstrips(store, indices, input_size):
    """The filmstrips of some videos of an open ``FeatureStore``, in ``indices`` order."""
    spec = FrameSpec.from_dict(dict(store.meta.sampling))
    size = thumb_size(input_size)
    return [
        read_filmstrip(
            store.paths[i],
            store.frame_indices(i),
            store.timestamps_ms(i),
            store.num_valid[i],
            spec,
            size,
        )
        for i in indices
    ]
