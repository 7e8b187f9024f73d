"""FER-2013 source: faces of 7 emotions, grouped into pseudo-clips.

Two layouts are read:

* the original CSV ``fer2013.csv`` with the columns ``emotion,pixels,Usage``
  (any order, case ignored): ``emotion`` is a class id 0-6, ``pixels`` 2304
  space-separated grey values (a 48x48 image, row-major), ``Usage`` one of
  ``Training`` / ``PublicTest`` / ``PrivateTest`` → ``train`` / ``val`` /
  ``test``. Without a ``Usage`` column (only with ``--source fer2013``) the
  clips get a seeded 70/15/15 split;
* the image-folder layout ``<root>/train/<emotion>/*.png`` and
  ``<root>/test/<emotion>/*.png`` (also ``val/`` or ``validation/``), class
  folders named after the emotions.

The 7 classes keep the dataset's order: angry, disgust, fear, happy, sad,
surprise, neutral (label = emotion id).

**Pseudo-clips.** FER-2013 holds single images, not videos. As in the tutorial,
the images of one class in one split are taken in order (CSV row order, or file
name order in a folder) and cut into non-overlapping clips of ``clip_length``
images; the remainder of each (split, class) run is left out and counted. No
clip mixes splits or classes. Such clips hold no real motion: a recurrent head
can only pool evidence over several faces of the same emotion.

**Malformed CSV rows** (wrong field or pixel count, non-numeric or out-of-range
pixels, unknown emotion id or Usage) are skipped and listed in
:attr:`Dataset.rejected <vidseq.extract.sources.items.Dataset>` with their line number
(the header is line 1); extraction records them in the cache's ``failed/``
table and exits with code 3. The rest goes on.

**CSV clips without image files.** A CSV clip's source is a tuple of row
references ``"<absolute csv path>#line=<N>"`` (a cache stores them as its
``videos/path``). This module registers :func:`row_image_loader` as the
``"fer2013-row"`` clip loader (:mod:`vidseq.extract.sources.clips`) when it is imported,
which importing ``vidseq.extract`` does, so
:func:`vidseq.extract.decode.frames.read_frames` reads them. The loader parses each CSV
once per process (keyed by path, size and modification time) and keeps the
valid images in memory (35,887 rows: 83 MB of uint8). Nothing is written to
disk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from vidseq.errors import UsageError
from vidseq.extract.sources.clips import register_clip_loader
from vidseq.extract.sources.fer2013_csv import (
    CSV_LAYOUT,
    FER2013_CLASSES,
    ROW_REFERENCE_MARK,
    is_row_reference,
    read_fer2013_csv,
    row_image_loader,
)
from vidseq.extract.sources.items import (
    CSV_SUFFIXES,
    IMAGE_EXTENSIONS,
    Dataset,
    RejectedInput,
    VideoItem,
    absolute,
    finish_dataset,
    read_csv_header,
    split_by_groups,
)

NAME = "fer2013"

DEFAULT_CLIP_LENGTH = 10

SPLIT_FOLDERS = {"train": "train", "val": "val", "validation": "val", "test": "test"}
"""Split folder names (lower case) of the image-folder layout."""

CSV_COLUMNS = frozenset({"emotion", "pixels", "usage"})
"""The header columns (lower case) that make a CSV file a FER-2013 file."""

FOLDER_LAYOUT = "<root>/train/<emotion>/*.png and <root>/test/<emotion>/*.png"


# ------------------------------------------------------------------ datasets


def _check_clip_length(clip_length) -> int:
    if (
        isinstance(clip_length, bool)
        or not isinstance(clip_length, (int, np.integer))
        or clip_length < 1
    ):
        raise UsageError(
            f"clip_length must be an integer >= 1. Received: clip_length={clip_length!r}"
        )
    return int(clip_length)


def _cut(
    runs: dict[tuple[str, str, int], list],
    make_item: Callable[[tuple[str, str, int], int, list], VideoItem],
    clip_length: int,
) -> tuple[list[VideoItem], int, dict[str, int]]:
    """Cuts each (split key, class key, label) run into clips; returns items and leftovers."""
    items, dropped, dropped_by_class = [], 0, {}
    for key, members in runs.items():
        whole = len(members) // clip_length
        for number in range(whole):
            chunk = members[number * clip_length : (number + 1) * clip_length]
            items.append(make_item(key, number, chunk))
        left = len(members) - whole * clip_length
        if left:
            dropped += left
            name = FER2013_CLASSES[key[2]]
            dropped_by_class[name] = dropped_by_class.get(name, 0) + left
    return items, dropped, dropped_by_class


def _dropped_warning(dropped: int, by_class: dict[str, int], clip_length: int) -> str:
    detail = ", ".join(f"{name} {by_class[name]}" for name in FER2013_CLASSES if name in by_class)
    return (
        f"{dropped} images left out: they do not fill a whole clip of {clip_length} "
        f"in their split and class ({detail})"
    )


def load_fer2013_csv(csv_path, *, clip_length: int = DEFAULT_CLIP_LENGTH, seed: int = 0) -> Dataset:
    """Reads ``fer2013.csv`` into pseudo-clips.

    Args:
        csv_path: The CSV file.
        clip_length: Images per clip.
        seed: Seed of the 70/15/15 split of clips, used only without a Usage column.

    Returns:
        A :class:`~vidseq.extract.sources.items.Dataset` (source ``"fer2013"``) whose
        ``rejected`` lists the malformed rows and ``dropped`` counts the images
        left out.

    Raises:
        UsageError: The file cannot be read, its header lacks ``emotion`` or
            ``pixels``, or it holds no valid row.
    """
    clip_length = _check_clip_length(clip_length)
    table = read_fer2013_csv(csv_path)
    path = Path(table.path)
    rejected = [
        RejectedInput(f"{path.name}:line {line}", str(path), f"line {line}: {reason}")
        for line, reason in table.rejected
    ]
    if not len(table.lines):
        first = f" (first: {rejected[0].reason})" if rejected else ""
        raise UsageError(
            f"{path}: no valid row; {len(rejected)} malformed{first}; expected {CSV_LAYOUT}"
        )
    runs: dict[tuple[str, str, int], list[int]] = {}
    for line, emotion, split in zip(
        table.lines.tolist(), table.emotions.tolist(), table.splits, strict=True
    ):
        runs.setdefault((split, split, emotion), []).append(line)

    def make_item(key, number, chunk):
        split, _, label = key
        where = f"{split}/" if split else ""
        video_id = f"{path.name}:{where}{FER2013_CLASSES[label]}/clip{number:05d}"
        source = tuple(f"{path}{ROW_REFERENCE_MARK}{line}" for line in chunk)
        return VideoItem(video_id, source, label, split, video_id)

    items, dropped, by_class = _cut(runs, make_item, clip_length)
    warnings = []
    if not table.has_usage:
        items = [replace(item, group="") for item in sorted(items, key=lambda i: i.video_id)]
        items, _ = split_by_groups(items, seed=seed)
        warnings.append(f"{path.name} has no Usage column: the clips got a seeded 70/15/15 split")
    if dropped:
        warnings.append(_dropped_warning(dropped, by_class, clip_length))
    if rejected:
        warnings.append(
            f"{len(rejected)} malformed rows skipped (first: {rejected[0].reason}); "
            "extraction records them as failed"
        )
    if not items:
        raise UsageError(
            f"{path}: no clip of {clip_length} images of one class and split; "
            "use a smaller clip length"
        )
    dataset = finish_dataset(list(FER2013_CLASSES), items, warnings, NAME)
    dataset.rejected = rejected
    dataset.dropped = dropped
    dataset.clip_length = clip_length
    return dataset


def _split_folders(root: Path) -> dict[str, Path]:
    """Split name -> folder, for the visible sub-folders of ``root`` named like splits."""
    found = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        split = SPLIT_FOLDERS.get(entry.name.lower())
        if split is None:
            return {}
        found[entry.name] = entry
    return found


def _emotion_of(name: str) -> int:
    lowered = name.lower()
    return FER2013_CLASSES.index(lowered) if lowered in FER2013_CLASSES else -1


def is_fer2013_folder(root) -> bool:
    """True if ``root`` has the FER-2013 image-folder layout.

    That is: its visible sub-folders are all split folders (``train``,
    ``test``, ``val`` or ``validation``, case ignored; at least one), and every
    visible sub-folder of those is named after one of the 7 emotions (at least
    one in all). Loose files beside them (a README) do not matter.

    Args:
        root: A folder.
    """
    root = Path(root)
    try:
        splits = _split_folders(root) if root.is_dir() else {}
        class_dirs = [
            entry
            for folder in splits.values()
            for entry in folder.iterdir()
            if entry.is_dir() and not entry.name.startswith(".")
        ]
    except OSError:
        return False
    return bool(class_dirs) and all(_emotion_of(entry.name) >= 0 for entry in class_dirs)


def load_fer2013_folder(root, *, clip_length: int = DEFAULT_CLIP_LENGTH) -> Dataset:
    """Reads the FER-2013 image-folder layout into pseudo-clips.

    Images are the files with an image suffix, sorted by file name within each
    ``<split>/<emotion>/`` folder. Video ids are the folder path and the clip
    number, e.g. ``"train/happy/clip00012"``.

    Args:
        root: The folder holding ``train/`` and ``test/``.
        clip_length: Images per clip.

    Returns:
        A :class:`~vidseq.extract.sources.items.Dataset` (source ``"fer2013"``) whose
        ``dropped`` counts the images left out.

    Raises:
        UsageError: ``root`` is not that layout (the message names the folder
            that breaks it), or no clip can be made.
    """
    clip_length = _check_clip_length(clip_length)
    root = absolute(root)
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder; expected {FOLDER_LAYOUT}")
    splits = _split_folders(root)
    if not splits:
        raise UsageError(
            f"{root}: expected only split folders (train, val, validation, test) in it; "
            f"expected {FOLDER_LAYOUT}"
        )
    runs: dict[tuple[str, str, int], list[Path]] = {}
    ignored = 0
    for split_name, folder in splits.items():
        for class_dir in sorted(folder.iterdir()):
            if class_dir.name.startswith(".") or not class_dir.is_dir():
                continue
            label = _emotion_of(class_dir.name)
            if label < 0:
                raise UsageError(
                    f"{class_dir}: not an emotion; expected class folders named "
                    f"{', '.join(FER2013_CLASSES)}"
                )
            images = []
            for entry in sorted(class_dir.iterdir()):
                if entry.name.startswith("."):
                    continue
                if entry.is_file() and entry.suffix.lower() in IMAGE_EXTENSIONS:
                    images.append(entry)
                else:
                    ignored += 1
            key = (SPLIT_FOLDERS[split_name.lower()], f"{split_name}/{class_dir.name}", label)
            runs.setdefault(key, []).extend(images)

    def make_item(key, number, chunk):
        split, folder, label = key
        video_id = f"{folder}/clip{number:05d}"
        return VideoItem(video_id, tuple(str(p) for p in chunk), label, split, video_id)

    items, dropped, by_class = _cut(runs, make_item, clip_length)
    if not items:
        total = sum(len(members) for members in runs.values())
        raise UsageError(
            f"{root}: no clip of {clip_length} images of one class and split "
            f"({total} images found); expected {FOLDER_LAYOUT}"
        )
    warnings = []
    if dropped:
        warnings.append(_dropped_warning(dropped, by_class, clip_length))
    if ignored:
        warnings.append(f"{ignored} entries in emotion folders are not image files; left out")
    dataset = finish_dataset(list(FER2013_CLASSES), items, warnings, NAME)
    dataset.dropped = dropped
    dataset.clip_length = clip_length
    return dataset


def detect(path: Path) -> bool:
    """True for the image-folder layout, or a CSV file with ``emotion,pixels,Usage`` columns.

    Raises:
        UsageError: A CSV file that cannot be read as UTF-8 text.
    """
    path = Path(path)
    if path.is_dir():
        return is_fer2013_folder(path)
    if not (path.is_file() and path.suffix.lower() in CSV_SUFFIXES):
        return False
    return set(read_csv_header(path)) >= CSV_COLUMNS


def load(path, *, clip_length: int = DEFAULT_CLIP_LENGTH, seed: int = 0) -> Dataset:
    """Reads either FER-2013 layout: a CSV file or the image-folder layout.

    Args:
        path: ``fer2013.csv`` or the folder holding ``train/`` and ``test/``.
        clip_length: Images per clip.
        seed: Seed of the split of a CSV without a Usage column.

    Returns:
        The :class:`~vidseq.extract.sources.items.Dataset`.
    """
    path = absolute(path)
    if path.is_dir():
        return load_fer2013_folder(path, clip_length=clip_length)
    return load_fer2013_csv(path, clip_length=clip_length, seed=seed)


register_clip_loader("fer2013-row", is_row_reference, row_image_loader)
