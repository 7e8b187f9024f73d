"""The item model every dataset source builds: videos, rejected inputs, datasets.

This module imports no dataset source, so every source (and the frame reader)
can import it without a cycle. It also holds the one set of image and video
file extensions and the small helpers the sources share.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from vidseq.errors import UsageError
from vidseq.extract.sources.group_split import DEFAULT_FRACTIONS, group_split

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
"""File name suffixes (lower case) of video files."""

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"}
)
"""File name suffixes (lower case) of images: frames of a frame folder, faces of a clip."""

CSV_SUFFIXES = frozenset({".csv", ".tsv", ".txt"})
"""File name suffixes (lower case) of table files a source may read (manifests, FER-2013)."""

UCF_LISTS_DIR = "ucfTrainTestlist"
"""The folder of UCF-101's official split lists (never a class folder)."""

_GROUP_PATTERN = re.compile(r"_g(\d+)_c\d+(?!\d)", re.IGNORECASE)


@dataclass(frozen=True)
class VideoItem:
    """One video (or frame directory, or image clip) of a dataset.

    Attributes:
        video_id: Unique id, the dataset-relative path by default
            (``"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"``).
        source: Absolute path of a video file or frame directory, or a tuple of
            clip entries (image paths, or entries a registered clip loader
            reads, see :mod:`vidseq.extract.sources.clips`).
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
        clip_length: Images per clip for a source that cuts single images
            into pseudo-clips (FER-2013); None for videos. Extraction records
            it in the cache's frame spec.
    """

    class_names: list[str]
    items: list[VideoItem]
    warnings: list[str] = field(default_factory=list)
    source: str = ""
    rejected: list[RejectedInput] = field(default_factory=list)
    dropped: int = 0
    clip_length: int | None = None

    def __len__(self) -> int:
        return len(self.items)

    def split_counts(self) -> dict[str, int]:
        """Returns the number of videos per split name (``""`` for unassigned)."""
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.split] = counts.get(item.split, 0) + 1
        return counts

    def summary(self) -> str:
        """One line for humans: source, videos, classes and split sizes."""
        splits = ", ".join(
            f"{name or 'unassigned'} {count}" for name, count in sorted(self.split_counts().items())
        )
        extra = f"; {len(self.rejected)} inputs rejected" if self.rejected else ""
        return (
            f"{self.source or 'dataset'}: {len(self.items)} videos of {len(self.class_names)} "
            f"classes ({splits}){extra}"
        )

    def to_dict(self) -> dict:
        """The dataset as JSON-ready values (clips' entries as lists)."""
        return {
            "source": self.source,
            "class_names": list(self.class_names),
            "items": [{**asdict(item), "source": _jsonable(item.source)} for item in self.items],
            "warnings": list(self.warnings),
            "rejected": [asdict(rejected) for rejected in self.rejected],
            "dropped": self.dropped,
            "clip_length": self.clip_length,
        }


def _jsonable(source: str | tuple[str, ...]) -> str | list[str]:
    return source if isinstance(source, str) else list(source)


def finish_dataset(
    class_names: list[str], items: list[VideoItem], warnings: list[str], source: str
) -> Dataset:
    """Sorts the items by id, checks ids are unique, and builds the Dataset.

    Raises:
        UsageError: Two items share a video id.
    """
    items = sorted(items, key=lambda item: item.video_id)
    for previous, item in itertools.pairwise(items):
        if previous.video_id == item.video_id:
            raise UsageError(f"video id {item.video_id!r} appears twice; ids must be unique")
    return Dataset(class_names=list(class_names), items=items, warnings=warnings, source=source)


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


def is_image_file(name: str) -> bool:
    """True if the file name ``name`` has an image suffix and is not hidden."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def is_frame_directory(path: Path) -> bool:
    """True if ``path`` is a directory holding at least one image file."""
    try:
        return path.is_dir() and any(is_image_file(child.name) for child in path.iterdir())
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
        seed: Seed of :func:`vidseq.extract.sources.group_split.group_split`.
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


def source_from_text(text: str):
    """A cache's ``videos/path`` text as a ``read_frames`` source (a clip's JSON list → tuple)."""
    text = str(text)
    if text.startswith("[") and text.endswith("]"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return text
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
    return text
