"""keras-hub encoders as frozen backbones: ``backbone="hub:PRESET"``.

``PRESET`` is a keras-hub preset name (``dinov2_base``), a ``kaggle://`` or
``hf://`` handle, or a local preset directory (written by ``save_to_preset``
for the backbone and its image converter). The backbone is::

    uint8 frames → ImageScaling (the preset's image converter: scale, offset)
                 → the encoder → TokenPooling (one vector per frame)

The pooled feature per family (:data:`FAMILIES`; ``pooling="cls"|"mean"``
overrides it):

* DINOv2, DINOv3, CLIP, MetaCLIP 2, ViT with a class token: the class token
  after the final norm (what their linear probes read).
* SigLIP / SigLIP 2: the encoder's own attention-pooled output (its "MAP" head,
  trained with the contrastive loss); it has no class token.
* VideoPrism (a clip encoder): each frame's patch tokens after the temporal
  layers, averaged over space; the encoder reads ``num_frames`` frames at once
  (:attr:`~vidseq.extract.models.network.Backbone.clip_frames`).
* Any other keras-hub backbone: the mean of its output tokens (or of its
  feature map, for CNNs such as EfficientNet and ResNet).

The cache records the preset handle, the class, its config, the pooling and
the weights hash (``CacheMeta.backbone_config``). keras-hub and TensorFlow are
imported only when a preset is loaded.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from vidseq.errors import UsageError
from vidseq.extract.models.network import Backbone, seeded, weights_sha256
from vidseq.quiet import debug_requested, native_chatter_dropped

HUB_PREFIX = "hub:"
POOLINGS = ("cls", "mean")
"""The ``pooling`` overrides: the class token, or the mean of the patch tokens."""
BLOCK_CLASSES = re.compile(r"^(DINOV\dLayer|\w+EncoderLayer|\w+EncoderBlock)$")
"""Class names of the transformer blocks ``finetune --unfreeze N`` counts."""


@dataclass(frozen=True)
class HubFamily:
    """How vidseq pools one keras-hub encoder class.

    Attributes:
        name: Family name recorded in the cache (``"dinov2"``).
        pooled: The default feature: ``"cls"``, ``"mean"`` or ``"map"`` (the
            encoder's own attention-pooled output).
        class_token: Whether the token sequence starts with a class token.
        clip: Whether the encoder reads clips of ``num_frames`` frames.
    """

    name: str
    pooled: str
    class_token: bool = True
    clip: bool = False


FAMILIES = {
    "DINOV2Backbone": HubFamily("dinov2", "cls"),
    "DINOV3Backbone": HubFamily("dinov3", "cls"),
    "CLIPVisionEncoder": HubFamily("clip", "cls"),
    "MetaCLIP2VisionEncoder": HubFamily("metaclip2", "cls"),
    "ViTBackbone": HubFamily("vit", "cls"),
    "SigLIPVisionEncoder": HubFamily("siglip", "map", class_token=False),
    "VideoPrismBackbone": HubFamily("videoprism", "mean", class_token=False, clip=True),
}
"""The encoder classes vidseq knows by name; any other class pools by token mean."""


def is_hub_name(name) -> bool:
    """Whether a backbone name is a keras-hub preset (``"hub:..."``)."""
    return isinstance(name, str) and name.startswith(HUB_PREFIX)


def preset_handle(name: str) -> str:
    """The preset handle of ``"hub:PRESET"``; a local directory becomes absolute.

    Raises:
        UsageError: An empty handle, or a path-like handle that is not a directory.
    """
    handle = name[len(HUB_PREFIX) :].strip()
    if not handle:
        raise UsageError(f"backbone {name!r} names no preset; expected hub:PRESET")
    path = Path(handle).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if "://" not in handle and (handle.startswith((".", "/", "~")) or os.sep in handle):
        raise UsageError(f"keras-hub preset directory {handle} does not exist")
    return handle


def recorded_pooling(backbone_config: dict) -> str | None:
    """The ``pooling`` that rebuilds a recorded backbone: an override, or None (the default)."""
    pooling = backbone_config.get("pooling")
    return pooling if pooling in POOLINGS else None


def import_keras_hub():
    """Imports keras-hub without TensorFlow's second round of start-up lines.

    Raises:
        UsageError: keras-hub is not installed (the message names the extra).
    """
    quiet = contextlib.nullcontext() if debug_requested() else native_chatter_dropped()
    try:
        with quiet:
            import keras_hub
    except ImportError as error:
        raise UsageError(
            "hub:PRESET backbones need keras-hub, which is not installed: "
            'pip install "vidseq[hub]" (Python >= 3.11)'
        ) from error
    return keras_hub


def load_hub_backbone(name, weights="preset", *, input_size=None, seed=0, pooling=None):
    """Builds a keras-hub preset's encoder as a frozen vidseq backbone.

    Args:
        name: ``"hub:PRESET"``.
        weights: ``"preset"`` (or None): the preset's weights; ``"none"``:
            the preset's architecture with random weights from ``seed``.
        input_size: ``(height, width)``; None keeps the preset's image size.
            Another size is passed to the encoder as ``image_shape`` (DINOv2
            interpolates its position embeddings; most others refuse).
        seed: Seed of the random initialisation (``weights="none"``).
        pooling: None (the family's feature), ``"cls"`` or ``"mean"``.

    Returns:
        A :class:`~vidseq.extract.models.network.Backbone` named
        ``"hub:<handle>"`` with :attr:`~.Backbone.config` filled in.

    Raises:
        UsageError: keras-hub missing, a bad argument, or a preset that cannot
            be loaded (no network for a preset name, a bad directory); one line
            naming the handle.
    """
    weights = "preset" if weights is None else weights
    if weights not in ("preset", "none"):
        raise UsageError(
            f"a keras-hub preset brings its own weights: weights must be 'preset' or 'none'. "
            f"Received: weights={weights!r}"
        )
    if pooling is not None and pooling not in POOLINGS:
        raise UsageError(f"pooling must be one of {list(POOLINGS)}. Received: pooling={pooling!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise UsageError(f"seed must be an integer. Received: seed={seed!r}")
    handle = preset_handle(name)
    keras_hub = import_keras_hub()
    with seeded(seed):
        backbone, converter = _load_preset(keras_hub, handle, weights == "preset", input_size)
    return assemble(
        backbone, converter, name=HUB_PREFIX + handle, weights=weights, seed=seed, pooling=pooling
    )


def assemble(backbone, converter, *, name, weights="preset", seed=0, pooling=None) -> Backbone:
    """Wraps a keras-hub backbone and its image converter as a vidseq backbone.

    Args:
        backbone: A ``keras_hub.models.Backbone`` (a CLIP or SigLIP backbone
            gives its ``vision_encoder``).
        converter: Its ``keras_hub.layers.ImageConverter``.
        name: The backbone name to record (``"hub:<handle>"``).
        weights: The weights label to record.
        seed: The seed to record.
        pooling: None, ``"cls"`` or ``"mean"``.

    Returns:
        The frozen :class:`~vidseq.extract.models.network.Backbone`.

    Raises:
        UsageError: A pooling the encoder cannot give (``"cls"`` without a class token).
    """
    import keras

    from vidseq.extract.models.hub_layers import ImageScaling, TokenPooling

    encoder = getattr(backbone, "vision_encoder", None) or backbone
    family = family_of(encoder)
    trunk, mode, options = _trunk(encoder, family, pooling, name)
    size = tuple(int(v) for v in encoder.image_shape[:2])
    group = int(encoder.num_frames) if family.clip else 1
    frames = keras.Input(
        shape=(*([group] if family.clip else []), *size, 3), dtype="uint8", name="frames"
    )
    x = ImageScaling(converter.scale, converter.offset, name="preprocessing")(frames)
    x = TokenPooling(**options, name="pooling")(trunk(_as_inputs(trunk, x)))
    model = keras.Model(frames, x, name=f"vidseq_hub_{family.name}")
    model.trainable = False
    handle = name[len(HUB_PREFIX) :]
    config = {
        "preset": handle,
        "class": type(encoder).__name__,
        "family": family.name,
        "pooling": mode,
        "clip_frames": group,
        "config": encoder.get_config(),
        "image_converter": {"scale": converter.scale, "offset": converter.offset},
    }
    return Backbone(
        name=name,
        weights=weights,
        weights_sha256=weights_sha256(model),
        seed=int(seed),
        input_size=size,
        feature_dim=int(model.output_shape[-1]),
        model=model,
        clip_frames=group,
        config=config,
        encoder=encoder,
        blocks=transformer_blocks(encoder),
    )


def family_of(encoder) -> HubFamily:
    """The :class:`HubFamily` of an encoder; token mean for a class vidseq does not know."""
    cls = type(encoder).__name__
    family = FAMILIES.get(cls)
    if family is None:
        return HubFamily(cls.removesuffix("Backbone").lower(), "mean", class_token=False)
    if cls == "ViTBackbone" and not encoder.use_class_token:
        return HubFamily("vit", "mean", class_token=False)
    return family


def _trunk(encoder, family, pooling, name):
    """The model before the pooling, the pooling recorded, and the TokenPooling options."""
    import keras

    mode = pooling or family.pooled
    if mode == "cls" and not family.class_token:
        raise UsageError(
            f"backbone {name} ({family.name}) has no class token. Received: pooling='cls'"
        )
    if family.clip:  # (batch, frames, patches, D) after the temporal layers
        inputs = encoder.get_layer("pixel_values").output
        tokens = encoder.get_layer("factorized_decoding").output
        return keras.Model(inputs, tokens, name="video_encoder"), mode, {"axis": 2}
    if mode == "map":
        return encoder, mode, {"mode": "none"}
    if family.pooled == "map":  # SigLIP's tokens: the output of the norm before its head
        norm = next(layer for layer in encoder.layers if layer.name.endswith("post_layer_norm"))
        inputs = encoder.get_layer("images").output
        return keras.Model(inputs, norm.output, name="vision_tokens"), mode, {}
    rank = len(encoder.output_shape)
    if rank == 2:
        return encoder, "none", {"mode": "none"}
    if rank == 4:  # a CNN's (batch, H, W, C) map
        return encoder, mode, {"axis": [1, 2]}
    skip = 1 + int(getattr(encoder, "num_register_tokens", 0)) if family.class_token else 0
    return encoder, mode, {"mode": mode, "skip": 0 if mode == "cls" else skip}


def _as_inputs(model, x):
    """``x`` in the input structure ``model`` was built with (a dict of one, or a tensor)."""
    return {next(iter(model.input)): x} if isinstance(model.input, dict) else x


def transformer_blocks(encoder) -> list:
    """The encoder's transformer blocks in order, input side first (empty for a CNN)."""
    return [layer for layer in _walk(encoder) if BLOCK_CLASSES.match(type(layer).__name__)]


def _walk(layer):
    """Every sublayer of ``layer``, depth first, each level in the order it was tracked."""
    for child in layer._flatten_layers(include_self=False, recursive=False):
        yield child
        yield from _walk(child)


def unfreeze_blocks(backbone, count=0, *, start_at=None) -> list[str]:
    """Unfreezes the last ``count`` transformer blocks of a keras-hub encoder and what follows.

    Every other layer of the backbone model is frozen (the embeddings, the
    earlier blocks, the input scaling, the pooling); the layers of the encoder
    that come after its last block (the final norm, SigLIP's pooling head)
    train with the unfrozen blocks.

    Args:
        backbone: A :class:`~vidseq.extract.models.network.Backbone` of :func:`assemble`.
        count: How many of the last blocks to unfreeze (0: none).
        start_at: Name of the first block to unfreeze (overrides ``count``).

    Returns:
        The names of the layers that hold trainable weights now, in order.

    Raises:
        UsageError: ``start_at`` names no block.
    """
    blocks = list(backbone.blocks)
    if start_at is not None:
        names = [block.name for block in blocks]
        if start_at not in names:
            raise UsageError(
                f"backbone {backbone.name} has no transformer block {start_at!r} "
                f"(its blocks: {', '.join(names)}). Received: unfreeze_from={start_at!r}"
            )
        count = len(blocks) - names.index(start_at)
    chosen = blocks[len(blocks) - int(count) :] if count else []
    if chosen:
        top = [layer for layer in backbone.encoder.layers if layer.weights]
        last = max(i for i, layer in enumerate(top) if _holds(layer, blocks[-1]))
        chosen += top[last + 1 :]
    backbone.model.trainable = True
    _freeze_all_but(backbone.model, {id(layer) for layer in chosen}, chosen)
    return [layer.name for layer in chosen if layer.trainable_weights]


def _holds(layer, inner) -> bool:
    """Whether ``inner`` is ``layer`` or one of its sublayers."""
    return any(sub is inner for sub in layer._flatten_layers(include_self=True))


def _freeze_all_but(layer, unfrozen: set, chosen: list) -> None:
    """Freezes every sublayer of ``layer`` except the chosen ones and those that hold them."""
    for child in layer._flatten_layers(include_self=False, recursive=False):
        if id(child) in unfrozen:
            child.trainable = True
        elif any(_holds(child, inner) for inner in chosen):
            child.trainable = True
            _freeze_all_but(child, unfrozen, chosen)
        else:
            child.trainable = False


def _load_preset(keras_hub, handle, load_weights, input_size):
    """The preset's backbone and image converter, or one line naming the handle."""
    kwargs = {} if input_size is None else {"image_shape": (*map(int, input_size), 3)}
    with _no_leftovers(handle):
        try:
            backbone = keras_hub.models.Backbone.from_preset(
                handle, load_weights=load_weights, **kwargs
            )
            converter = keras_hub.layers.ImageConverter.from_preset(handle)
        except Exception as error:  # keras-hub, kagglehub and requests raise many types.
            raise UsageError(
                f"keras-hub preset {handle!r} could not be loaded: {_one_line(error)}"
            ) from None
    return backbone, converter


def _one_line(error, limit=200):
    """The first line of an error, shortened; a connection failure says so."""
    text = " ".join(str(error).split()) or type(error).__name__
    if "Max retries exceeded" in text or "NameResolutionError" in text:
        host = re.search(r"host='([^']+)'", text)
        text = f"no network (cannot reach {host.group(1) if host else 'the preset host'})"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _download_roots() -> list[Path]:
    """Where kagglehub and huggingface_hub put downloads."""
    home = Path.home() / ".cache"
    kaggle = os.environ.get("KAGGLEHUB_CACHE") or home / "kagglehub"
    hf_home = os.environ.get("HF_HOME") or home / "huggingface"
    hf = os.environ.get("HF_HUB_CACHE") or Path(hf_home) / "hub"
    return [Path(kaggle), Path(hf)]


@contextlib.contextmanager
def _no_leftovers(handle):
    """On a failed load, removes the empty folders the download created (nothing else)."""
    if Path(handle).is_dir():
        yield
        return
    roots = _download_roots()
    before = {root: _folders(root) for root in roots}
    try:
        yield
    except BaseException:
        for root in roots:
            for folder in sorted(_folders(root) - before[root], key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only empty ones; a partial download is kept
        raise


def _folders(root: Path) -> set[Path]:
    """Every folder under (and including) ``root``; empty if it does not exist."""
    if not root.is_dir():
        return set()
    return {root, *(Path(path) for path, _, _ in os.walk(root))}
