"""CSV manifest source: ``path,label[,split][,group]``.

A header row is required; columns are found by name (any order, case
ignored; other columns are ignored)::

    path,label,split,group
    clips/walk_01.mp4,walk,train,walk_long_video_1
    clips/walk_02.mp4,walk,train,walk_long_video_1
    clips/run_01.mp4,run,test,run_long_video_4

* ``path``: a video file or frame directory, relative to the CSV's folder
  (absolute paths are used as they are). The path as written is the video id.
* ``label``: a class name; ``class_names`` are the sorted distinct labels.
* ``split`` (optional): ``train``, ``val`` or ``test`` (also ``training``,
  ``valid``, ``validation``, ``testing``). Without the column, the videos get a
  group-aware 70/15/15 split.
* ``group`` (optional): videos of one group never land on two sides of the
  split; a manifest whose splits put one group on two sides is refused. An empty
  or absent group falls back to a UCF-style ``_gNN_cNN`` in the file name, then
  to the video itself.

Errors name the CSV file and the line.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from vidseq.errors import UsageError
from vidseq.extract.sources.csv_table import csv_table
from vidseq.extract.sources.group_split import check_group_disjoint
from vidseq.extract.sources.items import (
    CSV_SUFFIXES,
    Dataset,
    VideoItem,
    absolute,
    finish_dataset,
    group_from_name,
    split_by_groups,
)

NAME = "manifest"
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
EXPECTED = "path,label[,split][,group]"


@dataclass(frozen=True)
class _Record:
    """One parsed row: where it is, the path as written, and its fields."""

    line: int
    video_id: str
    source: str
    label: str
    split: str
    group: str


def detect(path: Path) -> bool:
    """True for a file with a CSV suffix (``.csv``, ``.tsv``, ``.txt``)."""
    path = Path(path)
    return path.is_file() and path.suffix.lower() in CSV_SUFFIXES


def load(csv_path, *, seed: int = 0) -> Dataset:
    """Reads a CSV manifest.

    Args:
        csv_path: The CSV file; relative video paths are relative to its folder.
        seed: Seed of the group-aware split when the CSV has no split column.

    Returns:
        A :class:`~vidseq.extract.sources.items.Dataset` (source ``"manifest"``).

    Raises:
        UsageError: A missing header column, a row with a missing path, label
            or split, an unknown split name, a video listed twice, or a group
            on two sides of the given split; the message names file and line.
    """
    csv_path = absolute(csv_path)
    columns, position, rows = _read_rows(csv_path)
    records = []
    seen: dict[str, int] = {}
    for line, row in rows:
        record = _parse_row(csv_path, line, row, columns, position)
        if record.source in seen:
            raise UsageError(
                f"{csv_path}, line {line}: {record.video_id!r} is already listed on line "
                f"{seen[record.source]}"
            )
        seen[record.source] = line
        records.append(record)
    if not records:
        raise UsageError(f"{csv_path}: no rows after the header; expected lines {EXPECTED}")
    class_names = sorted({record.label for record in records})
    label_of = {name: i for i, name in enumerate(class_names)}
    items = [VideoItem(r.video_id, r.source, label_of[r.label], r.split, r.group) for r in records]
    if "split" in position:
        _check_given_split(csv_path, items, records)
        items = [item if item.group else replace(item, group=item.video_id) for item in items]
        warnings = []
    else:
        items.sort(key=lambda item: item.video_id)
        items, warnings = split_by_groups(items, seed=seed)
    missing = [(r.line, r.video_id) for r in records if not Path(r.source).exists()]
    if missing:
        warnings.append(_missing_warning(csv_path, missing))
    return finish_dataset(class_names, items, warnings, NAME)


def _read_rows(csv_path: Path):
    """Returns (lower-cased header columns, column positions, [(line number, row)])."""
    with csv_table(csv_path, ("path", "label"), f"a header {EXPECTED}") as (_, columns, rows):
        position = {
            name: columns.index(name)
            for name in ("path", "label", "split", "group")
            if name in columns
        }
        return columns, position, list(rows)


def _parse_row(csv_path: Path, line: int, row: list[str], columns, position) -> _Record:
    """One row's fields, checked; the video path made absolute against the CSV's folder."""
    where = f"{csv_path}, line {line}"
    if len(row) < max(position.values()) + 1:
        raise UsageError(
            f"{where}: expected {len(columns)} fields ({','.join(columns)}), found {len(row)}"
        )
    path_text = row[position["path"]].strip()
    label = row[position["label"]].strip()
    if not path_text:
        raise UsageError(f"{where}: empty path; expected a video file or frame folder")
    if not label:
        raise UsageError(f"{where}: empty label for {path_text!r}; expected a class name")
    split = _split(where, row[position["split"]]) if "split" in position else ""
    group = row[position["group"]].strip() if "group" in position else ""
    video_path = Path(path_text)
    source = absolute(video_path if video_path.is_absolute() else csv_path.parent / video_path)
    return _Record(line, path_text, str(source), label, split, group or group_from_name(path_text))


def _split(where: str, text: str) -> str:
    raw = text.strip()
    if not raw:
        raise UsageError(
            f"{where}: empty split; expected train, val or test (or no split column "
            "at all, for an automatic group-aware split)"
        )
    split = SPLIT_ALIASES.get(raw.lower())
    if split is None:
        raise UsageError(f"{where}: unknown split {raw!r}; expected train, val or test")
    return split


def _check_given_split(csv_path: Path, items: list[VideoItem], records: list[_Record]) -> None:
    """Refuses a split column that puts one group on two sides."""
    try:
        check_group_disjoint(
            [item.group or item.video_id for item in items],
            [item.split for item in items],
            names=[f"line {record.line}" for record in records],
        )
    except UsageError as error:
        raise UsageError(f"{csv_path}: {error}") from None


def _missing_warning(csv_path: Path, missing: list[tuple[int, str]]) -> str:
    shown = ", ".join(f"line {line} ({vid!r})" for line, vid in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return (
        f"{csv_path}: {len(missing)} listed videos are missing on disk: {shown}{more}; "
        "extraction will record them as failed"
    )
