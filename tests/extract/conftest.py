"""Fixtures shared by the extraction tests."""

import struct
from pathlib import Path

import h5py
import numpy as np
import pytest


def _cache_contents(path):
    """Every dataset of a cache (and its root attributes but the version) as plain values."""
    contents = {}
    with h5py.File(path, "r") as handle:
        contents.update({f"@{k}": v for k, v in handle.attrs.items() if k != "vidseq_version"})

        def visit(name, node):
            if isinstance(node, h5py.Dataset):
                data = node[()]
                if node.dtype.kind == "O":
                    data = [x.decode() if isinstance(x, bytes) else x for x in data]
                contents[name] = data

        handle.visititems(visit)
    return contents


@pytest.fixture(scope="session")
def assert_same_cache():
    """``assert_same_cache(a, b)``: two cache files hold the same datasets and attributes."""

    def check(a, b):
        left, right = _cache_contents(a), _cache_contents(b)
        assert sorted(left) == sorted(right)
        for key in left:
            np.testing.assert_array_equal(
                np.asarray(left[key]), np.asarray(right[key]), err_msg=key
            )

    return check


def _patch_avi_frame_count(path, claim):
    """Rewrites the total-frame fields of an AVI header (avih, strh, dmlh) to ``claim``."""
    data = bytearray(Path(path).read_bytes())
    offsets = [data.find(b"avih") + 8 + 16, data.find(b"strh") + 8 + 32]
    if data.find(b"dmlh") >= 0:
        offsets.append(data.find(b"dmlh") + 8)
    for offset in offsets:
        struct.pack_into("<I", data, offset, claim)
    Path(path).write_bytes(bytes(data))


@pytest.fixture(scope="session")
def patch_avi_frame_count():
    """``patch_avi_frame_count(path, claim)``: makes an AVI header claim ``claim`` frames."""
    return _patch_avi_frame_count
