"""Fixtures of the sequence tests: real caches written with CacheWriter.

The synthetic task encodes the class in the temporal ORDER of the feature
vectors: classes come in pairs (2p, 2p+1) that go from prototype a_p to b_p or
from b_p to a_p. Their frame means are the same, so a mean-pooled
(bag-of-frames) classifier separates the pairs but is at chance inside a pair,
while an RNN can read the order.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import importlib.util

import numpy as np
import pytest

from vidseq.cache.schema import CacheMeta, VideoRecord
from vidseq.cache.writer import CacheWriter

HAVE_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


def order_task_features(label, length, rng, *, feature_dim=8, noise=0.15, pairs=2):
    """(length, D) features of one video of the order-encoded task."""
    protos = np.random.default_rng(1234).normal(size=(pairs, 2, feature_dim))
    pair, reverse = divmod(int(label), 2)
    a, b = protos[pair]
    if reverse:
        a, b = b, a
    t = np.linspace(0.0, 1.0, length)[:, None]
    return (1 - t) * a + t * b + rng.normal(scale=noise, size=(length, feature_dim))


def write_cache(
    path,
    *,
    per_class=None,
    length=8,
    num_valid=None,
    feature_dim=8,
    class_names=("p0_up", "p0_down", "p1_up", "p1_down"),
    splits=None,
    groups=None,
    labels=None,
    seed=0,
    dtype="float16",
    weights_sha256="0" * 64,
    shared_group=False,
):
    """Writes a finished cache of the order task; returns its path.

    Args:
        path: The cache file.
        per_class: Videos per class and split, e.g. {"train": 12, "val": 4, "test": 4}.
        length: Rows per video.
        num_valid: Callable(i) -> valid rows of video i (default: all).
        feature_dim: D.
        class_names: Class names (labels cycle through them).
        splits: Override: a list of split names, one per video.
        groups: Override: a list of group names, one per video.
        labels: Override: a list of labels, one per video.
        seed: Noise seed.
        dtype: Stored dtype.
        weights_sha256: Recorded weights hash.
        shared_group: Put the first train and the first test video in one group.
    """
    per_class = per_class or {"train": 12, "val": 4, "test": 4}
    rng = np.random.default_rng(seed)
    videos = []
    for split, n in per_class.items():
        for k in range(n):
            for c in range(len(class_names)):
                videos.append((split, c, f"{split}/c{c}/v{k:03d}"))
    meta = CacheMeta(
        backbone="tiny",
        weights="none",
        weights_sha256=weights_sha256,
        engine="tf",
        input_size=(32, 32),
        feature_dim=feature_dim,
        sampling={"mode": "uniform", "num_frames": length, "frame_rate": 5.0},
        class_names=list(class_names),
        dtype=dtype,
    )
    first = {}
    with CacheWriter(path, meta) as writer:
        for i, (split, c, vid) in enumerate(videos):
            if splits is not None:
                split = splits[i]
            label = c if labels is None else labels[i]
            group = f"g{i:04d}" if groups is None else groups[i]
            first.setdefault(split, group)
            if shared_group and split == "test" and i == len(videos) - 1:
                group = first["train"]
            valid = length if num_valid is None else int(num_valid(i))
            feats = order_task_features(c, valid, rng, feature_dim=feature_dim)
            if valid < length:  # padding repeats the last real frame, as extraction does
                feats = np.concatenate([feats, np.repeat(feats[-1:], length - valid, axis=0)])
            record = VideoRecord(
                video_id=vid,
                path=f"/data/{vid}.avi",
                label=int(label),
                split=split,
                group=group,
                num_valid=valid,
                fps=25.0,
                num_source_frames=length * 3,
            )
            writer.add(record, feats, np.arange(length) * 3, np.arange(length) * 120.0)
        writer.finalize()
    return path


@pytest.fixture
def cache_factory(tmp_path):
    """Returns ``make(name="features.h5", **write_cache_options) -> path``."""

    def make(name="features.h5", **options):
        return write_cache(tmp_path / name, **options)

    return make


@pytest.fixture
def small_config():
    """Returns ``make(**overrides) -> TrainConfig`` with tiny, fast settings (flat names)."""
    from vidseq.sequence.config import TrainConfig

    def make(**overrides):
        settings = {
            "units": 16,
            "epochs": 3,
            "batch_size": 16,
            "lr": 0.01,
            "patience": 0,
            "dropout": 0.0,
            "seed": 3,
            "eval_clips": 3,
        }
        settings.update(overrides)
        return TrainConfig.from_dict(settings, strict=True)

    return make


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One real training shared by the tests that only read its run directory.

    A dense cache (12 rows per video, 7..12 valid) read with frames=6, so
    training samples TSN offsets and evaluation averages several clips.

    Returns:
        ``(cache_path, run_dir, TrainResult, tensorboard_dir)``.
    """
    from vidseq.sequence.config import FitConfig, HeadConfig, TrainConfig
    from vidseq.sequence.train.training import train_sequence

    root = tmp_path_factory.mktemp("trained")
    cache = write_cache(root / "features.h5", length=12, num_valid=lambda i: 7 + i % 6, seed=11)
    config = TrainConfig(
        head=HeadConfig(units=16, dropout=0.0),
        fit=FitConfig(
            epochs=12,
            batch_size=16,
            lr=0.01,
            patience=4,
            seed=0,
            tensorboard=str(root / "tb") if HAVE_TENSORBOARD else None,
        ),
        frames=6,
        eval_clips=3,
    )
    result = train_sequence(cache, root / "run", config, verbose=0)
    return cache, root / "run", result, root / "tb"


