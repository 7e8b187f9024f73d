"""Export a trained run for serving: SavedModel, OpenVINO IR, ONNX or LiteRT, plus a manifest.

``end-to-end`` (the default) exports one model from ``(batch, T, H, W, 3)`` uint8
RGB frames to class probabilities: the frozen CNN with its own preprocessing
layer, the padding mask and the run's temporal head, the very composition
``finetune`` trains (:func:`vidseq.sequence.train.finetune.build_end_to_end`). ``head``
exports the head alone: ``features (batch, T, D)`` float32 and ``mask (batch, T)``
float32 (1 for a real frame, 0 for padding) to probabilities.

How each format is written (Keras 3 export where it serves, the format's
converter where it does not):

* ``savedmodel``: ``tf.saved_model.save`` of one ``serve`` function (also the
  ``serving_default`` signature) and the variables it reads, with named inputs
  (``frames``, or ``features`` and ``mask``) and one named output, ``probabilities``
  (Keras' ``ExportArchive`` writes the same signature with every weight twice).
* ``onnx``: ``model.export(format="onnx")`` (tf2onnx), output renamed to
  ``probabilities``.
* ``openvino``: ``openvino.convert_model`` in memory on the concrete function
  of that same serving endpoint, saved uncompressed (fp32): the signature's
  ``TensorSpec`` names name the IR's inputs and the returned dict's key its one
  output, as the SavedModel's signature would, without writing one and reading
  it back. Keras' own ``format="openvino"`` on the TensorFlow backend keeps the
  graph's internal tensors as extra outputs.
* ``litert``: ``tf.lite.TFLiteConverter.from_saved_model`` on the SavedModel
  above (written to a temporary folder), so the ``.tflite`` keeps the
  signature's names (Keras' ``"litert"`` names them ``output_0``).

Before export the recurrent layers are rebuilt unrolled over the fixed T, with
``use_cudnn=False`` and without dropout (inference never applies it): no
``while`` loop or TensorList (which OpenVINO and the TFLite builtins cannot
convert), no random op, no cuDNN-only kernel, whatever device exports.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

from vidseq.errors import UsageError
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.sequence.export.manifest import (
    FORMATS,
    ExportManifest,
    TensorInfo,
    check_part,
    get_format,
    write_manifest,
)
from vidseq.sequence.export.onnx_ops import check_onnx_ops, optimize_in_place, register_erfc
from vidseq.sequence.runs.saved_run import CUSTOM_OBJECTS, load_run, load_run_backbone
from vidseq.sequence.train.end_to_end import build_end_to_end
from vidseq.version import __version__

OUTPUT_NAME = "probabilities"
UNCONVERTED_OPS = (
    re.compile(r"Custom ops: ([\w, ]+)"),
    re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op"),
    re.compile(r"No conversion rule found for operations: ([\w, ]+)"),
)
"""What the LiteRT and OpenVINO converters say when they cannot convert an op."""
RNN_CLASSES = ("LSTM", "GRU", "SimpleRNN")
OPENVINO_RUNTIME = {"INFERENCE_PRECISION_HINT": "f32"}
"""OpenVINO computes in bf16 by default on CPUs that have it; fp32 keeps the run's numbers."""


def check_format_available(name):
    """The :class:`~vidseq.sequence.export.manifest.ExportFormat` ``name``, if its modules import.

    Raises:
        UsageError: For an unknown format, or one whose packages are missing
            (the message names the ``pip install`` to run).
    """
    fmt = get_format(name)
    missing = [m for m in fmt.modules if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"the {name} format needs {', '.join(missing)}: {fmt.extra}")
    return fmt


