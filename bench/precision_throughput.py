"""Benchmark: FP32, bf16 and INT8 backbones on the CPU, side by side in one run.

Three measurements (every figure printed, never asserted):

1. **Network alone**, per backbone at its real size with random weights
   (``resnet50``, ``mobilenetv2``, ``efficientnetb0`` at 224x224, and a ViT-B/16
   encoder from keras-hub's ``ViTBackbone`` with the real configuration: 12
   layers, 12 heads, width 768, mean-pooled tokens): frames/s of TensorFlow
   FP32, OpenVINO FP32, OpenVINO INT8 (NNCF, calibrated on frames of real
   photographs), TensorFlow bf16 and OpenVINO bf16 (these two only where the
   CPU has native bfloat16), the same batches for all, interleaved per round;
   and the cosine similarity of each lower-precision engine's features to
   TensorFlow FP32's on held-out frames (mean and minimum).
2. **End to end** (``extract_features``: decode, resize, network, cache) of
   ``--e2e-backbone`` on the photo task of ``bench/photo_task.py``, TF FP32 vs
   OpenVINO FP32 vs OpenVINO INT8 (calibration included in setup, not in the
   steady frames/s): frames / (seconds - setup_seconds).
3. **Head accuracy** on those caches: the photo task's LSTM head with the
   ``proposed`` recipe, trained on FP32 and on INT8 features (the same
   sampled frames) over ``--seeds``: median, range, binomial standard error,
   and per seed the paired difference on the same test videos with its
   standard error. A test set of several hundred videos resolves 0.02
   (``--train-per-class 40 --test-per-class 50``: 540 videos).

Usage::

    python bench/precision_throughput.py [--backbones resnet50 mobilenetv2 efficientnetb0 vit_b16]
        [--batch 32] [--rounds 3] [--seeds 0 1 2] [--workdir DIR] [--smoke]
        [--e2e-runs tf-fp32 ov-fp32 ov-int8] [--train-per-class 12] [--test-per-class 6]
        [--no-bf16] [--no-e2e]

``ONEDNN_MAX_CPU_ISA=AVX2`` in the environment caps TensorFlow's oneDNN and
OpenVINO's CPU plugin (which honours the same variable) to AVX2: an emulation
of a CPU without AVX-512 and VNNI. The OpenVINO INT8 convolution kernels are
printed, so that the cap can be seen taking effect.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import photo_task  # the bench folder is not a package

from vidseq.cache.store import FeatureStore
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.decode.sampling import SamplingConfig
from vidseq.extract.models.backbones import Backbone, load_backbone, weights_sha256
from vidseq.extract.models.engines import load_engine
from vidseq.extract.models.precision import bf16_supported, cpu_flags
from vidseq.extract.models.quantize import quantized_model
from vidseq.extract.pipeline import extract_features
from vidseq.quiet import quiet_tensorflow

VIT_B16 = dict(patch_size=16, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072)


def vit_backbone(size: int, seed: int = 0) -> Backbone:
    """A ViT-B/16 encoder (keras-hub ``ViTBackbone``, random weights) as a vidseq Backbone."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    encoder = keras_hub.models.ViTBackbone(image_shape=(size, size, 3), **VIT_B16)
    frames = keras.Input(shape=(size, size, 3), dtype="uint8", name="frames")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocessing")(frames)
    pooled = keras.layers.GlobalAveragePooling1D()(encoder(x))
    model = keras.Model(frames, pooled, name="vidseq_vit_b16")
    model.trainable = False
    return Backbone(
        name="vit_b16",
        weights="none",
        weights_sha256=weights_sha256(model),
        seed=seed,
        input_size=(size, size),
        feature_dim=int(pooled.shape[-1]),
        model=model,
    )


def photo_frames(count: int, size: int, seed: int) -> np.ndarray:
    """Random crops of the photo task's photographs, uint8 RGB (calibration and test frames)."""
    import cv2

    rng = np.random.default_rng(seed)
    images = photo_task.load_photos()
    frames = []
    for _ in range(count):
        image = images[int(rng.integers(len(images)))]
        height, width = image.shape[:2]
        side = int(min(height, width) * rng.uniform(0.4, 1.0))
        top, left = int(rng.integers(height - side + 1)), int(rng.integers(width - side + 1))
        crop = image[top : top + side, left : left + side]
        frames.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
    return np.stack(frames).astype(np.uint8)


