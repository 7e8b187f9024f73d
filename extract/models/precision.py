"""Lower-precision inference: which precision each engine runs, and whether this CPU can.

Three precisions (:data:`~vidseq.cache.schema.PRECISIONS`):

* ``"fp32"`` (default): float32 throughout, on either engine;
* ``"bf16"``: bfloat16 matrix arithmetic, for ``"tf"`` (the Keras model cloned
  under the ``mixed_bfloat16`` policy: weights stay float32, layers compute in
  bfloat16; the preprocessing layer stays float32) and ``"openvino"``
  (``INFERENCE_PRECISION_HINT=bf16``). Only where the CPU has AVX512_BF16 or
  AMX: elsewhere it would be emulated, slower than float32, and is refused;
* ``"int8"``: ``"openvino"`` only, post-training quantised by NNCF on frames of
  the user's own dataset (:mod:`vidseq.extract.models.quantize`). Runs on any
  x86 CPU; the gain comes from AVX512_VNNI (or AVX-VNNI, AMX).

Every check names what it received and how to proceed, and raises
:class:`~vidseq.errors.UsageError` (exit code 2 on the command line).
"""

from __future__ import annotations

import functools
from pathlib import Path

from vidseq.cache.schema import PRECISIONS
from vidseq.errors import UsageError

BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""CPU flags (``/proc/cpuinfo``) with native bfloat16 arithmetic."""
INT8_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
"""CPU flags with int8 dot products (what makes INT8 inference fast)."""


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def bf16_supported() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512_BF16 or AMX)."""
    return bool(cpu_flags() & BF16_FLAGS)


def int8_accelerated() -> bool:
    """Whether this CPU has int8 dot-product instructions (VNNI or AMX)."""
    return bool(cpu_flags() & INT8_FLAGS)


def check_precision(engine: str, precision: str) -> str:
    """Returns ``precision`` if ``engine`` can run it on this machine.

    Args:
        engine: ``"tf"`` or ``"openvino"``.
        precision: One of ``"fp32"``, ``"bf16"``, ``"int8"``.

    Raises:
        UsageError: An unknown precision, INT8 without OpenVINO, or bf16 on a
            CPU without native bfloat16.
    """
    if precision not in PRECISIONS:
        raise UsageError(
            f"precision must be one of {list(PRECISIONS)}. Received: precision={precision!r}"
        )
    if precision == "int8" and engine != "openvino":
        raise UsageError(
            "precision='int8' runs on engine='openvino' (NNCF post-training quantisation). "
            f"Received: engine={engine!r}"
        )
    if precision == "bf16" and not bf16_supported():
        raise UsageError(
            "precision='bf16' needs a CPU with AVX512_BF16 or AMX, and this one has neither "
            "(it would be emulated, slower than fp32); use precision='fp32', or 'int8' "
            "with engine='openvino'"
        )
    return precision


def bfloat16_model(model):
    """A copy of a Keras backbone model that computes in bfloat16 (same weights).

    Every layer but the input and the preprocessing is rebuilt under the
    ``mixed_bfloat16`` policy (float32 weights, bfloat16 arithmetic). A nested
    plain functional model (a ``keras.applications`` network) is rebuilt layer
    by layer; a nested model that serialises its constructor arguments (a
    keras-hub backbone) is rebuilt whole from them. So any Keras backbone
    qualifies.

    Args:
        model: A :class:`~vidseq.extract.models.backbones.Backbone`'s ``model``.

    Returns:
        The new ``keras.Model`` (its outputs are bfloat16; callers cast).
    """
    import keras

    def rebuild(layer):
        config = layer.get_config()
        if isinstance(layer, keras.Model) and "layers" in config:
            return keras.models.clone_model(layer, clone_function=rebuild)
        if not isinstance(layer, keras.layers.InputLayer) and layer.name != "preprocessing":
            config["dtype"] = "mixed_bfloat16"
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=rebuild)
    clone.set_weights(model.get_weights())
    clone.trainable = False
    return clone
