"""UCF-101 source: class folders plus the official ``ucfTrainTestlist/`` lists.

The layout::

    root/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi
    root/ucfTrainTestlist/classInd.txt     "1 ApplyEyeMakeup"
    root/ucfTrainTestlist/trainlist01.txt  "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
    root/ucfTrainTestlist/testlist01.txt   "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"

(and ``trainlist02/03``, ``testlist02/03`` for splits 2 and 3). Class names
and label ids follow ``classInd.txt`` (label = index - 1). The lists decide
which videos exist: a listed file missing on disk stays an item (extraction
records it as failed), a file on disk in no list is left out and counted in the
warnings. The group (``g08``) is parsed from ``v_<Class>_g<GG>_c<CC>``.

The real data set spells one class differently in folder and file names
(``HandstandPushups/v_HandStandPushups_g01_c01.avi``), and copies of it differ
in the case of folder names; list entries are therefore matched to classes and
to files on disk case-insensitively when the exact spelling is not there.
A listed ``.avi`` that is absent but has a frame directory of the same stem
(``v_X_g01_c01/``) uses that directory.
"""

from __future__ import annotations

from pathlib import Path

from vidseq.errors import UsageError
from vidseq.extract.dataset import (
    UCF_LISTS_DIR,
    VIDEO_EXTENSIONS,
    Dataset,
    VideoItem,
    absolute,
    finish,
    group_from_name,
)

SPLITS = (1, 2, 3)


