"""The backbone registry: the one place that knows each frozen CNN.

Each :class:`BackboneSpec` in :data:`BACKBONES` names a ``keras.applications``
constructor (built with ``include_top=False, pooling="avg"``), its default input
size, its own preprocessing (see :mod:`vidseq.extract.models.preprocessing`), its
feature dimension and the input sizes it accepts. Listing the registry imports
neither TensorFlow nor Keras; :func:`load_backbone` does, when it builds a model.
``load_backbone("hub:PRESET")`` builds a keras-hub encoder instead (see
:mod:`vidseq.extract.models.hub`).

Weights (``weights=``):

* ``"imagenet"``: Keras' own download and cache (``$KERAS_HOME/models``, by
  default ``~/.keras/models``). An unreachable download is a
  :class:`~vidseq.errors.UsageError` that names the missing file and says how
  to supply it; there is never a silent fallback to other weights.
* ``"none"`` (or ``None``): random initialisation from ``seed``, identical for
  the same seed in every process, so reruns, resumes and shards build the very
  same network.
* a path: a local ``.weights.h5`` file saved from the same architecture (the
  ``include_top=False, pooling="avg"`` model, or a vidseq backbone ``.model``),
  or a legacy Keras ``.h5`` weights file such as the ``*_notop.h5`` ImageNet
  files. It is loaded strictly: a file of another architecture is an error.
"""

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidseq.errors import UsageError
from vidseq.extract.models.hub import HUB_PREFIX, is_hub_name, load_hub_backbone
from vidseq.extract.models.keras_weights import build_imagenet, load_weights_file
from vidseq.extract.models.network import Backbone, seeded, weights_sha256

__all__ = [
    "BACKBONES",
    "Backbone",
    "BackboneSpec",
    "backbone_names",
    "build_seeded",
    "default_weights",
    "get_spec",
    "load_backbone",
    "tiny_cnn",
    "weights_sha256",
]


@dataclass(frozen=True)
class BackboneSpec:
    """What vidseq knows about one backbone.

    Attributes:
        name: Registry name (``"resnet50"``, ...).
        constructor: Dotted name of the model factory, resolved on load
            (``"keras.applications.ResNet50"``); it accepts ``include_top``,
            ``weights``, ``input_shape`` and ``pooling`` like the Keras ones.
        input_size: Default ``(height, width)``.
        preprocessing: Mode of :class:`~vidseq.extract.models.preprocessing.FramePreprocessing`
            (``"caffe"``, ``"tf"``, ``"torch"`` or ``"raw"``).
        feature_dim: Length of the pooled feature vector.
        min_size: Smallest height and width the architecture accepts.
        imagenet_sizes: The ``(height, width)`` sizes for which ImageNet weights
            exist, where Keras restricts them (MobileNetV2/V3); ``None`` means any
            size accepted by the architecture.
        imagenet: Whether ImageNet weights exist at all.
        description: One line for humans.
    """

    name: str
    constructor: str
    input_size: tuple[int, int]
    preprocessing: str
    feature_dim: int
    min_size: int = 32
    imagenet_sizes: tuple[tuple[int, int], ...] | None = None
    imagenet: bool = True
    description: str = ""


def _spec(name, constructor, size, preprocessing, feature_dim, **kwargs):
    return name, BackboneSpec(name, constructor, (size, size), preprocessing, feature_dim, **kwargs)


BACKBONES: dict[str, BackboneSpec] = dict(
    [
        _spec("resnet50", "keras.applications.ResNet50", 224, "caffe", 2048),
        _spec("resnet101", "keras.applications.ResNet101", 224, "caffe", 2048),
        _spec("inceptionv3", "keras.applications.InceptionV3", 299, "tf", 2048, min_size=75),
        _spec("vgg16", "keras.applications.VGG16", 224, "caffe", 512),
        _spec(
            "mobilenetv2",
            "keras.applications.MobileNetV2",
            224,
            "tf",
            1280,
            imagenet_sizes=tuple((s, s) for s in (96, 128, 160, 192, 224)),
        ),
        _spec(
            "mobilenetv3small",
            "keras.applications.MobileNetV3Small",
            224,
            "raw",
            576,
            imagenet_sizes=((224, 224),),
        ),
        _spec(
            "mobilenetv3large",
            "keras.applications.MobileNetV3Large",
            224,
            "raw",
            960,
            imagenet_sizes=((224, 224),),
        ),
        _spec("efficientnetb0", "keras.applications.EfficientNetB0", 224, "raw", 1280),
        _spec("efficientnetb1", "keras.applications.EfficientNetB1", 240, "raw", 1280),
        _spec("efficientnetb2", "keras.applications.EfficientNetB2", 260, "raw", 1408),
        _spec("efficientnetb3", "keras.applications.EfficientNetB3", 300, "raw", 1536),
        _spec(
            "tiny",
            "vidseq.extract.models.backbones.tiny_cnn",
            64,
            "tf",
            64,
            min_size=16,
            imagenet=False,
            description="small random-init CNN for tests and the offline demo",
        ),
    ]
)


