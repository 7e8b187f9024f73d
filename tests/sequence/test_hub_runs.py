"""A run on a keras-hub backbone: trains, evaluates, predicts, runs windows, exports, and
refuses a preset whose weights changed.

One tiny DINOv2 preset (random init, saved with ``save_to_preset``, copied so that a
test may change it), real sample videos, 4 frames each, the attentive head.
"""

import json
import shutil

import numpy as np
import pytest

from vidseq.cli import main
from vidseq.sequence.infer.predict import predict_videos

keras_hub = pytest.importorskip("keras_hub")
NAMES = ["Grow", "Shrink"]


@pytest.fixture(scope="module")
def hub_run(hub_presets, tmp_path_factory, eagerly):
    """``{"preset", "sample", "cache", "run", "videos"}`` of a DINOv2 attentive-probe run."""
    from vidseq.extract.decode.framespec import FrameSpec
    from vidseq.extract.decode.sampling import SamplingConfig
    from vidseq.extract.pipeline import extract_features
    from vidseq.extract.sources.sample_data import make_sample
    from vidseq.sequence.config import TrainConfig
    from vidseq.sequence.train.training import train_sequence

    root = tmp_path_factory.mktemp("hub-run")
    preset = shutil.copytree(hub_presets["dinov2"], root / "dinov2")
    sample = make_sample(root / "sample", videos_per_class=6, classes=["Grow", "Shrink"])
    cache = extract_features(
        sample,
        root / "features.h5",
        backbone=f"hub:{preset}",
        frames=FrameSpec(SamplingConfig(num_frames=4)),
        dtype="float32",
        progress=False,
    ).out
    flat = {"head": "attentive", "units": 8, "epochs": 2, "batch_size": 4, "patience": 0}
    with eagerly():
        run = train_sequence(cache, root / "run", TrainConfig.from_dict(flat), verbose=0).run_dir
    videos = sorted(str(p) for p in sample.glob("*/*.avi"))[::4]
    return {"preset": preset, "sample": sample, "cache": cache, "run": run, "videos": videos}


def printed_probabilities(capsys):
    """The probabilities ``vidseq predict ... --json`` printed, one row per video."""
    shown = json.loads(capsys.readouterr().out)
    tops = [{e["label"]: e["probability"] for e in video["top"]} for video in shown]
    return np.array([[top[c] for c in NAMES] for top in tops])


def probabilities(predictions, class_names):
    assert all(p.error is None for p in predictions)
    return np.array([[dict(p.top)[c] for c in class_names] for p in predictions])


@pytest.mark.slow
def test_the_run_records_the_preset(hub_run):
    config = json.loads((hub_run["run"] / "config.json").read_text())
    assert config["backbone"] == f"hub:{hub_run['preset']}"
    assert config["backbone_config"]["class"] == "DINOV2Backbone"
    assert config["backbone_config"]["pooling"] == "cls"
    assert config["head"]["head"] == "attentive"


