"""What the ONNX export adds to tf2onnx: the ``Erfc`` op, a check for ops it left unconverted,
and optimizer passes applied without a copy of the graph each.

Keras' exact GELU (``keras.activations.gelu(approximate=False)``, in the MLPs
of keras-hub's DINOv2 and ViT encoders) becomes TensorFlow's ``Erfc``, which
tf2onnx does not convert: it logs an error and leaves the TensorFlow node in
the graph, which no ONNX runtime loads. :func:`register_erfc` maps it to
``1 - Erf(x)`` (``Erf`` is an ONNX op since opset 9); :func:`check_onnx_ops`
turns any other node tf2onnx left behind into one line naming the op.

tf2onnx deep-copies the whole graph before each of its optimizer passes, so
that a pass that raises can be skipped; on a small DINOv2 that copying is about
a third of the export. :func:`optimize_in_place` runs the conversion with the
passes applied in place (tf2onnx's ``TF2ONNX_CATCH_ERRORS=FALSE``), and only if
a pass raises runs it again the default way.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import numpy as np

from vidseq.errors import UsageError


def register_erfc() -> None:
    """Registers a tf2onnx handler for TensorFlow's ``Erfc``: ``1 - Erf(x)``; idempotent."""
    from tf2onnx import constants, utils
    from tf2onnx.handler import tf_op

    opsets = tf_op.get_opsets().get(constants.ONNX_DOMAIN, [])
    if len(opsets) > 9 and "Erfc" in opsets[9]:
        return

    @tf_op("Erfc")
    class Erfc:  # registered by the decorator
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
            erf = ctx.make_node("Erf", [node.input[0]], op_name_scope=node.name)
            one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype=dtype))
            name, output = node.name, node.output[0]
            shapes, dtypes = node.output_shapes, node.output_dtypes
            ctx.remove_node(name)
            ctx.make_node(
                "Sub",
                [one.output[0], erf.output[0]],
                outputs=[output],
                name=name,
                shapes=shapes,
                dtypes=dtypes,
            )


def check_onnx_ops(graph) -> None:
    """Refuses an ONNX graph that holds a node of an op ONNX does not define.

    Args:
        graph: The loaded ``onnx.ModelProto``.

    Raises:
        UsageError: Naming the first such op and the node that holds it.
    """
    import onnx

    for node in graph.graph.node:
        if not onnx.defs.has(node.op_type, node.domain or ""):
            raise UsageError(
                f"the onnx format cannot take op {node.op_type} (node {node.name}): tf2onnx "
                "has no conversion for it; export to savedmodel, openvino or litert instead"
            )


CATCH_ERRORS = "TF2ONNX_CATCH_ERRORS"
"""tf2onnx's switch: whether to deep-copy the graph before each optimizer pass."""


def optimize_in_place(convert):
    """Returns ``convert()``, run with tf2onnx's optimizer passes applied to the graph itself.

    Where the user set ``TF2ONNX_CATCH_ERRORS``, that setting is kept. Otherwise
    the conversion first runs with it ``FALSE``; if an optimizer pass raised, it
    runs again with tf2onnx's default, which skips a pass that fails.

    Args:
        convert: A callable that converts (``model.export(..., format="onnx")``).
    """
    if CATCH_ERRORS in os.environ:
        return convert()
    os.environ[CATCH_ERRORS] = "FALSE"
    try:
        return convert()
    except Exception as error:
        if not _raised_in_optimizer(error):
            raise
    finally:
        os.environ.pop(CATCH_ERRORS, None)
    return convert()


def _raised_in_optimizer(error) -> bool:
    optimizer = Path("tf2onnx") / "optimizer"
    frames = traceback.extract_tb(error.__traceback__)
    return any(str(optimizer) in frame.filename for frame in frames)
