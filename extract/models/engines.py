"""Inference engines: what runs a built backbone on batches of uint8 frames.

* ``"tf"`` (default): TensorFlow, the backbone's own compiled function
  (:meth:`vidseq.extract.models.backbones.Backbone.extract`).
* ``"openvino"``: Intel OpenVINO on the CPU (``pip install "vidseq[openvino]"``).
  The very Keras model that ``"tf"`` runs (same weights, preprocessing inside)
  is converted with ``openvino.convert_model``, fixed to a batch of
  ``batch_size`` frames (a clip encoder's: ``batch_size / G`` clips of G
  frames, grouped as the ``"tf"`` engine groups them), and compiled with
  ``PERFORMANCE_HINT=LATENCY`` (one request using every core: faster than
  ``THROUGHPUT`` on small machines) and
  ``INFERENCE_PRECISION_HINT=f32`` (no silent bf16 on CPUs that have it), so its
  features equal TensorFlow's to float32 rounding (see :data:`OPENVINO_CONFIG`).
  The converted model is kept on disk (see :func:`openvino_cache_dir`), keyed
  by backbone, weights hash, input size, batch size and OpenVINO version: the
  conversion runs once.

Both run in a ``precision`` (:mod:`vidseq.extract.models.precision`):
``"fp32"`` (default), ``"bf16"`` (both engines, on CPUs with native bfloat16)
or ``"int8"`` (OpenVINO, a model quantised by
:mod:`vidseq.extract.models.quantize`, given as ``quantized_path``).

Both take ``(N, H, W, 3)`` uint8 RGB frames and return ``(N, D)`` float32.
The cache records which engine and precision made its features
(``CacheMeta.engine``, ``CacheMeta.precision``), and a cache is never resumed
or merged with another engine's or precision's features.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np

from vidseq.cache.schema import ENGINES  # the engine names a cache may record
from vidseq.errors import UsageError
from vidseq.extract.models.network import pad_to_groups
from vidseq.extract.models.precision import bfloat16_model, check_precision

OPENVINO_CONFIG = {
    "PERFORMANCE_HINT": "LATENCY",
    "INFERENCE_PRECISION_HINT": "f32",
    "ENABLE_CPU_PINNING": False,
}
"""How the OpenVINO model is compiled for the CPU.

``ENABLE_CPU_PINNING`` is off: the decoder threads of the extraction (and any
other process) share the cores with inference, and pinned inference threads
then wait on busy cores (measured on 2 cores: 15.8 → 12.9 CPU ms per frame of
MobileNetV2 end to end, for the same speed of the model alone).
"""


def check_engine(name: str) -> str:
    """Returns ``name`` if it is a known engine.

    Raises:
        UsageError: For an unknown engine name.
    """
    if name not in ENGINES:
        raise UsageError(f"engine must be one of {list(ENGINES)}. Received: engine={name!r}")
    return name


def openvino_cache_dir() -> Path:
    """Where converted OpenVINO models are kept.

    ``$VIDSEQ_CACHE/openvino`` when ``VIDSEQ_CACHE`` is set, else
    ``$XDG_CACHE_HOME/vidseq/openvino`` (by default ``~/.cache/vidseq/openvino``).
    """
    root = os.environ.get("VIDSEQ_CACHE")
    if root:
        return Path(root).expanduser() / "openvino"
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "vidseq" / "openvino"


class TensorFlowEngine:
    """Runs the backbone with TensorFlow (its compiled ``tf.function``).

    Args:
        net: A loaded :class:`~vidseq.extract.models.backbones.Backbone`.
        precision: ``"fp32"``, or ``"bf16"`` (a bfloat16 copy of the model,
            see :func:`~vidseq.extract.models.precision.bfloat16_model`).

    Attributes:
        on_gpu: Whether TensorFlow sees a GPU (it then runs the network there).
    """

    name = "tf"

    def __init__(self, net, precision: str = "fp32"):
        import tensorflow as tf

        check_precision(self.name, precision)
        self.net = net
        self.precision = precision
        self.on_gpu = bool(tf.config.list_physical_devices("GPU"))
        # The bfloat16 copy runs through a Backbone of its own, so that its frames are
        # checked, batched and (for a clip encoder) grouped exactly as the FP32 network's.
        self._lowered = net
        if precision == "bf16":
            self._lowered = dataclasses.replace(net, model=bfloat16_model(net.model))

    def extract(self, frames: np.ndarray) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 frames → ``(N, D)`` float32 features."""
        return self._lowered.extract(frames)


