"""The backbone registry: preprocessing inside the model, seeded init, weights files, errors."""

import importlib
import json
import os
import re
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest
from keras.applications import (
    efficientnet,
    imagenet_utils,
    inception_v3,
    mobilenet_v2,
    mobilenet_v3,
    resnet,
    resnet50,
    vgg16,
)

from vidseq.errors import UsageError
from vidseq.extract.models.backbones import (
    BACKBONES,
    backbone_names,
    build_seeded,
    load_backbone,
    tiny_cnn,
    weights_sha256,
)
from vidseq.extract.models.preprocessing import FramePreprocessing

ALL_NAMES = [
    "resnet50",
    "resnet101",
    "inceptionv3",
    "vgg16",
    "mobilenetv2",
    "mobilenetv3small",
    "mobilenetv3large",
    "efficientnetb0",
    "efficientnetb1",
    "efficientnetb2",
    "efficientnetb3",
    "tiny",
]

# The Keras module whose preprocess_input each registered ImageNet backbone must match.
KERAS_MODULES = {
    "resnet50": resnet50,
    "resnet101": resnet,
    "inceptionv3": inception_v3,
    "vgg16": vgg16,
    "mobilenetv2": mobilenet_v2,
    "mobilenetv3small": mobilenet_v3,
    "mobilenetv3large": mobilenet_v3,
    "efficientnetb0": efficientnet,
    "efficientnetb1": efficientnet,
    "efficientnetb2": efficientnet,
    "efficientnetb3": efficientnet,
}


def random_frames(n, size, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, *size, 3), dtype=np.uint8)


def shape_frame(size=64, background=40, colour=(255, 0, 0), box=(16, 48, 16, 48)):
    frame = np.full((size, size, 3), background, dtype=np.uint8)
    top, bottom, left, right = box
    frame[top:bottom, left:right] = colour
    return frame


def run_python(code, env=None):
    """Runs code in a fresh interpreter and returns its last stdout line."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def assert_features_close(got, expected):
    """Equal up to float error, relative to the features' own scale."""
    scale = np.abs(expected).max()
    assert scale > 0
    assert np.abs(got - expected).max() <= 1e-4 * scale + 1e-7, np.abs(got - expected).max()


def assert_features_differ(got, expected):
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() > 1e-2 * scale


def test_registry_lists_every_backbone():
    assert backbone_names() == ALL_NAMES
    assert set(BACKBONES) == set(ALL_NAMES)
    for name, spec in BACKBONES.items():
        assert spec.name == name
        assert min(spec.input_size) >= spec.min_size
        assert spec.preprocessing in ("caffe", "tf", "torch", "raw")
    assert not BACKBONES["tiny"].imagenet
    assert "test" in BACKBONES["tiny"].description


def test_listing_names_imports_no_tensorflow():
    out = run_python(
        """
        import sys
        from vidseq.extract.models.backbones import backbone_names
        backbone_names()
        print(any(m in sys.modules for m in ("tensorflow", "keras")))
        """
    )
    assert out == "False"


@pytest.mark.parametrize("name", sorted(KERAS_MODULES))
def test_registry_preprocessing_matches_keras_module(name):
    frames = random_frames(2, (5, 6))
    got = np.asarray(FramePreprocessing(BACKBONES[name].preprocessing)(frames))
    expected = KERAS_MODULES[name].preprocess_input(frames.astype(np.float32))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-5)


