"""``tcn``: residual dilated temporal convolutions with masked mean+max pooling."""

from __future__ import annotations

import keras

from vidseq.sequence.heads.layers import (
    MaskedMeanMaxPooling,
    ZeroPadding,
    check_positive,
    check_rate,
)


def tcn(x, mask, *, units=128, kernel_size=3, dilations=(1, 2, 4), dropout=0.1, name="tcn"):
    """A temporal convolutional network over the frames (Bai et al. 2018, non-causal).

    A 1x1 convolution projects the frames to ``units`` channels; each block is
    ``Conv1D(units, kernel_size, dilation_rate=d, padding="same")`` + ReLU +
    dropout, added to its input (residual). Padding rows are set to zero before
    every convolution, so a valid frame near the end of a clip sees exactly the
    zeros it would see at the border of the unpadded clip: padded steps never
    leak into valid ones. The frames are then pooled by their masked mean and
    maximum. With the defaults one output sees 1 + 2 * (1 + 2 + 4) = 15 frames.

    Args:
        x: (batch, T, D) frame features, padding rows zero.
        mask: (batch, T) bool, True for real frames (or None: all real).
        units: Channels of every convolution.
        kernel_size: Taps of each dilated convolution.
        dilations: One residual block per dilation rate.
        dropout: Dropout rate after each block's activation.
        name: Prefix of the layer names.

    Returns:
        The (batch, 2 * units) clip representation.
    """
    check_positive("units", units)
    check_positive("kernel_size", kernel_size)
    dilations = tuple(dilations)
    if not dilations:
        raise ValueError(f"dilations must name at least one rate. Received: {dilations!r}")
    for rate in dilations:
        check_positive("dilations", rate)
    rate = check_rate("dropout", dropout)

    h = ZeroPadding(name=f"{name}_zero_input")([x, mask])
    h = keras.layers.Conv1D(units, 1, name=f"{name}_project")(h)
    for i, dilation in enumerate(dilations):
        h = ZeroPadding(name=f"{name}_zero_{i}")([h, mask])
        y = keras.layers.Conv1D(
            units,
            kernel_size,
            dilation_rate=dilation,
            padding="same",
            activation="relu",
            name=f"{name}_conv_{i}",
        )(h)
        y = keras.layers.Dropout(rate, name=f"{name}_dropout_{i}")(y)
        h = keras.layers.Add(name=f"{name}_residual_{i}")([h, y])
    return MaskedMeanMaxPooling(name=f"{name}_mean_max")([h, mask])
