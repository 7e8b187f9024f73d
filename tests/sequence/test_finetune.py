"""finetune: end-to-end model from a feature run, BN handling, resume, evaluate/predict, scratch."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from vidseq.cache.store import FeatureStore
from vidseq.cli import main
from vidseq.errors import UsageError
from vidseq.sequence.config import FinetuneConfig, FitConfig, HeadConfig, ScratchConfig
from vidseq.sequence.data.frame_clips import read_clip, videos_from_cache
from vidseq.sequence.data.temporal import prepare_clip
from vidseq.sequence.runs.saved_run import load_run, load_run_backbone
from vidseq.sequence.train.end_to_end import build_end_to_end, set_trainable
from vidseq.sequence.train.finetune import finetune
from vidseq.sequence.train.scratch import train_from_scratch

SMALL = {"epochs": 1, "batch_size": 4, "unfreeze": 2, "workers": 2}


def small(**overrides):
    """A FinetuneConfig of SMALL's settings (flat names) and ``overrides``."""
    return FinetuneConfig.from_dict({**SMALL, **overrides}, strict=True)


@pytest.fixture(scope="module")
def feature_run(tmp_path_factory, feature_run_files):
    """The shared tiny-CNN feature run (32x32, 6 frames, float32 cache) and its finetune."""
    root = tmp_path_factory.mktemp("finetune")
    sample, cache, run = feature_run_files
    fine = root / "fine"
    code = main(
        [
            *("finetune", str(run), "--out", str(fine), "--epochs", "1", "--batch-size", "4"),
            *("--unfreeze", "2", "--augment", "--quiet"),
        ]
    )
    assert code == 0
    return sample, cache, run, fine


@pytest.mark.slow
def test_end_to_end_model_starts_with_the_feature_runs_outputs(feature_run):
    _, cache, run, _ = feature_run
    source = load_run(run)
    backbone = load_run_backbone(source)
    model = build_end_to_end(backbone, source.model, frames=source.frames)
    with FeatureStore(cache) as store:
        videos = videos_from_cache(store, source.config["input_size"])
        clips = np.stack([read_clip(videos, i, source.frames) for i in range(len(store))])
        features = np.stack(
            [prepare_clip(store.features(i), store.num_valid[i], source.frames) for i in range(6)]
        )
    assert clips.dtype == np.uint8 and clips.shape[1:] == (6, 32, 32, 3)
    got = model.predict(clips[:6], verbose=0)
    expected = source.model.predict(features, verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.slow
def test_finetuned_run_keeps_its_accuracy_and_records_what_it_did(feature_run, assert_run_files):
    _, _, run, fine = feature_run
    assert_run_files(fine)
    config = json.loads((fine / "config.json").read_text())
    source = json.loads((run / "config.json").read_text())
    assert config["model"] == "end_to_end" and config["kind"] == source["kind"]
    assert config["weights_sha256"] == source["weights_sha256"]
    assert config["unfrozen_layers"] == ["conv4"]  # the last 2 layers: conv4, avg_pool
    assert config["splits"] == source["splits"] and config["train"] == source["train"]
    assert config["finetune"]["fit"]["lr"] == 1e-4 and config["finetune"]["augment"]
    before = json.loads((run / "metrics.json").read_text())["accuracy"]
    after = json.loads((fine / "metrics.json").read_text())["accuracy"]
    assert abs(after - before) <= 0.25  # one epoch at 1e-4: within noise of a few videos
    loaded = load_run(fine)  # safe_mode=True: registered layers only
    assert loaded.end_to_end and loaded.model.input_shape == (None, 6, 32, 32, 3)


@pytest.mark.slow
def test_evaluate_and_predict_decode_raw_frames_for_an_end_to_end_run(
    feature_run, tmp_path, capsys
):
    sample, cache, _, fine = feature_run
    from vidseq.sequence.infer.predict import predict_videos
    from vidseq.sequence.runs.evaluation import evaluate_run

    metrics = evaluate_run(fine, out_dir=tmp_path / "eval").metrics
    saved = json.loads((fine / "metrics.json").read_text())
    assert metrics["accuracy"] == saved["accuracy"]
    assert metrics["num_videos"] == saved["num_videos"] and metrics["baseline"] is None
    assert (tmp_path / "eval" / "confusion_matrix.png").is_file()

    run = load_run(fine)
    with FeatureStore(cache) as store:
        videos = videos_from_cache(store, run.config["input_size"])
        paths = [store.paths[i] for i in range(2)]
        clips = np.stack([read_clip(videos, i, 6) for i in range(2)])
        expected = run.model.predict(clips, verbose=0)
    predictions = predict_videos(fine, [*paths, str(tmp_path / "missing.avi")], top_k=2)
    for prediction, row in zip(predictions, expected, strict=False):
        assert prediction.error is None
        assert prediction.top[0][1] == pytest.approx(float(row.max()), abs=1e-5)
        assert prediction.top[0][0] == run.class_names[int(row.argmax())]
    assert predictions[2].error and predictions[2].top == []

    capsys.readouterr()
    assert main(["evaluate", str(fine), "--json", "--out", str(tmp_path / "cli")]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == saved["accuracy"]
    video = next(Path(sample).glob("Grow/*.avi"))
    assert main(["predict", str(fine), str(video), "--top-k", "1"]) == 0
    assert str(video) in capsys.readouterr().out


@pytest.mark.slow
def test_predict_over_several_videos_never_retraces_the_model(feature_run):
    """Batches of every size run through one traced step (TensorFlow warns after 5 retraces)."""
    sample, _, _, fine = feature_run
    from vidseq.sequence.infer.predict import predict_videos

    videos = sorted(str(p) for p in Path(sample).glob("*/*.avi"))
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.WARNING)  # the commands' quiet mode would hide the warning
    logger.addHandler(handler)
    try:
        for count in (3, 9, 11, 12):  # last batches of 3, 1, 3 and 4 clips
            predictions = predict_videos(fine, videos[:count], top_k=1)
            assert all(p.error is None for p in predictions)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert not [r.getMessage() for r in records if "retracing" in r.getMessage()]


@pytest.mark.slow
def test_unfrozen_layers_change_frozen_ones_and_batchnorm_statistics_do_not(eagerly):
    import keras

    from vidseq.extract.models.backbones import load_backbone
    from vidseq.sequence.train.model import build_head

    backbone = load_backbone("mobilenetv2", "none", input_size=(32, 32), seed=1)
    unfrozen = set_trainable(backbone, unfreeze=6)
    layers = [layer for layer in backbone.base_model.layers if layer.weights]
    batchnorms = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert batchnorms and not any(layer.trainable for layer in batchnorms)
    assert unfrozen and all(backbone.base_model.get_layer(n).trainable for n in unfrozen)
    head = build_head(2, 1280, HeadConfig(units=4, dropout=0.0))
    model = build_end_to_end(backbone, head, frames=3)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="categorical_crossentropy")
    before = {layer.name: [w.numpy().copy() for w in layer.weights] for layer in layers}
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(8, 3, 32, 32, 3), dtype=np.uint8)
    y = np.eye(2, dtype=np.float32)[np.arange(8) % 2]
    with eagerly():
        model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    for layer in layers:
        same = all(
            np.array_equal(a, w.numpy())
            for a, w in zip(before[layer.name], layer.weights, strict=True)
        )
        if layer.name in unfrozen:
            assert not same, f"unfrozen {layer.name} did not change"
        else:  # frozen layers, and every BatchNormalization (gamma, beta, moving statistics)
            assert same, f"frozen {layer.name} changed"


