"""Which files a cache argument names: one file, a glob of shards, or a list of them.

A several-file cache (the shards of one extraction) opens as one
:class:`vidseq.cache.store.FeatureStore`; this module resolves the argument to
its files, writes it back as absolute paths, and checks that no video id is in
two of them.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np

from vidseq.errors import CacheError


def is_single_cache(cache) -> bool:
    """True for one path or pattern (str or path-like), False for a list of them."""
    return isinstance(cache, (str, os.PathLike))


def cache_files(cache) -> list[Path]:
    """The cache files named by a cache argument.

    Args:
        cache: A cache file; a glob pattern (``"feats-*.h5"``, ``"shards/*.h5"``;
            ``~`` expanded); or a list of these.

    Returns:
        The files, in the order given (a pattern's matches sorted by name). A
        single path that is not a file (missing, a folder) is returned as it
        is: opening it reports the error.

    Raises:
        CacheError: A pattern that matches no file, an empty list, or the same
            file named twice.
    """
    if is_single_cache(cache):
        text = os.fspath(cache)
        if os.path.isfile(text):
            return [Path(text)]
        if glob.has_magic(text):
            found = sorted(p for p in glob.glob(os.path.expanduser(text)) if os.path.isfile(p))
            if not found:
                raise CacheError(f"{text}: no cache file matches this pattern")
            return [Path(p) for p in found]
        return [Path(text)]
    files = [path for item in cache for path in cache_files(item)]
    if not files:
        raise CacheError("no cache file given (empty list)")
    seen = {}
    for path in files:
        key = os.path.realpath(path)
        if key in seen:
            raise CacheError(f"the cache file {path} is given twice")
        seen[key] = path
    return files


def absolute_cache_spec(cache) -> str | list[str]:
    """A cache argument with absolute paths, as JSON-ready text (e.g. a run's ``cache_path``).

    Args:
        cache: As for :class:`FeatureStore`.

    Returns:
        One absolute path or pattern (str) for a single path or pattern;
        a list of absolute paths for a list. Either opens the same store again.
    """
    if is_single_cache(cache):
        return str(Path(os.path.expanduser(os.fspath(cache))).resolve())
    return [absolute_cache_spec(item) for item in cache]


def check_unique_ids(ids: np.ndarray, owner: np.ndarray, files: list[Path]) -> None:
    """Sorted ids of several files: CacheError naming both files if one id is in two."""
    same = np.flatnonzero(ids[1:] == ids[:-1]) if len(ids) > 1 else []
    if len(same):
        j = int(same[0])
        a, b = sorted((int(owner[j]), int(owner[j + 1])))
        raise CacheError(
            f"video id {ids[j]!r} is in both {files[a]} and {files[b]}: "
            "shards of one extraction never share a video"
        )