@pytest.mark.slow
def test_registry_feature_dims_match_built_models():
    """Every registered architecture, built at its smallest size, gives its recorded dims.

    The networks are built by the registry's constructors as ``load_backbone`` builds
    them, inside a ``keras.StatelessScope``: Keras then defers the weights' random
    initialisation (the shapes are all that is checked here), which is most of the cost of
    building the larger ones. ``load_backbone`` itself, weights and all, is checked on the
    two smallest.
    """
    for name, spec in BACKBONES.items():
        module, _, attr = spec.constructor.rpartition(".")
        constructor = getattr(importlib.import_module(module), attr)
        with keras.StatelessScope():
            model = build_seeded(constructor, (spec.min_size, spec.min_size, 3), seed=0)
        assert model.output_shape == (None, spec.feature_dim), name
    for name in ("tiny", "mobilenetv3small"):
        spec = BACKBONES[name]
        backbone = load_backbone(name, "none", input_size=(spec.min_size, spec.min_size))
        assert backbone.feature_dim == spec.feature_dim, name
        assert backbone.model.output_shape == (None, spec.feature_dim), name
        assert backbone.input_size == (spec.min_size, spec.min_size)
        assert backbone.model.input.dtype == "uint8"
        assert len(backbone.weights_sha256) == 64


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, constructor, preprocess, wrong_mode",
    [
        # One row per preprocessing mode: caffe, raw (inside the Keras application) and tf
        # (the tiny CNN; the registry's tf-mode applications, MobileNetV2 and InceptionV3,
        # go through the same load_backbone wiring, and their mode is
        # test_registry_preprocessing_matches_keras_module's).
        ("vgg16", keras.applications.VGG16, vgg16.preprocess_input, "tf"),  # caffe mode
        ("efficientnetb0", keras.applications.EfficientNetB0, efficientnet.preprocess_input, "tf"),
        (
            "tiny",
            tiny_cnn,
            lambda x: imagenet_utils.preprocess_input(x, mode="tf"),
            "raw",
        ),
    ],
)
def test_features_equal_direct_keras_call(name, constructor, preprocess, wrong_mode):
    size = (32, 32)
    backbone = load_backbone(name, "none", input_size=size, seed=1)
    frames = random_frames(5, size)
    reference = constructor(include_top=False, weights=None, input_shape=(*size, 3), pooling="avg")
    reference.set_weights(backbone.model.get_weights())

    got = backbone.extract(frames)
    expected = np.asarray(reference(preprocess(frames.astype(np.float32)), training=False))
    assert got.shape == (5, backbone.feature_dim)
    assert got.dtype == np.float32
    assert_features_close(got, expected)
    # The comparison can fail: the same network fed another preprocessing differs.
    wrong = np.asarray(reference(FramePreprocessing(wrong_mode)(frames), training=False))
    assert_features_differ(got, wrong)


FRESH_SCRIPT = """
    import json
    import numpy as np
    from vidseq.errors import UsageError
    from vidseq.extract.models.backbones import load_backbone
    tiny = load_backbone("tiny", "none", seed=7)
    frames = np.random.default_rng(3).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    mobilenet = load_backbone("mobilenetv2", "none", input_size=(32, 32), seed=7)
    seeded = {
        "tiny": tiny.weights_sha256,
        "mobilenetv2": mobilenet.weights_sha256,
        "features": tiny.extract(frames).tolist(),
    }
    try:
        load_backbone("mobilenetv2", "imagenet", input_size=(96, 96))
    except UsageError as error:
        imagenet = {"error": str(error)}
    else:
        imagenet = {"loaded": True}
    print(json.dumps({"seeded": seeded, "imagenet": imagenet}))
"""


@pytest.fixture(scope="module")
def fresh_interpreter(tmp_path_factory):
    """What a fresh interpreter built and raised: one TensorFlow start-up for two tests.

    It builds seeded backbones first, then asks for ImageNet weights that are not in its
    (empty) ``KERAS_HOME``, which Keras reads at import.
    """
    keras_home = tmp_path_factory.mktemp("fresh") / "keras_home"
    out = json.loads(run_python(FRESH_SCRIPT, env={"KERAS_HOME": str(keras_home)}))
    return {**out, "keras_home": keras_home}


@pytest.mark.slow
def test_seeded_init_is_identical_across_processes(fresh_interpreter):
    """A fresh interpreter builds what this one builds, whatever this one built before."""
    fresh = fresh_interpreter["seeded"]
    tiny = load_backbone("tiny", "none", seed=7)
    frames = np.random.default_rng(3).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    mobilenet = load_backbone("mobilenetv2", "none", input_size=(32, 32), seed=7)
    assert fresh["tiny"] == tiny.weights_sha256
    assert fresh["mobilenetv2"] == mobilenet.weights_sha256
    assert fresh["features"] == tiny.extract(frames).tolist()


