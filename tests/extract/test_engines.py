"""Inference engines: OpenVINO features equal TensorFlow's, the engine is recorded, never mixed."""

import sys
from pathlib import Path

import numpy as np
import pytest

from vidseq.cache.merge import merge_caches
from vidseq.cache.store import FeatureStore
from vidseq.cli import main
from vidseq.errors import CacheError, UsageError
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.decode.sampling import SamplingConfig
from vidseq.extract.models import precision as precision_module
from vidseq.extract.models.backbones import load_backbone
from vidseq.extract.models.engines import ENGINES, TensorFlowEngine, load_engine, openvino_cache_dir
from vidseq.extract.models.precision import bf16_supported
from vidseq.extract.pipeline import extract_features
from vidseq.extract.sources.sample_data import make_sample

try:
    import openvino  # noqa: F401

    HAVE_OPENVINO = True
except ImportError:
    HAVE_OPENVINO = False

needs_openvino = pytest.mark.skipif(
    not HAVE_OPENVINO, reason='openvino is not installed (pip install "vidseq[openvino]")'
)

SAMPLING = SamplingConfig(mode="uniform", num_frames=4)


@pytest.fixture(scope="module", autouse=True)
def converted_models_in_tmp(tmp_path_factory):
    """Converted OpenVINO models go to the module's own folder, never to ~/.cache.

    Shared by the module's tests: a network converted once at one batch size is loaded,
    not converted again, by the next test that runs it (the tests that check converting
    and the on-disk cache name their own ``cache_dir``).
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VIDSEQ_CACHE", str(tmp_path_factory.mktemp("vidseq-cache")))
        yield


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory):
    return make_sample(
        tmp_path_factory.mktemp("engines") / "sample",
        seed=5,
        videos_per_class=2,
        classes=["Grow", "Shrink"],
    )


@pytest.fixture(scope="module")
def backbone():
    """Returns ``get(name, input_size=None) -> Backbone`` (random init), each built once.

    Engines convert or clone the network they are given, never change it, so the tests
    of one network share it.
    """
    built = {}

    def get(name, input_size=None):
        if (name, input_size) not in built:
            built[name, input_size] = load_backbone(name, "none", input_size=input_size)
        return built[name, input_size]

    return get


def frames_for(net, count, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, *net.input_size, 3), dtype=np.uint8)


def assert_features_close(actual, expected):
    """Equal within 1e-4 relative to the feature scale (the largest absolute feature)."""
    scale = float(np.abs(expected).max())
    assert scale > 0
    assert np.abs(actual - expected).max() <= 1e-4 * scale


def test_engine_names_and_the_default():
    assert ENGINES == ("tf", "openvino")
    net = load_backbone("tiny", "none")
    engine = load_engine(net)
    assert isinstance(engine, TensorFlowEngine) and engine.name == "tf"
    frames = frames_for(net, 3)
    np.testing.assert_array_equal(engine.extract(frames), net.extract(frames))


def test_unknown_engine_is_a_usage_error(sample_root, tmp_path):
    net = load_backbone("tiny", "none")
    with pytest.raises(
        UsageError, match=r"engine must be one of \['tf', 'openvino'\]\. Received: engine='onnx'"
    ):
        load_engine(net, "onnx")
    with pytest.raises(UsageError, match="Received: engine='onnx'"):
        extract_features(
            sample_root, tmp_path / "f.h5", engine="onnx", backbone="tiny", progress=False
        )
    assert not (tmp_path / "f.h5.parts").exists()


def test_missing_openvino_names_the_extra(monkeypatch, sample_root, tmp_path):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    net = load_backbone("tiny", "none")
    with pytest.raises(UsageError, match=r"vidseq\[openvino\]"):
        load_engine(net, "openvino")
    with pytest.raises(UsageError, match=r"vidseq\[openvino\]"):
        extract_features(
            sample_root, tmp_path / "f.h5", engine="openvino", backbone="tiny", progress=False
        )
    assert not (tmp_path / "f.h5").exists() and not (tmp_path / "f.h5.parts").exists()


def test_openvino_cache_dir_follows_vidseq_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDSEQ_CACHE", str(tmp_path / "c"))
    assert openvino_cache_dir() == tmp_path / "c" / "openvino"
    monkeypatch.delenv("VIDSEQ_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert openvino_cache_dir() == tmp_path / "x" / "vidseq" / "openvino"


@needs_openvino
@pytest.mark.parametrize(
    ("name", "input_size"),
    [("tiny", None), ("mobilenetv2", (32, 32)), ("resnet50", (32, 32))],
)
@pytest.mark.slow
def test_openvino_features_equal_tensorflow(backbone, name, input_size):
    net = backbone(name, input_size)
    engine = load_engine(net, "openvino", batch_size=4)
    assert engine.name == "openvino"
    frames = frames_for(net, 10)  # two full batches and a padded one
    features = engine.extract(frames)
    assert features.shape == (10, net.feature_dim) and features.dtype == np.float32
    assert_features_close(features, net.extract(frames))
    # The padded last batch gives the same rows as a full one.
    np.testing.assert_allclose(engine.extract(frames[8:]), features[8:], rtol=0, atol=0)


@pytest.mark.slow
@needs_openvino
def test_openvino_conversion_is_cached_on_disk_by_key(tmp_path):
    net = load_backbone("tiny", "none")
    first = load_engine(net, "openvino", batch_size=4, cache_dir=tmp_path)
    assert first.converted and first.model_path.parent == tmp_path
    assert first.model_path.is_file() and first.model_path.with_suffix(".bin").is_file()
    again = load_engine(net, "openvino", batch_size=4, cache_dir=tmp_path)
    assert not again.converted and again.model_path == first.model_path
    other_batch = load_engine(net, "openvino", batch_size=2, cache_dir=tmp_path)
    other_net = load_backbone("tiny", "none", seed=1)
    other_seed = load_engine(other_net, "openvino", batch_size=4, cache_dir=tmp_path)
    paths = {first.model_path, other_batch.model_path, other_seed.model_path}
    assert len(paths) == 3 and all(other.converted for other in (other_batch, other_seed))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    frames = frames_for(net, 4)
    np.testing.assert_array_equal(again.extract(frames), first.extract(frames))


@pytest.mark.slow
@needs_openvino
def test_openvino_rejects_frames_of_another_shape():
    net = load_backbone("tiny", "none")
    engine = load_engine(net, "openvino", batch_size=4)  # as features_equal[tiny] converts it
    with pytest.raises(UsageError, match="expects uint8 frames of shape"):
        engine.extract(np.zeros((2, 32, 32, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def engine_caches(sample_root, tmp_path_factory):
    """The same dataset extracted by each engine (models converted in a module folder)."""
    if not HAVE_OPENVINO:
        pytest.skip('openvino is not installed (pip install "vidseq[openvino]")')
    folder = tmp_path_factory.mktemp("caches")
    patch = pytest.MonkeyPatch()
    patch.setenv("VIDSEQ_CACHE", str(folder / "vidseq-cache"))
    try:
        caches = {
            engine: extract_features(
                sample_root,
                folder / f"{engine}.h5",
                frames=FrameSpec(SAMPLING),
                batch_size=3,
                engine=engine,
                backbone="tiny",
                progress=False,
            ).out
            for engine in ENGINES
        }
    finally:
        patch.undo()
    return caches


@pytest.mark.slow
@needs_openvino
def test_the_cache_records_the_engine_and_features_agree(engine_caches):
    with (
        FeatureStore(engine_caches["tf"]) as tf_store,
        FeatureStore(engine_caches["openvino"]) as ov_store,
    ):
        assert tf_store.meta.engine == "tf" and ov_store.meta.engine == "openvino"
        assert list(ov_store.video_ids) == list(tf_store.video_ids)
        assert tf_store.meta.weights_sha256 == ov_store.meta.weights_sha256
        expected, _, _ = tf_store.load()
        actual, _, _ = ov_store.load()
    # Stored as float16: equal to float16 rounding of features equal to 1e-4.
    scale = float(np.abs(expected).max())
    assert np.abs(actual - expected).max() <= 1e-3 * scale


@pytest.mark.slow
@needs_openvino
def test_resuming_with_another_engine_is_refused(engine_caches, tmp_path, sample_root):
    out = tmp_path / "f.h5"
    extract_features(
        sample_root,
        out,
        frames=FrameSpec(SAMPLING),
        engine="openvino",
        backbone="tiny",
        progress=False,
    )
    before = out.read_bytes()
    with pytest.raises(CacheError, match="engine"):
        extract_features(
            sample_root,
            out,
            frames=FrameSpec(SAMPLING),
            engine="tf",
            backbone="tiny",
            progress=False,
        )
    assert out.read_bytes() == before


@pytest.mark.slow
@needs_openvino
def test_resuming_parts_with_another_engine_is_refused(tmp_path, sample_root):
    from vidseq.extract.pipeline import FeatureExtractor

    out = tmp_path / "f.h5"
    calls = 0
    real_run = FeatureExtractor.run

    def dies_after_one_video(self, items):
        nonlocal calls
        for pair in real_run(self, items):
            yield pair
            calls += 1
            if calls == 1:
                raise KeyboardInterrupt

    patch = pytest.MonkeyPatch()
    patch.setattr(FeatureExtractor, "run", dies_after_one_video)
    try:
        with pytest.raises(KeyboardInterrupt):
            extract_features(
                sample_root,
                out,
                frames=FrameSpec(SAMPLING),
                engine="tf",
                commit_every=1,
                backbone="tiny",
                progress=False,
            )
    finally:
        patch.undo()
    assert (tmp_path / "f.h5.parts").is_dir() and not out.exists()
    with pytest.raises(CacheError, match="engine"):
        extract_features(
            sample_root,
            out,
            frames=FrameSpec(SAMPLING),
            engine="openvino",
            backbone="tiny",
            progress=False,
        )


@pytest.mark.slow
@needs_openvino
def test_merging_caches_of_two_engines_is_refused(engine_caches, tmp_path):
    with pytest.raises(CacheError, match="engine"):
        merge_caches(tmp_path / "merged.h5", [engine_caches["tf"], engine_caches["openvino"]])
    assert not (tmp_path / "merged.h5").exists()


@pytest.mark.slow
@needs_openvino
def test_cli_extract_features_engine_openvino(sample_root, tmp_path, capsys):
    out = tmp_path / "cli.h5"
    code = main(
        [
            "extract-features",
            "--backbone",
            "tiny",
            str(sample_root),
            "--out",
            str(out),
            "--backbone",
            "tiny",
            "--weights",
            "none",
            "--frames",
            "4",
            "--engine",
            "openvino",
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    with FeatureStore(out) as store:
        assert store.meta.engine == "openvino"
    assert Path(out).is_file()


def test_precision_refusals_are_one_line_usage_errors(monkeypatch, sample_root, tmp_path):
    net = load_backbone("tiny", "none")
    with pytest.raises(UsageError, match=r"Received: precision='fp16'"):
        load_engine(net, "tf", precision="fp16")
    with pytest.raises(UsageError, match=r"engine='openvino'.*Received: engine='tf'"):
        extract_features(sample_root, tmp_path / "f.h5", precision="int8", progress=False)
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: frozenset({"avx2"}))
    with pytest.raises(UsageError, match="needs a CPU with AVX512_BF16 or AMX"):
        load_engine(net, "tf", precision="bf16")
    assert main(["extract-features", str(sample_root), "--out", str(tmp_path / "g.h5"),
                 "--precision", "bf16", "--quiet"]) == 2  # fmt: skip
    assert not (tmp_path / "f.h5.parts").exists() and not (tmp_path / "g.h5").exists()


@pytest.mark.slow
@pytest.mark.skipif(not bf16_supported(), reason="this CPU has no native bfloat16")
@pytest.mark.parametrize("engine", ["tf", pytest.param("openvino", marks=needs_openvino)])
def test_bf16_features_agree_with_fp32(backbone, engine):
    net = backbone("mobilenetv2", (32, 32))
    lowered = load_engine(net, engine, batch_size=4, precision="bf16")
    assert lowered.precision == "bf16"
    frames = frames_for(net, 6)
    features, reference = lowered.extract(frames), net.extract(frames)
    assert features.shape == reference.shape and features.dtype == np.float32
    cosine = (features * reference).sum(1) / (
        np.linalg.norm(features, axis=1) * np.linalg.norm(reference, axis=1)
    )
    assert cosine.min() > 0.99
    assert not np.array_equal(features, reference)  # really another arithmetic
