"""Batches from a real cache: memory vs stream, seeded sampling, bounded streaming."""

import tracemalloc

import numpy as np
import pytest

from vidseq.cache.store import FeatureStore
from vidseq.errors import UsageError
from vidseq.sequence.data.batches import (
    MemoryFeatures,
    SequenceBatches,
    StreamFeatures,
    available_memory_bytes,
    decide_streaming,
    feature_bytes,
)
from vidseq.sequence.data.temporal import segment_positions


def _batches(store, features, indices, **options):
    settings = {"frames": 5, "length": 5, "batch_size": 4}
    settings.update(options)
    return SequenceBatches(
        features,
        indices,
        store.labels,
        store.num_valid,
        len(store.class_names),
        **settings,
    )


def _epoch(batches):
    out = [batches[i] for i in range(len(batches))]
    batches.on_epoch_end()
    return out


@pytest.fixture
def dense_cache(cache_factory):
    # 16 rows per video, 9..16 of them valid: denser than the 5 frames asked for.
    return cache_factory(
        "dense.h5", length=16, num_valid=lambda i: 9 + i % 8, per_class={"train": 5, "test": 2}
    )


def test_memory_and_stream_give_identical_batches(dense_cache):
    with FeatureStore(dense_cache) as store:
        train = store.select(split="train")
        options = {"training": True, "seed": 7, "temporal_shift": 2}
        memory = _batches(store, MemoryFeatures(store, train), train, **options)
        stream = _batches(store, StreamFeatures(store), train, **options)
        assert memory.features.nbytes > 0 and stream.features.nbytes == 0
        for _ in range(3):  # epochs
            for (xm, ym, wm), (xs, ys, ws) in zip(_epoch(memory), _epoch(stream), strict=True):
                np.testing.assert_array_equal(xm, xs)
                np.testing.assert_array_equal(ym, ys)
                np.testing.assert_array_equal(wm, ws)


def test_training_sampling_is_seeded_per_epoch_and_evaluation_takes_centres(dense_cache):
    with FeatureStore(dense_cache) as store:
        train = store.select(split="train")
        feats = MemoryFeatures(store, train)
        a = _batches(store, feats, train, training=True, seed=1)
        b = _batches(store, feats, train, training=True, seed=1)
        c = _batches(store, feats, train, training=True, seed=2)
        a0, a1 = _epoch(a), _epoch(a)
        b0 = _epoch(b)
        np.testing.assert_array_equal(a0[0][0], b0[0][0])
        assert not np.array_equal(a0[0][0], a1[0][0])  # a new sample each epoch
        assert not np.array_equal(a0[0][0], _epoch(c)[0][0])
        # Resuming at epoch 1 draws exactly epoch 1.
        resumed = _batches(store, feats, train, training=True, seed=1, epoch=1)
        np.testing.assert_array_equal(_epoch(resumed)[0][0], a1[0][0])
        # Every training video appears once per epoch, labels follow the videos.
        labels = np.concatenate([y.argmax(1) for _, y, _ in a0])
        assert sorted(labels.tolist()) == sorted(store.labels[train].tolist())

        evaluation = _batches(store, feats, train, batch_size=len(train))
        x, y = evaluation[0]
        for j, video in enumerate(train):
            centre = segment_positions(store.num_valid[video], 5)
            expected = store.features(video).astype(np.float32)[centre]
            np.testing.assert_array_equal(x[j], expected)
            assert y[j].argmax() == store.labels[video]


def test_short_videos_are_zero_padded_and_shift_stays_inside(cache_factory):
    path = cache_factory("short.h5", length=8, num_valid=lambda i: 3 + i % 4)
    with FeatureStore(path) as store:
        train = store.select(split="train")
        batches = _batches(
            store,
            StreamFeatures(store),
            train,
            frames=8,
            length=8,
            training=True,
            seed=0,
            temporal_shift=3,
            batch_size=len(train),
        )
        x, _, _ = batches[0]
        order = batches._order
        for j, pos in enumerate(order):
            video = train[pos]
            valid = store.num_valid[video]
            assert not x[j, valid:].any()
            real = store.features(video).astype(np.float32)[:valid]
            # The shifted rows are a rotation of the real rows.
            assert any(np.array_equal(x[j, :valid], np.roll(real, s, axis=0)) for s in range(valid))


def test_balanced_class_weights_reach_the_sample_weights(cache_factory):
    path = cache_factory(
        "w.h5", class_names=("a", "b"), labels=[0, 0, 0, 1] * 5, per_class={"train": 10}
    )
    with FeatureStore(path) as store:
        train = store.select(split="train")
        weights = np.array([2.0 / 3.0, 2.0])
        batches = _batches(
            store,
            MemoryFeatures(store, train),
            train,
            training=True,
            class_weights=weights,
            batch_size=len(train),
            frames=8,
            length=8,
        )
        _, y, w = batches[0]
        np.testing.assert_allclose(w, weights[y.argmax(1)])


def test_streaming_reads_only_the_batch(cache_factory):
    path = cache_factory(
        "big.h5", length=16, feature_dim=64, dtype="float32", per_class={"train": 50}
    )
    with FeatureStore(path) as store:
        train = store.select(split="train")
        total = feature_bytes(store, train)
        assert total == 200 * 16 * 64 * 4

        def peak(make_source):
            tracemalloc.start()
            batches = _batches(store, make_source(), train, frames=16, length=16, training=True)
            for i in range(len(batches)):
                batches[i]
            _, top = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            return top

        assert peak(lambda: StreamFeatures(store)) < total / 8
        assert peak(lambda: MemoryFeatures(store, train)) >= total  # memory holds everything


def test_streaming_decision():
    assert decide_streaming("stream", 1) is True
    assert decide_streaming("memory", 10**15) is False
    assert decide_streaming("auto", 10**6, available=10**9) is False
    assert decide_streaming("auto", 10**9, available=10**9) is True
    available = available_memory_bytes()
    assert available is None or available > 0
    assert decide_streaming("auto", 10**18) is True
    with pytest.raises(UsageError, match="Received: 'disk'"):
        decide_streaming("disk", 1)
