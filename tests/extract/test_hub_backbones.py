"""keras-hub presets as backbones: features equal keras-hub's own, the cache records them."""

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from vidseq.cli import main
from vidseq.errors import UsageError
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.decode.sampling import SamplingConfig
from vidseq.extract.models.backbones import load_backbone
from vidseq.extract.models.precision import bf16_supported
from vidseq.extract.pipeline import extract_features
from vidseq.extract.sources.sample_data import make_sample

keras_hub = pytest.importorskip("keras_hub")


def frames(count, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)


def reference(preset, images):
    """keras-hub's own forward pass: its image converter, then its (vision) encoder."""
    backbone = keras_hub.models.Backbone.from_preset(str(preset))
    converter = keras_hub.layers.ImageConverter.from_preset(str(preset))
    encoder = getattr(backbone, "vision_encoder", backbone)
    return np.asarray(encoder.predict({"images": converter(images)}, verbose=0))


@pytest.mark.slow
@pytest.mark.parametrize("family", ["dinov2", "siglip"])
def test_frame_encoder_features_equal_keras_hub(hub_presets, family):
    net = load_backbone(f"hub:{hub_presets[family]}", "preset")
    images = frames(5)
    out = reference(hub_presets[family], images)
    expected = out[:, 0] if family == "dinov2" else out  # the class token; SigLIP's pooled head
    np.testing.assert_allclose(net.extract(images, batch_size=2), expected, atol=1e-5)
    assert net.config["pooling"] == ("cls" if family == "dinov2" else "map")
    assert net.config["class"] == (
        "DINOV2Backbone" if family == "dinov2" else "SigLIPVisionEncoder"
    )
    assert net.blocks and len(net.blocks) == 2  # the vision encoder's, not SigLIP's text layer
    mean = load_backbone(f"hub:{hub_presets[family]}", "preset", pooling="mean")
    tokens = out[:, 1:] if family == "dinov2" else None
    if tokens is not None:
        np.testing.assert_allclose(mean.extract(images), tokens.mean(axis=1), atol=1e-5)
    assert mean.config["pooling"] == "mean" and mean.weights_sha256 != ""


@pytest.mark.slow
def test_pooling_is_checked(hub_presets):
    with pytest.raises(UsageError, match=r"\(siglip\) has no class token. Received: pooling='cls'"):
        load_backbone(f"hub:{hub_presets['siglip']}", "preset", pooling="cls")
    with pytest.raises(UsageError, match="pooling applies to hub:PRESET backbones only"):
        load_backbone("tiny", "none", pooling="mean")
    with pytest.raises(UsageError, match=r"weights must be 'preset' or 'none'\. Received"):
        load_backbone(f"hub:{hub_presets['dinov2']}", "imagenet")


@pytest.fixture(scope="module")
def videoprism(hub_presets, tmp_path_factory):
    """``(net, cache_dir)``: the tiny VideoPrism backbone, loaded once (engines convert or
    copy it, never change it), and one folder for its OpenVINO conversions, so that a
    conversion at one batch size is converted once and loaded by the other tests."""
    net = load_backbone(f"hub:{hub_presets['videoprism']}", "preset")
    return net, tmp_path_factory.mktemp("videoprism-openvino")


@pytest.mark.slow
def test_videoprism_reads_groups_of_its_frames(hub_presets, videoprism):
    net, _ = videoprism
    assert net.clip_frames == 4 and net.config["family"] == "videoprism"
    images = frames(6, seed=1)
    # 6 frames: one group of 4, then frames 4, 5 completed by repeating frame 5.
    groups = np.concatenate([images, images[[5, 5]]]).reshape(2, 4, 32, 32, 3)
    backbone = keras_hub.models.Backbone.from_preset(str(hub_presets["videoprism"]))
    converter = keras_hub.layers.ImageConverter.from_preset(str(hub_presets["videoprism"]))
    scaled = np.asarray(converter(groups.reshape(-1, 32, 32, 3))).reshape(2, 4, 32, 32, 3)
    tokens = np.asarray(backbone.predict(scaled, verbose=0))  # (2, 4, patches, D)
    expected = tokens.mean(axis=2).reshape(8, -1)[:6]
    np.testing.assert_allclose(net.extract(images), expected, atol=1e-5)
    np.testing.assert_allclose(net.extract(images, batch_size=3), expected, atol=1e-5)


