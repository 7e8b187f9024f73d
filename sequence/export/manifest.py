"""The export manifest ``vidseq-export.json``: what any runtime needs to feed an export.

An export directory holds the model files of one format and this manifest. It is
plain JSON, versioned (``manifest_version``), and readable without vidseq: the
class names (index = output unit), the :class:`~vidseq.extract.decode.framespec.FrameSpec`
the frames must be sampled with, the input and output tensors (names, shapes
with ``null`` for a dynamic batch, dtypes), the backbone and its weights hash,
the run it came from, the vidseq version and the format. This module imports
no TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from vidseq.bounds import MAX_CLASSES, MAX_FEATURES, MAX_FRAMES, MAX_SIDE, check_count
from vidseq.errors import UsageError
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.outputs import atomic_output
from vidseq.sequence.runs.report_files import read_json

MANIFEST_FILE = "vidseq-export.json"
MANIFEST_KIND = "vidseq-export"
MANIFEST_VERSION = 1
"""Bumped when a reader of an older version could not use the manifest correctly."""

PARTS = ("end-to-end", "head")


@dataclass(frozen=True)
class ExportFormat:
    """One export format.

    Attributes:
        name: The ``--format`` value.
        files: The files (or directories) it writes in the export directory.
        model_path: The file (or directory) its runtime loads.
        modules: The Python modules exporting and running it needs.
        extra: The pip install that provides them.
    """

    name: str
    files: tuple[str, ...]
    model_path: str
    modules: tuple[str, ...]
    extra: str


FORMATS = {
    "savedmodel": ExportFormat(
        "savedmodel", ("saved_model",), "saved_model", ("tensorflow",), "pip install vidseq"
    ),
    "openvino": ExportFormat(
        "openvino",
        ("model.xml", "model.bin"),
        "model.xml",
        ("openvino",),
        "pip install 'vidseq[openvino]'",
    ),
    "onnx": ExportFormat(
        "onnx",
        ("model.onnx",),
        "model.onnx",
        ("onnx", "onnxruntime", "tf2onnx"),
        "pip install 'vidseq[onnx]'",
    ),
    "litert": ExportFormat(
        "litert", ("model.tflite",), "model.tflite", ("tensorflow",), "pip install vidseq"
    ),
}


def get_format(name) -> ExportFormat:
    """The :class:`ExportFormat` called ``name``.

    Raises:
        UsageError: For an unknown format.
    """
    if name not in FORMATS:
        raise UsageError(f"format must be one of {', '.join(FORMATS)}. Received: format={name!r}")
    return FORMATS[name]


def check_part(part) -> str:
    """Returns ``part`` if it is ``"end-to-end"`` or ``"head"``; UsageError otherwise."""
    if part not in PARTS:
        raise UsageError(f"part must be one of {', '.join(PARTS)}. Received: part={part!r}")
    return part


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape (None: any size, the batch) and dtype of a model input or output."""

    name: str
    shape: tuple
    dtype: str

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, data) -> TensorInfo:
        """Reads :meth:`to_dict` output (KeyError/TypeError on a malformed entry)."""
        shape = tuple(None if v is None else int(v) for v in data["shape"])
        return cls(str(data["name"]), shape, str(data["dtype"]))


