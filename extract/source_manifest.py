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

from pathlib import Path

from vidseq.errors import UsageError
from vidseq.extract.csv_table import csv_table
from vidseq.extract.dataset import (
    Dataset,
    VideoItem,
    absolute,
    finish,
    group_from_name,
    split_by_groups,
)
from vidseq.extract.splits import check_group_disjoint

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


def load_manifest(csv_path, *, seed: int = 0) -> Dataset:
    """Reads a CSV manifest.

    Args:
        csv_path: The CSV file; relative video paths are relative to its folder.
        seed: Seed of the group-aware split when the CSV has no split column.

    Returns:
        A :class:`~vidseq.extract.dataset.Dataset` (source ``"manifest"``).

    Raises:
        UsageError: A missing header column, a row with a missing path, label
            or split, an unknown split name, a video listed twice, or a group
            on two sides of the given split; the message names file and line.
    """
    csv_path = absolute(csv_path)
    base = csv_path.parent
    columns, position, rows = _read_rows(csv_path)

    has_split = "split" in position
    has_group = "group" in position
    records = []
    seen: dict[str, int] = {}
    for line, row in rows:
        where = f"{csv_path}, line {line}"
        needed = max(position.values()) + 1
        if len(row) < needed:
            raise UsageError(
                f"{where}: expected {len(columns)} fields ({','.join(columns)}), found {len(row)}"
            )
        path_text = row[position["path"]].strip()
        label = row[position["label"]].strip()
        if not path_text:
            raise UsageError(f"{where}: empty path; expected a video file or frame folder")
        if not label:
            raise UsageError(f"{where}: empty label for {path_text!r}; expected a class name")
        split = ""
        if has_split:
            raw = row[position["split"]].strip()
            if not raw:
                raise UsageError(
                    f"{where}: empty split; expected train, val or test (or no split column "
                    "at all, for an automatic group-aware split)"
                )
            split = SPLIT_ALIASES.get(raw.lower())
            if split is None:
                raise UsageError(f"{where}: unknown split {raw!r}; expected train, val or test")
        group = row[position["group"]].strip() if has_group else ""
        group = group or group_from_name(path_text)
        video_path = Path(path_text)
        source = video_path if video_path.is_absolute() else base / video_path
        source = absolute(source)
        key = str(source)
        if key in seen:
            raise UsageError(f"{where}: {path_text!r} is already listed on line {seen[key]}")
        seen[key] = line
        records.append((line, path_text, str(source), label, split, group))

    if not records:
        raise UsageError(f"{csv_path}: no rows after the header; expected lines {EXPECTED}")
    class_names = sorted({record[3] for record in records})
    label_of = {name: i for i, name in enumerate(class_names)}
    items = [
        VideoItem(video_id=vid, source=src, label=label_of[label], split=split, group=group)
        for _, vid, src, label, split, group in records
    ]
    missing_files = [(line, vid) for line, vid, src, *_ in records if not Path(src).exists()]

    if has_split:
        try:
            check_group_disjoint(
                [item.group or item.video_id for item in items],
                [item.split for item in items],
                names=[f"line {record[0]}" for record in records],
            )
        except UsageError as error:
            raise UsageError(f"{csv_path}: {error}") from None
        items = [item if item.group else _own_group(item) for item in items]
        warnings = []
    else:
        items.sort(key=lambda item: item.video_id)
        items, warnings = split_by_groups(items, seed=seed)
    if missing_files:
        shown = ", ".join(f"line {line} ({vid!r})" for line, vid in missing_files[:5])
        more = f" and {len(missing_files) - 5} more" if len(missing_files) > 5 else ""
        warnings.append(
            f"{csv_path}: {len(missing_files)} listed videos are missing on disk: {shown}{more}; "
            "extraction will record them as failed"
        )
    return finish(class_names, items, warnings, "manifest")


def _read_rows(csv_path: Path):
    """Returns (lower-cased header columns, column positions, [(line number, row)])."""
    with csv_table(csv_path, ("path", "label"), f"a header {EXPECTED}") as (_, columns, rows):
        position = {
            name: columns.index(name)
            for name in ("path", "label", "split", "group")
            if name in columns
        }
        return columns, position, list(rows)


def _own_group(item: VideoItem) -> VideoItem:
    return VideoItem(item.video_id, item.source, item.label, item.split, item.video_id)
