"""Datasets: which videos there are, with their labels, splits and groups.

:func:`load_dataset` reads one of several on-disk layouts, each handled by its
own small module (like TFDS builders):

* ``folder`` (:mod:`vidseq.extract.source_folder`): ``root/<class>/<video>``;
* ``ucf101`` (:mod:`vidseq.extract.source_ucf101`): that layout plus the
  official ``ucfTrainTestlist/`` split lists;
* ``manifest`` (:mod:`vidseq.extract.source_manifest`): a CSV
  ``path,label[,split][,group]``;
* ``fer2013`` (:mod:`vidseq.extract.source_fer2013`): ``fer2013.csv`` or its
  image-folder layout, cut into pseudo-clips of faces.

Nothing is decoded here: a listed video that is missing or unreadable stays an
item, and extraction records it as failed. A layout that cannot be understood
raises :class:`vidseq.errors.UsageError` with one line naming the file (and the
line, for list and CSV files) and what was expected.
"""

from __future__ import annotations

import csv
import itertools
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from vidseq.errors import UsageError
from vidseq.extract.splits import DEFAULT_FRACTIONS, group_split

SOURCES = ("auto", "folder", "ucf101", "manifest", "fer2013")
VIDEO_EXTENSIONS = frozenset(
    {
        ".avi",
        ".mp4",
        ".mkv",
        ".mov",
        ".webm",
        ".mpg",
        ".mpeg",
        ".m4v",
        ".wmv",
        ".flv",
        ".ogv",
        ".3gp",
    }
)
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
UCF_LISTS_DIR = "ucfTrainTestlist"
FER2013_COLUMNS = frozenset({"emotion", "pixels", "usage"})

_GROUP_PATTERN = re.compile(r"_g(\d+)_c\d+(?!\d)", re.IGNORECASE)


@dataclass(frozen=True)
class VideoItem:
    """One video (or frame directory, or image clip) of a dataset.

    Attributes:
        video_id: Unique id, the dataset-relative path by default
            (``"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"``).
        source: Absolute path of a video file or frame directory, or a tuple of
            image paths (a clip).
        label: Index into the dataset's ``class_names``; -1 if unlabelled.
        split: ``"train"``, ``"val"``, ``"test"`` or ``""`` (unassigned).
        group: Videos of one group (e.g. UCF-101 ``"g08"``: clips of one long
            video) are never on two sides of a split. A video with no known
            group is its own group (its ``video_id``).
    """

    video_id: str
    source: str | tuple[str, ...]
    label: int
    split: str
    group: str


@dataclass(frozen=True)
class RejectedInput:
    """A piece of the dataset that could not be used (e.g. a malformed CSV row).

    Extraction records it in the cache's ``failed/`` table and exits with code 3.

    Attributes:
        input_id: Unique id naming it, e.g. ``"fer2013.csv:line 12"`` (stored as
            the failed record's ``video_id``).
        path: The file holding it.
        reason: What is wrong with it, naming where (e.g. the line).
    """

    input_id: str
    path: str
    reason: str


@dataclass
class Dataset:
    """The videos of a dataset, ready for extraction.

    Attributes:
        class_names: Class names; a label is an index into this list.
        items: The videos, sorted by ``video_id``.
        warnings: Things the user should know (videos left out, groups
            unknown, ...), one sentence each.
        source: The source that read it (``"folder"``, ``"ucf101"``,
            ``"manifest"``, ``"fer2013"``).
        rejected: Inputs that were skipped because they are malformed (e.g.
            FER-2013 CSV rows); extraction records them as failed.
        dropped: Images left out because they do not fill a whole clip
            (FER-2013 pseudo-clips).
    """

    class_names: list[str]
    items: list[VideoItem]
    warnings: list[str] = field(default_factory=list)
    source: str = ""
    rejected: list[RejectedInput] = field(default_factory=list)
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.items)

    def split_counts(self) -> dict[str, int]:
        """Returns the number of videos per split name (``""`` for unassigned)."""
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.split] = counts.get(item.split, 0) + 1
        return counts