def _import_openvino():
    try:
        import openvino
    except ImportError as error:
        raise UsageError(
            "engine='openvino' needs the openvino package, which is not installed: "
            'pip install "vidseq[openvino]" (or pip install openvino)'
        ) from error
    return openvino


class OpenVINOEngine:
    """Runs the backbone with OpenVINO on the CPU, in batches of ``batch_size`` frames.

    The model is compiled for a fixed batch: a shorter batch (the last one of a
    run) is padded with zeros and the padding's features dropped. A clip
    encoder's batch is rounded up to whole groups of G frames.

    Args:
        net: A loaded :class:`~vidseq.extract.models.backbones.Backbone`: its Keras
            model (preprocessing inside) is the one converted.
        batch_size: Frames per inference request.
        cache_dir: Where converted models are kept (default:
            :func:`openvino_cache_dir`).
        precision: ``"fp32"``; ``"bf16"`` (the float32 model compiled with
            ``INFERENCE_PRECISION_HINT=bf16``); or ``"int8"``, which runs the
            quantised model ``quantized_path``.
        quantized_path: The INT8 model (``.xml``) for ``precision="int8"``.

    Attributes:
        model_path: The model run (``<key>.xml`` with its ``.bin``).
        converted: Whether this call converted the model (False: read from disk).

    Raises:
        UsageError: The openvino package is not installed, a precision this CPU
            cannot run, or INT8 without a quantised model.
    """

    name = "openvino"
    on_gpu = False  # compiled for the "CPU" device

    def __init__(
        self, net, batch_size: int = 32, cache_dir=None, precision="fp32", quantized_path=None
    ):
        ov = _import_openvino()
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1. Received: batch_size={batch_size!r}")
        check_precision(self.name, precision)
        self.net = net
        self.precision = precision
        self.group = int(net.clip_frames)
        self.batch_size = -(-int(batch_size) // self.group) * self.group  # whole groups
        height, width = net.input_size
        self._frame_shape = (height, width, 3)
        clips = (
            [self.batch_size] if self.group == 1 else [self.batch_size // self.group, self.group]
        )
        self._shape = (*clips, height, width, 3)
        self.converted = False
        if precision == "int8":
            if quantized_path is None or not Path(quantized_path).is_file():
                raise UsageError(
                    "precision='int8' needs a quantised model, and there is none. "
                    f"Received: quantized_path={quantized_path!r}"
                )
            self.model_path = Path(quantized_path)
        else:
            key = self.cache_key(net, self.batch_size, ov.__version__)
            folder = Path(cache_dir) if cache_dir is not None else openvino_cache_dir()
            self.model_path = folder / f"{key}.xml"
            if not self.model_path.is_file():
                self._convert(ov, folder)
                self.converted = True
        config = dict(OPENVINO_CONFIG)
        if precision == "bf16":
            config["INFERENCE_PRECISION_HINT"] = "bf16"
        core = ov.Core()
        model = core.read_model(str(self.model_path))
        model.reshape({0: list(self._shape)})
        self._request = core.compile_model(model, "CPU", config).create_infer_request()
        self._padded = np.zeros(self._shape, dtype=np.uint8)

    @staticmethod
    def cache_key(net, batch_size: int, openvino_version: str) -> str:
        """The file name (without suffix) of a converted model.

        It names the backbone and hashes everything that changes the converted
        network: backbone, weights hash, input size, batch size and the
        OpenVINO version that converted it.
        """
        height, width = net.input_size
        facts = [net.name, net.weights_sha256, [height, width], batch_size, openvino_version]
        if net.clip_frames > 1:  # the input is (batch / G, G, H, W, 3)
            facts.append(int(net.clip_frames))
        facts = json.dumps(facts)
        digest = hashlib.sha256(facts.encode("utf-8")).hexdigest()[:16]
        label = re.sub(r"[^A-Za-z0-9_.-]+", "_", net.name).strip("_")[-40:]  # hub:/a/b → hub_a_b
        return f"{label}-{height}x{width}-b{batch_size}-{digest}"

    def _convert(self, ov, folder: Path) -> None:
        """Converts the Keras model, then renames the files into place (atomic)."""
        folder.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # Keras warns that the functional model's input structure is a list
            # where a dict is expected; the conversion traces it correctly.
            warnings.filterwarnings("ignore", message=".*structure of `inputs`.*")
            model = ov.convert_model(self.net.model)
        model.reshape({0: list(self._shape)})
        with tempfile.TemporaryDirectory(dir=folder, prefix=".convert-") as tmp:
            xml = Path(tmp) / self.model_path.name
            ov.save_model(model, str(xml), compress_to_fp16=False)  # keep float32 weights
            # .bin first: an .xml in place means a complete model.
            os.replace(xml.with_suffix(".bin"), self.model_path.with_suffix(".bin"))
            os.replace(xml, self.model_path)

    def extract(self, frames: np.ndarray) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 frames → ``(N, D)`` float32 features.

        A clip encoder reads consecutive groups of G frames, the last one
        completed by repeating its last frame, as
        :meth:`~vidseq.extract.models.network.Backbone.extract` groups them.
        """
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[1:] != self._frame_shape or frames.dtype != np.uint8:
            raise UsageError(
                f"backbone {self.net.name} expects uint8 frames of shape "
                f"(N, {self._frame_shape[0]}, {self._frame_shape[1]}, 3). "
                f"Received: shape={frames.shape}, dtype={frames.dtype}"
            )
        count = len(frames)
        frames = pad_to_groups(frames, self.group) if count else frames
        out = np.empty((len(frames), self.net.feature_dim), dtype=np.float32)
        padded = self._padded.reshape(self.batch_size, *self._frame_shape)
        for start in range(0, len(frames), self.batch_size):
            part = frames[start : start + self.batch_size]
            size = len(part)
            if size < self.batch_size:  # zero frames: whole groups of their own
                padded[:size] = part
                padded[size:] = 0
                part = padded
            part = np.ascontiguousarray(part).reshape(self._shape)
            result = self._request.infer([part], share_inputs=True)
            features = next(iter(result.values())).reshape(-1, self.net.feature_dim)
            out[start : start + size] = features[:size]
        return out[:count]


def load_engine(
    net,
    engine: str = "tf",
    *,
    batch_size: int = 32,
    cache_dir=None,
    precision: str = "fp32",
    quantized_path=None,
):
    """Builds the engine that runs ``net``.

    Args:
        net: A loaded :class:`~vidseq.extract.models.backbones.Backbone`.
        engine: ``"tf"`` or ``"openvino"``.
        batch_size: Frames per inference call (OpenVINO compiles for it).
        cache_dir: Where OpenVINO keeps converted models (default:
            :func:`openvino_cache_dir`).
        precision: ``"fp32"``, ``"bf16"`` or ``"int8"`` (see
            :mod:`vidseq.extract.models.precision`).
        quantized_path: The quantised model that ``precision="int8"`` runs.

    Returns:
        A :class:`TensorFlowEngine` or an :class:`OpenVINOEngine`; both have
        ``name``, ``precision`` and ``extract(frames)``.

    Raises:
        UsageError: Unknown engine or precision, a precision this engine or CPU
            cannot run, openvino requested but not installed (the message names
            the ``vidseq[openvino]`` extra), or int8 for a clip encoder.
    """
    check_engine(engine)
    check_precision(engine, precision)
    if precision == "int8" and net.clip_frames > 1:
        raise UsageError(
            f"precision int8 quantises frame encoders; backbone {net.name} reads clips of "
            f"{net.clip_frames} frames: use precision='fp32' or 'bf16'"
        )
    if engine == "openvino":
        return OpenVINOEngine(
            net,
            batch_size=batch_size,
            cache_dir=cache_dir,
            precision=precision,
            quantized_path=quantized_path,
        )
    return TensorFlowEngine(net, precision=precision)
