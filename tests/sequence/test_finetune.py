"""finetune: end-to-end model from a feature run, BN handling, resume, evaluate/predict, scratch."""

import json
from pathlib import Path

import numpy as np
import pytest

from vidseq.cache.store import FeatureStore
from vidseq.cli import main
from vidseq.errors import UsageError
from vidseq.sequence.finetune import (
    FinetuneConfig,
    build_end_to_end,
    finetune,
    set_trainable,
    train_from_scratch,
)
from vidseq.sequence.frames_data import read_clip, videos_from_cache
from vidseq.sequence.predict import load_run_backbone
from vidseq.sequence.run_dir import load_run
from vidseq.sequence.temporal import prepare_clip

SMALL = {"epochs": 1, "batch_size": 4, "unfreeze": 2, "workers": 2}


@pytest.fixture(scope="module")
def feature_run(tmp_path_factory, make_feature_run):
    """A tiny-CNN feature run (32x32, 6 frames, float32 cache) and its finetune via the CLI."""
    root = tmp_path_factory.mktemp("finetune")
    sample, cache, run = make_feature_run(root, epochs=4)
    fine = root / "fine"
    code = main(
        [
            *("finetune", str(run), "--out", str(fine), "--epochs", "1", "--batch-size", "4"),
            *("--unfreeze", "2", "--augment", "--quiet"),
        ]
    )
    assert code == 0
    return sample, cache, run, fine


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


def test_finetuned_run_keeps_its_accuracy_and_records_what_it_did(feature_run, assert_run_files):
    _, _, run, fine = feature_run
    assert_run_files(fine)
    config = json.loads((fine / "config.json").read_text())
    source = json.loads((run / "config.json").read_text())
    assert config["model"] == "end_to_end" and config["kind"] == source["kind"]
    assert config["weights_sha256"] == source["weights_sha256"]
    assert config["unfrozen_layers"] == ["conv4"]  # the last 2 layers: conv4, avg_pool
    assert config["splits"] == source["splits"] and config["train"] == source["train"]
    assert config["finetune"]["lr"] == 1e-4 and config["finetune"]["augment"]
    before = json.loads((run / "metrics.json").read_text())["accuracy"]
    after = json.loads((fine / "metrics.json").read_text())["accuracy"]
    assert abs(after - before) <= 0.25  # one epoch at 1e-4: within noise of a few videos
    loaded = load_run(fine)  # safe_mode=True: registered layers only
    assert loaded.end_to_end and loaded.model.input_shape == (None, 6, 32, 32, 3)


def test_evaluate_and_predict_decode_raw_frames_for_an_end_to_end_run(
    feature_run, tmp_path, capsys
):
    sample, cache, _, fine = feature_run
    from vidseq.sequence.evaluation import evaluate_run
    from vidseq.sequence.predict import predict_videos

    metrics = evaluate_run(fine, out_dir=tmp_path / "eval")
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


def test_unfrozen_layers_change_frozen_ones_and_batchnorm_statistics_do_not():
    import keras

    from vidseq.extract.backbones import load_backbone
    from vidseq.sequence.head import build_head

    backbone = load_backbone("mobilenetv2", "none", input_size=(32, 32), seed=1)
    unfrozen = set_trainable(backbone, unfreeze=6)
    layers = [layer for layer in backbone.base_model.layers if layer.weights]
    batchnorms = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert batchnorms and not any(layer.trainable for layer in batchnorms)
    assert unfrozen and all(backbone.base_model.get_layer(n).trainable for n in unfrozen)
    model = build_end_to_end(backbone, build_head(2, 1280, units=4, dropout=0.0), frames=3)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="categorical_crossentropy")
    before = {layer.name: [w.numpy().copy() for w in layer.weights] for layer in layers}
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(8, 3, 32, 32, 3), dtype=np.uint8)
    y = np.eye(2, dtype=np.float32)[np.arange(8) % 2]
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


def test_unknown_layer_name_and_end_to_end_source_are_refused(feature_run, tmp_path):
    _, _, run, fine = feature_run
    with pytest.raises(UsageError, match=r"no layer 'nope'.*conv4"):
        finetune(run, tmp_path / "a", FinetuneConfig(unfreeze_from="nope", **SMALL), verbose=0)
    with pytest.raises(UsageError, match="already an end-to-end run"):
        finetune(fine, tmp_path / "b", FinetuneConfig(**SMALL), verbose=0)
    with pytest.raises(UsageError, match="not empty"):
        finetune(run, fine, FinetuneConfig(**SMALL), verbose=0)


class Interrupt(Exception):
    pass


def test_resume_after_an_interruption_finishes_like_an_uninterrupted_run(feature_run, tmp_path):
    import keras

    _, _, run, _ = feature_run

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise Interrupt

    settings = {**SMALL, "epochs": 2, "augment": True, "lr_schedule": "cosine", "seed": 4}
    out = tmp_path / "killed"
    with pytest.raises(Interrupt):
        finetune(run, out, FinetuneConfig(**settings), verbose=0, callbacks=[StopAfterFirstEpoch()])
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert state["epochs_done"] == 1 and not state["finished"]
    assert not (out / "model.keras").exists()

    resumed = finetune(run, out, FinetuneConfig(**settings, resume=True), verbose=0)
    assert resumed.resumed_from == 1 and resumed.epochs_completed == 2
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    straight = finetune(run, tmp_path / "straight", FinetuneConfig(**settings), verbose=0)
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


def test_from_scratch_grayscale_vgg16_trains_on_a_fer_csv(tmp_path):
    csv_path = face_csv(tmp_path / "fer2013.csv")
    config = FinetuneConfig(
        backbone="vgg16",
        input_size=(48, 48),
        grayscale=True,
        units=8,
        epochs=1,
        batch_size=4,
        lr=1e-4,
        workers=2,
    )
    result = train_from_scratch(csv_path, tmp_path / "fer", config, clip_length=3, verbose=0)
    assert result.epochs_completed == 1 and result.splits["train"] == 8
    run = load_run(tmp_path / "fer")
    config = run.config
    assert config["from_scratch"] and config["grayscale"] and config["backbone"] == "vgg16"
    assert config["weights"] == "none" and config["preprocessing"] == "tf"
    assert config["data"]["source"] == "fer2013" and config["cache_path"] is None
    assert run.model.input_shape == (None, 3, 48, 48, 3)
    vgg = run.model.get_layer("backbone").layer
    assert vgg.get_layer("rgb_to_gray").trainable is False
    assert vgg.layers[-1].input_shape[-1] == 1  # the VGG16 reads one channel
    metrics = json.loads((tmp_path / "fer" / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_videos"] == 2
    from vidseq.sequence.evaluation import evaluate_run

    assert evaluate_run(tmp_path / "fer", out_dir=tmp_path / "e")["num_videos"] == 2