def group_from_name(name: str) -> str:
    """Returns the UCF-style group of a file name, or ``""`` if it has none.

    Args:
        name: A file or directory name or path, e.g.
            ``"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"``.

    Returns:
        ``"g08"`` for a name containing ``_g08_c01``; ``""`` otherwise.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    match = _GROUP_PATTERN.search(base)
    return f"g{match.group(1)}" if match else ""


def absolute(path) -> Path:
    """Returns ``path`` made absolute without resolving symbolic links."""
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def is_frame_directory(path: Path) -> bool:
    """True if ``path`` is a directory holding at least one image file."""
    try:
        return path.is_dir() and any(
            child.suffix.lower() in IMAGE_EXTENSIONS and not child.name.startswith(".")
            for child in path.iterdir()
        )
    except OSError:
        return False


def split_by_groups(
    items: list[VideoItem], *, seed: int, fractions=DEFAULT_FRACTIONS
) -> tuple[list[VideoItem], list[str]]:
    """Gives items without split information a group-aware train/val/test split.

    Items whose ``group`` is empty become their own group (their ``video_id``),
    and a warning says how many.

    Args:
        items: Items, sorted by ``video_id``; their ``split`` is ignored.
        seed: Seed of :func:`vidseq.extract.splits.group_split`.
        fractions: Train, val and test shares.

    Returns:
        ``(items with split and group filled in, warnings)``.
    """
    warnings = []
    unknown = sum(1 for item in items if not item.group)
    if unknown:
        warnings.append(
            f"groups unknown for {unknown} of {len(items)} videos: each of them is its own "
            "group, so clips cut from one long video may land on both sides of the split "
            "(give a group column, or name files like v_<Class>_g<GG>_c<CC>.avi)"
        )
    items = [replace(item, group=item.group or item.video_id) for item in items]
    splits = group_split([i.group for i in items], [i.label for i in items], fractions, seed)
    return [replace(item, split=split) for item, split in zip(items, splits, strict=True)], warnings


def read_csv_header(path: Path) -> list[str]:
    """Returns the first row of a CSV file, stripped and lower-cased.

    Raises:
        UsageError: The file cannot be read as UTF-8 text.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            row = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UsageError(f"{path}: cannot read it as a CSV file ({error})") from None
    return [column.strip().lower() for column in row]


def detect_source(path) -> str:
    """Tells which source reads ``path`` (the ``--source auto`` rule of DESIGN.md).

    A CSV file with ``emotion,pixels,Usage`` columns is ``"fer2013"``, another
    CSV file a ``"manifest"``; a folder with ``ucfTrainTestlist/`` is
    ``"ucf101"``; a folder whose only sub-folders are split folders (``train``,
    ``test``, ...) holding emotion-named class folders is ``"fer2013"``
    (see :func:`vidseq.extract.source_fer2013.is_fer2013_folder`); any other
    folder is ``"folder"``.

    Args:
        path: A dataset folder or CSV file.

    Returns:
        One of ``"fer2013"``, ``"manifest"``, ``"ucf101"``, ``"folder"``.

    Raises:
        UsageError: ``path`` does not exist or is a file that is not a CSV.
    """
    path = absolute(path)
    if path.is_dir():
        if (path / UCF_LISTS_DIR).is_dir():
            return "ucf101"
        from vidseq.extract.source_fer2013 import is_fer2013_folder

        return "fer2013" if is_fer2013_folder(path) else "folder"
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder; expected a dataset folder or a CSV file")
    if path.suffix.lower() not in {".csv", ".txt", ".tsv"}:
        raise UsageError(
            f"{path}: expected a dataset folder or a .csv manifest, received a "
            f"{path.suffix or 'suffix-less'} file"
        )
    header = read_csv_header(path)
    return "fer2013" if set(header) >= FER2013_COLUMNS else "manifest"


def finish(
    class_names: list[str], items: list[VideoItem], warnings: list[str], source: str
) -> Dataset:
    """Sorts the items by id, checks ids are unique, and builds the Dataset."""
    items = sorted(items, key=lambda item: item.video_id)
    for previous, item in itertools.pairwise(items):
        if previous.video_id == item.video_id:
            raise UsageError(f"video id {item.video_id!r} appears twice; ids must be unique")
    return Dataset(class_names=list(class_names), items=items, warnings=warnings, source=source)


def load_dataset(
    path, source: str = "auto", *, split: int = 1, seed: int = 0, clip_length: int = 10
) -> Dataset:
    """Reads a dataset layout into a list of videos with labels, splits and groups.

    Args:
        path: A dataset folder, or a CSV manifest.
        source: ``"auto"`` (see :func:`detect_source`), ``"folder"``
            (``root/<class>/<video>``), ``"ucf101"`` (that layout plus
            ``ucfTrainTestlist/``), ``"manifest"`` (CSV
            ``path,label[,split][,group]``, paths relative to the CSV) or
            ``"fer2013"`` (``fer2013.csv`` or ``<root>/train|test/<emotion>/``
            images, cut into pseudo-clips of ``clip_length`` faces).
        split: Which official UCF-101 split (1, 2 or 3); ucf101 only.
        seed: Seed of the group-aware 70/15/15 split of sources that carry no
            split information (folder; manifest without a split column;
            fer2013 CSV without a Usage column).
        clip_length: Images per pseudo-clip; fer2013 only.

    Returns:
        A :class:`Dataset` whose items are sorted by ``video_id``.

    Raises:
        UsageError: Unknown source, missing path, or a layout that cannot be
            read; the message names the file (and line) and what was expected.
    """
    if source not in SOURCES:
        raise UsageError(f"unknown dataset source {source!r}; expected one of {', '.join(SOURCES)}")
    path = absolute(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder; expected a dataset folder or a CSV file")
    if source == "auto":
        source = detect_source(path)
    if source == "fer2013":
        from vidseq.extract.source_fer2013 import load_fer2013

        return load_fer2013(path, clip_length=clip_length, seed=seed)
    if source == "folder":
        from vidseq.extract.source_folder import load_folder

        return load_folder(path, seed=seed)
    if source == "ucf101":
        from vidseq.extract.source_ucf101 import load_ucf101

        return load_ucf101(path, split=split)
    from vidseq.extract.source_manifest import load_manifest

    return load_manifest(path, seed=seed)
