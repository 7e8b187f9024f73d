"""Running an export in its format's own runtime, and ``predict`` on an export directory.

No Keras model is built here: a SavedModel runs through ``tf.saved_model.load``,
OpenVINO IR through ``openvino.Core``, ONNX through ``onnxruntime``, and LiteRT
through the LiteRT interpreter (``ai_edge_litert`` when installed, else
TensorFlow's bundled ``tf.lite.Interpreter``). Frames are read as the run read
them: the manifest's :class:`~vidseq.extract.decode.framespec.FrameSpec`, then the
centre sample of ``frames`` rows (:func:`vidseq.sequence.data.temporal.segment_positions`).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

import numpy as np

from vidseq.errors import SourceReadError, UsageError
from vidseq.extract.decode.frames import read_frames
from vidseq.quiet import native_chatter_dropped
from vidseq.sequence.data.temporal import segment_positions
from vidseq.sequence.export.manifest import FORMATS, read_manifest
from vidseq.sequence.infer.predict import Prediction


class ExportedModel:
    """An export directory loaded in its format's runtime.

    Args:
        directory: An export directory written by ``vidseq export``.

    Raises:
        UsageError: A corrupt, incomplete or foreign export directory, a
            runtime that is not installed (the message names the ``pip
            install``), or model files the runtime cannot load.
    """

    def __init__(self, directory):
        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory)
        fmt = FORMATS[self.manifest.format]
        needed = _RUNTIME_MODULES[fmt.name]
        if not any(importlib.util.find_spec(m) is not None for m in needed):
            names = " or ".join(needed)
            raise UsageError(f"running a {fmt.name} export needs {names}: {fmt.extra}")
        path = self.directory / fmt.model_path
        try:
            self._run = _LOADERS[fmt.name](str(path), self.manifest)
        except Exception as e:  # each runtime raises its own types for a bad file
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UsageError(f"{path}: cannot load the {fmt.name} model ({first})") from None

    def predict(self, *inputs) -> np.ndarray:
        """Class probabilities of a batch.

        Args:
            *inputs: The manifest's inputs in order: ``frames (N, T, H, W, 3)``
                uint8, or ``features (N, T, D)`` and ``mask (N, T)`` float32.
                With a fixed batch size, N is cut and padded to it.

        Returns:
            ``(N, num_classes)`` float32 probabilities.
        """
        specs = self.manifest.inputs
        if len(inputs) != len(specs):
            raise UsageError(
                f"this export takes {len(specs)} inputs ({', '.join(s.name for s in specs)}). "
                f"Received: {len(inputs)}"
            )
        arrays = [np.asarray(x, dtype=s.dtype) for x, s in zip(inputs, specs, strict=True)]
        for array, spec in zip(arrays, specs, strict=True):
            if array.shape[1:] != tuple(spec.shape[1:]):
                raise UsageError(
                    f"input {spec.name} must have shape {spec.shape}. Received: {array.shape}"
                )
        batch = specs[0].shape[0]
        step = batch or len(arrays[0])
        rows = []
        for start in range(0, len(arrays[0]), max(step, 1)):
            chunk = [a[start : start + step] for a in arrays]
            size = len(chunk[0])
            if batch and size < batch:  # a fixed batch: pad with zeros, drop the pad after
                chunk = [np.pad(c, [(0, batch - size)] + [(0, 0)] * (c.ndim - 1)) for c in chunk]
            feeds = {s.name: c for s, c in zip(specs, chunk, strict=True)}
            rows.append(self._checked(np.asarray(self._run(feeds), dtype=np.float32))[:size])
        return np.concatenate(rows) if rows else np.zeros((0, len(self.manifest.class_names)))

    def _checked(self, output):
        """The model's output, if it has one column per class name of the manifest."""
        names = len(self.manifest.class_names)
        if output.ndim != 2 or output.shape[1] != names:
            raise UsageError(
                f"{self.directory}: the model's output has shape {output.shape} but the "
                f"manifest names {names} classes; the export is corrupt, export the run again"
            )
        return output


