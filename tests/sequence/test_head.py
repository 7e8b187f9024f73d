"""build_head and HeadConfig: shapes, masking, .keras round trip, the rnn alias, options."""

import keras
import numpy as np
import pytest

from vidseq.errors import UsageError
from vidseq.sequence.config import HEAD_TYPES, HeadConfig, TrainConfig
from vidseq.sequence.heads import head_names
from vidseq.sequence.train.model import build_head


@pytest.mark.parametrize(
    "options",
    [
        {"head": "lstm"},
        {"head": "gru", "layers": 2},
        {"head": "tcn", "dropout": 0.0},
    ],
)
def test_output_is_a_distribution_over_classes(options):
    model = build_head(5, 12, HeadConfig(units=8, **options), num_frames=6)
    x = np.random.default_rng(0).normal(size=(3, 6, 12)).astype(np.float32)
    probs = np.asarray(model(x, training=False))
    assert probs.shape == (3, 5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert model.input_shape == (None, 6, 12)


@pytest.mark.slow
@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_zeroed_padding_rows_do_not_change_the_output(rnn):
    config = HeadConfig(head=rnn, units=8, layers=2, bidirectional=True, dropout=0.5)
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
    model = build_head(4, 6, HeadConfig(head="gru", units=8, bidirectional=True), num_frames=5)
    path = tmp_path / "head.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(2).normal(size=(2, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), atol=1e-6)


def test_bad_arguments_say_what_was_received():
    with pytest.raises(UsageError, match="head='rnn'"):
        build_head(3, 4, HeadConfig(head="rnn"))
    with pytest.raises(UsageError, match=r"head 'tcn' takes the options .* bidirectional=True"):
        build_head(3, 4, HeadConfig(head="tcn", bidirectional=True))
    with pytest.raises(
        UsageError, match=r"units must be None or an integer >= 1\. Received: units=0"
    ):
        build_head(3, 4, HeadConfig(units=0))
    with pytest.raises(UsageError, match=r"at least 2 classes\). Received: num_classes=1"):
        build_head(1, 4)


def test_every_head_name_the_settings_accept_has_a_factory():
    assert tuple(head_names()) == HEAD_TYPES


def test_rnn_is_read_as_head_and_older_runs_had_no_normalisation():
    old_flat = {"rnn": "gru", "units": 16, "epochs": 3}
    config = TrainConfig.from_dict(old_flat, strict=True)
    assert config.head.head == "gru" and config.head.units == 16
    assert config.head.normalize == "none" and config.fit.epochs == 3
    nested = TrainConfig.from_dict({"head": {"rnn": "lstm", "units": 8}, "fit": {}})
    assert nested.head.head == "lstm" and nested.head.normalize == "none"
    new = TrainConfig.from_dict({"head": {"head": "tcn", "dilations": [1, 2]}})
    assert new.head.dilations == (1, 2) and new.head.normalize == "rms"
    assert TrainConfig.from_dict(new.to_dict()) == new


def test_recorded_true_and_false_read_as_the_modes_they_were():
    # Runs written before the modes recorded a bool: True was per-feature standardisation.
    on = TrainConfig.from_dict({"head": {"head": "lstm", "normalize": True}, "fit": {}})
    off = TrainConfig.from_dict({"head": "gru", "normalize": False}, strict=True)
    assert on.head.normalize == "standardize" and off.head.normalize == "none"
    with pytest.raises(UsageError, match=r"normalize must be one of .*Received: normalize='z'"):
        HeadConfig(normalize="z").validate()


def test_unset_options_take_the_head_defaults():
    config = HeadConfig(head="transformer", units=32)
    assert config.options() == {"units": 32}
    resolved = config.resolved_options()
    assert resolved["units"] == 32 and resolved["num_heads"] == 4
    assert config.resolved_clip_dropout == 0.5 and HeadConfig().resolved_clip_dropout == 0.0