def test_another_seed_gives_another_network():
    a = load_backbone("tiny", "none", seed=0)
    b = load_backbone("tiny", "none", seed=1)
    assert a.weights_sha256 != b.weights_sha256
    frames = random_frames(3, (64, 64))
    assert not np.allclose(a.extract(frames), b.extract(frames))
    assert a.seed == 0 and b.seed == 1 and a.weights == "none"


def test_seeding_leaves_python_and_numpy_random_state_alone():
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    load_backbone("tiny", "none", seed=5)
    assert np.random.random() == expected


def test_weights_sha256_covers_shapes_and_values():
    model = tiny_cnn(input_shape=(16, 16, 3))
    digest = weights_sha256(model)
    assert digest == weights_sha256(model)
    weights = model.get_weights()
    weights[-1] = weights[-1] + 1.0
    model.set_weights(weights)
    assert weights_sha256(model) != digest


@pytest.mark.slow
def test_weights_file_of_same_architecture_gives_that_models_features(tmp_path):
    size = (32, 32)
    keras.utils.set_random_seed(42)
    source = keras.applications.VGG16(
        include_top=False, weights=None, input_shape=(*size, 3), pooling="avg"
    )
    path = tmp_path / "vgg16_mine.weights.h5"
    source.save_weights(path)

    backbone = load_backbone("vgg16", path, input_size=size, seed=0)
    frames = random_frames(4, size)
    expected = np.asarray(source(vgg16.preprocess_input(frames.astype(np.float32))))
    assert_features_close(backbone.extract(frames), expected)
    assert backbone.weights_sha256 == weights_sha256(source)
    assert backbone.weights_sha256 != load_backbone("vgg16", "none", input_size=size).weights_sha256
    assert backbone.weights == str(path.resolve())


def test_weights_file_saved_from_a_backbone_model_loads(tmp_path):
    original = load_backbone("tiny", "none", seed=3)
    path = tmp_path / "tiny.weights.h5"
    original.model.save_weights(path)
    loaded = load_backbone("tiny", str(path), seed=0)
    assert loaded.weights_sha256 == original.weights_sha256
    frames = random_frames(2, (64, 64))
    np.testing.assert_array_equal(loaded.extract(frames), original.extract(frames))


@pytest.mark.slow
def test_weights_file_of_another_architecture_is_a_usage_error(tmp_path):
    size = (32, 32)
    path = tmp_path / "vgg16.weights.h5"
    load_backbone("vgg16", "none", input_size=size).model.layers[-1].save_weights(path)
    for name in ("mobilenetv2", "tiny"):
        with pytest.raises(UsageError, match=re.escape(str(path.resolve()))) as info:
            load_backbone(name, path, input_size=size)
        assert name in str(info.value)

    deeper = tmp_path / "tiny_wide.weights.h5"
    wide = tiny_cnn(input_shape=(32, 32, 3))
    extra = keras.Sequential([wide, keras.layers.Dense(3)])
    extra.build((None, 32, 32, 3))
    extra.save_weights(deeper)
    with pytest.raises(UsageError, match=re.escape(str(deeper.resolve()))):
        load_backbone("tiny", deeper)


def test_missing_or_corrupt_weights_file_is_a_usage_error(tmp_path):
    missing = tmp_path / "nothing.weights.h5"
    with pytest.raises(UsageError, match=re.escape(str(missing.resolve()))):
        load_backbone("tiny", missing)
    corrupt = tmp_path / "corrupt.weights.h5"
    corrupt.write_bytes(b"not an hdf5 file")
    with pytest.raises(UsageError, match=re.escape(str(corrupt.resolve()))):
        load_backbone("tiny", corrupt)
    other = tmp_path / "weights.npz"
    other.write_bytes(b"x")
    with pytest.raises(UsageError, match=re.escape(str(other.resolve()))):
        load_backbone("tiny", other)


