"""Feature scaling: statistics of the valid frames, streamed, saved in the model."""

import keras
import numpy as np
import pytest

from vidseq.cache.schema import CacheMeta, VideoRecord
from vidseq.cache.store import FeatureStore
from vidseq.cache.writer import CacheWriter
from vidseq.sequence.config import HeadConfig
from vidseq.sequence.train.model import build_head
from vidseq.sequence.train.normalization import (
    adapt_normalization,
    feature_normalization,
    scaling_statistics,
    valid_frame_moments,
)


@pytest.fixture
def store(cache_factory):
    # 10 rows per video, 4..10 valid; padding repeats the last real frame, as
    # extraction writes it, so statistics over all rows would be wrong.
    path = cache_factory(length=10, num_valid=lambda i: 4 + i % 7, dtype="float32")
    with FeatureStore(path) as opened:
        yield opened


def numpy_moments(store, indices):
    x, mask, _ = store.load(indices, dtype=np.float64)
    valid = x[mask]
    return valid.mean(axis=0), valid.var(axis=0), len(valid)


def test_moments_are_those_of_the_valid_frames(store):
    train = store.select(split="train")
    mean, variance, count = valid_frame_moments(store, train)
    expected_mean, expected_variance, expected_count = numpy_moments(store, train)
    assert count == expected_count == int(store.num_valid[train].sum())
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(variance, expected_variance, rtol=1e-12, atol=1e-12)
    everything, _, _ = store.load(train, dtype=np.float64)
    all_rows = everything.reshape(-1, everything.shape[-1])
    assert not np.allclose(mean, all_rows.mean(axis=0), atol=1e-3)


def test_streaming_batch_size_does_not_change_the_result(store):
    train = store.select(split="train")
    in_memory = valid_frame_moments(store, train, batch_videos=len(train))
    for batch_videos in (1, 7):
        streamed = valid_frame_moments(store, train, batch_videos=batch_videos)
        np.testing.assert_allclose(streamed[0], in_memory[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(streamed[1], in_memory[1], rtol=1e-12, atol=1e-12)


def _saved_and_reloaded(layer, x, tmp_path):
    """A head around ``layer``, saved and loaded with safe_mode: the reloaded layer.

    The reloaded model must give exactly the saved one's outputs on ``x``.
    """
    model = build_head(4, 8, HeadConfig(head="pool", units=4), normalization=layer)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded(x), model(x))
    return loaded.get_layer("feature_normalization")


def test_adapted_layer_standardises_and_loads_with_safe_mode(store, tmp_path):
    train = store.select(split="train")
    layer = feature_normalization(store, train, mode="standardize", batch_videos=5)
    x, mask, _ = store.load(train)
    out = np.asarray(layer(x))[mask]
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=0), 1.0, atol=1e-4)

    stats = _saved_and_reloaded(layer, x, tmp_path)
    np.testing.assert_allclose(np.asarray(stats.mean).ravel(), numpy_moments(store, train)[0])


def test_rms_mode_divides_every_feature_by_one_scale_and_loads_with_safe_mode(store, tmp_path):
    train = store.select(split="train")
    layer = feature_normalization(store, train, batch_videos=3)  # "rms", the default
    x, mask, _ = store.load(train, dtype=np.float64)
    valid = x[mask]
    scale = np.sqrt(np.mean(valid**2))  # over every valid frame and feature
    out = np.asarray(layer(x.astype(np.float32)))[mask]
    np.testing.assert_allclose(out, valid / scale, rtol=1e-5, atol=1e-6)
    assert np.mean(out**2) == pytest.approx(1.0, rel=1e-4)
    # One scale: the features keep their means and their sizes relative to each other.
    np.testing.assert_allclose(out.std(axis=0) / valid.std(axis=0), 1 / scale, rtol=1e-4)

    stats = _saved_and_reloaded(layer, x, tmp_path)
    np.testing.assert_array_equal(np.asarray(stats.mean), 0.0)
    np.testing.assert_allclose(np.asarray(stats.variance), scale**2, rtol=1e-6)


def test_a_weak_feature_stays_weak_under_rms_and_comes_up_standardised():
    mean = np.array([1.0, 0.5, 0.0])
    variance = np.array([0.04, 1e-6, 0.0])  # a strong, a near-dead and a dead feature
    centre, rms = scaling_statistics(mean, variance, "rms")
    np.testing.assert_array_equal(centre, 0.0)
    np.testing.assert_allclose(rms, np.mean(variance + mean**2))
    centre, per_feature = scaling_statistics(mean, variance, "standardize")
    np.testing.assert_array_equal(centre, mean)
    # The near-dead feature's spread: 0.1% of the scale under rms, 1 standardised.
    assert np.sqrt(variance[1] / rms[1]) < 2e-3 and np.sqrt(variance[1] / per_feature[1]) == 1
    assert per_feature[2] == 1.0  # dead: centred, not divided by ~0
    with pytest.raises(ValueError, match=r"Received: mode='minmax'"):
        scaling_statistics(mean, variance, "minmax")


def test_constant_features_are_centred_not_blown_up(tmp_path):
    meta = CacheMeta(
        backbone="tiny",
        weights="none",
        weights_sha256="0" * 64,
        engine="tf",
        input_size=(32, 32),
        feature_dim=2,
        sampling={"mode": "uniform", "num_frames": 3},
        class_names=["a", "b"],
        dtype="float32",
    )
    rng = np.random.default_rng(0)
    with CacheWriter(tmp_path / "dead.h5", meta) as writer:
        for i in range(4):  # feature 0 is a dead (constant) CNN channel
            rows = np.stack([np.full(3, 2.0), rng.normal(size=3)], axis=1)
            record = VideoRecord(f"v{i}", f"v{i}.avi", i % 2, "train", f"g{i}", 3, 25.0, 9)
            writer.add(record, rows, np.arange(3), np.arange(3) * 40.0)
        path = writer.finalize()
    with FeatureStore(path) as store:
        layer = feature_normalization(store, None, mode="standardize")
    out = np.asarray(layer(np.array([[[2.5, 0.0]]], np.float32)))
    # Variance 0 would scale by 1 / epsilon; the feature is centred and kept at scale 1.
    np.testing.assert_allclose(out[0, 0, 0], 0.5, rtol=1e-6)


def test_bad_arguments_say_what_was_received(store):
    with pytest.raises(ValueError, match="Received: batch_videos=0"):
        valid_frame_moments(store, None, batch_videos=0)
    with pytest.raises(ValueError, match="made without mean/variance"):
        adapt_normalization(keras.layers.Normalization(mean=0.0, variance=1.0), store, None)
    with pytest.raises(ValueError, match="hold no valid frame"):
        valid_frame_moments(store, [])
    with pytest.raises(ValueError, match=r"Received: mode='none'"):
        feature_normalization(store, None, mode="none")
