"""What the ONNX export adds to tf2onnx: the ``Erfc`` op, and a check for ops it left unconverted.

Keras' exact GELU (``keras.activations.gelu(approximate=False)``, in the MLPs
of keras-hub's DINOv2 and ViT encoders) becomes TensorFlow's ``Erfc``, which
tf2onnx does not convert: it logs an error and leaves the TensorFlow node in
the graph, which no ONNX runtime loads. :func:`register_erfc` maps it to
``1 - Erf(x)`` (``Erf`` is an ONNX op since opset 9); :func:`check_onnx_ops`
turns any other node tf2onnx left behind into one line naming the op.
"""

from __future__ import annotations

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