def _read_lines(path: Path, what: str) -> list[tuple[int, str]]:
    if not path.is_file():
        raise UsageError(f"{path}: not found; expected the UCF-101 {what}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: cannot read it as text ({error})") from None
    return [
        (number, line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def read_class_index(path) -> list[str]:
    """Reads ``classInd.txt`` (lines ``"1 ApplyEyeMakeup"``).

    Args:
        path: The ``classInd.txt`` file.

    Returns:
        The class names, in index order (index 1 first).

    Raises:
        UsageError: A malformed line, a duplicate, or indices that are not
            1..K; the message names the file and line.
    """
    path = Path(path)
    names: dict[int, str] = {}
    seen: dict[str, int] = {}
    for number, line in _read_lines(path, "class index (lines '1 ApplyEyeMakeup')"):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise UsageError(
                f"{path}, line {number}: expected '<index> <ClassName>' "
                f"(e.g. '1 ApplyEyeMakeup'), found {line!r}"
            )
        index, name = int(parts[0]), parts[1]
        if index in names:
            raise UsageError(f"{path}, line {number}: index {index} appears twice")
        if name.lower() in seen:
            raise UsageError(
                f"{path}, line {number}: class {name!r} already listed on line {seen[name.lower()]}"
            )
        names[index] = name
        seen[name.lower()] = number
    if not names:
        raise UsageError(f"{path}: empty; expected lines '<index> <ClassName>'")
    if sorted(names) != list(range(1, len(names) + 1)):
        raise UsageError(
            f"{path}: class indices must run 1..{len(names)} without gaps; "
            f"found {sorted(names)[:10]}{'...' if len(names) > 10 else ''}"
        )
    return [names[i] for i in range(1, len(names) + 1)]


def _scan_disk(root: Path) -> dict[str, str]:
    """Maps lower-cased ``Class/file`` to the spelling on disk (videos and frame dirs)."""
    found = {}
    for class_dir in root.iterdir():
        if not class_dir.is_dir() or class_dir.name == UCF_LISTS_DIR:
            continue
        if class_dir.name.startswith("."):
            continue
        for entry in class_dir.iterdir():
            if entry.name.startswith("."):
                continue
            if entry.is_dir() or entry.suffix.lower() in VIDEO_EXTENSIONS:
                rel = f"{class_dir.name}/{entry.name}"
                found[rel.lower()] = rel
    return found


def load_ucf101(root, *, split: int = 1) -> Dataset:
    """Reads a UCF-101 style dataset with its official split lists.

    Args:
        root: The folder holding the class folders and ``ucfTrainTestlist/``.
        split: Which official split: 1, 2 or 3.

    Returns:
        A :class:`~vidseq.extract.dataset.Dataset` (source ``"ucf101"``) with
        splits ``"train"`` and ``"test"`` (the official lists have no
        validation part).

    Raises:
        UsageError: A missing or malformed list file (naming file and line),
            an unknown class, a label that disagrees with the folder, or a
            video listed twice.
    """
    root = absolute(root)
    if split not in SPLITS:
        raise UsageError(f"UCF-101 split must be 1, 2 or 3. Received: split={split!r}")
    lists = root / UCF_LISTS_DIR
    if not lists.is_dir():
        raise UsageError(
            f"{lists}: not found; expected the official UCF-101 lists (classInd.txt, "
            "trainlist0N.txt, testlist0N.txt) in it"
        )
    class_names = read_class_index(lists / "classInd.txt")
    class_of = {name.lower(): label for label, name in enumerate(class_names)}
    disk = _scan_disk(root)

    items = []
    listed: dict[str, tuple[Path, int]] = {}
    used_disk = set()
    missing = []
    no_group = 0
    for split_name, list_name in (("train", "trainlist"), ("test", "testlist")):
        list_path = lists / f"{list_name}0{split}.txt"
        what = (
            "training list (lines 'Class/v_Class_gGG_cCC.avi <label>')"
            if split_name == "train"
            else "test list (lines 'Class/v_Class_gGG_cCC.avi')"
        )
        for number, line in _read_lines(list_path, what):
            parts = line.split()
            where = f"{list_path}, line {number}"
            if len(parts) not in (1, 2):
                raise UsageError(f"{where}: expected '<Class>/<file> [<label>]', found {line!r}")
            rel = parts[0].replace("\\", "/")
            folder, _, name = rel.partition("/")
            if not folder or not name or "/" in name:
                raise UsageError(f"{where}: expected '<Class>/<file>', found {parts[0]!r}")
            if folder.lower() not in class_of:
                raise UsageError(
                    f"{where}: class folder {folder!r} is not in {lists / 'classInd.txt'}"
                )
            label = class_of[folder.lower()]
            if len(parts) == 2:
                if not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(class_names):
                    raise UsageError(
                        f"{where}: label must be a class index 1..{len(class_names)}, "
                        f"found {parts[1]!r}"
                    )
                if int(parts[1]) - 1 != label:
                    raise UsageError(
                        f"{where}: label {parts[1]} ({class_names[int(parts[1]) - 1]}) "
                        f"disagrees with the folder {folder!r} ({label + 1})"
                    )
            key = rel.lower()
            if key in listed:
                first_path, first_line = listed[key]
                raise UsageError(
                    f"{where}: {rel!r} is already listed in {first_path.name}, line {first_line}"
                )
            listed[key] = (list_path, number)

            on_disk = disk.get(key)
            if on_disk is None:
                stem_key = key.rsplit(".", 1)[0] if "." in name else key
                on_disk = disk.get(stem_key)
            if on_disk is None:
                missing.append(rel)
                source = root / rel
            else:
                used_disk.add(on_disk.lower())
                source = root / on_disk
            group = group_from_name(name)
            if not group:
                no_group += 1
                group = rel
            items.append(
                VideoItem(
                    video_id=rel, source=str(source), label=label, split=split_name, group=group
                )
            )

    if not items:
        raise UsageError(f"{lists}: the split {split} lists name no video")
    warnings = []
    unlisted = len(set(disk) - used_disk)
    if unlisted:
        warnings.append(
            f"{unlisted} videos under {root} are in neither trainlist0{split}.txt nor "
            f"testlist0{split}.txt; left out"
        )
    if missing:
        warnings.append(
            f"{len(missing)} listed videos are missing on disk (first: {missing[0]}); "
            "extraction will record them as failed"
        )
    if no_group:
        warnings.append(
            f"groups unknown for {no_group} listed videos (no _gNN_cNN in the name): "
            "each of them is its own group"
        )
    return finish(class_names, items, warnings, "ucf101")
