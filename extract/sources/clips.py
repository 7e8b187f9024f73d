"""Clip loaders: how the entries of an image clip become images.

A clip (a list or tuple of entries, e.g. the faces of a FER-2013 pseudo-clip)
is normally a list of image files. A dataset source whose images live elsewhere
(FER-2013's CSV rows) registers a clip loader: a test that recognises its
entries, and a factory that turns a clip's entries into ``load(index)``, which
returns the image of one entry. :func:`vidseq.extract.decode.frames.read_frames` asks
:func:`clip_loader_for` about every clip, so the reader knows no source.

Loaders are registered when their source module is imported; importing
``vidseq.extract`` imports every built-in source, so anything that reads frames
back from a cache finds them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from vidseq.errors import UsageError

ImageLoader = Callable[[int], np.ndarray]
"""``load(index)``: the BGR, BGRA or grey image of a clip's entry ``index``."""

LoaderFactory = Callable[[Sequence[str]], ImageLoader]
"""``make(entries)``: the :data:`ImageLoader` of one clip's entries."""


@dataclass(frozen=True)
class ClipLoader:
    """A registered way of reading clip entries that are not image files.

    Attributes:
        name: The loader's name, e.g. ``"fer2013-row"``.
        matches: ``matches(entry)``: whether an entry is one this loader reads.
        make: Builds the image loader of a clip's entries.
    """

    name: str
    matches: Callable[[str], bool]
    make: LoaderFactory


_LOADERS: dict[str, ClipLoader] = {}


def register_clip_loader(
    name: str, matches: Callable[[str], bool], make: LoaderFactory
) -> ClipLoader:
    """Registers (or replaces) the clip loader called ``name``.

    Args:
        name: A non-empty name.
        matches: ``matches(entry) -> bool``, true for the entries it reads.
        make: ``make(entries) -> load``, where ``load(index)`` returns the image
            of ``entries[index]`` (uint8, BGR, BGRA or grey) or raises
            :class:`~vidseq.errors.SourceReadError`.

    Returns:
        The registered :class:`ClipLoader`.

    Raises:
        UsageError: An empty name, or ``matches`` or ``make`` not callable.
    """
    if not isinstance(name, str) or not name:
        raise UsageError(f"name must be a non-empty string. Received: name={name!r}")
    for label, value in (("matches", matches), ("make", make)):
        if not callable(value):
            raise UsageError(f"{label} must be callable. Received: {label}={value!r}")
    loader = ClipLoader(name=name, matches=matches, make=make)
    _LOADERS[name] = loader
    return loader


def unregister_clip_loader(name: str) -> None:
    """Removes the clip loader called ``name`` (nothing happens if there is none)."""
    _LOADERS.pop(name, None)


def clip_loader_for(entries: Sequence[str]) -> ClipLoader | None:
    """The registered loader whose ``matches`` accepts the clip's first entry, or None.

    Args:
        entries: A clip's entries (at least one).

    Returns:
        The :class:`ClipLoader`, or None: the entries are image files.
    """
    first = entries[0]
    return next((loader for loader in _LOADERS.values() if loader.matches(first)), None)


def clip_loader_names() -> tuple[str, ...]:
    """The names of the registered clip loaders, in registration order."""
    return tuple(_LOADERS)
