"""A built backbone: uint8 frames in, one feature row per frame out, and its weights hash.

:class:`Backbone` is what every loader returns (the ``keras.applications``
registry of :mod:`.backbones` and the keras-hub presets of :mod:`.hub`), and
what extraction, fine-tuning, prediction and export use. No TensorFlow import
at module level.
"""

import contextlib
import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vidseq.errors import UsageError


@dataclass
class Backbone:
    """A built backbone: uint8 frames in, pooled features out.

    Attributes:
        name: Registry name, or ``"hub:<handle>"`` for a keras-hub preset.
        weights: ``"imagenet"``, ``"none"``, the absolute path of the weights
            file, or ``"preset"`` (a keras-hub preset's own weights).
        weights_sha256: SHA-256 of the weights actually used (see :func:`weights_sha256`).
        seed: Seed of the random initialisation (recorded whatever the weights).
        input_size: ``(height, width)`` the model takes.
        feature_dim: D, read from the built model.
        model: ``keras.Model`` from ``(H, W, 3)`` uint8 RGB (0-255) to ``(D,)``
            float32 (a clip encoder: ``(G, H, W, 3)`` to ``(G, D)``, see
            ``clip_frames``); the preprocessing is its first layer. Built frozen
            (``trainable=False``); fine-tuning unfreezes layers of :attr:`base_model`.
        clip_frames: G, the frames the network reads at once: 1 for a frame
            encoder, ``num_frames`` for a clip encoder (VideoPrism).
        config: What the cache records about a keras-hub backbone (preset
            handle, class, config, pooling); empty for the registry's.
        encoder: The network inside :attr:`model` when it is not the model's
            last layer (keras-hub encoders, followed by their pooling).
        blocks: The transformer blocks of a keras-hub encoder, in order
            (``finetune --unfreeze N`` counts them); None for a CNN.
    """

    name: str
    weights: str
    weights_sha256: str
    seed: int
    input_size: tuple[int, int]
    feature_dim: int
    model: Any = field(repr=False)
    clip_frames: int = 1
    config: dict = field(default_factory=dict)
    encoder: Any = field(default=None, repr=False)
    blocks: Any = field(default=None, repr=False)
    _predict: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def base_model(self):
        """The network inside :attr:`model`, without preprocessing (float32 input)."""
        return self.encoder if self.encoder is not None else self.model.layers[-1]

    def extract(self, frames: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """Runs the backbone on a batch of frames.

        One compiled function serves every batch size (it is traced once, with a
        batch dimension of ``None``), so a final partial batch costs no retracing.
        A clip encoder reads the frames in consecutive groups of
        :attr:`clip_frames`; the last group, if short, is completed by repeating
        its last frame, and the features of the repeats are dropped.

        Args:
            frames: ``(N, H, W, 3)`` uint8 RGB frames, ``(H, W)`` = ``input_size``.
            batch_size: Optional: run at most this many frames per call
                (default: all N at once; the caller usually batches).

        Returns:
            ``(N, D)`` float32 features.

        Raises:
            UsageError: If the frames have the wrong shape or dtype.
        """
        frames = np.asarray(frames)
        height, width = self.input_size
        if frames.ndim != 4 or frames.shape[1:] != (height, width, 3) or frames.dtype != np.uint8:
            raise UsageError(
                f"backbone {self.name} expects uint8 frames of shape (N, {height}, {width}, 3). "
                f"Received: shape={frames.shape}, dtype={frames.dtype}"
            )
        if len(frames) == 0:
            return np.zeros((0, self.feature_dim), dtype=np.float32)
        if self._predict is None:
            self._predict = compile_predict(self.model, self.input_size, self.clip_frames)
        group = self.clip_frames
        step = len(frames) if batch_size is None else max(int(batch_size), 1)
        step = -(-step // group) * group
        parts = []
        for start in range(0, len(frames), step):
            part = frames[start : start + step]
            count = len(part)
            if group > 1:
                part = pad_to_groups(part, group).reshape(-1, group, height, width, 3)
            out = np.asarray(self._predict(part).numpy(), dtype=np.float32)
            parts.append(out.reshape(-1, self.feature_dim)[:count])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def pad_to_groups(frames: np.ndarray, group: int) -> np.ndarray:
    """``frames`` with its last frame repeated up to a multiple of ``group`` frames."""
    missing = -len(frames) % group
    if not missing:
        return frames
    return np.concatenate([frames, np.repeat(frames[-1:], missing, axis=0)])


def compile_predict(model, input_size, clip_frames=1):
    """A ``tf.function`` running ``model`` in inference mode on any batch size.

    Args:
        model: The backbone model (uint8 in).
        input_size: ``(height, width)``.
        clip_frames: G; above 1, the input is ``(batch, G, H, W, 3)``.

    Returns:
        The traced function.
    """
    import tensorflow as tf

    height, width = input_size
    group = [clip_frames] if clip_frames > 1 else []

    @tf.function(
        input_signature=[tf.TensorSpec([None, *group, height, width, 3], tf.uint8)],
    )
    def predict(frames):
        return model(frames, training=False)

    return predict


def weights_sha256(model) -> str:
    """SHA-256 of a model's weights: the hash of the weights actually used.

    The hash covers every weight tensor of the model (trainable and not, e.g.
    batch-norm statistics) in model order (``model.weights``); for each it
    feeds ``"<dtype>:<d0>,<d1>,...;"`` (ASCII) then the tensor's bytes in C order,
    little-endian. Names are not included. So the same network with the same
    values has the same hash whatever file format its weights came from
    (``.weights.h5``, legacy ``.h5``, the ImageNet download, a seeded init).

    Args:
        model: A built ``keras.Model``.

    Returns:
        The hex digest (64 characters).
    """
    digest = hashlib.sha256()
    for variable in model.weights:
        array = np.asarray(variable.numpy())
        array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        shape = ",".join(str(d) for d in array.shape)
        digest.update(f"{array.dtype.name}:{shape};".encode("ascii"))
        digest.update(array.tobytes())
    return digest.hexdigest()


@contextlib.contextmanager
def seeded(seed: int):
    """Seeds Keras for the block, then restores the Python and NumPy random states.

    Whatever the block builds with random weights is the same for the same
    seed in any process (the Keras/TF global seed stays set).
    """
    import keras

    py_state = random.getstate()
    np_state = np.random.get_state()
    try:
        keras.utils.set_random_seed(int(seed))
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
