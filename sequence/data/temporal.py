"""Temporal sampling and augmentation on cached feature sequences (pure NumPy).

A cached video is a (L, D) array whose first ``num_valid`` rows are real frames
(the rest is padding). The sequence model reads ``frames`` rows: when the cache
holds more valid rows than that, the rows are split into ``frames`` equal
segments (TSN) and one row is taken from each segment: a random one per epoch
for training, the centre one for evaluation, and several evenly offset ones for
multi-clip evaluation. Rows after the valid part are always zero (the model's
``Masking`` layer skips them).
"""

from __future__ import annotations

import numpy as np

from vidseq.errors import UsageError


def segment_positions(num_valid, frames, offsets=0.5):
    """Row positions of a TSN-style temporal sample.

    Args:
        num_valid: Number of real (leading) rows the video has in the cache.
        frames: Number of rows wanted, or None for all valid rows.
        offsets: Where to take the row inside each segment, as a fraction in
            [0, 1): a scalar (0.5 = centre, evaluation) or an array of
            ``frames`` fractions (random per segment, training).

    Returns:
        An int64 array of positions, strictly inside ``[0, num_valid)``, of
        length ``min(frames, num_valid)``: when the video has no more valid
        rows than wanted, every valid row is taken once, in order.
    """
    num_valid = int(num_valid)
    if frames is None or num_valid <= frames:
        return np.arange(num_valid, dtype=np.int64)
    segment = num_valid / frames
    fractions = np.broadcast_to(np.asarray(offsets, dtype=np.float64), (frames,))
    positions = np.floor((np.arange(frames) + fractions) * segment).astype(np.int64)
    return np.clip(positions, 0, num_valid - 1)


def clip_offsets(num_clips):
    """Evenly spread in-segment offsets for multi-clip evaluation.

    Args:
        num_clips: How many temporal samples to take (1 gives the centre).

    Returns:
        A list of ``num_clips`` fractions ``(c + 0.5) / num_clips``.
    """
    if int(num_clips) < 1:
        raise UsageError(f"num_clips must be at least 1. Received: num_clips={num_clips!r}")
    return [(c + 0.5) / num_clips for c in range(int(num_clips))]


def temporal_shift(x, num_valid, shift):
    """Rolls the valid rows of one sequence by ``shift`` frames (a copy).

    Row ``t`` of the result is row ``(t - shift) mod num_valid`` of the input,
    inside the valid part only: a positive shift moves content later in time, a
    negative shift earlier; padding rows stay where they are.

    Args:
        x: (T, D) array.
        num_valid: Number of leading real rows.
        shift: Signed number of frames.

    Returns:
        A new (T, D) array.
    """
    out = np.array(x, copy=True)
    num_valid = int(num_valid)
    if num_valid > 1 and shift % num_valid:
        out[:num_valid] = np.roll(out[:num_valid], int(shift), axis=0)
    return out


def gather_clip(features, num_valid, frames, offsets=0.5, *, length=None):
    """Builds one model input from a cached video.

    Args:
        features: (L, D) cached rows of one video (padding rows may hold
            anything: they are never read).
        num_valid: Number of leading real rows.
        frames: Rows wanted (None: all valid rows).
        offsets: In-segment offset(s), see :func:`segment_positions`.
        length: Rows of the output (default ``frames``, or ``num_valid`` when
            ``frames`` is None); rows after the valid part are zero.

    Returns:
        ``(x, valid)``: a (length, D) float32 array and its number of real rows.
    """
    positions = segment_positions(num_valid, frames, offsets)
    if length is None:
        length = frames if frames is not None else len(positions)
    if len(positions) > length:
        raise UsageError(
            f"a video has {len(positions)} valid rows but the model reads {length}. "
            "Received more frames than the sequence length."
        )
    out = np.zeros((length, features.shape[-1]), dtype=np.float32)
    out[: len(positions)] = features[positions]
    return out, len(positions)


def prepare_clip(features, num_valid, frames):
    """The centre sample of one video as the trained model expects it.

    For prediction: the features of a freshly extracted video become a
    (frames, D) float32 array, padded rows zeroed. Use ``config["frames"]`` of
    the run directory as ``frames``.

    Args:
        features: (L, D) array of one video's feature rows.
        num_valid: Number of leading real rows.
        frames: The run's sequence length.

    Returns:
        A (frames, D) float32 array.
    """
    x, _ = gather_clip(np.asarray(features), num_valid, frames, 0.5, length=frames)
    return x