def backbone_names() -> list[str]:
    """Returns the registered backbone names, in registry order (no TF import)."""
    return list(BACKBONES)


def get_spec(name: str) -> BackboneSpec:
    """Returns the :class:`BackboneSpec` registered under ``name``.

    Raises:
        UsageError: If ``name`` is not registered.
    """
    try:
        return BACKBONES[name]
    except (KeyError, TypeError):
        raise UsageError(
            f"unknown backbone {name!r}; expected one of: {', '.join(BACKBONES)}, "
            f"or {HUB_PREFIX}PRESET (a keras-hub preset)"
        ) from None


def tiny_cnn(include_top=False, weights=None, input_shape=(64, 64, 3), pooling="avg"):
    """A small plain CNN with usable random-init features, for tests and the demo.

    Not a real backbone: it has no pretrained weights and exists so that tests
    and ``vidseq demo`` run offline in seconds. Unlike random-init ImageNet
    architectures (random MobileNetV2 features are ~1e-11), its random features
    respond clearly to colour, brightness, size and orientation: four 3x3
    Conv2D + ReLU layers (16, 32, 64, 64 filters; the first three with stride 2),
    then global average pooling to 64 features. Its input is preprocessed to
    [-1, 1] (mode ``"tf"``).

    Args:
        include_top: Must be False (there is no classifier).
        weights: Must be None (random initialisation only).
        input_shape: ``(height, width, 3)``.
        pooling: Must be ``"avg"``.

    Returns:
        A ``keras.Model`` from float32 ``input_shape`` to ``(64,)`` features.
    """
    import keras

    if include_top or weights is not None or pooling != "avg":
        raise ValueError(
            "tiny_cnn supports only include_top=False, weights=None, pooling='avg'. "
            f"Received: include_top={include_top}, weights={weights!r}, pooling={pooling!r}"
        )
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for i, (filters, strides) in enumerate(((16, 2), (32, 2), (64, 2), (64, 1))):
        x = keras.layers.Conv2D(
            filters,
            3,
            strides=strides,
            padding="same",
            activation="relu",
            kernel_initializer="he_uniform",
            name=f"conv{i + 1}",
        )(x)
    outputs = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, outputs, name="tiny_cnn")


def _resolve(dotted):
    module_name, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


def _check_input_size(spec, input_size, weights):
    if input_size is None:
        size = spec.input_size
    else:
        try:
            size = tuple(int(v) for v in input_size)
            ok = len(size) == 2 and all(int(v) == v for v in input_size)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise UsageError(
                f"input_size must be (height, width) integers. Received: input_size={input_size!r}"
            )
    if min(size) < spec.min_size:
        raise UsageError(
            f"backbone {spec.name} needs an input of at least {spec.min_size}x{spec.min_size}. "
            f"Received: input_size={size[0]}x{size[1]}"
        )
    if (
        weights == "imagenet"
        and spec.imagenet_sizes is not None
        and size not in spec.imagenet_sizes
    ):
        sizes = ", ".join(f"{h}x{w}" for h, w in spec.imagenet_sizes)
        raise UsageError(
            f"ImageNet weights of {spec.name} exist only for input sizes {sizes}. "
            f"Received: input_size={size[0]}x{size[1]} "
            "(use one of those sizes, or weights='none' or a weights file path)"
        )
    return size


def build_seeded(constructor, input_shape, seed):
    """Builds a registry network with random weights from ``seed``.

    Seeds Keras, builds ``constructor(include_top=False, weights=None,
    input_shape=input_shape, pooling="avg")`` and restores the Python and
    NumPy random states, so the same seed always gives the same weights.

    Args:
        constructor: A ``keras.applications``-style constructor.
        input_shape: ``(height, width, channels)``.
        seed: Seed of the initialisation.

    Returns:
        The built ``keras.Model``.
    """
    with seeded(seed):
        return constructor(include_top=False, weights=None, input_shape=input_shape, pooling="avg")


