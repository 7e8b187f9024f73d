"""A whole classifier around any registered head: mask, normalise, centre, head, softmax."""

from __future__ import annotations

import keras

from vidseq.sequence.head import TemporalCentering
from vidseq.sequence.heads.layers import FrameMask, ZeroPadding, check_positive, check_rate
from vidseq.sequence.heads.registry import apply_head


def build_classifier(
    num_classes,
    feature_dim,
    *,
    head="lstm",
    head_options=None,
    normalization=None,
    centering="concat",
    dropout=0.5,
    num_frames=None,
    name="vidseq_head",
):
    """Builds ``features -> mask -> normalise -> centre -> head -> dropout -> softmax``.

    The frame mask comes from the input (rows that are all zeros are padding,
    as ``keras.layers.Masking(0.0)`` reads them) and is handed to every step
    explicitly. After normalisation the padding rows are set back to zero, so
    the centering and the head see the same input for a clip however it is
    padded.

    Args:
        num_classes: Number of classes (>= 2).
        feature_dim: D, the size of one frame's features.
        head: A name from :func:`~vidseq.sequence.heads.head_names`.
        head_options: Keyword options of the head (``units``, ...).
        normalization: A ``keras.layers.Normalization`` (see
            :func:`vidseq.sequence.normalization.adapt_normalization`), or None.
        centering: ``"concat"``, ``"subtract"`` or ``"none"`` (see
            :class:`~vidseq.sequence.head.TemporalCentering`).
        dropout: Dropout rate on the clip representation, before the softmax.
        num_frames: T, or None for variable length.
        name: Model name.

    Returns:
        An uncompiled ``keras.Model`` from (batch, T, D) float32 to (batch,
        num_classes) probabilities, loadable with ``safe_mode=True`` once
        ``vidseq.sequence.heads.layers`` is imported.
    """
    check_positive("feature_dim", feature_dim)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2. Received: {num_classes!r}")
    rate = check_rate("dropout", dropout)

    inputs = keras.Input(shape=(num_frames, feature_dim), name="features")
    mask = FrameMask(name="frame_mask")(inputs)
    x = inputs
    if normalization is not None:
        x = ZeroPadding(name="zero_padding")([normalization(x), mask])
    if centering != "none":
        x = TemporalCentering(centering, name="temporal_centering")(x, mask=mask)
    x = apply_head(head, x, mask, **(head_options or {}))
    x = keras.layers.Dropout(rate, name="clip_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)
