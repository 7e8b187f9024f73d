"""Benchmark: extract-features end to end against the bare backbone and the tutorials' ways.

Generates videos shaped like UCF-101 (320x240, 25 fps, about 7 s, XVID in
``.avi``, one folder per class), then, in ONE process, with the same backbone
and the same sampled frames (``--frames`` uniform frames per video), times:

1. ``ceiling``: the backbone alone (``Backbone.extract``) on pre-decoded,
   pre-resized uint8 batches of ``--batch-size`` frames, already in memory;
2. ``vidseq``: ``vidseq.extract_features`` end to end (decode, sample, resize,
   preprocess, CNN, HDF5 write through the crash-safe writer);
3. ``keras-io``: the keras-io "Video Classification with a CNN-RNN" example's
   way: decode the whole video with ``read()``, centre-crop and resize every
   frame, then one ``model.predict`` call per kept frame;
   ``tutorial``: decode the whole video with ``read()``, resize every frame,
   ``/ 255`` to float64, then one ``model.predict`` call on the video's frames.

With ``--engine tf --engine openvino`` rows 1 and 2 are given for each engine
(``ceiling openvino``: the compiled OpenVINO model alone, same batches), and
the ratios of OpenVINO to TensorFlow end to end. The OpenVINO model is
converted once and kept in ``$VIDSEQ_CACHE/openvino`` (or
``~/.cache/vidseq/openvino``).

Steps 1-3 run in turn inside each repeat, so a noisy neighbour slows them all
alike; the ratios are computed per repeat, and the median and the range over
repeats are printed. ``vidseq`` is given twice: over the whole call
(``frames / wall``) and in steady state (``frames / (wall - setup)``, where
``setup`` is the one-time work before the first video: reading the dataset,
building the model, tracing its function); the targets apply to the steady
state, the figure a long run converges to.

Weights are random (``weights=None`` / ``--weights none``: there is no network
here). Speed does not depend on the values of the weights: the same operations
run on the same shapes (no sparsity or early exit in these networks).

Figures are printed, never asserted. Usage::

    python bench/extract_throughput.py [--backbone resnet50|mobilenetv2|...] [--videos 24]
        [--frames 16] [--batch-size 32] [--decode-workers N] [--repeats 3]
        [--engine tf|openvino ...] [--workdir DIR] [--skip-baselines]

Works unchanged on a GPU machine: the device TensorFlow uses is printed first.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np

WIDTH, HEIGHT, FPS, SECONDS = 320, 240, 25, 7.0


# ---------------------------------------------------------------------------- videos


def _video_frames(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """A textured background panning under moving shapes, with sensor-like noise (BGR)."""
    background = rng.integers(0, 256, (HEIGHT, WIDTH * 2, 3), dtype=np.uint8)
    background = cv2.GaussianBlur(background, (0, 0), 3)
    colours = rng.integers(0, 256, (3, 3)).tolist()
    speed = rng.uniform(0.5, 2.0)
    frames = []
    for i in range(count):
        shift = int(i * speed) % WIDTH
        frame = background[:, shift : shift + WIDTH].copy()
        for k, colour in enumerate(colours):
            x = int((40 + 60 * k + i * (k + 1) * speed) % (WIDTH - 40))
            y = int(HEIGHT / 2 + 60 * np.sin(i / (8.0 + 3 * k) + k))
            cv2.circle(frame, (x, y), 18 + 6 * k, colour, -1)
        noise = rng.integers(0, 16, frame.shape, dtype=np.uint8)
        frames.append(cv2.add(frame, noise))
    return frames


def make_videos(root: Path, videos: int, classes: int = 4, seed: int = 0) -> Path:
    """Writes ``videos`` XVID .avi files (UCF-101 shaped) under ``root/<class>/``; reuses them."""
    root.mkdir(parents=True, exist_ok=True)
    count = int(FPS * SECONDS)
    for v in range(videos):
        label = v % classes
        path = root / f"Class{label}" / f"v_Class{label}_g{v // classes + 1:02d}_c01.avi"
        if path.exists():
            continue
        path.parent.mkdir(exist_ok=True)
        rng = np.random.default_rng([seed, v])
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"XVID"), FPS, (WIDTH, HEIGHT))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write XVID to {path}")
        for frame in _video_frames(rng, count):
            writer.write(frame)
        writer.release()
    return root


def video_paths(root: Path) -> list[str]:
    return sorted(str(p) for p in root.glob("*/*.avi"))


# ----------------------------------------------------------------- the ways being timed


def run_ceiling(engine, frames: np.ndarray, batch_size: int) -> float:
    """(1) the engine alone on pre-decoded, pre-resized uint8 batches; returns seconds."""
    start = time.perf_counter()
    for begin in range(0, len(frames), batch_size):
        engine.extract(frames[begin : begin + batch_size])
    return time.perf_counter() - start


def run_vidseq(data: Path, out: Path, args, engine: str) -> tuple[float, float, int, float]:
    """(2) vidseq.extract_features end to end.

    Returns:
        ``(wall, setup, frames, steady_cpu)``: seconds of the call, its one-time
        setup seconds, frames through the CNN, CPU seconds after the setup.
    """
    from vidseq.extract import pipeline
    from vidseq.extract.decode.framespec import FrameSpec
    from vidseq.extract.decode.sampling import SamplingConfig
    from vidseq.extract.pipeline import extract_features

    marks = []
    extract_into = pipeline._extract_into

    def timed_extract_into(*a, **k):  # CPU time at the end of the setup
        marks.append(_cpu_seconds())
        return extract_into(*a, **k)

    for stale in (out, out.with_name(out.name + ".parts")):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    kwargs = {"engine": engine} if engine != "tf" else {}
    pipeline._extract_into = timed_extract_into
    start = time.perf_counter()
    try:
        summary = extract_features(
            data,
            out,
            source="folder",
            backbone=args.backbone,
            weights="none",
            frames=FrameSpec(SamplingConfig(mode="uniform", num_frames=args.frames)),
            batch_size=args.batch_size,
            decode_workers=args.decode_workers,
            progress=False,
            overwrite=True,
            **kwargs,
        )
        wall = time.perf_counter() - start
        steady_cpu = _cpu_seconds() - marks[0]
    finally:
        pipeline._extract_into = extract_into
    if summary.failures:
        raise RuntimeError(f"extraction failed: {summary.failures[:3]}")
    return wall, summary.setup_seconds, summary.frames, steady_cpu


def _read_all(path: str) -> list[np.ndarray]:
    """Both tutorials' decoding: ``read()`` every frame (decode + BGR copy of each)."""
    capture = cv2.VideoCapture(path)
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        capture.release()
    return frames


