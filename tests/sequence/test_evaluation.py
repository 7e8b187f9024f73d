"""evaluate_run and its metrics: against sklearn, multi-clip, baseline, refusals."""

import json
import shutil

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, f1_score, precision_score, recall_score

from vidseq.cache.store import FeatureStore
from vidseq.errors import CacheError, UsageError
from vidseq.sequence.data.temporal import clip_offsets, gather_clip
from vidseq.sequence.runs.evaluation import compute_metrics, evaluate_run
from vidseq.sequence.runs.run_dir import read_run_config
from vidseq.sequence.runs.saved_run import load_run


def test_metrics_match_sklearn_and_hand_counts():
    names = ["a", "b", "c", "d", "e", "f"]
    y = np.array([0, 0, 1, 1, 2, 2, 3, 4, 5, 5])
    probs = np.full((10, 6), 0.01)
    predicted = [0, 1, 1, 1, 2, 0, 3, 5, 5, 2]
    probs[np.arange(10), predicted] = 0.9
    probs[1, 0] = 0.5  # second choice of video 1 is its true class
    probs[7, 4] = 0.0  # video 7's true class is its least likely one
    m = compute_metrics(y, probs, names)
    assert m["accuracy"] == pytest.approx(6 / 10)
    # Top-5 of 6 classes misses a true class only when it ranks last: video 7.
    assert m["top5_accuracy"] == pytest.approx(9 / 10)
    for avg in ("macro", "weighted"):
        assert m[f"precision_{avg}"] == pytest.approx(
            precision_score(y, predicted, average=avg, zero_division=0)
        )
        assert m[f"recall_{avg}"] == pytest.approx(recall_score(y, predicted, average=avg))
        assert m[f"f1_{avg}"] == pytest.approx(f1_score(y, predicted, average=avg))
    assert m["per_class"]["b"] == {
        "precision": pytest.approx(2 / 3),
        "recall": 1.0,
        "f1": pytest.approx(0.8),
        "support": 2,
    }
    assert m["per_class"]["e"]["recall"] == 0.0
    assert m["confusion_matrix"] == confusion_matrix(y, predicted).tolist()
    assert m["confusion_matrix"][2] == [1, 0, 1, 0, 0, 0]
    assert "top5_accuracy" not in compute_metrics([0, 1], np.eye(2), ["x", "y"])


@pytest.mark.slow
def test_evaluate_run_writes_reports_and_shows_what_order_adds(trained_run, tmp_path):
    _, run_dir, trained, _ = trained_run
    result = evaluate_run(run_dir, out_dir=tmp_path / "eval")
    metrics = result.metrics
    for name in ("metrics.json", "classification_report.txt", "confusion_matrix.png"):
        assert (tmp_path / "eval" / name).is_file()
    # Same model, same cache, same clips: the numbers training reported.
    assert metrics["accuracy"] == trained.metrics["accuracy"]
    assert metrics["confusion_matrix"] == trained.metrics["confusion_matrix"]
    assert metrics["clips"] == 3 and "single_clip_accuracy" in metrics
    assert metrics["accuracy"] >= 0.9
    # The baseline separates the pairs but not the order inside a pair.
    cm = np.array(metrics["confusion_matrix"])
    assert cm[:2, 2:].sum() + cm[2:, :2].sum() <= 2
    assert metrics["baseline"]["accuracy"] <= 0.75
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["accuracy"] == metrics["accuracy"]
    report = (tmp_path / "eval" / "classification_report.txt").read_text()
    assert "bag-of-frames baseline" in report and "p0_down" in report
    summary = result.summary()
    assert f"accuracy             {metrics['accuracy']:.4f}" in summary
    assert "bag-of-frames" in summary and "confusion_matrix.png" in summary
    as_json = json.loads(json.dumps(result.to_dict()))
    assert as_json["accuracy"] == metrics["accuracy"] and len(as_json["files"]) == 3


@pytest.mark.slow
def test_multi_clip_averages_softmax_over_evenly_offset_samples(trained_run, tmp_path):
    cache, run_dir, _, _ = trained_run
    metrics = evaluate_run(run_dir, cache, num_clips=2, baseline=False, out_dir=tmp_path).metrics
    assert metrics["clips"] == 2 and metrics["baseline"] is None
    run = load_run(run_dir)
    with FeatureStore(cache) as store:
        test = np.flatnonzero(np.asarray(store.splits) == "test")
        probs = 0
        for offset in clip_offsets(2):
            x = np.stack(
                [gather_clip(store.features(i), store.num_valid[i], 6, offset)[0] for i in test]
            )
            probs = probs + np.asarray(run.model.predict_on_batch(x))
        expected = confusion_matrix(store.labels[test], probs.argmax(1), labels=range(4))
    assert metrics["confusion_matrix"] == expected.tolist()


@pytest.mark.slow
def test_a_cache_of_other_features_is_refused(trained_run, cache_factory, tmp_path):
    _, run_dir, _, _ = trained_run
    other_dim = cache_factory("dim.h5", feature_dim=6)
    with pytest.raises(UsageError, match="feature_dim is 6 but the run was trained with 8"):
        evaluate_run(run_dir, other_dim, out_dir=tmp_path / "x")
    other_weights = cache_factory("w.h5", weights_sha256="f" * 64)
    with pytest.raises(UsageError, match="weights_sha256"):
        evaluate_run(run_dir, other_weights, out_dir=tmp_path / "x")
    bogus = tmp_path / "bogus.h5"
    bogus.write_bytes(b"\x00" * 64)
    with pytest.raises(CacheError, match=r"bogus\.h5"):
        evaluate_run(run_dir, bogus, out_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_incomplete_or_corrupt_run_directories_name_the_file(trained_run, tmp_path):
    _, run_dir, _, _ = trained_run
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    (broken / "model.keras").unlink()
    with pytest.raises(UsageError, match=r"model\.keras: missing"):
        evaluate_run(broken)
    (broken / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(UsageError, match=r"model\.keras: cannot load the model"):
        load_run(broken)
    model = (run_dir / "model.keras").read_bytes()
    (broken / "model.keras").write_bytes(model[: len(model) * 2 // 3])  # a real truncated file
    with pytest.raises(UsageError) as error:
        load_run(broken)
    assert "not a valid .keras archive: truncated or corrupt" in str(error.value)
    assert "File not found" not in str(error.value)
    (broken / "config.json").write_text("{ half")
    with pytest.raises(UsageError, match=r"config\.json: corrupt"):
        read_run_config(broken)
    (broken / "config.json").unlink()
    with pytest.raises(UsageError, match=r"config\.json: missing"):
        load_run(broken)
    with pytest.raises(UsageError, match="not a run directory"):
        load_run(tmp_path / "nowhere")
