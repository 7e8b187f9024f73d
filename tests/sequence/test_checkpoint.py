"""Per-epoch checkpoints: values round-trip into the saved model, and bad files are named.

Resuming whole runs from them is tested in test_head_runs.py, test_finetune.py,
test_distribute.py and test_reliability_runs.py; resuming a run checkpointed by
an earlier version in test_training.py.
"""

import numpy as np
import pytest

from vidseq.errors import UsageError
from vidseq.sequence.config import FitConfig, HeadConfig
from vidseq.sequence.train import checkpoint
from vidseq.sequence.train.loop import compile_classifier
from vidseq.sequence.train.model import build_head


def _trained_model(units=8, seed=0):
    model = build_head(3, 4, HeadConfig(units=units, dropout=0.0), num_frames=5)
    compile_classifier(model, FitConfig(lr=1e-2))
    model.run_eagerly = True  # a few steps: tracing would cost more than they do
    model.optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(8, 5, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    model.train_on_batch(x, y)
    return model


def _values(variables):
    return [np.asarray(v.numpy()).copy() for v in variables]


def test_a_checkpoint_brings_back_the_model_and_its_optimizer(tmp_path):
    model = _trained_model()
    checkpoint.save_initial(model, tmp_path)
    model.train_on_batch(np.ones((2, 5, 4), np.float32), np.eye(3, dtype=np.float32)[:2])
    checkpoint.save_values(tmp_path / checkpoint.epoch_file(2), model, optimizer=True)

    loaded = checkpoint.load_checkpoint(tmp_path, checkpoint.epoch_file(2))
    for got, want in zip(_values(loaded.weights), _values(model.weights), strict=True):
        np.testing.assert_array_equal(got, want)
    assert int(loaded.optimizer.iterations.numpy()) == 2
    optimizer_values = zip(
        _values(loaded.optimizer.variables), _values(model.optimizer.variables), strict=True
    )
    for got, want in optimizer_values:
        np.testing.assert_array_equal(got, want)
    assert loaded.loss is not None  # compiled: training goes on


def test_best_weights_are_restored_into_a_model(tmp_path):
    model = _trained_model()
    best = _values(model.weights)
    checkpoint.save_values(tmp_path / checkpoint.best_file(1), model, optimizer=False)
    model.train_on_batch(np.ones((2, 5, 4), np.float32), np.eye(3, dtype=np.float32)[:2])
    assert not all(np.array_equal(a, b) for a, b in zip(_values(model.weights), best, strict=True))
    checkpoint.restore_weights(model, tmp_path / checkpoint.best_file(1))
    for got, want in zip(_values(model.weights), best, strict=True):
        np.testing.assert_array_equal(got, want)


def test_bad_checkpoints_are_usage_errors_naming_the_file(tmp_path):
    model = _trained_model()
    checkpoint.save_initial(model, tmp_path)
    name = checkpoint.epoch_file(1)
    path = tmp_path / name
    checkpoint.save_values(path, model, optimizer=True)
    data = path.read_bytes()

    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UsageError, match=rf"{name}: not a valid checkpoint \(truncated"):
        checkpoint.load_checkpoint(tmp_path, name)

    path.unlink()
    with pytest.raises(UsageError, match=rf"{name}: missing"):
        checkpoint.load_checkpoint(tmp_path, name)

    checkpoint.save_values(path, _trained_model(units=6), optimizer=True)
    with pytest.raises(UsageError, match=r"kernel has shape \(8, 24\); the model's is \(8, 32\)"):
        checkpoint.load_checkpoint(tmp_path, name)

    checkpoint.save_values(path, model, optimizer=False)
    with pytest.raises(UsageError, match="holds 0 optimizer variables; the model has"):
        checkpoint.load_checkpoint(tmp_path, name)

    (tmp_path / checkpoint.INITIAL_FILE).unlink()
    with pytest.raises(UsageError, match=rf"{checkpoint.INITIAL_FILE}: missing"):
        checkpoint.load_checkpoint(tmp_path, name)
