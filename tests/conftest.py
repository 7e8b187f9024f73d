"""Fixtures shared by the whole suite: real encoded videos written on the fly."""

import contextlib
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # One xdist worker per core: each worker's TensorFlow (and the commands it starts)
    # computes an op on one thread, instead of two workers' thread pools competing for
    # both cores (about 7 % less wall time for the suite; inter-op threads stay, as the
    # mirrored strategy's replicas need them).
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np
import pytest

from vidseq.frozen_imports import frozen_imports


def write_video(path, frames, fps=25.0, fourcc="MJPG"):
    """Encodes RGB uint8 frames into a real video file with OpenCV.

    Args:
        path: Output file (``.avi`` suits MJPG/XVID, ``.mp4`` suits mp4v).
        frames: Array or list of (H, W, 3) uint8 RGB frames.
        fps: Frame rate written in the container.
        fourcc: Four-character codec code.

    Returns:
        The path, as a string.
    """
    frames = list(frames)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {fourcc} to {path}")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return str(path)


def numbered_frames(count, height=48, width=64):
    """Frames whose brightness encodes their index (index * 4 % 256), easy to recognise.

    Returns:
        A (count, height, width, 3) uint8 array.
    """
    values = (np.arange(count) * 4 % 256).astype(np.uint8)
    return np.broadcast_to(values[:, None, None, None], (count, height, width, 3)).copy()


FIRST_FILES = (
    "sequence/test_distribute.py",
    "sequence/test_finetune.py",
    "sequence/test_watch_servers.py",
    "sequence/test_tune.py",
    "test_reliability_extract.py",
)
"""Test files that start first, in this order: the four that take longest
(``pytest --durations=0``), and the stream servers' tests, which mostly wait on real
time, beside the two-process tests of test_distribute.py that can use the idle core.

A stale entry costs only balance between the workers, never a test.
"""


def pytest_collection_modifyitems(items):
    """Runs :data:`FIRST_FILES` first, then the other files that hold a ``slow`` test.

    Each file's tests stay together. With two xdist workers each taking a whole file
    (``--dist loadfile``), a long file that started last would leave one worker idle
    while the other finishes it; the short files at the end fill the gaps. Files next
    to each other in this order tend to run at the same time.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    root = Path(__file__).parent
    first = {root / name: rank for rank, name in enumerate(FIRST_FILES)}

    def order(item):
        return (first.get(item.path, len(first)), item.path not in slow_files)

    items.sort(key=order)  # stable: the order within each group is kept


@pytest.hookimpl(wrapper=True)
def pytest_collection(session):
    """Collects under :func:`~vidseq.frozen_imports.frozen_imports`, as the command line
    imports TensorFlow.

    Collection imports every test module, hence TensorFlow, Keras, keras-hub and
    OpenVINO: objects that live as long as the worker. Frozen, they are no longer
    walked by each full collection of the garbage collector that the tests' model
    building and tracing set off (5 to 13 % less CPU for test_head_runs.py and
    test_export.py together, in alternated runs).
    """
    with frozen_imports():
        return (yield)


@pytest.fixture
def video_factory(tmp_path):
    """Returns ``make(name, count, fps=25.0, height=48, width=64)`` writing a numbered video."""

    def make(name, count, fps=25.0, height=48, width=64, fourcc="MJPG"):
        return write_video(tmp_path / name, numbered_frames(count, height, width), fps, fourcc)

    return make


@pytest.fixture
def video_writer():
    """Returns :func:`write_video`, for tests that draw their own frames."""
    return write_video


@contextlib.contextmanager
def _functions_run_eagerly():
    import tensorflow as tf

    tf.config.run_functions_eagerly(True)
    try:
        yield
    finally:
        tf.config.run_functions_eagerly(False)


@pytest.fixture(scope="session")
def eagerly():
    """Returns a context manager under which Keras runs its train/predict functions eagerly.

    For the tiny runs that tests train (a few steps per epoch), tracing the
    ``tf.function`` costs two to three times the steps themselves. Graph mode stays
    tested where it is the point: the demo, ``vidseq compare``, the command-line
    runs, the distribution strategies and the retracing checks.
    """
    return _functions_run_eagerly


@pytest.fixture(scope="session")
def hub_presets(tmp_path_factory):
    """Tiny random-init keras-hub presets saved with keras-hub's own ``save_to_preset``.

    Returns a dict ``family -> preset directory`` for ``"dinov2"``, ``"siglip"``
    (a SigLIP backbone: vision and text encoders) and ``"videoprism"`` (4 frames
    at a time): 32x32 images, patch 8, hidden size 32, backbone plus image
    converter. Skips when keras-hub is not installed.
    """
    keras_hub = pytest.importorskip("keras_hub")
    import keras

    root = tmp_path_factory.mktemp("hub-presets")
    small = {"patch_size": 8, "hidden_dim": 32, "num_heads": 2, "intermediate_dim": 64}
    keras.utils.set_random_seed(0)
    dinov2 = keras_hub.models.DINOV2Backbone(
        num_layers=2, image_shape=(32, 32, 3), position_embedding_shape=(32, 32, 3), **small
    )
    siglip = keras_hub.models.SigLIPBackbone(
        keras_hub.models.SigLIPVisionEncoder(num_layers=2, image_shape=(32, 32, 3), **small),
        keras_hub.models.SigLIPTextEncoder(
            vocabulary_size=16,
            embedding_dim=32,
            num_layers=1,
            max_sequence_length=8,
            **{k: v for k, v in small.items() if k != "patch_size"},
        ),
    )
    videoprism = keras_hub.models.VideoPrismBackbone(
        num_frames=4,
        num_spatial_layers=1,
        num_temporal_layers=1,
        num_auxiliary_layers=0,
        image_shape=(32, 32, 3),
        **small,
    )
    imagenet = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    converters = {
        "dinov2": keras_hub.layers.DINOV2ImageConverter(
            image_size=(32, 32),
            scale=[1 / 255 / s for s in imagenet["std"]],
            offset=[-m / s for m, s in zip(imagenet["mean"], imagenet["std"], strict=True)],
        ),
        "siglip": keras_hub.layers.SigLIPImageConverter(
            image_size=(32, 32), scale=1 / 127.5, offset=-1.0
        ),
        "videoprism": keras_hub.layers.VideoPrismImageConverter(
            image_size=(32, 32), scale=1 / 255.0
        ),
    }
    presets = {}
    for family, backbone in (("dinov2", dinov2), ("siglip", siglip), ("videoprism", videoprism)):
        presets[family] = root / family
        backbone.save_to_preset(str(presets[family]))
        converters[family].save_to_preset(str(presets[family]))
    return presets
