"""Weights of the ``keras.applications`` backbones: the ImageNet download and local files.

:func:`build_imagenet` builds a network with Keras' own ImageNet download and
turns a failed download into one line that names the missing file;
:func:`load_weights_file` loads a local weights file strictly. Used by
:func:`vidseq.extract.models.backbones.load_backbone`.
"""

import os
import re
import warnings
from pathlib import Path

import h5py

from vidseq.errors import UsageError


def _keras_models_dir():
    home = os.environ.get("KERAS_HOME")
    try:
        from keras.src.backend import config

        home = config.keras_home()
    except (ImportError, AttributeError):
        pass
    return Path(home or Path.home() / ".keras") / "models"


def build_imagenet(spec, constructor, input_shape):
    """Builds ``constructor`` with ImageNet weights (Keras' own download and cache).

    Raises:
        UsageError: The weights file is not in the Keras cache and could not be
            downloaded (the message names the file and how to supply it).
    """
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


def load_weights_file(path, name, base, full):
    """Loads ``path`` strictly into ``base`` (or, failing that, into ``full``).

    Strict: every variable of the model must be loaded (Keras checks that), and a
    ``.weights.h5`` file must hold exactly as many tensors as the model has (so a
    deeper network's file, e.g. ResNet101 into ResNet50, is refused too). A legacy
    ``.h5`` file is checked by Keras' own layer-count and shape checks.

    Raises:
        UsageError: The file is missing, not a Keras weights file, or does not
            fit the network (the message names the file).
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