def engines_for(net, batch, work, bf16=True):
    """Every engine this CPU runs for ``net``: name -> engine (INT8 quantised first).

    The quantised model is kept in ``work`` and reused by a later run (the
    same random weights): a run capped to another instruction set compares
    the same INT8 model.
    """
    engines = {
        "tf fp32": load_engine(net, "tf"),
        "ov fp32": load_engine(net, "openvino", batch_size=batch, cache_dir=work / "ov"),
    }
    calibration = photo_frames(256, net.input_size[0], seed=1)
    path = work / "int8" / f"{net.name}-{net.input_size[0]}.xml"
    started = time.perf_counter()
    done = "calibration" if quantized_model(net, calibration, path) else "reused"
    print(f"  {net.name}: INT8 {done} {time.perf_counter() - started:.0f} s", flush=True)
    print(f"  {net.name}: OpenVINO INT8 kernels {convolution_kernels(path)}", flush=True)
    engines["ov int8"] = load_engine(
        net, "openvino", batch_size=batch, precision="int8", quantized_path=path
    )
    if bf16 and bf16_supported():
        engines["tf bf16"] = load_engine(net, "tf", precision="bf16")
        engines["ov bf16"] = load_engine(
            net, "openvino", batch_size=batch, cache_dir=work / "ov", precision="bf16"
        )
    return engines


def convolution_kernels(path) -> dict:
    """Kernel name -> count of the convolutions OpenVINO's CPU plugin compiled for ``path``.

    The names carry the instruction set the kernels were generated for
    (``brgconv_avx512_...``, ``jit_avx2_...``): what shows whether
    ``ONEDNN_MAX_CPU_ISA`` took effect.
    """
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(path), "CPU")
    kernels = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) == "Convolution":
            name = info["primitiveType"].astype(str)
            kernels[name] = kernels.get(name, 0) + 1
    return kernels


