"""The weight a head gives each frame, where the head exposes one.

* A head that pools its frames with
  :class:`~vidseq.sequence.heads.layers.MaskedSoftmaxPooling` (``attention``):
  the pooling weights, summing to 1 over the real frames.
* A head with self-attention (``transformer``): the attention each frame
  receives in the last block, averaged over the heads and over the real query
  frames (so also summing to 1 over the real frames). It says where the last
  block looks, not how the mean+max pooling after it weighs the frames.

Other heads (``lstm``, ``gru``, ``tcn``, ``pool``) have none, and the page
shows none. Weights are computed for feature runs whose cached rows are
exactly the rows the model reads (the cache's frames equal the run's
``frames``), so they belong to the frames of the filmstrip.
"""

from __future__ import annotations

import numpy as np


def pooling_layer(model):
    """The model's :class:`MaskedSoftmaxPooling` layer, or None."""
    # Keras, only when a model is at hand: the report's modules import without TensorFlow.
    from vidseq.sequence.heads.layers import MaskedSoftmaxPooling

    return next((layer for layer in model.layers if isinstance(layer, MaskedSoftmaxPooling)), None)


def self_attention_layer(model):
    """The model's last ``keras.layers.MultiHeadAttention`` layer, or None."""
    import keras

    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.MultiHeadAttention)]
    return layers[-1] if layers else None


def attention_received(scores, mask):
    """(B, T) attention each key frame receives: ``scores`` (B, heads, T, T) averaged over
    the heads and the real query frames of ``mask`` (B, T)."""
    mean = np.asarray(scores, dtype=np.float64).mean(axis=1)  # (B, Tq, Tk)
    queries = np.asarray(mask, dtype=np.float64)[:, :, None]
    total = np.maximum(queries.sum(axis=1), 1.0)  # (B, 1)
    return (mean * queries).sum(axis=1) / total * np.asarray(mask, dtype=np.float64)


def masked_softmax(scores, mask):
    """Softmax of ``scores`` (B, T) over the True entries of ``mask``; 0 elsewhere."""
    scores = np.where(mask, scores, -np.inf)
    top = np.max(np.where(mask.any(axis=1, keepdims=True), scores, 0.0), axis=1, keepdims=True)
    exp = np.where(mask, np.exp(scores - top), 0.0)
    total = exp.sum(axis=1, keepdims=True)
    return np.divide(exp, total, out=np.zeros_like(exp), where=total > 0)


def frame_weights(model, features):
    """Per-frame pooling weights of a feature model, or None when its head has none.

    Args:
        model: The run's Keras model (features in).
        features: (B, T, D) float32 features as the model reads them (padding rows zero).

    Returns:
        (B, T) weights (each row sums to 1 over the real frames), or None.
    """
    import keras

    features = np.asarray(features, dtype=np.float32)
    layer = pooling_layer(model)
    if layer is not None:
        _, scores, mask = layer.input
        scores, mask = keras.Model(model.input, [scores, mask])(features, training=False)
        scores = keras.ops.convert_to_numpy(scores)[..., 0]
        return masked_softmax(scores, keras.ops.convert_to_numpy(mask).astype(bool))
    layer = self_attention_layer(model)
    if layer is None:
        return None
    query, value, mask = layer.input
    query, value, mask = keras.Model(model.input, [query, value, mask])(features, training=False)
    _, scores = layer(query, value, value_mask=mask, return_attention_scores=True, training=False)
    mask = keras.ops.convert_to_numpy(mask).astype(bool)
    return attention_received(keras.ops.convert_to_numpy(scores), mask)


def cached_frame_weights(model, store, indices, frames):
    """Per-frame weights of some cached videos, or None (no weights, or rows ≠ frames).

    Args:
        model: The run's Keras model.
        store: The open ``FeatureStore`` the run was trained on.
        indices: Cache indices of the videos.
        frames: T, the rows the model reads.

    Returns:
        A list of per-video weight lists (real frames only), or None.
    """
    if not len(indices) or (pooling_layer(model) or self_attention_layer(model)) is None:
        return None
    if any(int(store.lengths[i]) != int(frames) for i in indices):
        return None
    batch = np.stack([store.features(i, dtype=np.float32) for i in indices])
    for row, i in enumerate(indices):
        batch[row, int(store.num_valid[i]) :] = 0.0  # padding rows are zero, as in training
    weights = frame_weights(model, batch)
    return [w[: int(store.num_valid[i])].tolist() for w, i in zip(weights, indices, strict=True)]
