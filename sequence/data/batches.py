"""Model inputs from a feature cache: in memory or streamed, with seeded sampling.

Two feature sources give the same rows: :class:`MemoryFeatures` loads the
videos it serves once, :class:`StreamFeatures` reads each batch's videos from
the HDF5 file when asked. :class:`SequenceBatches` turns either into batches
for ``keras.Model.fit``; every random choice (order, temporal offsets, shifts)
comes from a NumPy generator seeded by ``(seed, epoch)``, never from the
source, so both sources give bit-identical batches. :class:`CachedClips` is
the cached side of evaluation's clip-source interface (``labels``,
``is_dense``, ``predict``; the frame side is ``frames_data.FrameVideos``).
"""

from __future__ import annotations

import math
import os
import threading

import keras
import numpy as np

from vidseq.errors import CacheError, UsageError
from vidseq.sequence.config import STREAMING_MODES
from vidseq.sequence.data.temporal import gather_clip, temporal_shift


def available_memory_bytes():
    """Memory the system can give without swapping, in bytes.

    Reads ``MemAvailable`` from ``/proc/meminfo``; falls back to
    ``os.sysconf`` (free physical pages), or None when neither exists.
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def feature_bytes(store, indices):
    """Bytes :class:`MemoryFeatures` takes for ``indices`` (padded to the longest video)."""
    indices = np.unique(np.asarray(indices, dtype=np.int64))
    longest = int(np.asarray(store.lengths).max()) if len(store.lengths) else 0
    itemsize = np.dtype(store.meta.dtype).itemsize
    return len(indices) * longest * int(store.meta.feature_dim) * itemsize


def decide_streaming(mode, needed_bytes, available=None, *, fraction=0.5):
    """Whether to stream features from the file instead of holding them.

    Args:
        mode: ``"memory"``, ``"stream"`` or ``"auto"``.
        needed_bytes: Size of the features to hold.
        available: Available memory in bytes (default: measured now).
        fraction: ``auto`` holds features when they take at most this
            fraction of the available memory.

    Returns:
        True to stream, False to hold in memory.
    """
    if mode not in STREAMING_MODES:
        raise UsageError(f"streaming must be one of {STREAMING_MODES}. Received: {mode!r}")
    if mode != "auto":
        return mode == "stream"
    if available is None:
        available = available_memory_bytes()
    if available is None:
        return False
    return needed_bytes > fraction * available


def refuse_non_finite(store, indices, features):
    """Raises CacheError naming the first video whose features hold NaN or infinities.

    Args:
        store: The ``FeatureStore`` the features come from.
        indices: Cache indices of the videos, in the order of ``features``.
        features: ``(len(indices), L, D)`` rows.
    """
    finite = np.isfinite(features).reshape(len(features), -1).all(axis=1)
    if not finite.all():
        video = store.video_ids[int(indices[int(np.flatnonzero(~finite)[0])])]
        raise CacheError(
            f"{store.path}: video {video!r} has NaN or infinite features; extract it again, "
            "or leave it out"
        )


class MemoryFeatures:
    """Holds the cached rows of some videos in memory (in the cache's dtype).

    Args:
        store: An open ``FeatureStore``.
        indices: Cache indices of the videos to hold.
    """

    streaming = False

    def __init__(self, store, indices):
        indices = np.unique(np.asarray(indices, dtype=np.int64))
        self._row = {int(v): r for r, v in enumerate(indices)}
        if len(indices):
            x, _, _ = store.load(indices, dtype=np.dtype(store.meta.dtype))
            refuse_non_finite(store, indices, x)
        else:
            x = np.zeros((0, 0, int(store.meta.feature_dim)), dtype=np.float32)
        self._x = x

    @property
    def nbytes(self):
        """Bytes held."""
        return self._x.nbytes

    def read(self, indices):
        """Returns the (L, D) cached rows of each video in ``indices``."""
        return [self._x[self._row[int(i)]] for i in indices]


class StreamFeatures:
    """Reads each batch's videos from the HDF5 file, only their rows, when asked.

    Nothing is held between batches. Videos are read in file order (one
    contiguous slice each), so a batch costs one small read per video.

    Args:
        store: An open ``FeatureStore``; it must stay open while batches are read.
    """

    streaming = True
    nbytes = 0

    def __init__(self, store):
        self._store = store
        self._offsets = np.asarray(store.offsets)
        self._lock = threading.Lock()

    def read(self, indices):
        """Returns the (L, D) cached rows of each video in ``indices``."""
        indices = [int(i) for i in indices]
        found = {}
        with self._lock:
            for i in sorted(set(indices), key=lambda v: self._offsets[v]):
                found[i] = self._store.features(i)
                refuse_non_finite(self._store, [i], found[i][None])
        return [found[i] for i in indices]


def make_features(store, indices, streaming):
    """A :class:`StreamFeatures` or a :class:`MemoryFeatures` for ``indices``."""
    return StreamFeatures(store) if streaming else MemoryFeatures(store, indices)


class VideoBatches(keras.utils.PyDataset):
    """Batches of videos taken in each epoch's order; the base of the batch sequences.

    A subclass sets ``indices``, ``batch_size``, ``num_classes``,
    ``training``, ``targets`` and ``class_weights``, and defines
    ``set_epoch`` (which sets ``epoch`` and ``_order``, a permutation of the
    positions into ``indices``) and ``batch_of_positions``.
    """

    def on_epoch_end(self):
        """Advances to the next epoch's plan (Keras calls it after each epoch)."""
        self.set_epoch(self.epoch + 1)

    def __len__(self):
        return math.ceil(len(self.indices) / self.batch_size)

    def batch_positions(self, index):
        """Positions (into ``indices``) of the videos of batch ``index``, in batch order."""
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range 0..{len(self) - 1}")
        return self._order[index * self.batch_size : (index + 1) * self.batch_size]

    def __getitem__(self, index):
        return self.batch_of_positions(self.batch_positions(index))

    def with_targets(self, x, all_labels, chosen):
        """The batch tuple of inputs ``x``: ``(x,)``, ``(x, y)`` or ``(x, y, weights)``.

        Args:
            x: The inputs of the batch.
            all_labels: Labels indexed like ``chosen`` (read only when targets are yielded).
            chosen: The videos of the batch, as indices into ``all_labels``.

        Returns:
            ``(x,)`` without targets; ``(x, y)`` (one-hot float32 ``y``) for
            evaluation; ``(x, y, weights)`` for training (float32 sample
            weights: ones, or ``class_weights`` of the labels).
        """
        if not self.targets:
            return (x,)
        labels = all_labels[chosen]
        y = np.zeros((len(chosen), self.num_classes), dtype=np.float32)
        y[np.arange(len(chosen)), labels] = 1.0
        if not self.training:
            return x, y
        weights = (
            np.ones(len(chosen), dtype=np.float32)
            if self.class_weights is None
            else self.class_weights[labels].astype(np.float32)
        )
        return x, y, weights


class SequenceBatches(VideoBatches):
    """Batches of (x, one-hot y[, sample weight]) built from cached features.

    Training batches are shuffled, temporally sampled at random inside each
    segment and optionally shifted; evaluation batches keep the cache order and
    take the row at ``clip_offset`` of each segment. The random choices of
    epoch ``e`` come from ``numpy.random.default_rng([seed, e])``: the same
    seed gives the same batches whatever the source, and a resumed run draws
    what the interrupted one would have.

    Args:
        features: A :class:`MemoryFeatures` or :class:`StreamFeatures`.
        indices: Cache indices of the videos, in cache order.
        labels: (N_cache,) labels of the whole cache.
        num_valid: (N_cache,) valid rows of every cached video.
        num_classes: Width of the one-hot targets.
        frames: Rows sampled per video (None: all valid rows).
        length: T, rows of each model input.
        batch_size: Videos per batch.
        training: Shuffle, random offsets, shifts and sample weights.
        seed: Seed of every random choice.
        temporal_shift: Largest absolute shift (frames) drawn per video.
        class_weights: Optional (num_classes,) weights, training only.
        epoch: Epoch whose plan the first batches use (resume).
        clip_offset: In-segment offset of evaluation samples.
        targets: Yield targets; False yields inputs only.
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size``.
    """

    def __init__(
        self,
        features,
        indices,
        labels,
        num_valid,
        num_classes,
        *,
        frames,
        length,
        batch_size,
        training=False,
        seed=0,
        temporal_shift=0,
        class_weights=None,
        epoch=0,
        clip_offset=0.5,
        targets=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.features = features
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.num_valid = np.asarray(num_valid, dtype=np.int64)
        self.num_classes = int(num_classes)
        self.frames = frames
        self.length = int(length)
        self.batch_size = int(batch_size)
        self.training = bool(training)
        self.seed = int(seed)
        self.temporal_shift = int(temporal_shift)
        self.class_weights = None if class_weights is None else np.asarray(class_weights)
        self.clip_offset = clip_offset
        self.targets = targets
        if len(self.indices) == 0:
            raise UsageError("no video to make batches of")
        self.set_epoch(epoch)

    def plan(self, epoch):
        """The random choices of one epoch.

        Returns:
            ``(order, fractions, shifts)``: a permutation of the videos, their
            (N, frames) in-segment offsets (or None) and their shifts (or None).
        """
        n = len(self.indices)
        if not self.training:
            return np.arange(n), None, None
        rng = np.random.default_rng([self.seed, int(epoch)])
        order = rng.permutation(n)
        fractions = rng.random((n, self.frames)) if self.frames else None
        shifts = None
        if self.temporal_shift:
            s = self.temporal_shift
            shifts = rng.integers(-s, s + 1, size=n)
        return order, fractions, shifts

    def set_epoch(self, epoch):
        """Makes the next batches those of ``epoch``."""
        self.epoch = int(epoch)
        self._order, self._fractions, self._shifts = self.plan(self.epoch)

    def batch_of_positions(self, positions):
        """The batch of the videos at ``positions`` (a part of a batch, for one replica)."""
        videos = self.indices[positions]
        rows = self.features.read(videos)
        x = np.zeros((len(videos), self.length, rows[0].shape[-1]), dtype=np.float32)
        for j, (pos, video, feats) in enumerate(zip(positions, videos, rows, strict=True)):
            offsets = self.clip_offset if self._fractions is None else self._fractions[pos]
            clip, valid = gather_clip(
                feats, self.num_valid[video], self.frames, offsets, length=self.length
            )
            if self._shifts is not None:
                clip = temporal_shift(clip, valid, self._shifts[pos])
            x[j] = clip
        return self.with_targets(x, self.labels, videos)


def mean_valid_features(features, indices, num_valid, batch_size=256):
    """Mean of each video's valid cached rows (the bag-of-frames input).

    Args:
        features: A :class:`MemoryFeatures` or :class:`StreamFeatures`.
        indices: Cache indices of the videos.
        num_valid: (N_cache,) valid rows of every cached video.
        batch_size: Videos read at a time.

    Returns:
        A (len(indices), D) float64 array.
    """
    indices = np.asarray(indices, dtype=np.int64)
    out = None  # filled in place: no list of N rows stacked into a second copy at the end
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        for j, (video, feats) in enumerate(zip(chunk, features.read(chunk), strict=True)):
            if out is None:
                out = np.empty((len(indices), feats.shape[-1]), dtype=np.float64)
            valid = max(int(num_valid[video]), 1)
            out[start + j] = np.asarray(feats[:valid], dtype=np.float64).mean(axis=0)
    return out if out is not None else np.zeros((0, 0))


def predict_fixed_batch(model, x, batch_size):
    """``model.predict_on_batch(x)`` with ``x`` zero-padded to ``batch_size`` rows.

    Every call then has the same input shape, so Keras traces its predict step
    once, whatever the number of videos (a smaller last batch would trace it
    again, and a few such calls make TensorFlow warn about retracing). Padding
    rows are all-zero inputs, which the model masks; their outputs are dropped.

    Args:
        model: A Keras model.
        x: Up to ``batch_size`` inputs.
        batch_size: The constant batch dimension.

    Returns:
        The (len(x), ...) outputs as a NumPy array.
    """
    x = np.asarray(x)
    if len(x) > batch_size:
        raise ValueError(f"x holds {len(x)} inputs, more than batch_size={batch_size}")
    padded = np.zeros((int(batch_size), *x.shape[1:]), dtype=x.dtype)
    padded[: len(x)] = x
    return np.asarray(model.predict_on_batch(padded))[: len(x)]


def predict_probabilities(model, batches):
    """Class probabilities of every video of an evaluation :class:`SequenceBatches`.

    Args:
        model: A Keras model.
        batches: Non-training batches (``targets`` may be either).

    Returns:
        A (N, num_classes) float64 array, in the batches' video order.
    """
    out = [
        predict_fixed_batch(model, batches[i][0], batches.batch_size) for i in range(len(batches))
    ]
    return np.concatenate(out).astype(np.float64)


class CachedClips:
    """Cached videos as an evaluation clip source (see ``evaluation.evaluate_clips``).

    Args:
        features: A :class:`MemoryFeatures` or :class:`StreamFeatures`.
        labels: (N_cache,) labels of the whole cache.
        num_valid: (N_cache,) valid rows of every cached video.
        num_classes: Width of the model's output.
        video_ids: (N_cache,) ids of the cache's videos, or None.
    """

    def __init__(self, features, labels, num_valid, num_classes, video_ids=None):
        self.features = features
        self.labels = np.asarray(labels, dtype=np.int64)
        self.num_valid = np.asarray(num_valid, dtype=np.int64)
        self.num_classes = int(num_classes)
        self.video_ids = video_ids

    @classmethod
    def from_store(cls, store, features):
        """The clip source of an open ``FeatureStore`` read through ``features``."""
        return cls(features, store.labels, store.num_valid, len(store.class_names), store.video_ids)

    def is_dense(self, indices, frames):
        """Whether some of these videos have more cached real rows than ``frames``."""
        return bool((self.num_valid[np.asarray(indices, dtype=np.int64)] > frames).any())

    def predict(self, model, indices, *, frames, batch_size, offset=0.5):
        """Class probabilities of the sample at ``offset`` of each video, in ``indices`` order."""
        batches = SequenceBatches(
            self.features,
            indices,
            self.labels,
            self.num_valid,
            self.num_classes,
            frames=frames,
            length=frames,
            batch_size=batch_size,
            clip_offset=offset,
            targets=False,
        )
        return predict_probabilities(model, batches)
