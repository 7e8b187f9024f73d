"""The LSTM/GRU head: shapes, masking of padded rows, .keras round trip."""

import keras
import numpy as np
import pytest

from vidseq.errors import UsageError
from vidseq.sequence.config import HEAD_TYPES, HeadConfig
from vidseq.sequence.head import HEAD_FACTORIES, build_head


@pytest.mark.parametrize(
    "options",
    [
        {"rnn": "lstm"},
        {"rnn": "gru", "layers": 2},
        {"rnn": "lstm", "bidirectional": True, "dropout": 0.0},
    ],
)
def test_output_is_a_distribution_over_classes(options):
    model = build_head(5, 12, HeadConfig(units=8, **options), num_frames=6)
    x = np.random.default_rng(0).normal(size=(3, 6, 12)).astype(np.float32)
    probs = np.asarray(model(x, training=False))
    assert probs.shape == (3, 5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert model.input_shape == (None, 6, 12)


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_zeroed_padding_rows_do_not_change_the_output(rnn):
    config = HeadConfig(rnn=rnn, units=8, layers=2, bidirectional=True, dropout=0.5)
    model = build_head(3, 4, config)
    rng = np.random.default_rng(1)
    real = rng.normal(size=(1, 5, 4)).astype(np.float32)
    padded = np.concatenate([real, np.zeros((1, 3, 4), np.float32)], axis=1)
    np.testing.assert_allclose(
        np.asarray(model(padded, training=False)),
        np.asarray(model(real, training=False)),
        atol=1e-6,
    )
    # Non-zero rows in the same place do change it: the mask is what matters.
    junk = padded.copy()
    junk[:, 5:] = 1.0
    assert not np.allclose(model(junk, training=False), model(real, training=False), atol=1e-6)


def test_saved_model_loads_with_safe_mode(tmp_path):
    model = build_head(4, 6, HeadConfig(rnn="gru", units=8, bidirectional=True), num_frames=5)
    path = tmp_path / "head.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(2).normal(size=(2, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), atol=1e-6)


def test_bad_arguments_say_what_was_received():
    with pytest.raises(UsageError, match="rnn='rnn'"):
        build_head(3, 4, HeadConfig(rnn="rnn"))
    with pytest.raises(UsageError, match=r"units must be an integer >= 1\. Received: units=0"):
        build_head(3, 4, HeadConfig(units=0))
    with pytest.raises(UsageError, match=r"at least 2 classes\). Received: num_classes=1"):
        build_head(1, 4)


def test_every_head_name_the_settings_accept_has_a_factory():
    assert set(HEAD_FACTORIES) == set(HEAD_TYPES)
