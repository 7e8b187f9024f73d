"""predict: a run's own backbone, weights and sampling on new video files."""

import json
from pathlib import Path

import pytest

from vidseq.cli import main
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.decode.sampling import SamplingConfig
from vidseq.extract.pipeline import extract_features
from vidseq.extract.sources.sample_data import make_sample
from vidseq.sequence.config import FitConfig, HeadConfig, TrainConfig
from vidseq.sequence.infer.predict import predict_videos
from vidseq.sequence.train.training import train_sequence


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, eagerly):
    root = tmp_path_factory.mktemp("predict")
    sample = make_sample(root / "sample", videos_per_class=8, classes=["Grow", "Shrink"])
    # Motion sampling: predict must choose again the frames extraction chose
    # (its selection depends on every frame); uniform is the simpler case of the same path.
    frames = FrameSpec(SamplingConfig(mode="motion", num_frames=6))
    cache = extract_features(
        sample, root / "features.h5", frames=frames, backbone="tiny", progress=False
    ).out
    config = TrainConfig(
        head=HeadConfig(units=8), fit=FitConfig(epochs=2, batch_size=4, patience=0)
    )
    with eagerly():
        run = train_sequence(cache, root / "run", config, verbose=0).run_dir
    return sample, run


@pytest.mark.slow
def test_predict_reports_top_k_labels_with_probabilities(trained_run):
    sample, run = trained_run
    videos = sorted(str(p) for p in Path(sample).glob("*/*.avi"))[:3]
    predictions = predict_videos(run, videos, top_k=2)
    assert [p.video for p in predictions] == videos
    for prediction in predictions:
        assert prediction.error is None
        labels = [label for label, _ in prediction.top]
        assert sorted(labels) == ["Grow", "Shrink"]
        probabilities = [p for _, p in prediction.top]
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
        assert prediction.summary() == f"{prediction.video}: " + ", ".join(
            f"{label} {p:.3f}" for label, p in prediction.top
        )
        assert json.loads(json.dumps(prediction.to_dict()))["top"][0]["label"] == labels[0]


@pytest.mark.slow
def test_predict_equals_the_head_on_the_cached_features(trained_run):
    from vidseq.cache.store import FeatureStore
    from vidseq.sequence.data.temporal import prepare_clip
    from vidseq.sequence.runs.saved_run import load_run

    _, run = trained_run
    loaded = load_run(run)
    with FeatureStore(loaded.config["cache_path"]) as store:
        assert store.meta.sampling["mode"] == "motion"
        i = 0
        clip = prepare_clip(store.features(i), int(store.num_valid[i]), loaded.frames)
        expected = loaded.model.predict(clip[None], verbose=0)[0]
        top = predict_videos(run, [store.paths[i]], top_k=1)[0].top[0]
    best = int(expected.argmax())
    assert top[0] == loaded.class_names[best]
    assert top[1] == pytest.approx(float(expected[best]), abs=2e-3)


@pytest.mark.slow
def test_predict_cli_json_and_unreadable_video(trained_run, tmp_path, capsys):
    sample, run = trained_run
    video = next(Path(sample).glob("Grow/*.avi"))
    missing = tmp_path / "missing.avi"
    code = main(["predict", str(run), str(video), str(missing), "--top-k", "1", "--json"])
    assert code == 3
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert rows[0]["video"] == str(video) and len(rows[0]["top"]) == 1
    assert rows[1]["error"] and rows[1]["top"] == []
    assert f"failed: {missing}" in captured.err


@pytest.mark.slow
def test_predict_refuses_a_run_whose_weights_differ(trained_run, tmp_path, capsys):
    import shutil

    _, run = trained_run
    tampered = tmp_path / "run"
    shutil.copytree(run, tampered)
    config_path = tampered / "config.json"
    config = json.loads(config_path.read_text())
    config["weights_seed"] = 12345  # rebuilds another random network: another hash
    config_path.write_text(json.dumps(config))
    before = config_path.read_bytes()
    assert main(["predict", str(tampered), "x.avi"]) == 2
    error = capsys.readouterr().err.strip()
    assert "SHA-256" in error and "\n" not in error
    assert config_path.read_bytes() == before


@pytest.mark.slow
def test_predict_with_openvino_equals_tensorflow(trained_run, tmp_path, monkeypatch):
    pytest.importorskip(
        "openvino", reason='openvino is not installed (pip install "vidseq[openvino]")'
    )
    monkeypatch.setenv("VIDSEQ_CACHE", str(tmp_path / "vidseq-cache"))
    sample, run = trained_run
    videos = sorted(str(p) for p in Path(sample).glob("*/*.avi"))[:2]
    expected = predict_videos(run, videos, top_k=2)
    actual = predict_videos(run, videos, top_k=2, engine="openvino")
    for got, want in zip(actual, expected, strict=True):
        assert got.error is None
        assert [label for label, _ in got.top] == [label for label, _ in want.top]
        assert [p for _, p in got.top] == pytest.approx([p for _, p in want.top], abs=1e-4)
