"""``lstm`` and ``gru``: today's recurrent heads as factories of the head registry."""

from __future__ import annotations

import keras

from vidseq.sequence.heads.layers import check_positive, check_rate

CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


def _recurrent(cell, x, mask, units, layers, bidirectional, dropout, name):
    """A stack of ``layers`` recurrent layers; the last returns its final state."""
    check_positive("units", units)
    check_positive("layers", layers)
    rate = check_rate("dropout", dropout)
    for i in range(layers):
        layer = CELLS[cell](
            units, dropout=rate, return_sequences=i < layers - 1, name=f"{name}_{i}"
        )
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bi_{name}_{i}")
        x = layer(x, mask=mask)
    return x


def lstm(x, mask, *, units=128, layers=1, bidirectional=False, dropout=0.5, name="lstm"):
    """Stacked LSTM layers over the valid frames (Hochreiter and Schmidhuber 1997).

    Args:
        x: (batch, T, D) frame features, padding rows zero.
        mask: (batch, T) bool, True for real frames (or None: all real);
            masked steps are skipped, so padding never changes the state.
        units: Units of each layer.
        layers: Stacked layers.
        bidirectional: Wrap each layer in ``Bidirectional``.
        dropout: Dropout rate on each layer's inputs.
        name: Prefix of the layer names.

    Returns:
        The (batch, units) final state, (batch, 2 * units) when bidirectional.
    """
    return _recurrent("lstm", x, mask, units, layers, bidirectional, dropout, name)


def gru(x, mask, *, units=128, layers=1, bidirectional=False, dropout=0.5, name="gru"):
    """Stacked GRU layers over the valid frames (Cho et al. 2014).

    Args: as :func:`lstm`.

    Returns:
        The (batch, units) final state, (batch, 2 * units) when bidirectional.
    """
    return _recurrent("gru", x, mask, units, layers, bidirectional, dropout, name)
