"""Datasets: which videos there are, with their labels, splits and groups.

:func:`load_dataset` reads one of several on-disk layouts. Each layout is a
*source*: a module (like a TFDS builder) with a ``NAME``, a
``detect(path) -> bool`` and a ``load(path, **options) -> Dataset``. The
built-in sources, in the order ``source="auto"`` tries them:

* ``ucf101`` (:mod:`vidseq.extract.sources.ucf101`): class folders plus the
  official ``ucfTrainTestlist/`` split lists;
* ``fer2013`` (:mod:`vidseq.extract.sources.fer2013`): ``fer2013.csv`` or its
  image-folder layout, cut into pseudo-clips of faces;
* ``manifest`` (:mod:`vidseq.extract.sources.manifest`): a CSV
  ``path,label[,split][,group]``;
* ``folder`` (:mod:`vidseq.extract.sources.folder`): ``root/<class>/<video>``.

:func:`register_source` adds another. The item model the sources build
(:class:`Dataset`, :class:`VideoItem`, :class:`RejectedInput`) lives in
:mod:`vidseq.extract.sources.items`, which imports no source.

Nothing is decoded here: a listed video that is missing or unreadable stays an
item, and extraction records it as failed. A layout that cannot be understood
raises :class:`vidseq.errors.UsageError` with one line naming the file (and the
line, for list and CSV files) and what was expected.
"""

from __future__ import annotations

import inspect
from types import ModuleType

from vidseq.errors import UsageError
from vidseq.extract.sources import fer2013 as source_fer2013
from vidseq.extract.sources import folder as source_folder
from vidseq.extract.sources import manifest as source_manifest
from vidseq.extract.sources import ucf101 as source_ucf101
from vidseq.extract.sources.items import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    Dataset,
    RejectedInput,
    VideoItem,
    absolute,
    group_from_name,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "Dataset",
    "RejectedInput",
    "VideoItem",
    "detect_source",
    "group_from_name",
    "load_dataset",
    "register_source",
    "source_names",
    "unregister_source",
]

_REGISTRY: dict[str, ModuleType] = {}


def register_source(source: ModuleType) -> None:
    """Adds a dataset source (or replaces the one of the same name).

    Args:
        source: A module (or any object) with ``NAME`` (a string),
            ``detect(path) -> bool`` and ``load(path, **options) -> Dataset``.
            ``load`` receives the options of :func:`load_dataset` that it
            names as keyword parameters. Auto-detection tries sources in
            registration order; a source registered later is tried before the
            catch-all ``folder`` source.

    Raises:
        UsageError: ``source`` lacks one of the three names.
    """
    name = getattr(source, "NAME", None)
    if not isinstance(name, str) or not name or name == "auto":
        raise UsageError(
            f"source.NAME must be a non-empty string other than 'auto'. Received: NAME={name!r}"
        )
    for attribute in ("detect", "load"):
        if not callable(getattr(source, attribute, None)):
            raise UsageError(f"source {name!r} must have a callable {attribute}(path)")
    fallback = _REGISTRY.pop(source_folder.NAME, None)
    _REGISTRY[name] = source
    if fallback is not None and name != source_folder.NAME:
        _REGISTRY[source_folder.NAME] = fallback


def unregister_source(name: str) -> None:
    """Removes the source called ``name``; the built-in ``folder`` source stays.

    Raises:
        UsageError: ``name`` is ``"folder"``, the fallback of auto-detection.
    """
    if name == source_folder.NAME:
        raise UsageError(f"the folder source cannot be removed. Received: name={name!r}")
    _REGISTRY.pop(name, None)


for _builtin in (source_ucf101, source_fer2013, source_manifest, source_folder):
    register_source(_builtin)


def source_names() -> tuple[str, ...]:
    """The registered sources, in auto-detection order (``folder`` last)."""
    return tuple(_REGISTRY)


def source_choices() -> tuple[str, ...]:
    """What a ``source`` argument accepts: ``"auto"`` (detect it), then the registered sources."""
    return ("auto", *source_names())


def detect_source(path) -> str:
    """Tells which source reads ``path`` (the ``--source auto`` rule).

    The first registered source whose ``detect`` accepts the path: a folder
    with ``ucfTrainTestlist/`` is ``"ucf101"``; a folder whose only sub-folders
    are split folders (``train``, ``test``, ...) holding emotion-named class
    folders, or a CSV file with ``emotion,pixels,Usage`` columns, is
    ``"fer2013"``; another CSV file a ``"manifest"``; any other folder is
    ``"folder"``.

    Args:
        path: A dataset folder or CSV file.

    Returns:
        A source name, e.g. ``"fer2013"``, ``"manifest"``, ``"ucf101"``, ``"folder"``.

    Raises:
        UsageError: ``path`` does not exist or is a file no source reads.
    """
    path = absolute(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder; expected a dataset folder or a CSV file")
    for name, source in _REGISTRY.items():
        if source.detect(path):
            return name
    raise UsageError(
        f"{path}: expected a dataset folder or a .csv manifest, received a "
        f"{path.suffix or 'suffix-less'} file"
    )


def load_dataset(
    path, source: str = "auto", *, split: int = 1, seed: int = 0, clip_length: int | None = None
) -> Dataset:
    """Reads a dataset layout into a list of videos with labels, splits and groups.

    Args:
        path: A dataset folder, or a CSV manifest.
        source: ``"auto"`` (see :func:`detect_source`), ``"folder"``
            (``root/<class>/<video>``), ``"ucf101"`` (that layout plus
            ``ucfTrainTestlist/``), ``"manifest"`` (CSV
            ``path,label[,split][,group]``, paths relative to the CSV),
            ``"fer2013"`` (``fer2013.csv`` or ``<root>/train|test/<emotion>/``
            images, cut into pseudo-clips of ``clip_length`` faces), or the
            name of a source added with :func:`register_source`.
        split: Which official UCF-101 split (1, 2 or 3); ucf101 only.
        seed: Seed of the group-aware 70/15/15 split of sources that carry no
            split information (folder; manifest without a split column;
            fer2013 CSV without a Usage column).
        clip_length: Images per pseudo-clip (fer2013 only); None takes the
            source's default (10).

    Returns:
        A :class:`Dataset` whose items are sorted by ``video_id``.

    Raises:
        UsageError: Unknown source, missing path, or a layout that cannot be
            read; the message names the file (and line) and what was expected.
    """
    if source != "auto" and source not in _REGISTRY:
        raise UsageError(
            f"unknown dataset source {source!r}; expected one of "
            f"{', '.join(('auto', *sorted(_REGISTRY)))}"
        )
    path = absolute(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder; expected a dataset folder or a CSV file")
    reader = _REGISTRY[detect_source(path) if source == "auto" else source]
    options = {"split": split, "seed": seed}
    if clip_length is not None:
        options["clip_length"] = clip_length
    accepted = inspect.signature(reader.load).parameters
    return reader.load(path, **{key: value for key, value in options.items() if key in accepted})