def cosine(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(norms, np.finfo(np.float64).tiny)


def network_rows(net, batch, rounds, work, bf16=True):
    """frames/s and cosine to TF FP32 of each engine of ``net``."""
    engines = engines_for(net, batch, work, bf16)
    frames = photo_frames(batch, net.input_size[0], seed=2)
    seconds = {name: [] for name in engines}
    for engine in engines.values():
        engine.extract(frames)  # warm-up: tracing, first inference
    for _ in range(rounds):
        for name, engine in engines.items():
            started = time.perf_counter()
            engine.extract(frames)
            seconds[name].append(time.perf_counter() - started)
    reference = engines["tf fp32"].extract(frames)
    rows = {}
    for name, engine in engines.items():
        similarity = cosine(engine.extract(frames), reference)
        rows[name] = {
            "frames_per_s": batch / statistics.median(seconds[name]),
            "cosine_mean": float(similarity.mean()),
            "cosine_min": float(similarity.min()),
        }
    base = rows["tf fp32"]["frames_per_s"]
    print(f"{net.name} ({net.input_size[0]}x{net.input_size[1]}, batch {batch}):")
    for name, row in rows.items():
        print(
            f"  {name:8s} {row['frames_per_s']:7.1f} frames/s  {row['frames_per_s'] / base:5.2f}x"
            f"  cosine mean {row['cosine_mean']:.4f} min {row['cosine_min']:.4f}",
            flush=True,
        )
    return rows


E2E_RUNS = {
    "tf fp32": ("tf", "fp32"),
    "ov fp32": ("openvino", "fp32"),
    "ov int8": ("openvino", "int8"),
}
"""The end-to-end runs: name -> (engine, precision); ``--e2e-runs`` names them with a dash."""


def end_to_end(manifest, backbone, size, work, calibration_videos, names=tuple(E2E_RUNS)):
    """Steady frames/s of extract_features per engine and precision, and the caches."""
    results, caches = {}, {}
    for name in names:
        engine, precision = E2E_RUNS[name]
        cache = work / f"e2e-{engine}-{precision}.h5"
        summary = extract_features(
            manifest,
            cache,
            source="manifest",
            backbone=backbone,
            weights="none",
            input_size=(size, size),
            frames=FrameSpec(SamplingConfig(num_frames=photo_task.SAMPLED)),
            engine=engine,
            precision=precision,
            calibration_videos=calibration_videos,
            dtype="float32",
            overwrite=True,
            progress=False,
        )
        steady = summary.frames / max(summary.seconds - summary.setup_seconds, 1e-9)
        results[name] = {"frames_per_s": steady, "setup_s": summary.setup_seconds}
        results[name].update({k: v for k, v in summary.precision_check.items() if "cosine" in k})
        caches[name] = cache
    base = results["tf fp32"]["frames_per_s"]
    print(f"end to end, {backbone} {size}x{size} (extract_features, steady frames/s):")
    for name, row in results.items():
        print(
            f"  {name:8s} {row['frames_per_s']:7.1f} frames/s  {row['frames_per_s'] / base:5.2f}x"
            f"  setup {row['setup_s']:.0f} s  cosine mean {row.get('cosine_mean', 1.0):.4f}",
            flush=True,
        )
    return results, caches


def head_accuracy(caches, seeds):
    """Test accuracy of the photo task's LSTM head (``proposed`` recipe) on FP32 and INT8 caches.

    The same seeds on both (a seed fixes the head's initial weights, the
    validation groups and the batch order), so each seed gives a paired
    difference on the same test videos. Printed per precision: median, range
    and the binomial standard error ``sqrt(p (1 - p) / n)`` of one run's
    accuracy; per seed: INT8 minus FP32 and the standard error of that paired
    difference from the test videos the two heads disagree on,
    ``sqrt(b + c - (b - c)^2 / n) / n`` (``b``, ``c``: videos only one of
    them gets right).
    """
    runs = {}
    for name in ("tf fp32", "ov int8"):
        with FeatureStore(caches[name]) as store:
            x = np.stack([store.features(i, np.float32) for i in range(len(store))])
            y = np.asarray(store.labels)
            recipe = photo_task.RECIPES["proposed"]
            runs[name] = [photo_task.train_head(store, (x, y), "lstm", recipe, s) for s in seeds]
    results = {}
    for name, rows in runs.items():
        accuracy = [row["accuracy"] for row in rows]
        n = len(rows[0]["correct"])
        median = statistics.median(accuracy)
        error = float(np.sqrt(median * (1 - median) / n))
        results[name] = {"accuracy": accuracy, "test_videos": n, "binomial_se": error}
        print(
            f"head accuracy on {name} features ({n} test videos): median {median:.3f} "
            f"[{min(accuracy):.3f}-{max(accuracy):.3f}], binomial SE {error:.3f} "
            f"({', '.join(f'{a:.3f}' for a in accuracy)})",
            flush=True,
        )
    results["paired"] = paired_differences(runs["tf fp32"], runs["ov int8"], seeds)
    return results


def paired_differences(reference, lowered, seeds):
    """Per seed: INT8 minus FP32 accuracy, its paired standard error, videos that differ."""
    rows = []
    for seed, a, b in zip(seeds, reference, lowered, strict=True):
        first, second = np.asarray(a["correct"]), np.asarray(b["correct"])
        n = first.size
        only_first, only_second = int(np.sum(first & ~second)), int(np.sum(second & ~first))
        discordant = only_first + only_second
        error = float(np.sqrt(max(discordant - (only_second - only_first) ** 2 / n, 0.0)) / n)
        difference = float(second.mean() - first.mean())
        rows.append(
            {"seed": seed, "difference": difference, "paired_se": error, "discordant": discordant}
        )
        print(
            f"  seed {seed}: INT8 - FP32 = {difference:+.3f} (paired SE {error:.3f}; "
            f"{only_first} videos right with FP32 only, {only_second} with INT8 only)",
            flush=True,
        )
    differences = [row["difference"] for row in rows]
    print(
        f"  INT8 - FP32: median {statistics.median(differences):+.3f} "
        f"[{min(differences):+.3f} to {max(differences):+.3f}], mean "
        f"{statistics.mean(differences):+.3f} over {len(rows)} seeds",
        flush=True,
    )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backbones", nargs="*", default=["resnet50", "mobilenetv2", "efficientnetb0", "vit_b16"]
    )
    parser.add_argument("--size", type=int, default=224, help="input size of the networks")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--e2e-backbone", default="resnet50")
    parser.add_argument(
        "--e2e-runs",
        nargs="+",
        default=[name.replace(" ", "-") for name in E2E_RUNS],
        choices=[name.replace(" ", "-") for name in E2E_RUNS],
        help="end-to-end extractions (the head comparison needs tf-fp32 and ov-int8)",
    )
    parser.add_argument("--train-per-class", type=int, default=12)
    parser.add_argument("--test-per-class", type=int, default=6)
    parser.add_argument("--calibration-videos", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--no-bf16", action="store_true", help="leave the bf16 engines out")
    parser.add_argument("--no-e2e", action="store_true", help="networks alone only")
    parser.add_argument("--smoke", action="store_true", help="64x64, batch 8, 1 round, tiny sets")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.batch, args.rounds, args.seeds = 64, 8, 1, [0]
        args.train_per_class, args.test_per_class, args.calibration_videos = 3, 2, 4
    quiet_tensorflow()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vidseq-precision-"))
    flags = sorted(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16", "amx_bf16"})
    print(f"CPU flags: {', '.join(flags) or 'none of VNNI, AMX, AVX512_BF16'}", flush=True)
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    if cap:
        print(f"ONEDNN_MAX_CPU_ISA={cap}: an emulation of a CPU without the rest", flush=True)
    report = {"cpu_flags": flags, "networks": {}}
    for name in args.backbones:
        net = (
            vit_backbone(args.size)
            if name == "vit_b16"
            else load_backbone(name, "none", input_size=(args.size, args.size))
        )
        report["networks"][name] = network_rows(
            net, args.batch, args.rounds, work, bf16=not args.no_bf16
        )
    if args.no_e2e:
        print(json.dumps(report))
        return
    manifest = work / "photo" / "manifest.csv"
    if not manifest.exists():
        photo_task.make_task(
            work / "photo", train_per_class=args.train_per_class, test_per_class=args.test_per_class
        )
    names = [name.replace("-", " ") for name in args.e2e_runs]
    report["end_to_end"], caches = end_to_end(
        manifest, args.e2e_backbone, args.size, work, args.calibration_videos, names
    )
    if {"tf fp32", "ov int8"} <= set(caches):
        report["head_accuracy"] = head_accuracy(caches, args.seeds)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
