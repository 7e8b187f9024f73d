"""Masked building blocks of the temporal heads, registered for ``safe_mode`` loading.

Every layer here takes the frame mask explicitly, a (batch, T) boolean tensor
that is True for real frames, so that a head gives the same output for a clip
whether it is padded to T rows or not. The layers carry no state besides their
constructor arguments; they are registered under the package ``"vidseq"``.
"""

from __future__ import annotations

import keras

ops = keras.ops


def _weights(mask, like):
    """(B, T, 1) float weights of the valid frames (all ones for ``mask=None``)."""
    if mask is None:
        return ops.ones_like(like[..., :1])
    return ops.expand_dims(ops.cast(mask, like.dtype), -1)


class ExplicitMaskLayer(keras.layers.Layer):
    """A layer that takes the frame mask as an input and hands no Keras mask on.

    It accepts inputs that carry a Keras mask (e.g. after ``Masking``) without
    the warning that a non-masking layer gives, and returns none: the heads pass
    the mask explicitly.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None


@keras.saving.register_keras_serializable(package="vidseq")
class FrameMask(ExplicitMaskLayer):
    """(batch, T) bool mask of the frames whose feature row is not all zeros.

    The data code zeroes every row after a video's real frames, so this is the
    mask of ``keras.layers.Masking(mask_value=0.0)`` as an explicit tensor.
    """

    def call(self, inputs):
        return ops.any(ops.not_equal(inputs, 0.0), axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape[:-1], dtype="bool")


@keras.saving.register_keras_serializable(package="vidseq")
class ZeroPadding(ExplicitMaskLayer):
    """Sets the rows of padding frames to zero. Called on ``[x, mask]``.

    Convolutions with ``"same"`` padding then see exactly the zeros they would
    see at the border of the unpadded clip, so padded steps never leak into
    valid ones.
    """

    def call(self, inputs):
        x, mask = inputs
        return x * _weights(mask, x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])


@keras.saving.register_keras_serializable(package="vidseq")
class MaskedMeanMaxPooling(ExplicitMaskLayer):
    """Mean and maximum over the valid frames, concatenated: (B, T, C) -> (B, 2C).

    Called on ``[x, mask]``. A clip without valid frames pools to zeros.
    """

    def call(self, inputs):
        x, mask = inputs
        weights = _weights(mask, x)
        count = ops.maximum(ops.sum(weights, axis=1), 1.0)
        mean = ops.sum(x * weights, axis=1) / count
        lowest = ops.cast(ops.min(x) - 1.0, x.dtype)
        peak = ops.max(ops.where(weights > 0, x, lowest), axis=1)
        peak = ops.where(ops.sum(weights, axis=1) > 0, peak, ops.zeros_like(peak))
        return ops.concatenate([mean, peak], axis=-1)

    def compute_output_shape(self, input_shape):
        shape = input_shape[0]
        return (shape[0], 2 * shape[-1])


@keras.saving.register_keras_serializable(package="vidseq")
class MaskedSoftmaxPooling(ExplicitMaskLayer):
    """Attention pooling: ``sum_t softmax(scores)_t * x_t`` over the valid frames only.

    Called on ``[x, scores, mask]`` with x (B, T, C) and scores (B, T, 1).
    Padding frames get exactly zero weight.
    """

    def call(self, inputs):
        x, scores, mask = inputs
        weights = _weights(mask, x)
        scores = ops.where(weights > 0, scores, ops.full_like(scores, -1e9))
        attention = ops.softmax(scores, axis=1) * weights
        return ops.sum(attention * x, axis=1)

    def compute_output_shape(self, input_shape):
        shape = input_shape[0]
        return (shape[0], shape[-1])


@keras.saving.register_keras_serializable(package="vidseq")
class SinusoidalPosition(ExplicitMaskLayer):
    """Adds the sinusoidal position code of Vaswani et al. (2017) to (B, T, C) inputs.

    It has no weights and no maximum length, so a model built for variable T
    accepts any clip length; frame t gets the same code whether the clip is
    padded or not.

    Args:
        scale: Multiplier of the code (its entries lie in [-1, 1]).
    """

    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, inputs):
        channels = inputs.shape[-1]
        steps = ops.cast(ops.arange(ops.shape(inputs)[1]), "float32")[:, None]
        pairs = ops.cast(ops.arange(channels) // 2, "float32")[None, :]
        angles = steps / ops.power(10000.0, 2.0 * pairs / channels)
        even = ops.cast(ops.arange(channels) % 2 == 0, "float32")[None, :]
        code = even * ops.sin(angles) + (1.0 - even) * ops.cos(angles)
        return inputs + ops.cast(self.scale * code, inputs.dtype)[None]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def check_positive(name, value):
    """Raises ValueError unless ``value`` is an int >= 1 (bools refused), Keras-style."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1. Received: {name}={value!r}")
    return value


def check_rate(name, value):
    """Raises ValueError unless ``value`` is a rate in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1). Received: {name}={value!r}")
    return float(value)
