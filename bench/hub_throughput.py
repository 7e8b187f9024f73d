"""Frames per second of vidseq's keras-hub backbones against keras-hub's own ``predict``.

For each family the encoder is built with keras-hub's class at its real preset
configuration (random weights: no download), wrapped as vidseq wraps a preset
(:func:`vidseq.extract.models.hub.assemble`: the image converter's scaling and
the pooling inside the model), and timed side by side with keras-hub's bare
``Backbone.predict`` on the same frames already scaled to float32 (the cost of
scaling is not charged to keras-hub). Rounds alternate between the two and the
best round of each counts. The ratio vidseq / keras-hub should be >= 0.95.

    python bench/hub_throughput.py                 # real sizes, every family
    python bench/hub_throughput.py --families dinov2_small,siglip_base --frames 32
    python bench/hub_throughput.py --smoke         # tiny configs, seconds

VideoPrism is a clip encoder: it reads 16 frames at once, and ``--frames`` is
rounded up to whole clips.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from vidseq.extract.models.hub import assemble, import_keras_hub

VIT_BASE = {"patch_size": 16, "hidden_dim": 768, "num_layers": 12, "num_heads": 12,
            "intermediate_dim": 3072}  # fmt: skip
FAMILIES = {  # the configs of keras-hub's presets, as their config.json say
    "dinov2_small": ("DINOV2Backbone", 224, {
        "patch_size": 14, "num_layers": 12, "hidden_dim": 384, "num_heads": 6,
        "intermediate_dim": 1536, "layer_scale_init_value": 1.0,
        "position_embedding_shape": (518, 518, 3)}),
    "siglip_base": ("SigLIPVisionEncoder", 224, VIT_BASE),
    "clip_vit_b16": ("CLIPVisionEncoder", 224, VIT_BASE),
    "videoprism_base": ("VideoPrismBackbone", 288, {
        "num_frames": 16, "patch_size": 18, "hidden_dim": 768, "intermediate_dim": 3072,
        "num_heads": 12, "num_spatial_layers": 12, "num_temporal_layers": 4,
        "num_auxiliary_layers": 0}),
}  # fmt: skip
SMOKE = {"patch_size": 8, "hidden_dim": 32, "num_heads": 2, "intermediate_dim": 64}
SMOKE_LAYERS = {
    "DINOV2Backbone": {"num_layers": 2, "position_embedding_shape": (32, 32, 3)},
    "VideoPrismBackbone": {"num_frames": 4, "num_spatial_layers": 1, "num_temporal_layers": 1,
                           "num_auxiliary_layers": 0},
}  # fmt: skip


def build(keras_hub, family, smoke):
    """The keras-hub encoder of ``family`` (random weights) and an ImageNet-style converter."""
    import keras

    cls_name, size, config = FAMILIES[family]
    if smoke:
        size = 32
        config = {**SMOKE, **SMOKE_LAYERS.get(cls_name, {"num_layers": 2})}
    keras.utils.set_random_seed(0)
    encoder = getattr(keras_hub.models, cls_name)(image_shape=(size, size, 3), **config)
    converter = keras_hub.layers.ImageConverter(
        image_size=(size, size), scale=1 / 127.5, offset=-1.0
    )
    return encoder, converter


def time_family(keras_hub, family, *, frames, batch_size, rounds, smoke):
    """``(vidseq frames/s, keras-hub frames/s)``, best round of each."""
    encoder, converter = build(keras_hub, family, smoke)
    net = assemble(encoder, converter, name=f"hub:{family}")
    group = net.clip_frames
    count = -(-frames // group) * group
    height, width = net.input_size
    images = np.random.default_rng(0).integers(0, 256, (count, height, width, 3), dtype=np.uint8)
    scaled = np.asarray(converter(images), dtype=np.float32)
    # keras-hub's input: a clip encoder's (clips, G, H, W, 3), a frame encoder's dict
    scaled = scaled.reshape(-1, group, height, width, 3) if group > 1 else {"images": scaled}
    hub_batch = max(1, batch_size // group)
    net.extract(images, batch_size=batch_size)  # warm-up: each traces its batch shapes
    encoder.predict(scaled, batch_size=hub_batch, verbose=0)
    ours, theirs = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        net.extract(images, batch_size=batch_size)
        ours.append(count / (time.perf_counter() - start))
        start = time.perf_counter()
        encoder.predict(scaled, batch_size=hub_batch, verbose=0)
        theirs.append(count / (time.perf_counter() - start))
    return max(ours), max(theirs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--frames", type=int, default=32, help="frames per round")
    parser.add_argument("--batch-size", type=int, default=16, help="frames per call")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny configs at 32 px")
    args = parser.parse_args(argv)
    keras_hub = import_keras_hub()
    print(f"{'family':16s} {'vidseq f/s':>11s} {'keras-hub f/s':>14s} {'ratio':>6s}")
    for family in args.families.split(","):
        ours, theirs = time_family(
            keras_hub,
            family,
            frames=args.frames,
            batch_size=args.batch_size,
            rounds=args.rounds,
            smoke=args.smoke,
        )
        print(f"{family:16s} {ours:11.1f} {theirs:14.1f} {ours / theirs:6.2f}", flush=True)


if __name__ == "__main__":
    main()
