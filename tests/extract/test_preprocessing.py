"""FramePreprocessing equals keras.applications' own preprocess_input and survives save/load."""

import json

import keras
import numpy as np
import pytest
from keras.applications import (
    densenet,
    efficientnet,
    imagenet_utils,
    inception_v3,
    mobilenet_v2,
    mobilenet_v3,
    resnet50,
    vgg16,
)

from vidseq.extract.models.preprocessing import PREPROCESSING_MODES, FramePreprocessing


@pytest.fixture
def frames():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(3, 8, 10, 3), dtype=np.uint8)
    frames[0, 0, 0] = (255, 0, 0)  # a pure colour, so a channel swap shows
    return frames


@pytest.mark.parametrize(
    "mode, reference",
    [
        ("caffe", resnet50.preprocess_input),
        ("caffe", vgg16.preprocess_input),
        ("tf", mobilenet_v2.preprocess_input),
        ("tf", inception_v3.preprocess_input),
        ("torch", densenet.preprocess_input),
        ("raw", efficientnet.preprocess_input),
        ("raw", mobilenet_v3.preprocess_input),
    ],
)
def test_matches_keras_preprocess_input(frames, mode, reference):
    got = np.asarray(FramePreprocessing(mode)(frames))
    expected = reference(frames.astype(np.float32))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-5)


def test_modes_really_differ(frames):
    outputs = {mode: np.asarray(FramePreprocessing(mode)(frames)) for mode in PREPROCESSING_MODES}
    modes = list(outputs)
    for i, a in enumerate(modes):
        for b in modes[i + 1 :]:
            assert not np.allclose(outputs[a], outputs[b]), (a, b)


def test_caffe_swaps_to_bgr(frames):
    got = np.asarray(FramePreprocessing("caffe")(frames[:1, :1, :1]))
    # pixel (255, 0, 0) RGB -> BGR (0, 0, 255) minus BGR means
    np.testing.assert_allclose(got[0, 0, 0], [-103.939, -116.779, 255 - 123.68], rtol=1e-6)
    np.testing.assert_allclose(
        got, imagenet_utils.preprocess_input(frames[:1, :1, :1].astype("float32"), mode="caffe")
    )


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="mode='bgr'"):
        FramePreprocessing("bgr")


def test_survives_save_and_load_in_safe_mode(tmp_path, frames):
    inputs = keras.Input(shape=frames.shape[1:], dtype="uint8")
    x = FramePreprocessing("caffe", name="prep")(inputs)
    outputs = keras.layers.Dense(4, name="head")(x)
    model = keras.Model(inputs, outputs)
    path = tmp_path / "model.keras"
    model.save(path)

    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.get_layer("prep"), FramePreprocessing)
    assert loaded.get_layer("prep").mode == "caffe"
    np.testing.assert_allclose(np.asarray(loaded(frames)), np.asarray(model(frames)), rtol=1e-6)
    config = json.dumps(loaded.get_config())
    assert "vidseq>FramePreprocessing" in config
    assert "Lambda" not in config
