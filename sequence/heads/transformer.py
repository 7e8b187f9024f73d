"""``transformer``: a small pre-norm temporal Transformer encoder, masked mean+max pooled."""

from __future__ import annotations

import keras

from vidseq.sequence.heads.layers import (
    MaskedMeanMaxPooling,
    SinusoidalPosition,
    check_positive,
    check_rate,
    gelu,
)


def transformer(
    x,
    mask,
    *,
    units=128,
    layers=1,
    num_heads=4,
    ff_multiplier=2,
    dropout=0.1,
    name="transformer",
):
    """Self-attention over the frames (Vaswani et al. 2017), as in Video Transformer heads.

    The frames are projected to ``units`` and get a sinusoidal position code
    (no maximum length). Each of the ``layers`` pre-norm blocks is multi-head
    self-attention and a GELU feed-forward network, both residual. Attention
    uses a key-padding mask: no frame attends to a padding frame, so a valid
    frame's output does not depend on how the clip is padded. The valid frames
    are then pooled by their masked mean and maximum.

    Args:
        x: (batch, T, D) frame features, padding rows zero.
        mask: (batch, T) bool, True for real frames (or None: all real).
        units: Model width (a multiple of ``num_heads`` is best).
        layers: Encoder blocks.
        num_heads: Attention heads; each has ``units // num_heads`` dimensions.
        ff_multiplier: Hidden size of the feed-forward network, in ``units``.
        dropout: Dropout rate on attention weights and on each residual branch.
        name: Prefix of the layer names.

    Returns:
        The (batch, 2 * units) clip representation.
    """
    for key, value in (
        ("units", units),
        ("layers", layers),
        ("num_heads", num_heads),
        ("ff_multiplier", ff_multiplier),
    ):
        check_positive(key, value)
    rate = check_rate("dropout", dropout)

    h = keras.layers.Dense(units, name=f"{name}_project")(x)
    h = SinusoidalPosition(name=f"{name}_position")(h)
    for i in range(layers):
        a = keras.layers.LayerNormalization(name=f"{name}_norm_attn_{i}")(h)
        a = keras.layers.MultiHeadAttention(
            num_heads, max(1, units // num_heads), dropout=rate, name=f"{name}_attn_{i}"
        )(a, a, value_mask=mask)
        a = keras.layers.Dropout(rate, name=f"{name}_drop_attn_{i}")(a)
        h = keras.layers.Add(name=f"{name}_res_attn_{i}")([h, a])
        f = keras.layers.LayerNormalization(name=f"{name}_norm_ff_{i}")(h)
        f = keras.layers.Dense(units * ff_multiplier, activation=gelu, name=f"{name}_ff_{i}")(f)
        f = keras.layers.Dense(units, name=f"{name}_ff_out_{i}")(f)
        f = keras.layers.Dropout(rate, name=f"{name}_drop_ff_{i}")(f)
        h = keras.layers.Add(name=f"{name}_res_ff_{i}")([h, f])
    h = keras.layers.LayerNormalization(name=f"{name}_norm_out")(h)
    return MaskedMeanMaxPooling(name=f"{name}_mean_max")([h, mask])
