"""``vidseq make-sample`` as one API call: the sample data set, as a result that prints itself.

:func:`write_sample` writes the data set with
:func:`~vidseq.extract.sources.sample_data.make_sample` and says what it wrote
(:class:`SampleDataset`: ``.summary()``, ``.to_dict()``), as every command's
function does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vidseq.extract.sources.sample_data import DEFAULT_VIDEOS_PER_CLASS, make_sample


@dataclass
class SampleDataset:
    """What ``vidseq make-sample`` wrote.

    Attributes:
        root: The data set's folder (UCF-101 layout).
        classes: Its class names.
        videos: How many videos it holds.
    """

    root: Path
    classes: list[str] = field(default_factory=list)
    videos: int = 0

    def summary(self) -> str:
        """One line: where, how many videos, which classes."""
        return (
            f"sample dataset written to {self.root}: {self.videos} videos of "
            f"{len(self.classes)} classes ({', '.join(self.classes)})"
        )

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"root": str(self.root), "classes": list(self.classes), "videos": self.videos}


def write_sample(
    out,
    *,
    seed: int = 0,
    classes=None,
    videos_per_class: int = DEFAULT_VIDEOS_PER_CLASS,
    overwrite: bool = False,
    event_fraction=None,
) -> SampleDataset:
    """Writes the offline sample data set (``vidseq make-sample``); see :func:`make_sample`.

    Args:
        out: Folder to create (empty, or an earlier sample with ``overwrite``).
        seed: Seed; the same seed writes the same bytes.
        classes: Class names to write (a list or a comma-separated string).
        videos_per_class: Videos per class.
        overwrite: Replace an earlier make-sample output at ``out``.
        event_fraction: None, or the sparse-event variant's share of event frames.

    Returns:
        The :class:`SampleDataset` written.
    """
    root = make_sample(
        out,
        seed=seed,
        classes=classes,
        videos_per_class=videos_per_class,
        overwrite=overwrite,
        event_fraction=event_fraction,
    )
    videos = sorted(root.glob("*/*.avi"))
    return SampleDataset(root, sorted({video.parent.name for video in videos}), len(videos))
