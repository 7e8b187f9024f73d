"""``pool``: order-blind masked mean+max pooling, the TSN-style baseline head."""

from __future__ import annotations

import keras

from vidseq.sequence.heads.layers import MaskedMeanMaxPooling, check_positive


def pool(x, mask, *, units=128, name="pool"):
    """Embeds each frame, then pools mean and max over the valid frames.

    Every frame goes through the same ``Dense(units, relu)``; the pooled
    vector ignores the order of the frames, as TSN's segmental consensus does
    (Wang et al. 2016). It is the head that shows what order adds: on a task
    whose classes differ only in temporal order it stays at the level of the
    bag-of-frames baseline.

    Args:
        x: (batch, T, D) frame features, padding rows zero.
        mask: (batch, T) bool, True for real frames (or None: all real).
        units: Size of the frame embedding.
        name: Prefix of the layer names.

    Returns:
        The (batch, 2 * units) clip representation.
    """
    check_positive("units", units)
    h = keras.layers.Dense(units, activation="relu", name=f"{name}_embed")(x)
    return MaskedMeanMaxPooling(name=f"{name}_mean_max")([h, mask])
