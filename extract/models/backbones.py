"""The backbone registry: the one place that knows each frozen CNN.

Each :class:`BackboneSpec` in :data:`BACKBONES` names a ``keras.applications``
constructor (built with ``include_top=False, pooling="avg"``), its default input
size, its own preprocessing (see :mod:`vidseq.extract.models.preprocessing`), its
feature dimension and the input sizes it accepts. Listing the registry imports
neither TensorFlow nor Keras; :func:`load_backbone` does, when it builds a model.

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

import hashlib
import importlib
import os
import random
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vidseq.errors import UsageError


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
            f"unknown backbone {name!r}; expected one of: {', '.join(BACKBONES)}"
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


@dataclass
class Backbone:
    """A built backbone: uint8 frames in, pooled features out.

    Attributes:
        name: Registry name.
        weights: ``"imagenet"``, ``"none"`` or the absolute path of the weights file.
        weights_sha256: SHA-256 of the weights actually used (see :func:`weights_sha256`).
        seed: Seed of the random initialisation (recorded whatever the weights).
        input_size: ``(height, width)`` the model takes.
        feature_dim: D, read from the built model.
        model: ``keras.Model`` from ``(H, W, 3)`` uint8 RGB (0-255) to ``(D,)``
            float32; the preprocessing is its first layer, the ``keras.applications``
            network (see :attr:`base_model`) its last. Built frozen
            (``trainable=False``); fine-tuning unfreezes layers of ``base_model``.
    """

    name: str
    weights: str
    weights_sha256: str
    seed: int
    input_size: tuple[int, int]
    feature_dim: int
    model: Any = field(repr=False)
    _predict: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def spec(self) -> BackboneSpec:
        """The registry entry of this backbone."""
        return BACKBONES[self.name]

    @property
    def base_model(self):
        """The network inside :attr:`model`, without preprocessing (float32 input)."""
        return self.model.layers[-1]

    def extract(self, frames: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """Runs the backbone on a batch of frames.

        One compiled function serves every batch size (it is traced once, with a
        batch dimension of ``None``), so a final partial batch costs no retracing.

        Args:
            frames: ``(N, H, W, 3)`` uint8 RGB frames, ``(H, W)`` = ``input_size``.
            batch_size: Optional: run at most this many frames per call
                (default: all N at once; the caller usually batches).

        Returns:
            ``(N, D)`` float32 features.

        Raises:
            UsageError: If the frames have the wrong shape or dtype.
        """
        frames = np.asarray(frames)
        height, width = self.input_size
        if frames.ndim != 4 or frames.shape[1:] != (height, width, 3) or frames.dtype != np.uint8:
            raise UsageError(
                f"backbone {self.name} expects uint8 frames of shape (N, {height}, {width}, 3). "
                f"Received: shape={frames.shape}, dtype={frames.dtype}"
            )
        if len(frames) == 0:
            return np.zeros((0, self.feature_dim), dtype=np.float32)
        if self._predict is None:
            self._predict = _compile_predict(self.model, self.input_size)
        step = len(frames) if batch_size is None else max(int(batch_size), 1)
        parts = [
            np.asarray(self._predict(frames[start : start + step]).numpy(), dtype=np.float32)
            for start in range(0, len(frames), step)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _compile_predict(model, input_size):
    import tensorflow as tf

    height, width = input_size

    @tf.function(
        input_signature=[tf.TensorSpec([None, height, width, 3], tf.uint8)],
    )
    def predict(frames):
        return model(frames, training=False)

    return predict


def weights_sha256(model) -> str:
    """SHA-256 of a model's weights: the hash of the weights actually used.

    The hash covers every weight tensor of the model (trainable and not, e.g.
    batch-norm statistics) in model order (``model.weights``); for each it
    feeds ``"<dtype>:<d0>,<d1>,...;"`` (ASCII) then the tensor's bytes in C order,
    little-endian. Names are not included. So the same network with the same
    values has the same hash whatever file format its weights came from
    (``.weights.h5``, legacy ``.h5``, the ImageNet download, a seeded init).

    Args:
        model: A built ``keras.Model``.

    Returns:
        The hex digest (64 characters).
    """
    digest = hashlib.sha256()
    for variable in model.weights:
        array = np.asarray(variable.numpy())
        array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        shape = ",".join(str(d) for d in array.shape)
        digest.update(f"{array.dtype.name}:{shape};".encode("ascii"))
        digest.update(array.tobytes())
    return digest.hexdigest()


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


def _keras_models_dir():
    home = os.environ.get("KERAS_HOME")
    try:
        from keras.src.backend import config

        home = config.keras_home()
    except (ImportError, AttributeError):
        pass
    return Path(home or Path.home() / ".keras") / "models"


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
    import keras

    py_state = random.getstate()
    np_state = np.random.get_state()
    try:
        keras.utils.set_random_seed(int(seed))
        return constructor(include_top=False, weights=None, input_shape=input_shape, pooling="avg")
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def _build_imagenet(spec, constructor, input_shape):
    try:
        return constructor(
            include_top=False, weights="imagenet", input_shape=input_shape, pooling="avg"
        )
    except Exception as error:  # Keras raises a bare Exception on a failed download.
        reason = " ".join(str(error).split()) or type(error).__name__
        match = re.search(r"(https?://\S+?):\s", reason + " ")
        models_dir = _keras_models_dir()
        if match:
            url = match.group(1)
            fname = url.rsplit("/", 1)[-1]
            cause = reason.split(" -- ", 1)[-1]
            message = (
                f"{fname} is not in {models_dir} and could not be downloaded ({cause}). "
                f"Download it from {url} into {models_dir} (or set KERAS_HOME), "
                "or pass weights=PATH, a local weights file"
            )
        else:
            message = (
                f"{reason}. Put the Keras ImageNet weights file of {spec.name} (no top) "
                f"in {models_dir} (or set KERAS_HOME), "
                "or pass weights=PATH, a local weights file"
            )
        raise UsageError(
            f"ImageNet weights for backbone {spec.name} are unavailable: {message}"
        ) from error


def _short_error(error, limit=300):
    """One line from a (possibly huge) Keras loading error."""
    text = str(error)
    for cut in ("Target variable:", "List of objects"):
        text = text.split(cut, 1)[0]
    text = " ".join(text.split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _count_h5_datasets(path):
    count = 0

    def visit(_, obj):
        nonlocal count
        count += isinstance(obj, h5py.Dataset)

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return count


def _load_weights_file(path, name, base, full):
    """Loads ``path`` strictly into ``base`` (or, failing that, into ``full``).

    Strict: every variable of the model must be loaded (Keras checks that), and a
    ``.weights.h5`` file must hold exactly as many tensors as the model has (so a
    deeper network's file, e.g. ResNet101 into ResNet50, is refused too). A legacy
    ``.h5`` file is checked by Keras' own layer-count and shape checks.
    """
    if not path.is_file():
        raise UsageError(f"weights file {path} does not exist (expected a .weights.h5 file)")
    if not path.name.endswith(".h5"):
        raise UsageError(
            f"weights file {path} is not a Keras weights file. "
            "Expected a .weights.h5 file (or a legacy .h5 weights file)"
        )
    errors = []
    for target in (base, full):
        try:
            with warnings.catch_warnings():
                # Keras 3.15 warns about every nested container of a functional model
                # while loading; they hold no variables of their own.
                warnings.filterwarnings("ignore", message="Skipping nested container")
                target.load_weights(str(path))
            if path.name.endswith(".weights.h5"):
                stored = _count_h5_datasets(path)
                if stored != len(target.weights):
                    raise ValueError(
                        f"the file holds {stored} tensors, the model has {len(target.weights)}"
                    )
            return
        except Exception as error:  # Keras and h5py raise many types; all mean "bad file".
            errors.append(_short_error(error))
    raise UsageError(
        f"weights file {path} does not fit backbone {name} "
        f"(another architecture, another backbone or a corrupt file): {errors[0]}"
    )


def load_backbone(name, weights="imagenet", *, input_size=None, seed=0) -> Backbone:
    """Builds a registered backbone with preprocessing inside the model.

    Args:
        name: Registry name (see :func:`backbone_names`).
        weights: ``"imagenet"``, ``"none"`` (or ``None``: random init from
            ``seed``), or the path of a local weights file saved from the same
            architecture (``.weights.h5``; a legacy ``.h5`` also works).
        input_size: ``(height, width)`` overriding the default size; at least
            the backbone's ``min_size``, and one of its ``imagenet_sizes`` with
            ImageNet weights where Keras restricts them.
        seed: Seed of the random initialisation (``weights="none"``). The same
            seed builds the same network in any process. Building calls
            ``keras.utils.set_random_seed(seed)`` (the Python and NumPy random
            states are restored afterwards; the Keras/TF global seed stays set).

    Returns:
        A :class:`Backbone`.

    Raises:
        UsageError: For an unknown name, a bad input size, ImageNet weights
            requested for the tiny CNN or for a size they do not exist for,
            unavailable ImageNet weights (the message says which file is missing
            and how to supply it), or a weights file that is missing, corrupt or
            of another architecture (the message names the file).
    """
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
        base = _build_imagenet(spec, constructor, input_shape)
    else:
        base = build_seeded(constructor, input_shape, seed)

    frames = keras.Input(shape=input_shape, dtype="uint8", name="frames")
    x = FramePreprocessing(spec.preprocessing, name="preprocessing")(frames)
    model = keras.Model(frames, base(x), name=f"vidseq_{spec.name}")
    if path is not None:
        _load_weights_file(path, spec.name, base, model)
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
