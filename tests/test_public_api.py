"""The top-level API: every public name importable from ``vidseq``, lazily."""

import subprocess
import sys

import pytest

import vidseq
from vidseq.errors import UsageError


def test_import_vidseq_imports_no_tensorflow():
    code = "import sys, vidseq; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("name", sorted(set(vidseq.__all__) - {"__version__", "COMMANDS"}))
def test_every_public_name_resolves_to_a_documented_object(name):
    value = getattr(vidseq, name)
    assert callable(value)
    assert value.__doc__ and value.__doc__.strip()
    assert name in dir(vidseq)


def test_the_top_level_names_are_the_implementations():
    from vidseq.cache.store import FeatureStore
    from vidseq.sequence.export.predict_any import predict
    from vidseq.sequence.runs.evaluation import evaluate_run

    assert vidseq.FeatureStore is FeatureStore
    assert vidseq.evaluate.__wrapped__ is evaluate_run and vidseq.predict.__wrapped__ is predict


def test_a_misspelt_keyword_names_the_nearest_valid_one(tmp_path):
    with pytest.raises(UsageError, match=r"train_sequence\(\) has no parameter overwrit "):
        vidseq.train_sequence(tmp_path / "f.h5", tmp_path / "run", overwrit=True)
    with pytest.raises(UsageError, match=r"\(did you mean overwrite\?\)\. Received: overwrit=True"):
        vidseq.train_sequence(tmp_path / "f.h5", tmp_path / "run", overwrit=True)
    assert not (tmp_path / "run").exists()


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        vidseq.nothing  # noqa: B018