RUN_FILES = (
    "model.keras",
    "config.json",
    "history.csv",
    "metrics.json",
    "classification_report.txt",
    "confusion_matrix.png",
    "training_curves.png",
    "checkpoints/state.json",
)


@pytest.fixture(scope="session")
def assert_run_files():
    """Returns ``check(run_dir)``: asserts every file of a finished run is there."""

    def check(run_dir):
        for name in RUN_FILES:
            assert (run_dir / name).is_file(), name

    return check


@pytest.fixture(scope="session")
def make_sample_cache():
    """Returns ``make(root, frames) -> (sample, cache)``: real sample videos through the tiny CNN.

    Two classes of 6 sample videos, ``frames`` uniform frames each, extracted
    at 32x32 into a float32 cache.
    """
    from vidseq.extract.decode.framespec import FrameSpec
    from vidseq.extract.decode.sampling import SamplingConfig
    from vidseq.extract.pipeline import extract_features
    from vidseq.extract.sources.sample_data import make_sample

    def make(root, frames):
        sample = make_sample(root / "sample", videos_per_class=6, classes=["Grow", "Shrink"])
        cache = extract_features(
            sample,
            root / "features.h5",
            frames=FrameSpec(SamplingConfig(num_frames=frames)),
            input_size=(32, 32),
            dtype="float32",
            backbone="tiny",
            progress=False,
        ).out
        return sample, cache

    return make


@pytest.fixture(scope="session")
def make_feature_run(make_sample_cache, eagerly):
    """Returns ``make(root, epochs) -> (sample, cache, run_dir)``: a tiny-CNN feature run.

    Two classes of 6 sample videos, extracted at 32x32 with 6 frames into a
    float32 cache, and a small head trained on it.
    """
    from vidseq.sequence.config import FitConfig, HeadConfig, TrainConfig
    from vidseq.sequence.train.training import train_sequence

    def make(root, epochs):
        sample, cache = make_sample_cache(root, 6)
        config = TrainConfig(
            head=HeadConfig(units=8, dropout=0.0),
            fit=FitConfig(epochs=epochs, batch_size=4, lr=3e-3, patience=0),
        )
        with eagerly():
            run = train_sequence(cache, root / "run", config, verbose=0).run_dir
        return sample, cache, run

    return make


@pytest.fixture(scope="session")
def feature_run_files(tmp_path_factory, make_feature_run):
    """``(sample, cache, run_dir)`` of one tiny Grow/Shrink feature run (8 epochs).

    Built once per test process and shared read-only by every test that needs a
    feature run but not particular training settings (finetune, export, predict,
    watch): each build costs a sample, an extraction and a training.
    """
    return make_feature_run(tmp_path_factory.mktemp("stream-run"), 8)


@pytest.fixture(scope="session")
def run(feature_run_files):
    """A tiny Grow/Shrink feature run (32x32 tiny CNN, 6 frames per clip), shared read-only."""
    return feature_run_files[2]