@pytest.fixture(scope="module")
def hub_cache(hub_presets, tmp_path_factory):
    """A real sample dataset extracted with the tiny VideoPrism preset (6 frames, groups of 4)."""
    root = tmp_path_factory.mktemp("hub-cache")
    sample = make_sample(root / "sample", videos_per_class=6, classes=["Grow", "Shrink"])
    summary = extract_features(
        sample,
        root / "features.h5",
        backbone=f"hub:{hub_presets['videoprism']}",
        frames=FrameSpec(SamplingConfig(num_frames=6)),
        batch_size=5,  # rounded up to 8: no group of 4 straddles two videos
        dtype="float32",
        progress=False,
    )
    return sample, summary.out


@pytest.mark.slow
def test_extraction_records_the_preset_and_groups_each_video(hub_cache, hub_presets):
    from vidseq.cache.store import FeatureStore
    from vidseq.extract.decode.frames import read_frames

    _, cache = hub_cache
    with FeatureStore(cache) as store:
        meta = store.meta
    assert meta.backbone == f"hub:{hub_presets['videoprism']}" and meta.weights == "preset"
    config = meta.backbone_config
    assert config["preset"] == str(hub_presets["videoprism"])
    assert config["class"] == "VideoPrismBackbone" and config["clip_frames"] == 4
    assert config["config"]["num_frames"] == 4
    net = load_backbone(meta.backbone, "preset")
    assert net.weights_sha256 == meta.weights_sha256
    spec = FrameSpec.from_dict(meta.sampling)
    with h5py.File(cache, "r") as h5:
        for video in range(len(h5["videos/path"])):
            offset, length = int(h5["videos/offset"][video]), int(h5["videos/length"][video])
            rows = np.asarray(h5["features"][offset : offset + length])
            sampled = read_frames(
                h5["videos/path"][video].decode(), spec.sampling, spec.geometry(net.input_size)
            )
            np.testing.assert_allclose(rows, net.extract(sampled.frames), atol=1e-5)


@pytest.mark.slow
def test_inspect_shows_the_preset_without_importing_tensorflow(hub_cache):
    _, cache = hub_cache
    code = (
        "import sys; from vidseq.cli import main; main(['inspect', sys.argv[1]]); "
        "print('modules', 'tensorflow' in sys.modules, 'keras_hub' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(cache)], capture_output=True, text=True, check=True
    ).stdout
    assert "preset:" in out and "VideoPrismBackbone" in out and "4 frames at a time" in out
    assert out.strip().splitlines()[-1] == "modules False False"


def test_a_preset_name_offline_exits_2_naming_it_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    sample = make_sample(tmp_path / "sample", videos_per_class=1, classes=["Grow", "Shrink"])
    out = tmp_path / "features.h5"
    argv = ["extract-features", str(sample), "--out", str(out), "--backbone", "hub:dinov2_small"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'dinov2_small' could not be loaded" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample"]


def test_a_missing_preset_directory_is_one_line(tmp_path):
    with pytest.raises(UsageError, match=r"preset directory .*nowhere does not exist"):
        load_backbone(f"hub:{tmp_path / 'nowhere'}", "preset")
    assert json.dumps(load_backbone("tiny", "none").config) == "{}"


