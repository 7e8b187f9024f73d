"""INT8 backbones for OpenVINO: NNCF post-training quantisation, calibrated on the user's frames.

:func:`quantized_model` converts a backbone's Keras model (preprocessing
inside, uint8 frames in) to OpenVINO, quantises it with ``nncf.quantize``
(the default ``PERFORMANCE`` preset: symmetric int8 weights and activations,
statistics from the calibration frames, fast bias correction) and saves it
with a dynamic batch dimension, so one file serves every batch size.

The file is kept in a folder beside the feature cache (``.vidseq-int8/``) and
named by :func:`quantized_key`: the backbone, input size and weights hash, plus
a digest of the calibration set and the OpenVINO and NNCF versions. A rerun of
the same extraction finds it and does not calibrate again; windowed predict and
``watch`` find it beside the run's cache (:func:`find_quantized`). Any Keras
backbone qualifies (``keras.applications`` networks and keras-hub encoders
alike): nothing here depends on the architecture.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from vidseq.errors import UsageError

FOLDER_NAME = ".vidseq-int8"
"""The folder, beside a cache, that holds its quantised backbones."""
CALIBRATION_BATCH = 8
"""Frames per calibration sample fed to NNCF."""


def quantized_folder(cache_path) -> Path:
    """The folder of quantised backbones beside the cache ``cache_path``."""
    return Path(cache_path).expanduser().resolve().parent / FOLDER_NAME


def _prefix(net) -> str:
    height, width = net.input_size
    return f"{net.name}-{height}x{width}-int8-w{net.weights_sha256[:12]}"


def quantized_key(net, calibration_ids) -> str:
    """The file name (without suffix) of ``net`` quantised on the videos ``calibration_ids``."""
    import nncf
    import openvino as ov

    facts = json.dumps(
        [net.weights_sha256, sorted(calibration_ids), ov.__version__, nncf.__version__]
    )
    return f"{_prefix(net)}-{hashlib.sha256(facts.encode('utf-8')).hexdigest()[:12]}"


def find_quantized(net, folder) -> Path | None:
    """The newest quantised model of ``net`` (same weights and input size) in ``folder``."""
    found = sorted(Path(folder).glob(f"{_prefix(net)}-*.xml"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def import_nncf():
    """Imports NNCF quietly, or explains how to install it."""
    try:
        import nncf
    except ImportError as error:
        raise UsageError(
            "precision='int8' needs the nncf package, which is not installed: "
            'pip install "vidseq[openvino]" (or pip install nncf)'
        ) from error
    nncf.set_log_level(logging.ERROR)
    return nncf


def quantized_model(net, frames: np.ndarray, path) -> bool:
    """Quantises ``net`` on ``frames`` into ``path`` unless that file exists.

    Args:
        net: A loaded :class:`~vidseq.extract.models.backbones.Backbone`.
        frames: ``(N, H, W, 3)`` uint8 calibration frames (N >= 1).
        path: The ``.xml`` file to write (its ``.bin`` beside it); see
            :func:`quantized_key`.

    Returns:
        True if this call quantised, False if the file was already there.

    Raises:
        UsageError: nncf or openvino is not installed, or there is no frame.
    """
    path = Path(path)
    if path.is_file():
        return False
    if len(frames) == 0:
        raise UsageError("INT8 calibration needs frames, and the calibration videos gave none")
    nncf = import_nncf()
    import openvino as ov

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*structure of `inputs`.*")
        model = ov.convert_model(net.model)
    batches = [frames[i : i + CALIBRATION_BATCH] for i in range(0, len(frames), CALIBRATION_BATCH)]
    quantized = nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches))
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".quantize-") as tmp:
        xml = Path(tmp) / path.name
        ov.save_model(quantized, str(xml), compress_to_fp16=False)
        # .bin first: an .xml in place means a complete model.
        os.replace(xml.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(xml, path)
    return True
