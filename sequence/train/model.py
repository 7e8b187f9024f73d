"""The sequence classifier: mask, normalise, centre, a registered temporal head, a softmax.

:func:`build_head` is the one composition of every run's model::

    features -> FrameMask -> Normalization -> ZeroPadding -> TemporalCentering
             -> head(x, mask) -> Dropout -> Dense(softmax)

The head is any factory of :mod:`vidseq.sequence.heads` (``lstm``, ``gru``,
``tcn``, ``transformer``, ``attention``, ``pool``), named and configured by a
:class:`~vidseq.sequence.config.HeadConfig`.
"""

from __future__ import annotations

import keras
import numpy as np

from vidseq.errors import UsageError
from vidseq.sequence.config import HeadConfig
from vidseq.sequence.heads.layers import FrameMask, TemporalCentering, ZeroPadding
from vidseq.sequence.heads.registry import apply_head


def build_head(
    num_classes,
    feature_dim,
    config=None,
    *,
    num_frames=None,
    normalization=None,
    name="vidseq_head",
):
    """Builds the temporal classifier that reads per-frame CNN features.

    Input rows that are all zeros are padding: the data code zeroes every row
    after a video's ``num_valid`` real frames. Their mask (:class:`FrameMask`)
    is handed to every step explicitly, so padding never changes the output.
    (A real frame whose feature vector is exactly zero would be skipped too;
    pooled CNN features practically never are.) The features are scaled
    by ``normalization`` and the padding rows set back to zero, centred
    (``config.centering``, see :class:`TemporalCentering`), read by the head
    ``config.head`` with its options, and classified by a softmax after
    ``config.resolved_clip_dropout``.

    Args:
        num_classes: Number of output classes (>= 2).
        feature_dim: D, the size of one frame's feature vector.
        config: A :class:`~vidseq.sequence.config.HeadConfig` (default settings
            when None); validated here.
        num_frames: T, the sequence length, or None for variable length.
        normalization: A ``keras.layers.Normalization`` adapted on the
            training frames (see
            :func:`vidseq.sequence.train.normalization.feature_normalization`), or
            None for no scaling (``config.normalize`` is the caller's to
            honour: only the caller has the training data).
        name: Model name.

    Returns:
        An uncompiled ``keras.Model`` mapping (batch, T, D) float32 to
        (batch, num_classes) probabilities. It uses built-in layers and those
        registered in :mod:`vidseq.sequence.heads.layers`, so it saves as
        ``.keras`` and loads with ``safe_mode=True`` once that module is imported.

    Raises:
        UsageError: A bad setting, or fewer than 2 classes.
    """
    config = (config or HeadConfig()).validate()
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, (int, np.integer))
        or int(num_classes) < 2
    ):
        raise UsageError(
            f"num_classes must be an integer >= 2 (a classifier needs at least 2 classes). "
            f"Received: num_classes={num_classes!r}"
        )
    inputs = keras.Input(shape=(num_frames, int(feature_dim)), name="features")
    mask = FrameMask(name="frame_mask")(inputs)
    x = inputs
    if normalization is not None:
        x = ZeroPadding(name="zero_padding")([normalization(x), mask])
    if config.centering != "none":
        x = TemporalCentering(config.centering, name="temporal_centering")(x, mask=mask)
    x = apply_head(config.head, x, mask, **config.options())
    if config.resolved_clip_dropout:
        x = keras.layers.Dropout(config.resolved_clip_dropout, name="clip_dropout")(x)
    outputs = keras.layers.Dense(int(num_classes), activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def head_record(config, *, num_frames, feature_dim, num_classes):
    """What ``config.json`` records under ``head``: the settings, the options built, the shape.

    Args:
        config: The :class:`~vidseq.sequence.config.HeadConfig`.
        num_frames: T.
        feature_dim: D.
        num_classes: Output classes.

    Returns:
        ``config.to_dict()`` with ``options`` (every option of the head, its
        defaults filled in), ``clip_dropout`` resolved, ``num_frames``,
        ``feature_dim`` and ``num_classes``.
    """
    options = config.resolved_options()
    if "dilations" in options:
        options["dilations"] = [int(v) for v in options["dilations"]]
    return {
        **config.to_dict(),
        "options": options,
        "clip_dropout": config.resolved_clip_dropout,
        "num_frames": int(num_frames),
        "feature_dim": int(feature_dim),
        "num_classes": int(num_classes),
    }