@dataclass
class ExportResult:
    """What :func:`export_run` wrote.

    Attributes:
        directory: The export directory.
        manifest: Its :class:`~vidseq.sequence.export.manifest.ExportManifest`.
        sizes: Bytes of each file or directory written (the manifest excluded).
        seconds: Wall time of the export.
    """

    directory: Path
    manifest: ExportManifest
    sizes: dict = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for humans."""
        files = ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in self.sizes.items())
        return (
            f"{self.manifest.format} export ({self.manifest.part}) written to {self.directory}: "
            f"{files} in {self.seconds:.1f} s"
        )

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "directory": str(self.directory),
            "manifest": self.manifest.to_dict(),
            "sizes": dict(self.sizes),
            "seconds": round(self.seconds, 3),
        }


def export_run(run_dir, out_dir, *, format, part="end-to-end", batch=None):
    """Exports a trained run for serving, with its manifest ``vidseq-export.json``.

    Args:
        run_dir: A run directory (``train-sequence`` or ``finetune``).
        out_dir: The export directory: created, or an empty one. It appears
            complete or not at all.
        format: ``"savedmodel"``, ``"openvino"``, ``"onnx"`` or ``"litert"``.
        part: ``"end-to-end"`` (uint8 frames in) or ``"head"`` (features and mask in).
        batch: A fixed batch size, or None for a dynamic batch.

    Returns:
        An :class:`ExportResult`.

    Raises:
        UsageError: Unknown format or part, the format's packages missing, a
            bad batch, an incomplete run directory, backbone weights that
            differ from the run's, or an ``out_dir`` that is not empty.
    """
    start = time.perf_counter()
    fmt = check_format_available(format)
    check_part(part)
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise UsageError(f"batch must be None or an integer >= 1. Received: batch={batch!r}")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UsageError(f"{out_dir}: exists and is not an empty directory; choose another --out")
    run = load_run(run_dir)
    model = servable(build_export_model(run, part))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        inputs = write_model_files(model, partial, fmt.name, batch=batch)
        manifest = _manifest(run, fmt.name, part, inputs, model.output_shape, batch)
        write_manifest(manifest, partial)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(partial, out_dir)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    sizes = {name: _size(out_dir / name) for name in fmt.files}
    return ExportResult(out_dir, manifest, sizes, time.perf_counter() - start)


def build_export_model(run, part):
    """The Keras model an export holds, from a loaded run.

    ``end-to-end``: for a feature run, the run's backbone (rebuilt, hash
    checked) composed with its head as ``finetune`` composes them; for an
    end-to-end run, its own model. ``head``: the head behind a mask input.

    Raises:
        UsageError: A clip encoder's feature run whose head reads fewer frames
            than the cache grouped per video (the export reads the head's T
            frames only, and would group them otherwise).
    """
    if run.end_to_end:
        head = run.model.layers[-1]  # build_end_to_end: frames, backbone, padding mask, head
        whole = run.model
    else:
        head = run.model
        whole = None
    if part == "head":
        features = keras.Input(shape=head.input_shape[1:], name="features")
        mask = keras.Input(shape=head.input_shape[1:2], name="mask")
        masked = features * keras.ops.expand_dims(mask, -1)
        return keras.Model([features, mask], head(masked), name="vidseq_head_export")
    if whole is None:
        backbone = load_run_backbone(run)
        cached = run.frame_spec.num_frames
        if backbone.clip_frames > 1 and run.frames < cached:
            raise UsageError(
                f"{run.path}: backbone {backbone.name} reads clips of {backbone.clip_frames} "
                f"frames, and the run's head reads {run.frames} of the {cached} frames it "
                "grouped per video: an end-to-end export cannot group the frames as extraction "
                "did; export --part head, or train with --frames equal to the cache's"
            )
        whole = build_end_to_end(backbone, head, frames=run.frames)
    return whole


def servable(model):
    """A copy of ``model`` whose recurrent layers are unrolled, cuDNN-free and dropout-free.

    The copy has the same weights and gives the same outputs at inference.
    Every ``LSTM``/``GRU``/``SimpleRNN`` (also inside ``Bidirectional`` and
    nested models) gets ``unroll=True`` (the sequence length is fixed),
    ``use_cudnn=False`` and zero dropout; a backward layer keeps its padding
    outputs (see the comment inside).
    """
    config = keras.saving.serialize_keras_object(model)
    _unroll_rnns(config)
    copy = keras.saving.deserialize_keras_object(config, custom_objects=CUSTOM_OBJECTS)
    copy.set_weights(model.get_weights())
    for layer in _walk(copy):
        if isinstance(layer, keras.layers.Normalization):
            # set_weights fills its adapted statistics, but call() reads the copies
            # finalize_state() makes of them (loading a .keras file calls it itself):
            # without this, the copy would standardise with mean 0 and variance 1.
            # As NumPy arrays they trace as constants: as eager tensors, tf2onnx
            # would turn them into inputs of the ONNX graph.
            layer.finalize_state()
            layer.mean = keras.ops.convert_to_numpy(layer.mean)
            layer.variance = keras.ops.convert_to_numpy(layer.variance)
        # Keras 3.15's unrolled TF loop zeroes the masked outputs of a go_backwards
        # layer with the mask in forward order, wiping real steps of a Bidirectional
        # layer that returns sequences. Without it, a masked step repeats the previous
        # output (zeros for trailing padding), and the next layer skips it anyway.
        if getattr(layer, "go_backwards", False):
            layer.zero_output_for_mask = False
        _constants_as_numpy(layer)
    return copy


def _constants_as_numpy(layer) -> None:
    """Replaces the eager tensors a layer keeps as attributes by NumPy arrays.

    keras-hub's VideoPrism keeps its position ids as tensors made in
    ``build``; traced, an eager tensor is a captured input, which tf2onnx turns
    into an input of the ONNX graph that no caller feeds. A NumPy array traces
    as a constant.
    """
    for name, value in list(vars(layer).items()):
        if isinstance(value, tf.Tensor) and hasattr(value, "numpy"):
            setattr(layer, name, value.numpy())


def _walk(layer):
    """``layer`` and every layer inside it (nested models and RNN wrappers)."""
    yield layer
    children = list(getattr(layer, "layers", None) or [])
    wrapped = ("layer", "forward_layer", "backward_layer")  # TimeDistributed, Bidirectional
    children += [getattr(layer, name, None) for name in wrapped]
    for child in children:
        if child is not None:
            yield from _walk(child)


def _unroll_rnns(config):
    if isinstance(config, dict):
        layer_config = config.get("config")
        if config.get("class_name") in RNN_CLASSES and isinstance(layer_config, dict):
            layer_config.update(unroll=True, dropout=0.0, recurrent_dropout=0.0)
            if "use_cudnn" in layer_config:
                layer_config["use_cudnn"] = False
        for value in config.values():
            _unroll_rnns(value)
    elif isinstance(config, list):
        for value in config:
            _unroll_rnns(value)


def write_model_files(model, directory, format, *, batch=None):
    """Writes ``model`` in one format into ``directory`` (the files of ``FORMATS[format]``).

    Args:
        model: A Keras model with one input ``(T, H, W, 3)`` uint8 (named
            ``frames`` in the export) or two inputs ``(T, D)`` and ``(T,)``
            (``features`` and ``mask``), and one probabilities output.
        directory: An existing directory.
        format: The format name.
        batch: A fixed batch size, or None (dynamic).

    Returns:
        The inputs as :class:`~vidseq.sequence.export.manifest.TensorInfo`, in order.

    Raises:
        UsageError: The format's converter has no conversion for an op of the
            model (one line naming the op and the format).
    """
    directory = Path(directory)
    names = ("frames",) if len(model.inputs) == 1 else ("features", "mask")
    specs = [
        tf.TensorSpec((batch, *x.shape[1:]), x.dtype, name=name)
        for name, x in zip(names, model.inputs, strict=True)
    ]
    if format == "onnx":
        _write_onnx(model, specs, directory / "model.onnx")
    elif format == "savedmodel":
        _write_saved_model(model, specs, directory / "saved_model")
    else:
        try:
            if format == "openvino":
                _write_openvino(model, specs, directory / "model.xml")
            elif format == "litert":
                _write_litert(model, specs, directory)
        except Exception as error:  # each converter raises its own type
            refusal = unconverted_op(format, error)
            if refusal is None:
                raise
            raise UsageError(refusal) from None
    return tuple(TensorInfo(s.name, tuple(s.shape), s.dtype.name) for s in specs)


def unconverted_op(format, error) -> str | None:
    """The one-line refusal for a converter error that names ops it cannot convert, or None.

    The LiteRT converter says ``'tf.Igamma' op is neither a custom op nor a flex
    op`` and lists ``Custom ops: Igamma``; OpenVINO says ``No conversion rule found
    for operations: Igamma``. Any other error is not about an op (None).
    """
    text = str(error)
    for pattern in UNCONVERTED_OPS:
        found = pattern.search(text)
        if found:
            ops = ", ".join(op.strip() for op in found.group(1).split(",") if op.strip())
            others = ", ".join(name for name in FORMATS if name != format)
            return (
                f"the {format} format cannot take op {ops}: its converter has no conversion "
                f"for it; export to {others} instead"
            )
    return None


def _serving_function(model, count):
    """The serving endpoint: named inputs (``count`` of them) to ``{"probabilities": ...}``."""
    if count == 1:

        def serve(frames):
            return {OUTPUT_NAME: model(frames, training=False)}

    else:

        def serve(features, mask):
            return {OUTPUT_NAME: model([features, mask], training=False)}

    return serve


def _write_saved_model(model, specs, path):
    """Saves a ``tf.Module``: ``serve``, its ``serving_default`` and the variables it reads.

    ``tf.saved_model.save`` rather than Keras' ``ExportArchive``, which stores every
    weight twice (under ``variables`` and ``_all_variables``) and traces the
    endpoint again for layers it walks: the same signature, half the variables.
    """
    module = tf.Module()
    serve = _serving_function(model, len(specs))
    module.serve = tf.function(serve, input_signature=specs, autograph=False)
    signature = module.serve.get_concrete_function()
    module.captured_variables = list(signature.variables)
    tf.saved_model.save(module, str(path), signatures={"serving_default": signature})


def _write_openvino(model, specs, path):
    """Converts the serving endpoint's concrete function in memory.

    OpenVINO's TensorFlow frontend names the IR's inputs after the signature's
    ``TensorSpec`` names and its one output after the returned dict's key, as
    it does for the SavedModel's signature, without writing and reading one.
    """
    import openvino as ov

    serve = _serving_function(model, len(specs))
    concrete = tf.function(serve, input_signature=specs, autograph=False).get_concrete_function()
    converted = ov.convert_model(concrete)
    ov.save_model(converted, str(path), compress_to_fp16=False)


def _write_litert(model, specs, directory):
    """Converts a SavedModel written next to the ``.tflite`` (then removed).

    ``from_concrete_functions`` keeps the names too but is no faster, and on a
    keras-hub model gave NaN probabilities (TF 2.21).
    """
    saved = Path(directory) / "saved_model"
    _write_saved_model(model, specs, saved)
    try:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        (Path(directory) / "model.tflite").write_bytes(converter.convert())
    finally:
        shutil.rmtree(saved, ignore_errors=True)


def _write_onnx(model, specs, path):
    import onnx

    signature = [specs] if len(specs) > 1 else specs
    register_erfc()
    with warnings.catch_warnings():  # Keras' tf2onnx shim probes np.object: NumPy 2 warns
        warnings.filterwarnings("ignore", r"In the future `np\.object`", FutureWarning)
        optimize_in_place(
            lambda: model.export(str(path), format="onnx", input_signature=signature, verbose=False)
        )
    graph = onnx.load(str(path))
    check_onnx_ops(graph)
    old = graph.graph.output[0].name
    for node in graph.graph.node:
        node.output[:] = [OUTPUT_NAME if name == old else name for name in node.output]
        node.input[:] = [OUTPUT_NAME if name == old else name for name in node.input]
    graph.graph.output[0].name = OUTPUT_NAME
    onnx.save(graph, str(path))


def _manifest(run, format, part, inputs, output_shape, batch):
    config = run.config
    spec = FrameSpec.from_dict(config["sampling"])
    if run.end_to_end:  # it reads T frames sampled directly (see sequence/predict.py)
        spec = spec.with_num_frames(run.frames)
    return ExportManifest(
        format=format,
        part=part,
        class_names=run.class_names,
        frame_spec=spec,
        frames=run.frames,
        input_size=tuple(int(v) for v in config["input_size"]),
        inputs=inputs,
        outputs=(TensorInfo(OUTPUT_NAME, (batch, int(output_shape[-1])), "float32"),),
        backbone={
            "name": config["backbone"],
            "weights": config["weights"],
            "weights_sha256": config["weights_sha256"],
            "seed": int(config.get("weights_seed", 0)),
            "feature_dim": int(config["feature_dim"]),
            "fine_tuned": bool(run.end_to_end),
        },
        source_run=str(Path(run.path).resolve()),
        vidseq_version=__version__,
        runtime=dict(OPENVINO_RUNTIME) if format == "openvino" else {},
    )


def _size(path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
