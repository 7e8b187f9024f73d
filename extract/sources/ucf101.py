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
from vidseq.extract.sources.items import (
    UCF_LISTS_DIR,
    VIDEO_EXTENSIONS,
    Dataset,
    VideoItem,
    absolute,
    finish_dataset,
    group_from_name,
)

NAME = "ucf101"
SPLITS = (1, 2, 3)
_LIST_FILES = (
    ("train", "trainlist", "training list (lines 'Class/v_Class_gGG_cCC.avi <label>')"),
    ("test", "testlist", "test list (lines 'Class/v_Class_gGG_cCC.avi')"),
)


def detect(path: Path) -> bool:
    """True for a folder holding the official lists folder ``ucfTrainTestlist/``."""
    path = Path(path)
    return path.is_dir() and (path / UCF_LISTS_DIR).is_dir()


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


def load(root, *, split: int = 1) -> Dataset:
    """Reads a UCF-101 style dataset with its official split lists.

    Args:
        root: The folder holding the class folders and ``ucfTrainTestlist/``.
        split: Which official split: 1, 2 or 3.

    Returns:
        A :class:`~vidseq.extract.sources.items.Dataset` (source ``"ucf101"``) with
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
    reader = _SplitLists(root, class_names)
    items = [
        item
        for split_name, list_name, what in _LIST_FILES
        for item in reader.read(lists / f"{list_name}0{split}.txt", what, split_name)
    ]
    if not items:
        raise UsageError(f"{lists}: the split {split} lists name no video")
    return finish_dataset(class_names, items, reader.warnings(split), NAME)


class _SplitLists:
    """Reads the train and test lists of one split against the files on disk."""

    def __init__(self, root: Path, class_names: list[str]):
        self.root = root
        self.class_names = class_names
        self.class_of = {name.lower(): label for label, name in enumerate(class_names)}
        self.disk = _scan_disk(root)
        self.listed: dict[str, tuple[Path, int]] = {}
        self.used_disk: set[str] = set()
        self.missing: list[str] = []
        self.no_group = 0

    def read(self, list_path: Path, what: str, split_name: str) -> list[VideoItem]:
        """The items one list file names, all in split ``split_name``."""
        items = []
        for number, line in _read_lines(list_path, what):
            where = f"{list_path}, line {number}"
            rel, name, label = self._parse(where, line)
            key = rel.lower()
            if key in self.listed:
                first_path, first_line = self.listed[key]
                raise UsageError(
                    f"{where}: {rel!r} is already listed in {first_path.name}, line {first_line}"
                )
            self.listed[key] = (list_path, number)
            group = group_from_name(name)
            if not group:
                self.no_group += 1
                group = rel
            source = str(self._on_disk(rel, name))
            items.append(VideoItem(rel, source, label, split_name, group))
        return items

    def _parse(self, where: str, line: str) -> tuple[str, str, int]:
        """``(Class/file, file, label)`` of one list line."""
        parts = line.split()
        if len(parts) not in (1, 2):
            raise UsageError(f"{where}: expected '<Class>/<file> [<label>]', found {line!r}")
        rel = parts[0].replace("\\", "/")
        folder, _, name = rel.partition("/")
        if not folder or not name or "/" in name:
            raise UsageError(f"{where}: expected '<Class>/<file>', found {parts[0]!r}")
        if folder.lower() not in self.class_of:
            raise UsageError(
                f"{where}: class folder {folder!r} is not in "
                f"{self.root / UCF_LISTS_DIR / 'classInd.txt'}"
            )
        label = self.class_of[folder.lower()]
        if len(parts) == 2:
            self._check_label(where, parts[1], folder, label)
        return rel, name, label

    def _check_label(self, where: str, text: str, folder: str, label: int) -> None:
        count = len(self.class_names)
        if not text.isdigit() or not 1 <= int(text) <= count:
            raise UsageError(f"{where}: label must be a class index 1..{count}, found {text!r}")
        if int(text) - 1 != label:
            raise UsageError(
                f"{where}: label {text} ({self.class_names[int(text) - 1]}) "
                f"disagrees with the folder {folder!r} ({label + 1})"
            )

    def _on_disk(self, rel: str, name: str) -> Path:
        """The listed video's path on disk (any case, or its frame folder), or as listed."""
        key = rel.lower()
        on_disk = self.disk.get(key)
        if on_disk is None:
            on_disk = self.disk.get(key.rsplit(".", 1)[0] if "." in name else key)
        if on_disk is None:
            self.missing.append(rel)
            return self.root / rel
        self.used_disk.add(on_disk.lower())
        return self.root / on_disk

    def warnings(self, split: int) -> list[str]:
        """Videos left out, listed but missing, or without a group."""
        warnings = []
        unlisted = len(set(self.disk) - self.used_disk)
        if unlisted:
            warnings.append(
                f"{unlisted} videos under {self.root} are in neither trainlist0{split}.txt nor "
                f"testlist0{split}.txt; left out"
            )
        if self.missing:
            warnings.append(
                f"{len(self.missing)} listed videos are missing on disk (first: "
                f"{self.missing[0]}); extraction will record them as failed"
            )
        if self.no_group:
            warnings.append(
                f"groups unknown for {self.no_group} listed videos (no _gNN_cNN in the name): "
                "each of them is its own group"
            )
        return warnings
