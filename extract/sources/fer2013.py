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

import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from vidseq.errors import SourceReadError, UsageError
from vidseq.extract.sources.clips import register_clip_loader
from vidseq.extract.sources.csv_table import csv_table
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

FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""Class names in the dataset's order: the emotion id is the index."""

IMAGE_SIZE = 48
NUM_PIXELS = IMAGE_SIZE * IMAGE_SIZE
DEFAULT_CLIP_LENGTH = 10

USAGE_SPLITS = {
    "training": "train",
    "publictest": "val",
    "privatetest": "test",
    "train": "train",
    "val": "val",
    "validation": "val",
    "test": "test",
}
"""``Usage`` values (lower case) and the split each one gives."""

SPLIT_FOLDERS = {"train": "train", "val": "val", "validation": "val", "test": "test"}
"""Split folder names (lower case) of the image-folder layout."""

CSV_COLUMNS = frozenset({"emotion", "pixels", "usage"})
"""The header columns (lower case) that make a CSV file a FER-2013 file."""

ROW_REFERENCE_MARK = "#line="
_ROW_REFERENCE = re.compile(r"^(?P<path>.+)#line=(?P<line>[0-9]+)$")
_NOT_PIXEL_TEXT = str.maketrans("", "", "0123456789 \t")
FOLDER_LAYOUT = "<root>/train/<emotion>/*.png and <root>/test/<emotion>/*.png"
CSV_LAYOUT = "a CSV with the columns emotion,pixels,Usage"


# ------------------------------------------------------------------ the parsed CSV


@dataclass
class Fer2013Table:
    """The valid rows of a FER-2013 CSV file, parsed once.

    Attributes:
        path: The CSV file (absolute).
        lines: (M,) int64 line number of each valid row, increasing (header = 1).
        emotions: (M,) int64 emotion id (the label) of each valid row.
        splits: The split of each valid row (``""`` without a Usage column).
        images: (M, 48, 48) uint8 grey images.
        rejected: ``(line, reason)`` of each malformed row.
        has_usage: Whether the file has a ``Usage`` column.
    """

    path: str
    lines: np.ndarray
    emotions: np.ndarray
    splits: list[str]
    images: np.ndarray
    rejected: list[tuple[int, str]] = field(default_factory=list)
    has_usage: bool = True

    def image(self, line: int) -> np.ndarray | None:
        """Returns the (48, 48) uint8 image of ``line``, or None if it is not a valid row."""
        position = int(np.searchsorted(self.lines, line))
        if position < len(self.lines) and self.lines[position] == line:
            return self.images[position]
        return None


_TABLES: dict[str, tuple[tuple[int, int], Fer2013Table]] = {}
_TABLES_LOCK = threading.Lock()
_MAX_TABLES = 2


def read_fer2013_csv(csv_path) -> Fer2013Table:
    """Parses a FER-2013 CSV file, or returns this process's parsed copy of it.

    The copy is reused while the file's size and modification time stay the
    same; at most two files are kept. Thread-safe: concurrent callers wait for
    one parse.

    Args:
        csv_path: The CSV file.

    Returns:
        The :class:`Fer2013Table`.

    Raises:
        UsageError: The file cannot be read, is not UTF-8 CSV text, or its header
            lacks the ``emotion`` or ``pixels`` column.
    """
    path = str(absolute(csv_path))
    try:
        stat = os.stat(path)
    except OSError as error:
        raise UsageError(f"{path}: cannot open it ({error.strerror or error})") from None
    key = (stat.st_size, stat.st_mtime_ns)
    with _TABLES_LOCK:
        cached = _TABLES.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        table = _parse(path)
        _TABLES.pop(path, None)
        while len(_TABLES) >= _MAX_TABLES:
            _TABLES.pop(next(iter(_TABLES)))
        _TABLES[path] = (key, table)
        return table


