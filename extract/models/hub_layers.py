"""The serialisable layers around a keras-hub encoder: its input scaling and its pooling.

A keras-hub backbone in vidseq is ``frames (uint8) → ImageScaling → encoder →
TokenPooling``. Both layers are registered (``"vidseq>ImageScaling"``,
``"vidseq>TokenPooling"``), so a saved end-to-end model loads with
``safe_mode=True`` once this module and ``keras_hub`` are imported.

This module imports Keras at import time: import it lazily, as
:mod:`vidseq.extract.models.hub` does.
"""

import keras
import numpy as np
from keras import ops

TOKEN_POOLINGS = ("none", "cls", "mean")
"""How :class:`TokenPooling` makes one vector of the encoder's output."""


@keras.saving.register_keras_serializable(package="vidseq")
class ImageScaling(keras.layers.Layer):
    """Casts uint8 RGB frames to float32 and applies ``x * scale + offset``.

    The scale and offset are the preset's image converter's (a number or one
    per RGB channel), computed as keras-hub's ``ImageConverter`` does, so the
    features equal keras-hub's own forward pass on frames already at the
    converter's size.

    Args:
        scale: A float or three floats; None means 1.
        offset: A float or three floats; None means 0.
        **kwargs: Standard layer arguments (``name``, ...).
    """

    def __init__(self, scale=None, offset=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.scale = _as_list(scale)
        self.offset = _as_list(offset)

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        if self.scale is not None:
            x = x * ops.convert_to_tensor(np.array(self.scale, dtype="float32"))
        if self.offset is not None:
            x = x + ops.convert_to_tensor(np.array(self.offset, dtype="float32"))
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale, "offset": self.offset})
        return config


def _as_list(value):
    """None, or the value as a list of floats (a float becomes a one-element list)."""
    if value is None:
        return None
    return [float(v) for v in np.asarray(value, dtype="float64").reshape(-1)]


@keras.saving.register_keras_serializable(package="vidseq")
class TokenPooling(keras.layers.Layer):
    """Makes one feature vector per frame of an encoder's output.

    Args:
        mode: ``"none"`` (the output is already pooled), ``"cls"`` (the first
            token along axis 1) or ``"mean"`` (the mean over ``axis`` after
            dropping the first ``skip`` tokens along axis 1).
        skip: Leading tokens left out of the mean (class and register tokens).
        axis: Axis (or axes) averaged by ``"mean"``: 1 for ``(batch, tokens,
            D)``, ``[1, 2]`` for a ``(batch, H, W, D)`` map, 2 for a clip
            encoder's ``(batch, frames, tokens, D)``.
        **kwargs: Standard layer arguments.

    Raises:
        ValueError: If ``mode`` is not one of :data:`TOKEN_POOLINGS`.
    """

    def __init__(self, mode="mean", skip=0, axis=1, **kwargs):
        super().__init__(**kwargs)
        if mode not in TOKEN_POOLINGS:
            raise ValueError(
                f"Expected mode to be one of {', '.join(TOKEN_POOLINGS)}. Received: mode={mode!r}"
            )
        self.mode = mode
        self.skip = int(skip)
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else int(axis)

    def call(self, inputs):
        if self.mode == "none":
            return inputs
        if self.mode == "cls":
            return inputs[:, 0]
        x = inputs[:, self.skip :] if self.skip else inputs
        return ops.mean(x, axis=self.axis)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        if self.mode == "none":
            return tuple(shape)
        axes = [1] if self.mode == "cls" else self.axis
        axes = axes if isinstance(axes, list) else [axes]
        return tuple(d for i, d in enumerate(shape) if i not in axes)

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "skip": self.skip, "axis": self.axis})
        return config


@keras.saving.register_keras_serializable(package="vidseq")
class ClipGrouping(keras.layers.Layer):
    """Cuts clips of T frames into the groups of G frames a clip encoder reads.

    ``(B, T, H, W, 3)`` uint8 in (trailing padding frames all zero), ``(B *
    ceil(T / G), G, H, W, 3)`` uint8 out (the groups of each clip in order, a
    tensor of rank 5 as every converter takes): the padding frames and the frames
    added to complete the last group repeat the clip's last real frame (its
    last frame that is not all zero), so the real frames are grouped as
    extraction groups a video's (from its first frame, the last group
    completed by repeating the last real frame). The choice of frames is a
    product with a one-hot matrix (exact on uint8 values), which every export
    format converts.

    Args:
        group: G, the frames the encoder reads at once.
        **kwargs: Standard layer arguments.
    """

    def __init__(self, group, **kwargs):
        super().__init__(**kwargs)
        self.group = int(group)

    def call(self, frames):
        steps = frames.shape[1]
        size = frames.shape[2:]
        total = -(-steps // self.group) * self.group
        real = ops.any(ops.not_equal(frames, 0), axis=(2, 3, 4))
        index = ops.arange(steps, dtype="int32")
        last = ops.max(ops.where(real, index[None, :], 0), axis=1)
        wanted = ops.minimum(ops.arange(total, dtype="int32")[None, :], last[:, None])
        choice = ops.one_hot(wanted, steps, dtype="float32")  # (B, total, T)
        flat = ops.reshape(ops.cast(frames, "float32"), (-1, steps, int(np.prod(size))))
        chosen = ops.cast(ops.round(ops.matmul(choice, flat)), "uint8")
        return ops.reshape(chosen, (-1, self.group, *size))

    def compute_output_shape(self, input_shape):
        return (None, self.group, *input_shape[2:])

    def compute_output_spec(self, frames):
        return keras.KerasTensor(self.compute_output_shape(frames.shape), dtype="uint8")

    def get_config(self):
        config = super().get_config()
        config.update({"group": self.group})
        return config


@keras.saving.register_keras_serializable(package="vidseq")
class GroupRows(keras.layers.Layer):
    """Lays a clip encoder's groups of rows back into clips: the inverse of :class:`ClipGrouping`.

    ``(B * ceil(T / G), G, D)`` in, ``(B, T, D)`` out: each clip's rows in
    frame order, the rows of the frames that completed its last group dropped.

    Args:
        frames: T, the frames of a clip.
        **kwargs: Standard layer arguments.
    """

    def __init__(self, frames, **kwargs):
        super().__init__(**kwargs)
        self.frames = int(frames)

    def call(self, rows):
        group, depth = rows.shape[1], rows.shape[2]
        total = -(-self.frames // group) * group
        return ops.reshape(rows, (-1, total, depth))[:, : self.frames]

    def compute_output_shape(self, input_shape):
        return (None, self.frames, input_shape[2])

    def get_config(self):
        config = super().get_config()
        config.update({"frames": self.frames})
        return config
