"""The other keras-hub families, each from a tiny preset directory saved with ``save_to_preset``:
CLIP, MetaCLIP 2, ViT and DINOv3 give keras-hub's own pooled feature; ``input_size`` is
taken by the encoders that can take another size and refused in one line by the others.

Each preset is built here (random init, 16x16 images, patch 8, one block, width 16), so
each case costs about a second.
"""

import numpy as np
import pytest

from vidseq.cli import main
from vidseq.errors import UsageError
from vidseq.extract.models.backbones import load_backbone
from vidseq.extract.sources.sample_data import make_sample

keras_hub = pytest.importorskip("keras_hub")

TINY = {"patch_size": 8, "hidden_dim": 16, "num_layers": 1, "num_heads": 2}
TEXT = {
    "vocabulary_size": 16,
    "embedding_dim": 16,
    "hidden_dim": 16,
    "num_layers": 1,
    "num_heads": 2,
    "intermediate_dim": 32,
    "max_sequence_length": 8,
}
SHAPE = (16, 16, 3)
CLIP_MEAN, CLIP_STD = (0.4815, 0.4578, 0.4082), (0.2686, 0.2613, 0.2758)


def build(family):
    """A tiny keras-hub backbone of ``family`` and its image converter (the presets' scaling)."""
    layers, models = keras_hub.layers, keras_hub.models
    clip_scaling = {
        "scale": [1 / 255 / s for s in CLIP_STD],
        "offset": [-m / s for m, s in zip(CLIP_MEAN, CLIP_STD, strict=True)],
    }
    if family == "clip":
        vision = models.CLIPVisionEncoder(intermediate_dim=32, image_shape=SHAPE, **TINY)
        backbone = models.CLIPBackbone(vision, models.CLIPTextEncoder(**TEXT), projection_dim=8)
        return backbone, layers.CLIPImageConverter(image_size=SHAPE[:2], **clip_scaling)
    if family == "metaclip2":
        vision = models.MetaCLIP2VisionEncoder(intermediate_dim=32, image_shape=SHAPE, **TINY)
        text = models.MetaCLIP2TextEncoder(**TEXT)
        backbone = models.MetaCLIP2Backbone(vision, text, projection_dim=8)
        return backbone, layers.MetaCLIP2ImageConverter(image_size=SHAPE[:2], **clip_scaling)
    if family == "vit":
        backbone = models.ViTBackbone(image_shape=SHAPE, mlp_dim=32, **TINY)
        return backbone, layers.ViTImageConverter(image_size=SHAPE[:2], scale=1 / 127.5, offset=-1)
    backbone = models.DINOV3Backbone(
        intermediate_dim=32, image_shape=SHAPE, num_register_tokens=2, **TINY
    )
    imagenet = {"scale": 1 / 255 / 0.226, "offset": -0.449 / 0.226}
    return backbone, layers.DINOV3ImageConverter(image_size=SHAPE[:2], **imagenet)


def saved(family, folder):
    """``(backbone, converter, preset directory)``: a tiny preset, saved as keras-hub saves one."""
    import keras

    keras.utils.set_random_seed(0)
    backbone, converter = build(family)
    backbone.save_to_preset(str(folder))
    converter.save_to_preset(str(folder))
    return backbone, converter, folder


def documented_feature(family, backbone, scaled):
    """keras-hub's own forward pass, then the pooled feature backbones.md names for the family."""
    if family in ("clip", "metaclip2"):  # the vision pooler's class token ...
        pooled = backbone.vision_pooler(backbone.vision_encoder({"images": scaled}))
        if family == "metaclip2":  # ... after MetaCLIP 2's post norm, which is the backbone's
            pooled = backbone.vision_post_layer_norm(pooled)
        return np.asarray(pooled)
    inputs = {"pixel_values": scaled} if family == "dinov3" else scaled
    return np.asarray(backbone(inputs))[:, 0]  # the class token after the final norm


@pytest.mark.slow
@pytest.mark.parametrize("family", ["clip", "metaclip2", "vit", "dinov3"])
def test_each_family_gives_keras_hubs_own_pooled_feature(family, tmp_path):
    backbone, converter, preset = saved(family, tmp_path / family)
    images = np.random.default_rng(1).integers(0, 256, (3, *SHAPE), dtype=np.uint8)
    net = load_backbone(f"hub:{preset}", "preset")
    expected = documented_feature(family, backbone, converter(images))
    np.testing.assert_allclose(net.extract(images), expected, rtol=0, atol=1e-5)
    assert net.config["family"] == family and net.config["pooling"] == "cls"
    assert net.input_size == (16, 16) and net.feature_dim == 16 and len(net.blocks) == 1
    if family == "dinov3":  # the mean leaves the class token and the 2 register tokens out
        tokens = np.asarray(backbone({"pixel_values": converter(images)}))
        mean = load_backbone(f"hub:{preset}", "preset", pooling="mean")
        np.testing.assert_allclose(mean.extract(images), tokens[:, 3:].mean(1), atol=1e-5)


@pytest.mark.slow
def test_input_size_rebuilds_a_resizable_encoder_at_that_size(hub_presets, tmp_path):
    """DINOv2 (32 px presets, patch 8) at 48x48: keras-hub's own encoder built at that size."""
    preset = hub_presets["dinov2"]
    net = load_backbone(f"hub:{preset}", "preset", input_size=(48, 48))
    assert net.input_size == (48, 48)
    images = np.random.default_rng(2).integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)
    reference = keras_hub.models.Backbone.from_preset(str(preset), image_shape=(48, 48, 3))
    own = keras_hub.layers.ImageConverter.from_preset(str(preset))  # resizes to 32x32: the
    converter = type(own)(image_size=(48, 48), scale=own.scale, offset=own.offset)  # same at 48
    expected = np.asarray(reference({"images": converter(images)}))[:, 0]
    np.testing.assert_allclose(net.extract(images), expected, atol=1e-5)
    same = load_backbone(f"hub:{preset}", "preset", input_size=(32, 32))  # its own: no rebuild
    assert same.input_size == (32, 32)
    with pytest.raises(
        UsageError, match=r"multiples of its patch size 8\. Received: input_size=36x36"
    ):
        load_backbone(f"hub:{preset}", "preset", input_size=(36, 36))


@pytest.mark.slow
def test_input_size_is_refused_where_position_embeddings_are_learned(hub_presets, tmp_path, capsys):
    """SigLIP and VideoPrism (like CLIP, MetaCLIP 2, ViT) learned one embedding per patch."""
    siglip = f"hub:{hub_presets['siglip']}"
    assert load_backbone(siglip, "preset", input_size=(32, 32)).input_size == (32, 32)
    with pytest.raises(UsageError, match=r"\(videoprism\) takes 32x32 frames only"):
        load_backbone(f"hub:{hub_presets['videoprism']}", "preset", input_size=(48, 48))
    sample = make_sample(tmp_path / "sample", videos_per_class=1, classes=["Grow", "Shrink"])
    out = tmp_path / "features.h5"
    argv = ["extract-features", str(sample), "--out", str(out), "--backbone", siglip]
    assert main([*argv, "--input-size", "48"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "(siglip) takes 32x32 frames only" in err[0], err
    assert "--input-size=48x48" in err[0] and not out.exists()
