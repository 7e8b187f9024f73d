"""Fixtures shared by the whole suite: real encoded videos written on the fly."""

import contextlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np
import pytest


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


def pytest_collection_modifyitems(items):
    """Runs the files that hold a ``slow`` test first, each file's tests still together.

    With two xdist workers each taking a whole file (``--dist loadfile``), a long file
    that started last would leave one worker idle while the other finishes it.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: file order kept


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