def default_weights(name: str) -> str:
    """The weights a backbone gets when none are named.

    ``"preset"`` for a keras-hub preset, ``"imagenet"`` where the registry has
    ImageNet weights, else ``"none"`` (random init, e.g. ``tiny``).

    Raises:
        UsageError: If ``name`` is neither registered nor ``hub:PRESET``.
    """
    if is_hub_name(name):
        return "preset"
    return "imagenet" if get_spec(name).imagenet else "none"


def load_backbone(name, weights="imagenet", *, input_size=None, seed=0, pooling=None) -> Backbone:
    """Builds a backbone with preprocessing inside the model.

    Args:
        name: Registry name (see :func:`backbone_names`), or ``"hub:PRESET"``: a
            keras-hub preset name, ``kaggle://`` or ``hf://`` handle, or local
            preset directory (see :func:`vidseq.extract.models.hub.load_hub_backbone`).
        weights: ``"imagenet"``, ``"none"`` (or ``None``: random init from
            ``seed``), or the path of a local weights file saved from the same
            architecture (``.weights.h5``; a legacy ``.h5`` also works). For a
            keras-hub preset: ``"preset"`` (its own weights) or ``"none"``.
        input_size: ``(height, width)`` overriding the default size; at least
            the backbone's ``min_size``, and one of its ``imagenet_sizes`` with
            ImageNet weights where Keras restricts them.
        seed: Seed of the random initialisation (``weights="none"``). The same
            seed builds the same network in any process. Building calls
            ``keras.utils.set_random_seed(seed)`` (the Python and NumPy random
            states are restored afterwards; the Keras/TF global seed stays set).
        pooling: keras-hub presets only: ``"cls"`` or ``"mean"`` overrides the
            family's pooled feature; None keeps it.

    Returns:
        A :class:`Backbone`.

    Raises:
        UsageError: For an unknown name, a bad input size, ImageNet weights
            requested for the tiny CNN or for a size they do not exist for,
            unavailable ImageNet weights (the message says which file is missing
            and how to supply it), a weights file that is missing, corrupt or
            of another architecture (the message names the file), ``pooling``
            for a registry backbone, or a keras-hub preset that cannot be loaded.
    """
    if is_hub_name(name):
        return load_hub_backbone(name, weights, input_size=input_size, seed=seed, pooling=pooling)
    if pooling is not None:
        raise UsageError(
            f"pooling applies to {HUB_PREFIX}PRESET backbones only; backbone {name} pools "
            f"by global average. Received: pooling={pooling!r}"
        )
    return _load_registered(name, weights, input_size, seed)


def _load_registered(name, weights, input_size, seed) -> Backbone:
    """:func:`load_backbone` for a registry backbone."""
    spec = get_spec(name)
    if weights is None or weights == "none":
        weights = "none"
        path = None
    elif weights == "imagenet":
        path = None
        if not spec.imagenet:
            raise UsageError(
                f"backbone {spec.name} has no ImageNet weights (it is random-init only). "
                "Received: weights='imagenet'; use weights='none'"
            )
    elif isinstance(weights, (str, os.PathLike)):
        path = Path(weights).expanduser().resolve()
        weights = str(path)
    else:
        raise UsageError(
            f"weights must be 'imagenet', 'none' or a file path. Received: weights={weights!r}"
        )
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise UsageError(f"seed must be an integer. Received: seed={seed!r}")
    size = _check_input_size(spec, input_size, weights)

    import keras

    # preprocessing imports Keras at module level: imported here with it, not at start-up.
    from vidseq.extract.models.preprocessing import FramePreprocessing

    constructor = _resolve(spec.constructor)
    input_shape = (size[0], size[1], 3)
    if weights == "imagenet":
        base = build_imagenet(spec, constructor, input_shape)
    else:
        base = build_seeded(constructor, input_shape, seed)

    frames = keras.Input(shape=input_shape, dtype="uint8", name="frames")
    x = FramePreprocessing(spec.preprocessing, name="preprocessing")(frames)
    model = keras.Model(frames, base(x), name=f"vidseq_{spec.name}")
    if path is not None:
        load_weights_file(path, spec.name, base, model)
    model.trainable = False

    return Backbone(
        name=spec.name,
        weights=weights,
        weights_sha256=weights_sha256(model),
        seed=int(seed),
        input_size=size,
        feature_dim=int(model.output_shape[-1]),
        model=model,
    )