@pytest.mark.slow
def test_unavailable_imagenet_weights_are_a_usage_error(fresh_interpreter):
    result = fresh_interpreter["imagenet"]
    if result.get("loaded"):
        pytest.skip("the network is reachable here: ImageNet weights were downloaded")
    message = result["error"]
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5" in message
    assert str(fresh_interpreter["keras_home"] / "models") in message
    assert "weights=PATH" in message


def test_imagenet_refused_where_it_does_not_exist():
    with pytest.raises(UsageError, match="random-init only"):
        load_backbone("tiny", "imagenet")
    with pytest.raises(UsageError, match="96x96, 128x128"):
        load_backbone("mobilenetv2", "imagenet", input_size=(64, 64))
    with pytest.raises(UsageError, match="224x224"):
        load_backbone("mobilenetv3small", "imagenet", input_size=(96, 96))


def test_bad_names_sizes_and_weights_are_usage_errors():
    with pytest.raises(UsageError, match="resnet51"):
        load_backbone("resnet51", "none")
    with pytest.raises(UsageError, match="at least 75x75"):
        load_backbone("inceptionv3", "none", input_size=(64, 64))
    with pytest.raises(UsageError, match="at least 32x32"):
        load_backbone("resnet50", "none", input_size=(31, 64))
    with pytest.raises(UsageError, match="input_size"):
        load_backbone("tiny", "none", input_size=(64,))
    with pytest.raises(UsageError, match="input_size"):
        load_backbone("tiny", "none", input_size=(64.5, 64))
    with pytest.raises(UsageError, match="weights"):
        load_backbone("tiny", 3)


def test_input_size_override_is_used():
    backbone = load_backbone("tiny", "none", input_size=(48, 80))
    assert backbone.input_size == (48, 80)
    assert backbone.model.input_shape == (None, 48, 80, 3)
    assert backbone.extract(random_frames(2, (48, 80))).shape == (2, 64)


def test_extract_batches_share_one_trace():
    backbone = load_backbone("tiny", "none", input_size=(32, 32))
    frames = random_frames(37, (32, 32))
    full = backbone.extract(frames)
    for count in (32, 5, 1):
        np.testing.assert_allclose(backbone.extract(frames[:count]), full[:count], rtol=1e-5)
    np.testing.assert_allclose(backbone.extract(frames, batch_size=8), full, rtol=1e-5)
    assert backbone._predict.experimental_get_tracing_count() == 1
    assert backbone.extract(frames[:0]).shape == (0, 64)


def test_extract_rejects_wrong_frames():
    backbone = load_backbone("tiny", "none", input_size=(32, 32))
    with pytest.raises(UsageError, match="uint8"):
        backbone.extract(random_frames(2, (32, 32)).astype(np.float32))
    with pytest.raises(UsageError, match=r"\(N, 32, 32, 3\)"):
        backbone.extract(random_frames(2, (32, 40)))


def test_tiny_features_are_not_degenerate():
    frames = np.stack(
        [
            shape_frame(),
            shape_frame(colour=(0, 255, 0)),
            shape_frame(colour=(0, 0, 255)),
            shape_frame(background=200),
            shape_frame(box=(28, 36, 28, 36)),  # small square
            shape_frame(box=(8, 56, 30, 34)),  # vertical bar
            shape_frame(box=(30, 34, 8, 56)),  # horizontal bar
        ]
    )
    for seed in (0, 1):
        features = load_backbone("tiny", "none", seed=seed).extract(frames)
        assert features.std(axis=0).mean() > 1e-2
        distances = np.linalg.norm(features[:, None] - features[None], axis=-1)
        assert distances[np.triu_indices(len(frames), 1)].min() > 1e-2


def test_backbone_model_saves_and_loads_in_safe_mode(tmp_path):
    backbone = load_backbone("tiny", "none", input_size=(32, 32))
    path = tmp_path / "tiny.keras"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backbone.model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
    frames = random_frames(3, (32, 32))
    np.testing.assert_allclose(
        np.asarray(loaded(frames)), backbone.extract(frames), rtol=1e-4, atol=1e-6
    )
