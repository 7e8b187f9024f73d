"""Backbone input preprocessing as a serialisable Keras layer.

Frames stay uint8 RGB (0-255) until they enter the backbone model; the first
layer of every vidseq backbone is a :class:`FramePreprocessing` that casts them
to float32 and applies the backbone's own ``preprocess_input``, computed exactly
as ``keras.applications`` does it (same constants, same order of operations).
Keeping it inside the model means a saved model (``.keras``) carries its own
preprocessing and loads with ``safe_mode=True`` (no ``Lambda`` layer).

Modes:

* ``"caffe"``: RGB -> BGR, then subtract the ImageNet BGR means
  ``[103.939, 116.779, 123.68]``, no scaling (ResNet50/101, VGG16).
* ``"tf"``: ``x / 127.5 - 1``, i.e. [-1, 1] (InceptionV3, MobileNetV2, the tiny CNN).
* ``"torch"``: ``x / 255``, then subtract ``[0.485, 0.456, 0.406]`` and divide
  by ``[0.229, 0.224, 0.225]`` per RGB channel (DenseNet style; no registered
  backbone uses it today).
* ``"raw"``: float32 0-255 unchanged, for models that rescale inside themselves
  (MobileNetV3, EfficientNet: their ``preprocess_input`` is a pass-through).

This module imports Keras at import time: import it lazily (it is imported by
:func:`vidseq.extract.models.backbones.load_backbone`). Loading a saved model that
contains the layer needs this module imported first, so that the class is
registered (as ``"vidseq>FramePreprocessing"``).
"""

import keras
import numpy as np
from keras import ops

PREPROCESSING_MODES = ("caffe", "tf", "torch", "raw")

_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
_TORCH_RGB_MEAN = (0.485, 0.456, 0.406)
_TORCH_RGB_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="vidseq")
class FramePreprocessing(keras.layers.Layer):
    """Casts uint8 RGB frames to float32 and applies a backbone's preprocessing.

    The result equals ``keras.applications.<module>.preprocess_input`` applied to
    the same frames as float32 (channels-last).

    Args:
        mode: One of ``"caffe"``, ``"tf"``, ``"torch"``, ``"raw"`` (see the
            module docstring).
        **kwargs: Standard layer arguments (``name``, ...).

    Raises:
        ValueError: If ``mode`` is not one of the known modes.
    """

    def __init__(self, mode="tf", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if mode not in PREPROCESSING_MODES:
            raise ValueError(
                f"Expected mode to be one of {', '.join(PREPROCESSING_MODES)}. "
                f"Received: mode={mode!r}"
            )
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        if self.mode == "raw":
            return x
        if self.mode == "tf":
            x = x / 127.5
            return x - 1.0
        if self.mode == "torch":
            x = x / 255.0
            x = x - ops.convert_to_tensor(np.array(_TORCH_RGB_MEAN, dtype="float32"))
            return x / ops.convert_to_tensor(np.array(_TORCH_RGB_STD, dtype="float32"))
        # caffe: RGB -> BGR, zero-centre each channel, no scaling.
        x = ops.flip(x, axis=-1)
        return x - ops.convert_to_tensor(np.array(_CAFFE_BGR_MEAN, dtype="float32"))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config
