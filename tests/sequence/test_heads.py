"""The temporal heads: padding never changes a prediction, safe_mode round trip, options."""

import keras
import numpy as np
import pytest

from vidseq.errors import UsageError
from vidseq.sequence.config import HeadConfig
from vidseq.sequence.heads import apply_head, head_names, head_options
from vidseq.sequence.train.model import build_head

D = 6
SMALL = {
    "lstm": {"units": 8, "layers": 2, "bidirectional": True, "dropout": 0.0},
    "gru": {"units": 8},
    "tcn": {"units": 8, "dilations": (1, 2)},
    "transformer": {"units": 8, "num_heads": 2},
    "attention": {"units": 8, "attention_units": 4},
    "pool": {"units": 8},
    "attentive": {"units": 8, "num_heads": 2},
}


def small_config(head, **overrides):
    return HeadConfig(head=head, clip_dropout=0.0, **{**SMALL[head], **overrides})


def small_model(head, num_frames=None):
    return build_head(3, D, small_config(head), num_frames=num_frames)


def clips(valid=(5, 3, 7), length=9, seed=0):
    """(N, length, D) clips whose first ``valid[i]`` rows are real, the rest zero."""
    rng = np.random.default_rng(seed)
    x = np.zeros((len(valid), length, D), np.float32)
    for i, n in enumerate(valid):
        x[i, :n] = rng.normal(size=(n, D))
    return x


def test_every_head_is_tested():
    assert set(SMALL) == set(head_names())


@pytest.mark.slow
@pytest.mark.parametrize("head", sorted(SMALL))
def test_padding_does_not_change_the_prediction(head):
    model = small_model(head)
    x = clips()
    padded = np.asarray(model(x, training=False))
    longer = np.concatenate([x, np.zeros((3, 6, D), np.float32)], axis=1)
    np.testing.assert_allclose(model(longer, training=False), padded, atol=1e-5)
    for i, n in enumerate((5, 3, 7)):
        alone = np.asarray(model(x[i : i + 1, :n], training=False))
        np.testing.assert_allclose(alone, padded[i : i + 1], atol=1e-5)
    # Non-zero rows in the padding's place do change it: the mask is what matters.
    junk = longer.copy()
    junk[:, 9:] = 1.0
    assert not np.allclose(model(junk, training=False), padded, atol=1e-4)


@pytest.mark.parametrize("head", sorted(SMALL))
def test_saved_model_loads_with_safe_mode(head, tmp_path):
    model = small_model(head, num_frames=9)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = clips(seed=1)
    np.testing.assert_array_equal(loaded(x, training=False), model(x, training=False))


def test_order_matters_to_the_temporal_heads_only():
    x = clips(valid=(7,), length=7, seed=2)
    reversed_x = x[:, ::-1].copy()
    for head in sorted(SMALL):
        model = build_head(3, D, small_config(head, centering="none"))
        same = np.allclose(model(x), model(reversed_x), atol=1e-6)
        assert same == (head == "pool"), head


def test_a_training_step_lowers_the_loss(eagerly):
    rng = np.random.default_rng(3)
    x = clips(valid=(6, 4, 5) * 4, length=6, seed=3)
    y = rng.integers(0, 3, size=12)
    model = small_model("tcn")
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    with eagerly():
        before = model.evaluate(x, y, batch_size=12, verbose=0)
        model.fit(x, y, epochs=3, batch_size=12, verbose=0)
        after = model.evaluate(x, y, batch_size=12, verbose=0)
    assert after < before


def test_options_are_listed_and_checked():
    assert head_options("tcn") == {
        "units": 128,
        "kernel_size": 3,
        "dilations": (1, 2, 4),
        "dropout": 0.1,
    }
    inputs = keras.Input((None, D))
    with pytest.raises(UsageError, match=r"head must be one of .* Received: head='cnn'"):
        apply_head("cnn", inputs, None)
    with pytest.raises(UsageError, match="Received: layers=2"):
        apply_head("pool", inputs, None, layers=2)
    with pytest.raises(ValueError, match=r"Received: dropout=1\.5"):
        apply_head("tcn", inputs, None, dropout=1.5)
    with pytest.raises(ValueError, match="Received: units=0"):
        apply_head("attention", inputs, None, units=0)