@pytest.mark.slow
def test_evaluate_predict_and_windows_on_a_hub_run(hub_run, capsys):
    run, video = str(hub_run["run"]), hub_run["videos"][0]
    assert main(["evaluate", run, "--split", "val", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert main(["predict", run, video, "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out)
    assert {entry["label"] for entry in predicted[0]["top"]} == {"Grow", "Shrink"}
    assert main(["predict", run, video, "--window", "1", "--json"]) == 0
    windows = json.loads(capsys.readouterr().out)
    assert windows and "windows" in json.dumps(windows)


@pytest.fixture(scope="module")
def run_probabilities(hub_run):
    """The run's own probabilities of its three test videos (class order Grow, Shrink)."""
    return probabilities(predict_videos(hub_run["run"], hub_run["videos"], top_k=2), NAMES)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["savedmodel", "litert", "openvino", "onnx"])
def test_every_export_format_predicts_what_the_hub_run_predicts(
    hub_run, run_probabilities, fmt, tmp_path, capsys
):
    """``vidseq export --part end-to-end``, then ``vidseq predict`` on the export in its own
    runtime. ONNX is the strictest converter (Keras' exact GELU of DINOv2 becomes Erfc)."""
    pytest.importorskip({"onnx": "tf2onnx", "openvino": "openvino"}.get(fmt, "tensorflow"))
    out = tmp_path / fmt
    argv = ["export", str(hub_run["run"]), "--format", fmt, "--out", str(out)]
    assert main([*argv, "--part", "end-to-end"]) == 0
    capsys.readouterr()
    assert main(["predict", str(out), *hub_run["videos"], "--top-k", "2", "--json"]) == 0
    got = printed_probabilities(capsys)
    np.testing.assert_allclose(got, run_probabilities, rtol=0, atol=1e-4)


@pytest.mark.slow
def test_finetune_unfreeze_1_of_a_hub_run_trains_the_last_block_and_predicts(
    hub_run, run_probabilities, tmp_path, eagerly, capsys
):
    """The whole command: the last transformer block and the final norm train; the
    end-to-end run predicts."""
    out = tmp_path / "fine"
    argv = ["finetune", str(hub_run["run"]), "--out", str(out), "--unfreeze", "1"]
    with eagerly():  # three steps: tracing the encoder's train step would cost more
        assert main([*argv, "--epochs", "1", "--batch-size", "4", "--quiet"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "end_to_end" and config["backbone"] == f"hub:{hub_run['preset']}"
    assert config["unfrozen_layers"] == ["layers_1", "dinov2_backbone_layernorm"]
    capsys.readouterr()
    assert main(["predict", str(out), *hub_run["videos"], "--top-k", "2", "--json"]) == 0
    got = printed_probabilities(capsys)
    assert got.shape == (3, 2) and np.allclose(got.sum(axis=1), 1, atol=1e-5)


@pytest.mark.slow
def test_predict_refuses_a_preset_whose_weights_changed(hub_run, tmp_path, capsys):
    """Same directory, other weights: exit 2 naming both hashes; the preset is restored after."""
    preset = hub_run["preset"]
    kept = shutil.copytree(preset, tmp_path / "kept")
    config = json.loads((hub_run["run"] / "config.json").read_text())
    try:
        backbone = keras_hub.models.Backbone.from_preset(str(preset))
        backbone.set_weights([w * 1.01 for w in backbone.get_weights()])
        backbone.save_to_preset(str(preset))
        assert main(["predict", str(hub_run["run"]), hub_run["videos"][0]]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and config["weights_sha256"][:12] in err[0], err
        assert "SHA-256" in err[0] and str(preset) in err[0]
    finally:
        shutil.rmtree(preset)
        shutil.copytree(kept, preset)


@pytest.mark.slow
def test_unfreeze_counts_transformer_blocks(hub_presets, eagerly):
    import keras

    from vidseq.extract.models.backbones import load_backbone
    from vidseq.sequence.config import HeadConfig
    from vidseq.sequence.train.end_to_end import build_end_to_end, set_trainable
    from vidseq.sequence.train.model import build_head

    backbone = load_backbone(f"hub:{hub_presets['dinov2']}", "preset")
    unfrozen = set_trainable(backbone, unfreeze=1)
    assert [b.name for b in backbone.blocks] == ["layers_0", "layers_1"]
    assert unfrozen == ["layers_1", "dinov2_backbone_layernorm"]  # the last block, the final norm
    head = build_head(2, backbone.feature_dim, HeadConfig(units=4, dropout=0.0))
    model = build_end_to_end(backbone, head, frames=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="categorical_crossentropy")
    first, last = backbone.blocks
    before = {id(b): [w.numpy().copy() for w in b.weights] for b in (first, last)}
    x = np.random.default_rng(0).integers(0, 256, size=(4, 2, 32, 32, 3), dtype=np.uint8)
    with eagerly():
        model.fit(x, np.eye(2, dtype=np.float32)[[0, 1, 0, 1]], batch_size=4, verbose=0)
    changed = {
        id(b): not all(
            np.array_equal(a, w.numpy()) for a, w in zip(before[id(b)], b.weights, strict=True)
        )
        for b in (first, last)
    }
    assert changed == {id(first): False, id(last): True}
    with pytest.raises(Exception, match="no transformer block 'nope'"):
        set_trainable(backbone, unfreeze_from="nope")


def test_from_scratch_refuses_a_preset(hub_presets, tmp_path):
    out = tmp_path / "scratch"
    argv = ["finetune", "--from-scratch", str(tmp_path), "--out", str(out), "--backbone"]
    assert main([*argv, f"hub:{hub_presets['dinov2']}"]) == 2
    assert not out.exists()