def read_export_clip(manifest, source) -> np.ndarray:
    """One video's ``(T, H, W, 3)`` uint8 clip as the run read it (padding frames zero).

    Raises:
        SourceReadError: The video cannot be read.
    """
    spec = manifest.frame_spec
    read = read_frames(source, spec.sampling, spec.geometry(manifest.input_size))
    positions = segment_positions(read.num_valid, manifest.frames)
    clip = np.zeros((manifest.frames, *manifest.input_size, 3), dtype=np.uint8)
    clip[: len(positions)] = read.frames[positions]
    return clip


def predict_export(directory, videos, *, top_k=5, batch_size=8) -> list[Prediction]:
    """Classifies video files with an end-to-end export, in its format's runtime.

    Args:
        directory: An export directory (``--part end-to-end``).
        videos: Paths of video files (or frame directories).
        top_k: How many labels to report per video.
        batch_size: Clips per call of the model.

    Returns:
        One :class:`~vidseq.sequence.infer.predict.Prediction` per video, in order.

    Raises:
        UsageError: A bad ``top_k``, a head export, or a bad export directory.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise UsageError(f"top_k must be an integer >= 1. Received: top_k={top_k!r}")
    model = ExportedModel(directory)
    manifest = model.manifest
    if manifest.part != "end-to-end":
        raise UsageError(
            f"{directory}: a {manifest.part} export reads features, not videos; "
            "export the run with --part end-to-end to predict on videos"
        )
    predictions = [Prediction(str(v)) for v in videos]
    for start in range(0, len(predictions), batch_size):
        clips = {}
        for i in range(start, min(start + batch_size, len(predictions))):
            try:
                clips[i] = read_export_clip(manifest, os.path.abspath(predictions[i].video))
            except SourceReadError as error:
                predictions[i].error = error.reason
        if clips:
            rows = model.predict(np.stack(list(clips.values())))
            for i, row in zip(clips, rows, strict=True):
                best = np.argsort(row)[::-1][:top_k]
                predictions[i].top = [(manifest.class_names[j], float(row[j])) for j in best]
    return predictions


def _load_savedmodel(path, manifest):
    import tensorflow as tf

    loaded = tf.saved_model.load(path)  # held by the closure: it owns the variables
    output = manifest.outputs[0].name

    def run(feeds):
        signature = loaded.signatures["serving_default"]
        return signature(**{k: tf.constant(v) for k, v in feeds.items()})[output].numpy()

    return run


def _load_openvino(path, manifest):
    import openvino as ov

    compiled = ov.Core().compile_model(path, "CPU", dict(manifest.runtime))
    return lambda feeds: compiled(feeds)[compiled.output(0)]


def _load_onnx(path, manifest):
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(None, feeds)[0]


def _load_litert(path, manifest):
    if importlib.util.find_spec("ai_edge_litert") is not None:
        from ai_edge_litert.interpreter import Interpreter
    else:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice
        warnings.simplefilter("ignore")
        interpreter = Interpreter(model_path=path)
    with native_chatter_dropped():  # "INFO: Created TensorFlow Lite XNNPACK delegate"
        interpreter.allocate_tensors()
    runner = interpreter.get_signature_runner("serving_default")
    output = manifest.outputs[0].name
    return lambda feeds: runner(**feeds)[output]


_LOADERS = {
    "savedmodel": _load_savedmodel,
    "openvino": _load_openvino,
    "onnx": _load_onnx,
    "litert": _load_litert,
}
_RUNTIME_MODULES = {  # any one of them runs the format
    "savedmodel": ("tensorflow",),
    "openvino": ("openvino",),
    "onnx": ("onnxruntime",),
    "litert": ("ai_edge_litert", "tensorflow"),
}