@pytest.mark.slow
def test_cli_extraction_is_quiet_and_records_the_pooling(hub_presets, tmp_path, capsys):
    """The command line: --backbone hub:DIR --pooling mean, no TF or keras-hub log line."""
    sample = make_sample(tmp_path / "sample", videos_per_class=1, classes=["Grow", "Shrink"])
    out = tmp_path / "features.h5"
    argv = [sys.executable, "-m", "vidseq", "extract-features", str(sample), "--out", str(out)]
    argv += ["--backbone", f"hub:{hub_presets['dinov2']}", "--pooling", "mean", "--frames", "2"]
    result = subprocess.run([*argv, "--quiet"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # no absl, TF, keras-hub or Keras warning line
    assert main(["inspect", str(out), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["backbone_config"]["pooling"] == "mean"
    assert shown["backbone_config"]["family"] == "dinov2"


@pytest.mark.slow
def test_openvino_engine_gives_tensorflows_features(hub_presets, tmp_path):
    pytest.importorskip("openvino")
    from vidseq.extract.models.engines import load_engine

    net = load_backbone(f"hub:{hub_presets['siglip']}", "preset")
    engine = load_engine(net, "openvino", batch_size=4, cache_dir=tmp_path)
    images = frames(6, seed=2)
    np.testing.assert_allclose(engine.extract(images), net.extract(images), atol=1e-5)


@pytest.mark.slow
def test_openvino_engine_groups_a_clip_encoders_frames_as_tensorflow_does(videoprism):
    """VideoPrism (groups of 4) in batches of 6 frames, rounded up to 8: 10 frames are
    groups 0-3, 4-7 and 8, 9 completed by repeating 9; the last call holds one zero group."""
    pytest.importorskip("openvino")
    from vidseq.extract.models.engines import load_engine

    clip, cache_dir = videoprism
    engine = load_engine(clip, "openvino", batch_size=6, cache_dir=cache_dir)
    assert engine.batch_size == 8
    images = frames(10, seed=3)
    np.testing.assert_allclose(engine.extract(images), clip.extract(images), atol=1e-5)
    np.testing.assert_allclose(engine.extract(images[:3]), clip.extract(images[:3]), atol=1e-5)
    with pytest.raises(UsageError, match="precision int8 quantises frame encoders"):
        load_engine(clip, "openvino", precision="int8", cache_dir=cache_dir)


@pytest.mark.slow
@pytest.mark.skipif(not bf16_supported(), reason="this CPU has no native bfloat16")
@pytest.mark.parametrize("engine", ["tf", "openvino"])
def test_bf16_groups_a_clip_encoders_frames_as_fp32_does(videoprism, engine):
    """10 frames through VideoPrism in bfloat16: grouped by 4 as in FP32 (the last group
    completed), one row per frame, close to the FP32 features but not equal to them.
    OpenVINO compiles for bfloat16 the FP32 conversion (batch 8) of the test above."""
    pytest.importorskip({"openvino": "openvino"}.get(engine, "tensorflow"))
    from vidseq.extract.models.engines import load_engine

    clip, cache_dir = videoprism
    lowered = load_engine(clip, engine, batch_size=8, precision="bf16", cache_dir=cache_dir)
    images = frames(10, seed=5)
    got, reference = lowered.extract(images), clip.extract(images)
    assert got.shape == reference.shape == (10, clip.feature_dim) and got.dtype == np.float32
    cosine = (
        (got * reference).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(reference, axis=1)
    )
    assert cosine.min() > 0.99 and not np.array_equal(got, reference)


@pytest.mark.slow
def test_windows_group_each_windows_frames_as_extraction_does(hub_cache, tmp_path, eagerly):
    """Windows of 6 frames: each window's frames are grouped by 4 from its own start."""
    from vidseq.extract.decode.frame_stream import SequentialDecoder
    from vidseq.sequence.config import TrainConfig
    from vidseq.sequence.infer.run_classifier import load_classifier
    from vidseq.sequence.infer.windowed import predict_windows
    from vidseq.sequence.train.training import train_sequence

    sample, cache = hub_cache
    flat = {"head": "pool", "units": 4, "epochs": 1, "batch_size": 4}
    with eagerly():
        run = train_sequence(cache, tmp_path / "run", TrainConfig.from_dict(flat), verbose=0)
    video = str(sorted(sample.glob("*/*.avi"))[0])
    decoder = SequentialDecoder(video, load_classifier(run.run_dir).geometry)
    half = decoder.claimed_frames / decoder.fps / 2
    got = predict_windows(run.run_dir, [video], window=half, stride=half, top_k=2)
    windows = got.to_dict()["videos"][0]["windows"]
    assert len(windows) >= 2  # (and a last window flush with the end)
    classifier = load_classifier(run.run_dir)
    net = load_backbone(classifier.engine.net.name, "preset")
    for window in windows:
        indices = window["frame_indices"]
        images = dict(decoder.frames(sorted(set(indices))))
        features = net.extract(np.stack([images[i] for i in indices]))  # one clip, as cached
        expected = classifier.classify([(features, len(indices))])[0]
        top = {entry["label"]: entry["probability"] for entry in window["top"]}
        for label, probability in top.items():
            np.testing.assert_allclose(
                probability, expected[classifier.class_names.index(label)], atol=1e-5
            )
