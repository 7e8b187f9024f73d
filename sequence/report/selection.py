"""Which evaluated videos a run's page shows: the wrong ones first, then the least confident right.

Reads the per-video predictions evaluation records in ``metrics.json``
(``videos``: ``index``, ``id``, ``label``, ``top``; see
``vidseq.sequence.runs.evaluation.per_video_predictions``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ShownVideo:
    """One evaluated video as the page shows it.

    Attributes:
        index: Its index in the cache.
        video_id: Its id (None when evaluation recorded none).
        label: The true class name.
        top: ``[name, probability]`` pairs, most probable first.
        correct: The top prediction is the true class.
        margin: How wrong: the top probability minus the true class's
            (0 when right); for a right video, its top probability.
    """

    index: int
    video_id: str | None
    label: str
    top: list
    correct: bool
    margin: float

    @property
    def predicted(self):
        """The top predicted class name."""
        return self.top[0][0]

    def true_probability(self):
        """The probability of the true class among the recorded top ones (0 when not among them)."""
        return next((p for name, p in self.top if name == self.label), 0.0)


def shown_video(record):
    """A :class:`ShownVideo` from one record of metrics.json's ``videos``."""
    top = [[str(name), float(p)] for name, p in record["top"]]
    correct = top[0][0] == record["label"]
    video = ShownVideo(
        index=int(record["index"]),
        video_id=record.get("id"),
        label=str(record["label"]),
        top=top,
        correct=correct,
        margin=0.0,
    )
    video.margin = top[0][1] if correct else top[0][1] - video.true_probability()
    return video


def select_videos(records, max_videos):
    """The misclassified videos (most wrong first) and the least confident right ones.

    Args:
        records: metrics.json's ``videos`` list.
        max_videos: At most this many in all; the misclassified come first,
            the right ones fill what is left.

    Returns:
        ``(wrong, unsure, num_wrong)``: two lists of :class:`ShownVideo`
        and how many videos were misclassified in all (the page says when
        the cap hid some).
    """
    videos = [shown_video(r) for r in records]
    wrong = sorted((v for v in videos if not v.correct), key=lambda v: (-v.margin, v.index))
    right = sorted((v for v in videos if v.correct), key=lambda v: (v.margin, v.index))
    shown_wrong = wrong[:max_videos]
    return shown_wrong, right[: max_videos - len(shown_wrong)], len(wrong)