def _parse(path: str) -> Fer2013Table:
    lines, emotions, splits, images, rejected = [], [], [], [], []
    with csv_table(path, ("emotion", "pixels"), CSV_LAYOUT) as (header, columns, rows):
        emotion_at, pixels_at = columns.index("emotion"), columns.index("pixels")
        usage_at = columns.index("usage") if "usage" in columns else None
        needed = max(emotion_at, pixels_at, usage_at or 0) + 1
        for line, row in rows:
            if len(row) < needed:
                expected = f"expected {len(columns)} ({','.join(header)})"
                rejected.append((line, f"{len(row)} fields, {expected}"))
                continue
            emotion, reason = _emotion(row[emotion_at])
            split = ""
            if reason is None and usage_at is not None:
                split, reason = _usage(row[usage_at])
            pixels = None
            if reason is None:
                pixels, reason = _pixels(row[pixels_at])
            if reason is not None:
                rejected.append((line, reason))
                continue
            lines.append(line)
            emotions.append(emotion)
            splits.append(split)
            images.append(pixels)
    return Fer2013Table(
        path=path,
        lines=np.asarray(lines, dtype=np.int64),
        emotions=np.asarray(emotions, dtype=np.int64),
        splits=splits,
        images=(
            np.stack(images).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
            if images
            else np.empty((0, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
        ),
        rejected=rejected,
        has_usage=usage_at is not None,
    )


def _emotion(text: str) -> tuple[int, str | None]:
    text = text.strip()
    if text.isascii() and text.isdigit() and int(text) < len(FER2013_CLASSES):
        return int(text), None
    return -1, f"unknown emotion id {text!r}; expected an integer 0-{len(FER2013_CLASSES) - 1}"


def _usage(text: str) -> tuple[str, str | None]:
    split = USAGE_SPLITS.get(text.strip().lower())
    if split is None:
        return "", f"unknown Usage {text.strip()!r}; expected Training, PublicTest or PrivateTest"
    return split, None


def _pixels(text: str) -> tuple[np.ndarray | None, str | None]:
    if text.translate(_NOT_PIXEL_TEXT):  # anything but digits and blanks
        bad = next(token for token in text.split() if not token.isdigit())
        return None, f"non-numeric pixel value {bad[:20]!r}; expected integers 0-255"
    values = np.fromstring(text, dtype=np.int64, sep=" ")  # only digits and blanks: exact
    if values.size != NUM_PIXELS:
        return None, (
            f"{values.size} pixel values, expected {NUM_PIXELS} (a {IMAGE_SIZE}x{IMAGE_SIZE} image)"
        )
    if values.max() > 255:
        return None, f"pixel value {int(values.max())} out of range; expected integers 0-255"
    return values.astype(np.uint8), None


# ------------------------------------------------------------------ row references


def row_reference(csv_path, line: int) -> str:
    """The clip entry naming one CSV row: ``"<absolute csv path>#line=<line>"``."""
    return f"{absolute(csv_path)}{ROW_REFERENCE_MARK}{int(line)}"


def parse_row_reference(text: str) -> tuple[str, int] | None:
    """Splits a row reference into ``(csv path, line)``; None if ``text`` is not one."""
    match = _ROW_REFERENCE.match(text)
    if match is None:
        return None
    return match.group("path"), int(match.group("line"))


def is_row_reference(text: str) -> bool:
    """True if ``text`` is a row reference made by :func:`row_reference`."""
    return _ROW_REFERENCE.match(text) is not None


def row_image_loader(references: Sequence[str]) -> Callable[[int], np.ndarray]:
    """Returns ``load(i)``: the (48, 48) uint8 grey image of ``references[i]``.

    The CSV files are parsed (once per process, see :func:`read_fer2013_csv`)
    when the loader is made.

    Args:
        references: Row references (:func:`row_reference`).

    Returns:
        The loader; it raises :class:`~vidseq.errors.SourceReadError` naming the
        reference for a row that is not a valid FER-2013 row of its file.

    Raises:
        SourceReadError: An entry is not a row reference, or its CSV file cannot
            be read.
    """
    parsed = []
    for reference in references:
        entry = parse_row_reference(reference)
        if entry is None:
            raise SourceReadError(reference, "not a FER-2013 row reference (<csv>#line=<N>)")
        parsed.append(entry)
    tables = {}
    for path, _ in parsed:
        if path not in tables:
            try:
                tables[path] = read_fer2013_csv(path)
            except UsageError as error:
                raise SourceReadError(path, str(error)) from None

    def load(index: int) -> np.ndarray:
        path, line = parsed[index]
        image = tables[path].image(line)
        if image is None:
            raise SourceReadError(
                references[index], f"line {line} is not a valid FER-2013 row of {path}"
            )
        return image

    return load


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