def _crop_center_square(frame: np.ndarray) -> np.ndarray:
    """keras-io's ``crop_center_square``."""
    y, x = frame.shape[0:2]
    side = min(y, x)
    start_x, start_y = (x // 2) - (side // 2), (y // 2) - (side // 2)
    return frame[start_y : start_y + side, start_x : start_x + side]


def run_keras_io(model, paths: list[str], size: tuple[int, int], frames: int) -> float:
    """(3a) keras-io: load_video (read all, crop, resize, BGR->RGB), one predict per frame."""
    start = time.perf_counter()
    for path in paths:
        video = []
        for frame in _read_all(path):  # keras-io's load_video(path, max_frames=0)
            frame = _crop_center_square(frame)
            frame = cv2.resize(frame, (size[1], size[0]))
            video.append(frame[:, :, [2, 1, 0]])
        video = np.array(video)
        features = np.zeros((1, frames, model.output_shape[-1]), dtype="float32")
        for j in range(min(frames, len(video))):  # prepare_all_videos' inner loop
            features[0, j, :] = model.predict(video[None, j, :], verbose=0)
    return time.perf_counter() - start


def run_tutorial(model, paths: list[str], size: tuple[int, int], frames: int) -> float:
    """(3b) the tutorial: read all, resize all, / 255 (float64), predict the sampled frames."""
    start = time.perf_counter()
    for path in paths:
        video = [cv2.resize(f, (size[1], size[0])) for f in _read_all(path)]
        video = np.array(video) / 255.0  # float64, as the tutorial does
        keep = np.linspace(0, len(video) - 1, frames).astype(int)
        model.predict(video[keep], verbose=0)
    return time.perf_counter() - start


# ------------------------------------------------------------------------------ main


def _decode_all(paths, frames: int, size) -> np.ndarray:
    """The very frames ``vidseq`` feeds the CNN: uniform sampling, resized, uint8 RGB."""
    from vidseq.extract.decode.frames import FrameGeometry, read_frames
    from vidseq.extract.decode.sampling import SamplingConfig

    sampling = SamplingConfig(mode="uniform", num_frames=frames)
    geometry = FrameGeometry(size=tuple(size))
    with ThreadPoolExecutor(2) as pool:
        sampled = list(pool.map(lambda p: read_frames(p, sampling, geometry), paths))
    return np.concatenate([s.frames[: s.num_valid] for s in sampled])


def _device_line() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    cpu = "?"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    devices = ", ".join(d.name for d in gpus) or "CPU only"
    return (
        f"TensorFlow {tf.__version__} device: {devices}; {os.cpu_count()} logical CPUs ({cpu}); "
        f"intra-op threads {tf.config.threading.get_intra_op_parallelism_threads() or 'default'}, "
        f"inter-op {tf.config.threading.get_inter_op_parallelism_threads() or 'default'}"
    )


def _ceiling_name(engine: str) -> str:
    return "ceiling" if engine == "tf" else f"ceiling {engine}"


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{statistics.median(values):.3g} (range {min(values):.3g}-{max(values):.3g})"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenetv2")
    parser.add_argument("--videos", type=int, default=24, help="videos extracted per repeat")
    parser.add_argument("--frames", type=int, default=16, help="uniform frames per video")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--decode-workers", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--engine",
        action="append",
        choices=("tf", "openvino"),
        help="engines of the vidseq rows (repeat the flag; default: tf)",
    )
    parser.add_argument(
        "--baseline-videos",
        type=int,
        default=None,
        help="videos for the keras-io/tutorial rows (default: all; they are slow)",
    )
    parser.add_argument("--skip-baselines", action="store_true", help="no keras-io/tutorial rows")
    parser.add_argument("--workdir", help="keep the generated videos here (default: temp dir)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the bench runs")
    args = parser.parse_args(argv)
    if args.smoke:  # a few seconds; its figures mean nothing
        args.backbone, args.videos, args.frames, args.repeats = "tiny", 2, 2, 1
        args.skip_baselines = True
    engines = args.engine or ["tf"]

    from vidseq.extract.models.backbones import load_backbone
    from vidseq.extract.models.engines import load_engine

    print(_device_line())
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="vidseq-bench-"))
    try:
        start = time.perf_counter()
        data = make_videos(workdir / f"videos-{args.videos}", args.videos)
        paths = video_paths(data)[: args.videos]
        if len(paths) < args.videos:
            raise SystemExit(f"{data} holds {len(paths)} videos, fewer than --videos")
        print(
            f"{len(paths)} videos {WIDTH}x{HEIGHT}, {FPS} fps, {SECONDS:.0f} s, XVID "
            f"(made or reused in {time.perf_counter() - start:.1f} s) in {data}"
        )
        net = load_backbone(args.backbone, "none")
        frames = _decode_all(paths, args.frames, net.input_size)
        base_paths = paths[: args.baseline_videos or len(paths)]
        base_frames = len(base_paths) * args.frames
        ceilings = {
            engine: load_engine(net, engine, batch_size=args.batch_size) for engine in engines
        }
        for engine in ceilings.values():
            engine.extract(frames[: args.batch_size])  # trace (or compile) and warm up
        if not args.skip_baselines:  # warm up Keras' predict functions too
            net.model.predict(frames[:1], verbose=0)
            net.base_model.predict(frames[:1].astype("float64"), verbose=0)
        print(
            f"backbone {args.backbone} (weights=None), input {net.input_size[0]}x"
            f"{net.input_size[1]}, {len(frames)} frames ({args.frames}/video), batch "
            f"{args.batch_size}, decode workers {args.decode_workers or 'default'}, "
            f"{args.repeats} repeats"
        )
        rates: dict[str, list[float]] = {}
        cpu_costs: dict[str, list[float]] = {}
        setups: dict[str, list[float]] = {}

        def record(name, count, seconds, cpu=None):
            rates.setdefault(name, []).append(count / seconds)
            line = f"  {name:<22} {count / seconds:8.2f} frames/s  ({seconds:.1f} s)"
            if cpu is not None:
                cpu_costs.setdefault(name, []).append(1000 * cpu / count)
                line += f"  {1000 * cpu / count:6.1f} CPU ms/frame"
            print(line, flush=True)

        for repeat in range(args.repeats):
            print(f"repeat {repeat + 1}/{args.repeats}")
            for engine, runner in ceilings.items():
                cpu = _cpu_seconds()
                seconds = run_ceiling(runner, frames, args.batch_size)
                record(_ceiling_name(engine), len(frames), seconds, _cpu_seconds() - cpu)
            for engine in engines:
                out = workdir / f"features-{engine}.h5"
                wall, setup, count, cpu = run_vidseq(data, out, args, engine)
                record(f"vidseq {engine} (whole)", count, wall)
                record(f"vidseq {engine} (steady)", count, wall - setup, cpu)
                setups.setdefault(engine, []).append(setup)
            if not args.skip_baselines:
                cpu = _cpu_seconds()
                seconds = run_keras_io(net.model, base_paths, net.input_size, args.frames)
                record("keras-io per frame", base_frames, seconds, _cpu_seconds() - cpu)
                cpu = _cpu_seconds()
                seconds = run_tutorial(net.base_model, base_paths, net.input_size, args.frames)
                record("tutorial per video", base_frames, seconds, _cpu_seconds() - cpu)

        print("\nsummary: frames/s, median (range) over repeats")
        for name, values in rates.items():
            print(f"  {name:<22} {_spread(values)}")
        for name, values in cpu_costs.items():
            print(f"  {name:<22} {_spread(values)} CPU ms/frame (all threads)")
        for engine, values in setups.items():
            print(f"  setup {engine:<16} {_spread(values)} s (build, trace; once per run)")
        print("ratios, per repeat, median (range):")

        def ratio(name, top, bottom):
            values = [a / b for a, b in zip(rates[top], rates[bottom], strict=True)]
            print(f"  {name:<40} {_spread(values)}")

        for engine in engines:
            ceiling = _ceiling_name(engine)
            ratio(f"vidseq {engine} steady / {ceiling}", f"vidseq {engine} (steady)", ceiling)
            ratio(f"vidseq {engine} whole / {ceiling}", f"vidseq {engine} (whole)", ceiling)
            if not args.skip_baselines:
                ratio(
                    f"vidseq {engine} steady / keras-io",
                    f"vidseq {engine} (steady)",
                    "keras-io per frame",
                )
                ratio(
                    f"vidseq {engine} steady / tutorial",
                    f"vidseq {engine} (steady)",
                    "tutorial per video",
                )
        if "tf" in engines:
            for engine in engines:
                if engine != "tf":
                    ratio(
                        f"vidseq {engine} / vidseq tf (steady)",
                        f"vidseq {engine} (steady)",
                        "vidseq tf (steady)",
                    )
                    ratio(
                        f"vidseq {engine} / vidseq tf (whole)",
                        f"vidseq {engine} (whole)",
                        "vidseq tf (whole)",
                    )
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
