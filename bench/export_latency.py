"""Benchmark: file size and single-clip latency of each export format on 2 CPU cores.

Builds the end-to-end model an export holds, ``mobilenetv2`` at 224x224 (random
init, ``weights=None``: the figures do not depend on the weight values, and no
download is needed) with the default head (one LSTM of 128 units, temporal
centering ``concat``) over T=16 frames and 2 classes, exports it in every
format with the code ``vidseq export`` uses, and runs each export in its own
runtime with that runtime's default settings, the process pinned to 2 cores.
For each format it prints the export seconds, the size of the model files, and
the median (and min-max) wall time of one clip ``(1, 16, 224, 224, 3)`` uint8
after 2 warm-up calls, plus the largest difference from the Keras model.

Figures are printed, never asserted. Usage::

    python bench/export_latency.py [--frames 16] [--size 224] [--repeats 10]
        [--formats savedmodel openvino onnx litert] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from vidseq.extract.decode.framespec import FrameSpec
from vidseq.sequence.export.build import servable, write_model_files
from vidseq.sequence.export.manifest import FORMATS, ExportManifest, TensorInfo, write_manifest
from vidseq.sequence.export.runtime import ExportedModel


def build_model(frames, size):
    """The end-to-end mobilenetv2 + LSTM model, as an export holds it."""
    from vidseq.extract.models.backbones import load_backbone
    from vidseq.sequence.train.finetune import build_end_to_end
    from vidseq.sequence.train.model import build_head

    backbone = load_backbone("mobilenetv2", "none", input_size=(size, size))
    head = build_head(2, backbone.feature_dim, num_frames=frames)
    return servable(build_end_to_end(backbone, head, frames=frames))


def export_one(model, directory, fmt, frames, size):
    """Writes one format and a manifest; returns (seconds, bytes of the model files)."""
    start = time.perf_counter()
    inputs = write_model_files(model, directory, fmt)
    seconds = time.perf_counter() - start
    manifest = ExportManifest(
        format=fmt,
        part="end-to-end",
        class_names=["a", "b"],
        frame_spec=FrameSpec().with_num_frames(frames),
        frames=frames,
        input_size=(size, size),
        inputs=inputs,
        outputs=(TensorInfo("probabilities", (None, 2), "float32"),),
        backbone={"name": "mobilenetv2", "weights": "none"},
        source_run="(benchmark)",
        vidseq_version="bench",
        runtime={"INFERENCE_PRECISION_HINT": "f32"} if fmt == "openvino" else {},
    )
    write_manifest(manifest, directory)
    paths = [directory / name for name in FORMATS[fmt].files]
    files = [p for path in paths for p in ([path] if path.is_file() else path.rglob("*"))]
    return seconds, sum(p.stat().st_size for p in files if p.is_file())


def latency(exported, clip, repeats):
    """Median, min and max seconds of one call, after 2 warm-up calls."""
    for _ in range(2):
        exported.predict(clip)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        exported.predict(clip)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), max(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS))
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the bench runs")
    args = parser.parse_args(argv)
    if args.smoke:  # a few seconds; its figures mean nothing
        args.frames, args.size, args.repeats, args.formats = 2, 32, 1, ["savedmodel"]
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])
    print(f"cores: {sorted(os.sched_getaffinity(0))}")
    model = build_model(args.frames, args.size)
    clip = np.random.default_rng(0).integers(
        0, 256, (1, args.frames, args.size, args.size, 3), dtype=np.uint8
    )
    reference = np.asarray(model.predict(clip, verbose=0))
    start = time.perf_counter()
    model.predict(clip, verbose=0)
    print(f"keras (reference) one clip: {time.perf_counter() - start:.3f} s")
    root = Path(args.workdir or tempfile.mkdtemp(prefix="vidseq-export-bench-"))
    print(f"{'format':<11} {'export s':>9} {'size MB':>8} {'median s':>9} {'min-max s':>13} diff")
    for fmt in args.formats:
        directory = root / fmt
        directory.mkdir(parents=True, exist_ok=True)
        seconds, size = export_one(model, directory, fmt, args.frames, args.size)
        exported = ExportedModel(directory)
        median, low, high = latency(exported, clip, args.repeats)
        diff = float(np.abs(exported.predict(clip) - reference).max())
        print(
            f"{fmt:<11} {seconds:>9.1f} {size / 1e6:>8.1f} {median:>9.3f} "
            f"{low:>6.3f}-{high:<6.3f} {diff:.1e}",
            flush=True,
        )
    print(f"exports in {root}")


if __name__ == "__main__":
    main()
