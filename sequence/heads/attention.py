"""``attention``: masked gated-attention pooling (attention-MIL, Ilse et al. 2018)."""

from __future__ import annotations

import keras

from vidseq.sequence.heads.layers import (
    MaskedSoftmaxPooling,
    SinusoidalPosition,
    check_positive,
)


def attention(x, mask, *, units=128, attention_units=64, positional=True, name="attention"):
    """Pools the frames with learned weights: ``z = sum_t a_t h_t``.

    Each frame is embedded, ``h_t = relu(W x_t)``; its weight is the gated
    attention of Ilse et al. (2018), ``a_t = softmax_t(w^T (tanh(V h_t) *
    sigmoid(U h_t)))``, taken over the valid frames only (padding gets exactly
    zero weight). Attention pooling alone is order-blind; with ``positional``
    the embedding gets a sinusoidal position code first, so the head can weigh
    and read frames by their place in the clip.

    Args:
        x: (batch, T, D) frame features, padding rows zero.
        mask: (batch, T) bool, True for real frames (or None: all real).
        units: Size of the frame embedding (and of the output).
        attention_units: Size of the gated attention's hidden layer.
        positional: Add the position code to the frame embedding.
        name: Prefix of the layer names.

    Returns:
        The (batch, units) clip representation.
    """
    check_positive("units", units)
    check_positive("attention_units", attention_units)
    h = keras.layers.Dense(units, name=f"{name}_embed")(x)
    if positional:
        h = SinusoidalPosition(name=f"{name}_position")(h)
    h = keras.layers.Activation("relu", name=f"{name}_relu")(h)
    value = keras.layers.Dense(attention_units, activation="tanh", name=f"{name}_tanh")(h)
    gate = keras.layers.Dense(attention_units, activation="sigmoid", name=f"{name}_gate")(h)
    gated = keras.layers.Multiply(name=f"{name}_gated")([value, gate])
    scores = keras.layers.Dense(1, name=f"{name}_scores")(gated)
    return MaskedSoftmaxPooling(name=f"{name}_pooling")([h, scores, mask])
