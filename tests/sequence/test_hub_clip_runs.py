"""A run on a clip encoder (VideoPrism, 4 frames at a time) end to end: the end-to-end model
groups frames as extraction does, every export format predicts what the run predicts, and
finetune trains its last transformer block.

One tiny VideoPrism preset (random init, 32 px, one spatial and one temporal block), real
sample videos, 6 frames each (a group of 4, then frames 4 and 5 completed by repeating 5).
"""

import json

import keras
import numpy as np
import pytest

from vidseq.cli import main
from vidseq.extract.models.backbones import load_backbone
from vidseq.sequence.infer.predict import predict_videos
from vidseq.sequence.train.end_to_end import build_end_to_end, set_trainable

keras_hub = pytest.importorskip("keras_hub")
NAMES = ["Grow", "Shrink"]


@pytest.fixture(scope="module")
def clip_run(hub_presets, tmp_path_factory, eagerly):
    """``{"cache", "run", "videos", "expected"}`` of a VideoPrism run (pool head, T = K = 6)."""
    from vidseq.extract.decode.framespec import FrameSpec
    from vidseq.extract.decode.sampling import SamplingConfig
    from vidseq.extract.pipeline import extract_features
    from vidseq.extract.sources.sample_data import make_sample
    from vidseq.sequence.config import TrainConfig
    from vidseq.sequence.train.training import train_sequence

    root = tmp_path_factory.mktemp("clip-run")
    sample = make_sample(root / "sample", videos_per_class=6, classes=NAMES)
    cache = extract_features(
        sample,
        root / "features.h5",
        backbone=f"hub:{hub_presets['videoprism']}",
        frames=FrameSpec(SamplingConfig(num_frames=6)),
        dtype="float32",
        progress=False,
    ).out
    flat = {"head": "pool", "units": 8, "epochs": 2, "batch_size": 4, "patience": 0}
    with eagerly():
        run = train_sequence(cache, root / "run", TrainConfig.from_dict(flat), verbose=0).run_dir
    videos = sorted(str(p) for p in sample.glob("*/*.avi"))[::4]
    predicted = predict_videos(run, videos, top_k=2)
    expected = np.array([[dict(p.top)[c] for c in NAMES] for p in predicted])
    return {"cache": cache, "run": run, "videos": videos, "expected": expected}


def printed_probabilities(capsys):
    """The probabilities ``vidseq predict ... --json`` printed, one row per video."""
    shown = json.loads(capsys.readouterr().out)
    tops = [{e["label"]: e["probability"] for e in video["top"]} for video in shown]
    return np.array([[top[c] for c in NAMES] for top in tops])


@pytest.mark.slow
def test_the_end_to_end_model_groups_frames_as_extraction_does(hub_presets):
    """A clip of 6 real frames and one of 3 real frames and 3 zero (padding) frames: the
    real frames' rows equal ``Backbone.extract`` of the real frames alone, padding rows are 0."""
    net = load_backbone(f"hub:{hub_presets['videoprism']}", "preset")
    rows = keras.Input((6, net.feature_dim))
    model = build_end_to_end(net, keras.Model(rows, rows), frames=6)  # the head: identity
    clips = np.random.default_rng(4).integers(1, 256, (2, 6, 32, 32, 3), dtype=np.uint8)
    clips[1, 3:] = 0
    got = model.predict(clips, verbose=0)
    np.testing.assert_allclose(got[0], net.extract(clips[0]), atol=1e-5)
    np.testing.assert_allclose(got[1, :3], net.extract(clips[1, :3]), atol=1e-5)
    assert not got[1, 3:].any()


@pytest.mark.slow
def test_unfreeze_counts_the_spatial_and_temporal_blocks(hub_presets):
    net = load_backbone(f"hub:{hub_presets['videoprism']}", "preset")
    assert set_trainable(net, unfreeze=1) == ["transformer_block_0", "ln"]  # temporal block
    everything = set_trainable(net, unfreeze_from="spatial_encoder/transformer_block_0")
    assert everything == ["transformer_block_0", "ln", "temporal_embedding", *everything[:2]]
    with pytest.raises(Exception, match="its blocks: spatial_encoder/transformer_block_0, "):
        set_trainable(net, unfreeze_from="transformer_block_0")


@pytest.mark.slow
# The formats that needed their own handling of the grouping (LiteRT takes no 6-D tensor;
# ONNX needs VideoPrism's position ids as constants). savedmodel's row would add nothing:
# litert converts the SavedModel that a savedmodel export is; openvino converts the same
# serving function (test_hub_backbones.py checks VideoPrism on OpenVINO); the DINOv2 run of
# test_hub_runs.py has every row.
@pytest.mark.parametrize("fmt", ["litert", "onnx"])
def test_every_export_format_predicts_what_the_clip_run_predicts(clip_run, fmt, tmp_path, capsys):
    pytest.importorskip({"onnx": "tf2onnx", "openvino": "openvino"}.get(fmt, "tensorflow"))
    out = tmp_path / fmt
    argv = ["export", str(clip_run["run"]), "--format", fmt, "--out", str(out)]
    assert main([*argv, "--part", "end-to-end"]) == 0
    capsys.readouterr()
    assert main(["predict", str(out), *clip_run["videos"], "--top-k", "2", "--json"]) == 0
    np.testing.assert_allclose(printed_probabilities(capsys), clip_run["expected"], atol=1e-4)


@pytest.mark.slow
def test_export_refuses_a_clip_run_whose_head_reads_fewer_frames(
    clip_run, tmp_path, eagerly, capsys
):
    """A head reading 4 of the 6 grouped frames: the export could not group them as extraction
    did, so it exits 2 in one line (export --part head still serves the run)."""
    from vidseq.sequence.config import TrainConfig
    from vidseq.sequence.train.training import train_sequence

    flat = {"head": "pool", "units": 4, "epochs": 1, "batch_size": 4, "frames": 4}
    with eagerly():
        run = train_sequence(clip_run["cache"], tmp_path / "run", TrainConfig.from_dict(flat))
    out = tmp_path / "export"
    argv = ["export", str(run.run_dir), "--format", "savedmodel", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "reads clips of 4 frames" in err[0] and "4 of the 6" in err[0], err
    assert not out.exists()


@pytest.mark.slow
def test_finetune_unfreeze_1_of_a_clip_run_trains_the_temporal_block_and_predicts(
    clip_run, tmp_path, eagerly, capsys
):
    out = tmp_path / "fine"
    argv = ["finetune", str(clip_run["run"]), "--out", str(out), "--unfreeze", "1"]
    with eagerly():  # three steps: tracing the encoder's train step would cost more
        assert main([*argv, "--epochs", "1", "--batch-size", "4", "--quiet"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "end_to_end" and config["backbone_config"]["clip_frames"] == 4
    assert config["unfrozen_layers"] == ["transformer_block_0", "ln"]
    capsys.readouterr()
    assert main(["predict", str(out), *clip_run["videos"], "--top-k", "2", "--json"]) == 0
    got = printed_probabilities(capsys)
    assert got.shape == (len(clip_run["videos"]), 2) and np.allclose(got.sum(1), 1, atol=1e-5)