@pytest.mark.slow
def test_unknown_layer_name_and_end_to_end_source_are_refused(feature_run, tmp_path):
    _, _, run, fine = feature_run
    with pytest.raises(UsageError, match=r"no layer 'nope'.*conv4"):
        finetune(run, tmp_path / "a", small(unfreeze_from="nope"), verbose=0)
    with pytest.raises(UsageError, match="already an end-to-end run"):
        finetune(fine, tmp_path / "b", small(), verbose=0)
    with pytest.raises(UsageError, match="not empty"):
        finetune(run, fine, small(), verbose=0)


class Interrupt(Exception):
    pass


@pytest.mark.slow
def test_resume_after_an_interruption_finishes_like_an_uninterrupted_run(
    feature_run, tmp_path, eagerly
):
    import keras

    _, _, run, _ = feature_run

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise Interrupt

    config = small(epochs=2, augment=True, lr_schedule="cosine", seed=4)
    out = tmp_path / "killed"
    with eagerly(), pytest.raises(Interrupt):
        finetune(run, out, config, verbose=0, callbacks=[StopAfterFirstEpoch()])
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert state["epochs_done"] == 1 and not state["finished"]
    assert not (out / "model.keras").exists()

    with eagerly():
        resumed = finetune(run, out, config, resume=True, verbose=0)
        straight = finetune(run, tmp_path / "straight", config, verbose=0)
    assert resumed.resumed_from == 1 and resumed.epochs_completed == 2
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    for got, want in zip(resumed.history, straight.history, strict=True):
        assert got == pytest.approx(want, rel=1e-4)
    assert load_run(out).end_to_end


def face_csv(path, rows_per_class=12):
    """A FER-2013 CSV: two emotions, Training / PublicTest / PrivateTest rows."""
    rng = np.random.default_rng(0)
    lines = ["emotion,pixels,Usage"]
    for usage, count in (("Training", rows_per_class), ("PublicTest", 3), ("PrivateTest", 3)):
        for emotion in (0, 3):
            for _ in range(count):
                base = 60 if emotion == 0 else 190
                image = np.clip(base + rng.normal(0, 25, (48, 48)), 0, 255).astype(int)
                lines.append(f"{emotion},{' '.join(map(str, image.ravel()))},{usage}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_from_scratch_grayscale_vgg16_trains_on_a_fer_csv(tmp_path, eagerly):
    csv_path = face_csv(tmp_path / "fer2013.csv")
    settings = ScratchConfig(
        head=HeadConfig(units=8),
        fit=FitConfig(epochs=1, batch_size=4, lr=1e-4),
        backbone="vgg16",
        input_size=(48, 48),
        grayscale=True,
        workers=2,
        clip_length=3,
    )
    with eagerly():
        result = train_from_scratch(csv_path, tmp_path / "fer", settings, verbose=0)
    assert result.epochs_completed == 1 and result.splits["train"] == 8
    run = load_run(tmp_path / "fer")
    config = run.config
    assert config["from_scratch"] and config["grayscale"] and config["backbone"] == "vgg16"
    assert config["weights"] == "none" and config["preprocessing"] == "tf"
    assert config["data"]["source"] == "fer2013" and config["cache_path"] is None
    assert config["sampling"]["clip_length"] == 3 and config["sampling"]["num_frames"] == 3
    assert ScratchConfig.from_dict(config["finetune"]) == settings  # recorded as given
    assert run.model.input_shape == (None, 3, 48, 48, 3)
    vgg = run.model.get_layer("backbone").layer
    assert vgg.get_layer("rgb_to_gray").trainable is False
    assert vgg.layers[-1].input_shape[-1] == 1  # the VGG16 reads one channel
    metrics = json.loads((tmp_path / "fer" / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_videos"] == 2
    from vidseq.sequence.runs.evaluation import evaluate_run

    assert evaluate_run(tmp_path / "fer", out_dir=tmp_path / "e").metrics["num_videos"] == 2
