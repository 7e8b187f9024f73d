"""The sequence head: masking, centering, a registered temporal head (LSTM/GRU), a softmax."""

from __future__ import annotations

import keras
import numpy as np

from vidseq.errors import UsageError
from vidseq.sequence.config import CENTERING_MODES, HeadConfig


@keras.saving.register_keras_serializable(package="vidseq")
class TemporalCentering(keras.layers.Layer):
    """Subtracts each clip's mean feature vector (over its valid frames) from every frame.

    What stays is how the features *change* through the clip; the clip's
    static appearance (background, lighting, camera) is removed. With
    ``mode="concat"`` the output is ``[x, x - mean]`` (2D features), so the
    RNN sees both the appearance and its changes. Padding rows stay zero
    and the mask passes through.

    Args:
        mode: ``"subtract"`` or ``"concat"``.
    """

    def __init__(self, mode="concat", **kwargs):
        super().__init__(**kwargs)
        if mode not in CENTERING_MODES[1:]:
            raise ValueError(f"mode must be subtract or concat. Received: mode={mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, inputs, mask=None):
        ops = keras.ops
        if mask is None:
            weights = ops.ones_like(inputs[..., :1])
        else:
            weights = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        count = ops.maximum(ops.sum(weights, axis=1, keepdims=True), 1.0)
        mean = ops.sum(inputs * weights, axis=1, keepdims=True) / count
        centred = (inputs - mean) * weights
        if self.mode == "subtract":
            return centred
        return ops.concatenate([inputs, centred], axis=-1)

    def compute_output_shape(self, input_shape):
        if self.mode == "subtract":
            return input_shape
        return (*input_shape[:-1], input_shape[-1] * 2)

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="vidseq")
class PaddingFrameMask(keras.layers.Layer):
    """Zeroes the features of padding frames, so that the head's ``Masking`` skips them.

    End-to-end models read uint8 clips whose padding rows are all-zero frames
    (see ``vidseq.sequence.frames_data``). Called on ``[frames, features]``
    (``(B, T, H, W, C)`` and ``(B, T, D)``), it returns the features with the
    rows of all-zero frames set to zero, the very input the head was trained on
    with cached features. (A real, perfectly black frame is skipped too; it
    carries no information.)
    """

    def call(self, inputs):
        frames, features = inputs
        axes = tuple(range(2, len(frames.shape)))
        real = keras.ops.any(keras.ops.not_equal(frames, 0), axis=axes)
        return features * keras.ops.expand_dims(keras.ops.cast(real, features.dtype), -1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])


def _recurrent_stack(x, config):
    """``config.layers`` LSTM/GRU layers (optionally bidirectional); the last returns a vector."""
    layer_cls = keras.layers.LSTM if config.rnn == "lstm" else keras.layers.GRU
    for i in range(int(config.layers)):
        last = i == int(config.layers) - 1
        layer = layer_cls(
            int(config.units),
            dropout=float(config.dropout),
            return_sequences=not last,
            name=f"{config.rnn}_{i}",
        )
        if config.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bi_{config.rnn}_{i}")
        x = layer(x)
    return x


HEAD_FACTORIES = {"lstm": _recurrent_stack, "gru": _recurrent_stack}
"""Head name -> ``factory(x, config)`` mapping the masked ``(B, T, D')`` sequence to ``(B, F)``.

A new head registers its factory here and its name in ``config.HEAD_TYPES``."""


def build_head(num_classes, feature_dim, config=None, *, num_frames=None, name="vidseq_head"):
    """Builds the temporal classifier that reads per-frame CNN features.

    Input rows that are all zeros are masked: the data code zeroes every row
    after a video's ``num_valid`` real frames, so padding never changes the
    output. (A real frame whose feature vector is exactly zero would be
    skipped too; pooled CNN features practically never are.) The masked
    sequence is centred (``config.centering``, see :class:`TemporalCentering`),
    read by the head ``config.name`` of :data:`HEAD_FACTORIES`, and classified
    by a softmax.

    Args:
        num_classes: Number of output classes (>= 2).
        feature_dim: D, the size of one frame's feature vector.
        config: A :class:`~vidseq.sequence.config.HeadConfig` (default settings
            when None); validated here.
        num_frames: T, the sequence length, or None for variable length.
        name: Model name.

    Returns:
        An uncompiled ``keras.Model`` mapping (batch, T, D) float32 to
        (batch, num_classes) probabilities. It uses built-in layers and the
        registered ``vidseq>TemporalCentering``, so it saves as ``.keras`` and
        loads with ``safe_mode=True`` once ``vidseq.sequence.head`` is imported.

    Raises:
        UsageError: A bad setting, or fewer than 2 classes.
    """
    config = (config or HeadConfig()).validate()
    if not isinstance(num_classes, (int, np.integer)) or int(num_classes) < 2:
        raise UsageError(
            f"num_classes must be an integer >= 2 (a classifier needs at least 2 classes). "
            f"Received: num_classes={num_classes!r}"
        )
    inputs = keras.Input(shape=(num_frames, int(feature_dim)), name="features")
    x = keras.layers.Masking(mask_value=0.0, name="mask_padding")(inputs)
    if config.centering != "none":
        x = TemporalCentering(config.centering, name="temporal_centering")(x)
    x = HEAD_FACTORIES[config.name](x, config)
    outputs = keras.layers.Dense(int(num_classes), activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)
