"""Masked building blocks of the temporal heads, registered for ``safe_mode`` loading.

The layers of the heads take the frame mask explicitly, a (batch, T) boolean tensor
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


@keras.saving.register_keras_serializable(package="vidseq")
class LearnedPosition(ExplicitMaskLayer):
    """Adds a learned embedding of each frame's place: frame t gets row t of a table.

    The table has one row per step of the clip length the layer is built for
    (a run's ``frames``), or ``max_frames`` rows when that length is variable;
    frame t gets the same row whether the clip is padded or not.

    Args:
        max_frames: Rows of the table when the built length is unknown.
    """

    def __init__(self, max_frames=256, **kwargs):
        super().__init__(**kwargs)
        self.max_frames = int(max_frames)

    def build(self, input_shape):
        steps = input_shape[1] if input_shape[1] is not None else self.max_frames
        self.embedding = self.add_weight(
            shape=(int(steps), int(input_shape[-1])),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="embedding",
        )

    def call(self, inputs):
        steps = ops.shape(inputs)[1]
        table = ops.slice(self.embedding, (0, 0), (steps, self.embedding.shape[-1]))
        return inputs + ops.cast(table, inputs.dtype)[None]

    def get_config(self):
        return {**super().get_config(), "max_frames": self.max_frames}

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="vidseq")
class LearnedQuery(ExplicitMaskLayer):
    """A learned (queries, C) array, the same for every clip: (B, T, C) in, (B, queries, C) out.

    Args:
        queries: How many query tokens.
    """

    def __init__(self, queries=1, **kwargs):
        super().__init__(**kwargs)
        self.queries = int(queries)

    def build(self, input_shape):
        self.query = self.add_weight(
            shape=(self.queries, int(input_shape[-1])),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="query",
        )

    def call(self, inputs):
        batch = ops.shape(inputs)[0]
        query = ops.cast(self.query, inputs.dtype)[None]
        return ops.broadcast_to(query, (batch, self.queries, self.query.shape[-1]))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.queries, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "queries": self.queries}


@keras.saving.register_keras_serializable(package="vidseq")
class TemporalCentering(keras.layers.Layer):
    """Subtracts each clip's mean feature vector (over its valid frames) from every frame.

    What stays is how the features *change* through the clip; the clip's
    static appearance (background, lighting, camera) is removed. With
    ``mode="concat"`` the output is ``[x, x - mean]`` (2D features), so the
    head sees both the appearance and its changes. Padding rows stay zero
    and the mask passes through.

    Args:
        mode: ``"subtract"`` or ``"concat"``.
    """

    MODES = ("subtract", "concat")

    def __init__(self, mode="concat", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"mode must be subtract or concat. Received: mode={mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, inputs, mask=None):
        weights = _weights(mask, inputs)
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
    """Zeroes the features of padding frames, so that the head's frame mask skips them.

    End-to-end models read uint8 clips whose padding rows are all-zero frames
    (see ``vidseq.sequence.data.frame_clips``). Called on ``[frames, features]``
    (``(B, T, H, W, C)`` and ``(B, T, D)``), it returns the features with the
    rows of all-zero frames set to zero, the very input the head was trained on
    with cached features. (A real, perfectly black frame is skipped too; it
    carries no information.)
    """

    def call(self, inputs):
        frames, features = inputs
        axes = tuple(range(2, len(frames.shape)))
        real = ops.any(ops.not_equal(frames, 0), axis=axes)
        return features * ops.expand_dims(ops.cast(real, features.dtype), -1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])


@keras.saving.register_keras_serializable(package="vidseq")
def gelu(x):
    """Exact GELU, ``x * Phi(x)``, written with ``erf``.

    The same function as Keras' ``"gelu"``, which TensorFlow computes with
    ``erfc``: ONNX has no ``Erfc`` operator, so a head using that one cannot be
    exported to ONNX. ``Erf`` converts everywhere.
    """
    return 0.5 * x * (1.0 + keras.ops.erf(x * 0.7071067811865476))


CUSTOM_OBJECTS = {
    f"vidseq>{layer.__name__}": layer
    for layer in (
        gelu,
        FrameMask,
        ZeroPadding,
        MaskedMeanMaxPooling,
        MaskedSoftmaxPooling,
        SinusoidalPosition,
        LearnedPosition,
        LearnedQuery,
        TemporalCentering,
        PaddingFrameMask,
    )
}
"""Every layer (and activation) of the heads by its registered name, for ``load_model``."""


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
