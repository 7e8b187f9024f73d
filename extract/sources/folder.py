"""Folder-per-class source: ``root/<class>/<video files or frame directories>``.

Class names are the sorted names of the class folders that hold at least one
video. A video is a file with a known video extension, or a directory of frame
images. There is no split information, so the videos get a group-aware 70/15/15
split: the group comes from a UCF-style ``_gNN_cNN`` in the file name, else
each video is its own group (and the dataset's warnings say so).
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
    is_frame_directory,
    split_by_groups,
)

NAME = "folder"
LAYOUT = "root/<class>/<video files or frame folders>"


def detect(path: Path) -> bool:
    """True for any folder: the layout auto-detection falls back to."""
    return Path(path).is_dir()


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _find_videos(class_dirs: list[Path]) -> tuple[dict[str, list[Path]], int, list[str]]:
    """``(class name -> videos, entries ignored, names of folders without a video)``."""
    found: dict[str, list[Path]] = {}
    ignored = 0
    empty_classes = []
    for class_dir in class_dirs:
        videos = []
        for entry in sorted(filter(_visible, class_dir.iterdir())):
            is_video = entry.is_file() and entry.suffix.lower() in VIDEO_EXTENSIONS
            if is_video or (entry.is_dir() and is_frame_directory(entry)):
                videos.append(entry)
            else:
                ignored += 1
        if videos:
            found[class_dir.name] = videos
        else:
            empty_classes.append(class_dir.name)
    return found, ignored, empty_classes


def load(root, *, seed: int = 0) -> Dataset:
    """Reads a folder-per-class dataset.

    Args:
        root: The dataset folder; each sub-folder is a class.
        seed: Seed of the group-aware train/val/test split.

    Returns:
        A :class:`~vidseq.extract.sources.items.Dataset` (source ``"folder"``).

    Raises:
        UsageError: ``root`` is not a folder, or holds no class folder with a
            video in it.
    """
    root = absolute(root)
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder; expected {LAYOUT}")
    entries = sorted(filter(_visible, root.iterdir()))
    class_dirs = [e for e in entries if e.is_dir() and e.name != UCF_LISTS_DIR]
    found, ignored, empty_classes = _find_videos(class_dirs)
    if not found:
        loose = [e for e in entries if e.is_file() and e.suffix.lower() in VIDEO_EXTENSIONS]
        hint = (
            f" (found {len(loose)} video files directly in it: put them in one folder per class)"
            if loose
            else ""
        )
        raise UsageError(f"{root}: no videos found; expected {LAYOUT}{hint}")

    class_names = sorted(found)
    items = [
        VideoItem(
            video_id=f"{name}/{path.name}",
            source=str(path),
            label=label,
            split="",
            group=group_from_name(path.name),
        )
        for label, name in enumerate(class_names)
        for path in found[name]
    ]
    items.sort(key=lambda item: item.video_id)
    items, warnings = split_by_groups(items, seed=seed)
    if empty_classes:
        warnings.append(
            f"{len(empty_classes)} folders hold no video and are not classes: "
            + ", ".join(empty_classes[:5])
            + (", ..." if len(empty_classes) > 5 else "")
        )
    if ignored:
        warnings.append(
            f"{ignored} entries in class folders are neither video files nor frame folders; "
            "left out"
        )
    return finish_dataset(class_names, items, warnings, NAME)
