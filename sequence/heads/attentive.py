"""``attentive``: the attentive probe, a learned query cross-attending over the frames.

The probe that frozen video encoders are evaluated with (V-JEPA, VideoGLUE):
one learned query token reads the frame features by cross-attention, so the
head learns what to look for across the clip rather than averaging it.
"""

from __future__ import annotations

import keras

from vidseq.sequence.heads.layers import (
    LearnedPosition,
    LearnedQuery,
    check_positive,
    check_rate,
    gelu,
)


def attentive(x, mask, *, units=128, num_heads=4, ff_multiplier=2, dropout=0.1, name="attentive"):
    """Cross-attention from a learned query to the frames, with learned temporal positions.

    The frames are projected to ``units`` and get a learned position embedding
    (one vector per step of the run's T). A learned query token attends to the
    normalised frames with multi-head attention under a key-padding mask, so a
    padding frame gets exactly zero weight; a residual GELU feed-forward
    network and a final norm follow (the V-JEPA attentive probe with one query
    and one block).

    Args:
        x: (batch, T, D) frame features, padding rows zero.
        mask: (batch, T) bool, True for real frames (or None: all real).
        units: Width of the projection, the query and the output.
        num_heads: Attention heads; each has ``units // num_heads`` dimensions.
        ff_multiplier: Hidden size of the feed-forward network, in ``units``.
        dropout: Dropout rate on attention weights and on each residual branch.
        name: Prefix of the layer names.

    Returns:
        The (batch, units) clip representation.
    """
    for key, value in (
        ("units", units),
        ("num_heads", num_heads),
        ("ff_multiplier", ff_multiplier),
    ):
        check_positive(key, value)
    rate = check_rate("dropout", dropout)

    h = keras.layers.Dense(units, name=f"{name}_project")(x)
    h = LearnedPosition(name=f"{name}_position")(h)
    h = keras.layers.LayerNormalization(name=f"{name}_norm_frames")(h)
    query = LearnedQuery(name=f"{name}_query")(h)
    a = keras.layers.MultiHeadAttention(
        num_heads, max(1, units // num_heads), dropout=rate, name=f"{name}_cross_attn"
    )(query, h, value_mask=mask)
    q = keras.layers.Add(name=f"{name}_res_attn")([query, a])
    f = keras.layers.LayerNormalization(name=f"{name}_norm_ff")(q)
    f = keras.layers.Dense(units * ff_multiplier, activation=gelu, name=f"{name}_ff")(f)
    f = keras.layers.Dense(units, name=f"{name}_ff_out")(f)
    f = keras.layers.Dropout(rate, name=f"{name}_drop_ff")(f)
    q = keras.layers.Add(name=f"{name}_res_ff")([q, f])
    q = keras.layers.LayerNormalization(name=f"{name}_norm_out")(q)
    return keras.layers.Flatten(name=f"{name}_flatten")(q)
