"""The FER-2013 CSV file: its rows parsed once per process, and row references.

A CSV clip's source is a tuple of row references ``"<absolute csv path>#line=<N>"``;
:func:`row_image_loader` reads their images from the parsed table (see
:mod:`vidseq.extract.sources.fer2013`, which registers it as a clip loader).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from vidseq.errors import SourceReadError, UsageError
from vidseq.extract.sources.csv_table import csv_table
from vidseq.extract.sources.items import absolute

FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""Class names in the dataset's order: the emotion id is the index."""

IMAGE_SIZE = 48
NUM_PIXELS = IMAGE_SIZE * IMAGE_SIZE

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


ROW_REFERENCE_MARK = "#line="
_ROW_REFERENCE = re.compile(r"^(?P<path>.+)#line=(?P<line>[0-9]+)$")
_NOT_PIXEL_TEXT = str.maketrans("", "", "0123456789 \t")
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
