"""Feature scaling inside the model: a ``Normalization`` adapted on valid frames.

Two modes (:data:`SCALING_MODES`; ``"none"``, the third setting, puts no layer):

* ``"rms"`` (the default): every feature divided by one number, the root mean
  square of all features over the training frames (``sqrt(mean_d E[x_d^2])``).
  The features come to unit scale whatever the backbone, and keep their means
  and their sizes relative to each other: a near-dead CNN channel stays small.
* ``"standardize"``: every feature centred and divided by its own standard
  deviation (unit variance each); near-dead channels come up to the scale of
  the others (docs/results.md, the default recipe, says when that hurts).

The statistics are those of the training split's real (unpadded) frames,
computed in float64 in one pass over the cache, one batch of videos at a time:
memory is bounded by a batch, not by the split. They are stored as the layer's
``mean`` and ``variance`` weights (for ``"rms"``: mean 0 and the same variance
for every feature), so they travel in ``model.keras`` and load with
``safe_mode=True`` (``keras.layers.Normalization`` is built in).
"""

from __future__ import annotations

import keras
import numpy as np

# Features whose variance is at most this are left unscaled (only centred), as
# scikit-learn's StandardScaler does: dead CNN channels must not become noise.
MIN_VARIANCE = 1e-12
SCALING_MODES = ("rms", "standardize")
"""The modes that put a ``Normalization`` layer in the model (``"none"`` puts none)."""


def check_mode(mode):
    """Raises ValueError unless ``mode`` is one of :data:`SCALING_MODES`."""
    if mode not in SCALING_MODES:
        raise ValueError(f"mode must be one of {SCALING_MODES}. Received: mode={mode!r}")


class Moments:
    """Running count, mean and sum of squared deviations (Chan et al.'s merge), float64."""

    def __init__(self, dim):
        self.count = 0
        self.mean = np.zeros(dim, np.float64)
        self.m2 = np.zeros(dim, np.float64)

    def add(self, rows):
        """Merges the (n, D) ``rows`` into the running moments."""
        rows = np.asarray(rows, dtype=np.float64)
        n = len(rows)
        if n == 0:
            return
        mean = rows.mean(axis=0)
        m2 = ((rows - mean) ** 2).sum(axis=0)
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * (n / total)
        self.m2 += m2 + delta**2 * (self.count * n / total)
        self.count = total

    @property
    def variance(self):
        """Population variance (ddof=0), as ``Normalization.adapt`` computes it."""
        return self.m2 / max(self.count, 1)


def valid_frame_moments(store, indices, *, batch_videos=64):
    """Mean and variance of every feature over the valid frames of some videos.

    Args:
        store: An open :class:`~vidseq.cache.store.FeatureStore`.
        indices: The videos (e.g. the training split's indices).
        batch_videos: Videos read and reduced at a time; bounds the memory.

    Returns:
        ``(mean, variance, count)``: (D,) float64 arrays and the number of frames.

    Raises:
        ValueError: ``batch_videos`` < 1, or the videos hold no valid frame.
    """
    if isinstance(batch_videos, bool) or not isinstance(batch_videos, int) or batch_videos < 1:
        raise ValueError(
            f"batch_videos must be an integer >= 1. Received: batch_videos={batch_videos!r}"
        )
    moments = Moments(store.meta.feature_dim)
    indices = store.select(indices)
    for start in range(0, len(indices), batch_videos):
        chunk = indices[start : start + batch_videos]
        rows = [x[: int(store.num_valid[i])] for i, x in store.iter_videos(chunk)]
        moments.add(np.concatenate(rows) if rows else np.zeros((0, store.meta.feature_dim)))
    if moments.count == 0:
        raise ValueError(
            f"cannot standardise features: the {len(indices)} videos given hold no valid frame"
        )
    return moments.mean, moments.variance, moments.count


def scaling_statistics(mean, variance, mode):
    """The ``(mean, variance)`` a ``Normalization`` layer applies in ``mode``.

    Args:
        mean: (D,) per-feature mean of the training frames.
        variance: (D,) per-feature variance (ddof=0) of the same frames.
        mode: ``"rms"``: mean 0 and, for every feature, the mean over the
            features of ``E[x^2] = variance + mean^2`` (one scale for all);
            ``"standardize"``: the per-feature statistics as given.

    Returns:
        Two (D,) float64 arrays. A variance that is (numerically) zero becomes
        1: a dead feature is centred (``"standardize"``), never blown up.

    Raises:
        ValueError: An unknown ``mode``.
    """
    mean = np.asarray(mean, dtype=np.float64)
    variance = np.asarray(variance, dtype=np.float64)
    check_mode(mode)
    if mode == "rms":
        variance = np.full_like(variance, np.mean(variance + mean**2))
        mean = np.zeros_like(mean)
    return mean, np.where(variance > MIN_VARIANCE, variance, 1.0)


def adapt_normalization(layer, store, indices, *, mode="rms", batch_videos=64):
    """Adapts a ``keras.layers.Normalization`` on the valid frames of some videos.

    The layer must be made without ``mean``/``variance`` (its statistics are
    weights then, saved in ``model.keras``); it is built for
    ``(None, None, D)`` inputs if it is not built yet.

    Args:
        layer: A ``keras.layers.Normalization(axis=-1)``.
        store: An open :class:`~vidseq.cache.store.FeatureStore`.
        indices: The videos to adapt on (the training split, never the test).
        mode: ``"rms"`` or ``"standardize"`` (see :func:`scaling_statistics`).
        batch_videos: Videos read at a time (see :func:`valid_frame_moments`).

    Returns:
        The layer, adapted.
    """
    if not isinstance(layer, keras.layers.Normalization) or layer.input_mean is not None:
        raise ValueError(
            "layer must be a keras.layers.Normalization made without mean/variance. "
            f"Received: layer={layer!r}"
        )
    check_mode(mode)  # before the pass over the cache
    mean, variance, _ = valid_frame_moments(store, indices, batch_videos=batch_videos)
    mean, variance = scaling_statistics(mean, variance, mode)
    if not layer.built:
        layer.build((None, None, store.meta.feature_dim))
    layer.adapt_mean.assign(mean.astype(np.float32))
    layer.adapt_variance.assign(variance.astype(np.float32))
    layer.finalize_state()
    return layer


def feature_normalization(
    store, indices, *, mode="rms", batch_videos=64, name="feature_normalization"
):
    """A new ``Normalization`` layer adapted on the valid frames of ``indices``.

    Args: as :func:`adapt_normalization`, plus the layer ``name``.

    Returns:
        The adapted ``keras.layers.Normalization``.
    """
    layer = keras.layers.Normalization(axis=-1, name=name)
    return adapt_normalization(layer, store, indices, mode=mode, batch_videos=batch_videos)