@dataclass(frozen=True)
class ExportManifest:
    """The contents of ``vidseq-export.json``.

    Attributes:
        format: ``"savedmodel"``, ``"openvino"``, ``"onnx"`` or ``"litert"``.
        part: ``"end-to-end"`` (uint8 frames in) or ``"head"`` (features and mask in).
        class_names: Index = output unit.
        frame_spec: How the run sampled and framed its frames.
        frames: T, the frames (or feature rows) per clip the model reads.
        input_size: ``(height, width)`` of a frame.
        inputs: The model inputs, in order.
        outputs: The model outputs, in order.
        backbone: ``name``, ``weights``, ``weights_sha256``, ``seed``,
            ``feature_dim`` and ``fine_tuned`` of the CNN.
        source_run: Absolute path of the run directory exported.
        vidseq_version: The vidseq that wrote the export.
        runtime: Settings the runtime must use to give the run's numbers
            (e.g. OpenVINO's ``INFERENCE_PRECISION_HINT``).
        manifest_version: The manifest schema version.
    """

    format: str
    part: str
    class_names: list
    frame_spec: FrameSpec
    frames: int
    input_size: tuple
    inputs: tuple
    outputs: tuple
    backbone: dict
    source_run: str
    vidseq_version: str
    runtime: dict = field(default_factory=dict)
    manifest_version: int = MANIFEST_VERSION

    @property
    def model_path(self) -> str:
        """The file (or directory) of the export its runtime loads, relative to the manifest."""
        return FORMATS[self.format].model_path

    def to_dict(self) -> dict:
        """The JSON-ready manifest."""
        return {
            "kind": MANIFEST_KIND,
            "manifest_version": self.manifest_version,
            "format": self.format,
            "part": self.part,
            "model_path": self.model_path,
            "class_names": list(self.class_names),
            "frame_spec": self.frame_spec.to_dict(),
            "frames": int(self.frames),
            "input_size": [int(v) for v in self.input_size],
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "backbone": dict(self.backbone),
            "source_run": self.source_run,
            "vidseq_version": self.vidseq_version,
            "runtime": dict(self.runtime),
        }

    @classmethod
    def from_dict(cls, data, *, where="manifest") -> ExportManifest:
        """Validates a manifest dict (see :func:`read_manifest` for the errors)."""
        if not isinstance(data, dict) or data.get("kind") != MANIFEST_KIND:
            raise UsageError(f"{where}: not a vidseq export manifest (no kind {MANIFEST_KIND!r})")
        version = data.get("manifest_version")
        if not isinstance(version, int) or version < 1:
            raise UsageError(f"{where}: bad manifest_version. Received: {version!r}")
        if version > MANIFEST_VERSION:
            raise UsageError(
                f"{where}: manifest version {version} is newer than this vidseq reads "
                f"({MANIFEST_VERSION}); upgrade vidseq"
            )
        try:
            manifest = cls(
                format=get_format(data["format"]).name,
                part=check_part(data["part"]),
                class_names=[str(c) for c in data["class_names"]],
                frame_spec=FrameSpec.from_dict(data["frame_spec"]),
                frames=int(data["frames"]),
                input_size=tuple(int(v) for v in data["input_size"]),
                inputs=tuple(TensorInfo.from_dict(t) for t in data["inputs"]),
                outputs=tuple(TensorInfo.from_dict(t) for t in data["outputs"]),
                backbone=dict(data["backbone"]),
                source_run=str(data["source_run"]),
                vidseq_version=str(data["vidseq_version"]),
                runtime=dict(data.get("runtime") or {}),
                manifest_version=version,
            )
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            problem = f"missing {e}" if isinstance(e, KeyError) else str(e).splitlines()[0]
            raise UsageError(f"{where}: corrupt export manifest ({problem})") from None
        check_manifest_sizes(manifest, where)
        return manifest


def check_manifest_sizes(manifest, where="manifest") -> None:
    """Bounds a manifest's sizes before anything is allocated, and checks they agree.

    ``frames``, ``input_size`` and every tensor dimension are bounded (see
    ``vidseq.bounds``); the output's last dimension, when fixed, must be the
    number of class names, and the first input's second the frames.

    Raises:
        UsageError: Naming the manifest and the field.
    """
    try:
        check_count("frames", manifest.frames, high=MAX_FRAMES)
        check_count("class names", len(manifest.class_names), high=MAX_CLASSES)
        if len(manifest.input_size) != 2:
            raise UsageError(f"input_size must be (height, width). Received: {manifest.input_size}")
        for side in manifest.input_size:
            check_count("input_size", side, high=MAX_SIDE)
        for tensor in (*manifest.inputs, *manifest.outputs):
            for size in tensor.shape:
                if size is not None:
                    check_count(f"{tensor.name} shape", size, high=MAX_FEATURES)
    except UsageError as error:
        raise UsageError(f"{where}: corrupt export manifest ({error})") from None
    classes = (
        manifest.outputs[0].shape[-1] if manifest.outputs and manifest.outputs[0].shape else None
    )
    if classes is not None and classes != len(manifest.class_names):
        raise UsageError(
            f"{where}: corrupt export manifest (it names {len(manifest.class_names)} classes "
            f"but its output has {classes})"
        )
    first = manifest.inputs[0].shape if manifest.inputs else ()
    if len(first) > 1 and first[1] is not None and first[1] != manifest.frames:
        raise UsageError(
            f"{where}: corrupt export manifest (frames is {manifest.frames} but its input "
            f"{manifest.inputs[0].name} takes {first[1]})"
        )


def write_manifest(manifest: ExportManifest, directory) -> Path:
    """Writes ``directory/vidseq-export.json``; returns its path."""
    path = Path(directory) / MANIFEST_FILE
    with atomic_output(path, "w", encoding="utf-8") as file:
        file.write(json.dumps(manifest.to_dict(), indent=2) + "\n")
    return path


def is_export_dir(path) -> bool:
    """Whether ``path`` is a directory holding a ``vidseq-export.json`` (valid or not)."""
    return (Path(path) / MANIFEST_FILE).is_file()


def read_manifest(directory) -> ExportManifest:
    """Reads and checks the manifest of an export directory, and that its files exist.

    Args:
        directory: An export directory written by ``vidseq export``.

    Returns:
        The :class:`ExportManifest`.

    Raises:
        UsageError: No such directory, no manifest, a manifest that is not
            JSON, not vidseq's, of a newer version, or malformed, or a model
            file it names that is missing.
    """
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise UsageError(f"{directory}: not a vidseq export directory (no {MANIFEST_FILE})")
    manifest = ExportManifest.from_dict(read_json(path, "export manifest"), where=str(path))
    for name in FORMATS[manifest.format].files:
        if not (directory / name).exists():
            raise UsageError(f"{directory}: incomplete {manifest.format} export, {name} is missing")
    return manifest
