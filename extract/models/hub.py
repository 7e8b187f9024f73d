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
from vidseq.extract.models.hub_blocks import transformer_blocks
from vidseq.extract.models.network import Backbone, seeded, weights_sha256
from vidseq.quiet import debug_requested, native_chatter_dropped

HUB_PREFIX = "hub:"
POOLINGS = ("cls", "mean")
"""The ``pooling`` overrides: the class token, or the mean of the patch tokens."""


@dataclass(frozen=True)
class HubFamily:
    """How vidseq pools one keras-hub encoder class.

    Attributes:
        name: Family name recorded in the cache (``"dinov2"``).
        pooled: The default feature: ``"cls"``, ``"mean"`` or ``"map"`` (the
            encoder's own attention-pooled output).
        class_token: Whether the token sequence starts with a class token.
        clip: Whether the encoder reads clips of ``num_frames`` frames.
        resizable: Whether the encoder takes another image size than its
            preset's (DINOv2 interpolates its position embeddings, DINOv3's are
            rotary); the others learned one embedding per patch position.
    """

    name: str
    pooled: str
    class_token: bool = True
    clip: bool = False
    resizable: bool = False


FAMILIES = {
    "DINOV2Backbone": HubFamily("dinov2", "cls", resizable=True),
    "DINOV3Backbone": HubFamily("dinov3", "cls", resizable=True),
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
        input_size: ``(height, width)``; None (or the preset's own size)
            keeps the preset's image size. Another size, for DINOv2 and DINOv3
            only (a multiple of the patch size), rebuilds the encoder with that
            ``image_shape``: DINOv2 interpolates its position embeddings,
            DINOv3's are rotary (see :func:`resized`).
        seed: Seed of the random initialisation (``weights="none"``).
        pooling: None (the family's feature), ``"cls"`` or ``"mean"``.

    Returns:
        A :class:`~vidseq.extract.models.network.Backbone` named
        ``"hub:<handle>"`` with :attr:`~.Backbone.config` filled in.

    Raises:
        UsageError: keras-hub missing, a bad argument, a preset that cannot
            be loaded (no network for a preset name, a bad directory), or an
            ``input_size`` the encoder cannot take; one line naming the handle.
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
        backbone, converter = _load_preset(keras_hub, handle, weights == "preset")
        if resized(backbone, input_size, HUB_PREFIX + handle):
            backbone, _ = _load_preset(keras_hub, handle, weights == "preset", input_size)
            _check_built_size(backbone, input_size, HUB_PREFIX + handle)
    return assemble(
        backbone, converter, name=HUB_PREFIX + handle, weights=weights, seed=seed, pooling=pooling
    )


def assemble(backbone, converter, *, name, weights="preset", seed=0, pooling=None) -> Backbone:
    """Wraps a keras-hub backbone and its image converter as a vidseq backbone.

    Args:
        backbone: A ``keras_hub.models.Backbone`` (a CLIP, MetaCLIP 2 or
            SigLIP backbone gives its ``vision_encoder``; MetaCLIP 2's
            ``vision_post_layer_norm``, which CLIP has inside its encoder,
            follows it).
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
    post = getattr(backbone, "vision_post_layer_norm", None)
    if post is not None and trunk is encoder:  # MetaCLIP 2: its final norm is the backbone's
        trunk = keras.Model(encoder.input, post(encoder.output), name="vision_tokens")
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


def resized(backbone, input_size, name) -> bool:
    """Whether the preset must be rebuilt at ``input_size``; refuses a size it cannot take.

    None, or the encoder's own ``image_shape``: no. Another size: yes for
    DINOv2 and DINOv3 when both sides are multiples of the patch size (the
    patch embedding would drop the remainder), and for a keras-hub class
    vidseq does not know (its constructor decides; see :func:`assemble`).

    Raises:
        UsageError: A size for an encoder whose position embeddings are learned
            per patch position (CLIP, MetaCLIP 2, SigLIP, ViT, VideoPrism), or
            not a multiple of the patch size.
    """
    encoder = getattr(backbone, "vision_encoder", None) or backbone
    own = tuple(int(v) for v in encoder.image_shape[:2])
    if input_size is None or tuple(int(v) for v in input_size) == own:
        return False
    size = tuple(int(v) for v in input_size)
    family = family_of(encoder)
    received = f"Received: input_size={size[0]}x{size[1]}"
    if type(encoder).__name__ in FAMILIES and not family.resizable:
        raise UsageError(
            f"backbone {name} ({family.name}) takes {own[0]}x{own[1]} frames only (its "
            f"position embeddings were learned for that size): leave input_size unset, "
            f"frames are resized to it (--resize or --center-crop). {received}"
        )
    patch = int(getattr(encoder, "patch_size", 1) or 1)
    if any(side % patch for side in size):
        raise UsageError(
            f"backbone {name} ({family.name}) takes sizes that are multiples of its patch "
            f"size {patch}. {received}"
        )
    return True


def _check_built_size(backbone, input_size, name) -> None:
    """Refuses an encoder whose constructor kept its own size instead of ``input_size``."""
    encoder = getattr(backbone, "vision_encoder", None) or backbone
    built = tuple(int(v) for v in encoder.image_shape[:2])
    if built != tuple(int(v) for v in input_size):
        raise UsageError(
            f"backbone {name} ({type(encoder).__name__}) keeps its {built[0]}x{built[1]} "
            f"frames. Received: input_size={input_size[0]}x{input_size[1]}"
        )


def _load_preset(keras_hub, handle, load_weights, input_size=None):
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
