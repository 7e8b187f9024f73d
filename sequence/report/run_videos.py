"""The videos of a run's page: the chosen ones, their filmstrips and frame weights, the missing.

Filmstrips come from the cache the run names (its frame indices and
timestamps, its ``FrameSpec``); a cache or video that has moved leaves the
page whole, with the missing videos marked and one warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vidseq.cache.store import FeatureStore
from vidseq.errors import UsageError
from vidseq.sequence.report.filmstrip import Filmstrip, read_filmstrips, thumb_size
from vidseq.sequence.report.frame_weights import cached_frame_weights
from vidseq.sequence.report.selection import select_videos
from vidseq.sequence.runs.run_dir import is_end_to_end

WEIGHTED_HEADS = ("attention", "attentive", "transformer")
"""Heads whose model is loaded to read per-frame weights (see ``frame_weights``)."""

PREDICTIONS_MISSING = (
    "This run's metrics.json has no per-video predictions (it was evaluated by an "
    "older vidseq). Run `vidseq evaluate RUN`, then `vidseq report RUN` again."
)


@dataclass
class RunVideos:
    """What the page shows of a run's evaluated videos.

    Attributes:
        wrong: The misclassified videos shown (dicts for the template).
        unsure: The least confident right videos shown.
        num_wrong: Misclassified videos in all.
        cells: ``{(true, predicted): [(index, name), ...]}`` of every evaluated video.
        missing: How many shown videos could not be read.
        warnings: Lines for the user.
        predictions_missing: Why there are no videos, or "".
    """

    wrong: list = field(default_factory=list)
    unsure: list = field(default_factory=list)
    num_wrong: int = 0
    cells: dict = field(default_factory=dict)
    missing: int = 0
    warnings: list = field(default_factory=list)
    predictions_missing: str = ""


def confusion_cells(records, class_names):
    """``{(true, predicted): [(index, name), ...]}`` of the evaluated videos, sorted by cell."""
    position = {name: i for i, name in enumerate(class_names)}
    cells = {}
    for r in records:
        key = (position[r["label"]], position[r["top"][0][0]])
        cells.setdefault(key, []).append((int(r["index"]), r.get("id") or f"#{r['index']}"))
    return dict(sorted(cells.items()))


def _strips(run_dir, config, videos):
    """Filmstrips and frame weights of ``videos`` (ShownVideo), from the run's cache."""
    cache = config.get("cache_path")
    if not cache:
        reason = "the run was trained from a dataset, not a cache: no frame indices recorded"
        return [Filmstrip(path="", missing=reason) for _ in videos], None, reason
    try:
        store = FeatureStore(cache)
    except (UsageError, OSError) as e:
        reason = f"cache {cache} cannot be read ({str(e).splitlines()[0]})"
        return [Filmstrip(path="", missing=reason) for _ in videos], None, reason
    with store:
        indices = [v.index for v in videos]
        changed = [
            i >= len(store) or (v.video_id is not None and store.video_ids[i] != v.video_id)
            for i, v in zip(indices, videos, strict=True)
        ]
        readable = [i for i, bad in zip(indices, changed, strict=True) if not bad]
        strips = iter(read_filmstrips(store, readable, config["input_size"]))
        out = [
            Filmstrip(path="", missing="the cache no longer lists this video at this index")
            if bad
            else next(strips)
            for bad in changed
        ]
        weights = None
        if config["head"].get("head") in WEIGHTED_HEADS and not is_end_to_end(config) and readable:
            from vidseq.sequence.runs.saved_run import load_run  # TensorFlow, only when needed

            model = load_run(run_dir).model
            weights = cached_frame_weights(model, store, indices, int(config["frames"]))
    return out, weights, None


def _card(video, strip, weights, size):
    """The template's dict of one video."""
    frames = []
    for k, frame in enumerate(strip.frames):
        w = None if weights is None or k >= len(weights) else float(weights[k])
        bar = 0.0 if w is None else round(min(1.0, w * len(weights)) * size[1], 1)
        frames.append({**frame, "weight": w, "bar": bar})
    return {
        "index": video.index,
        "name": video.video_id or f"#{video.index}",
        "label": video.label,
        "predicted": video.predicted,
        "correct": video.correct,
        "top": video.top,
        "strip": {**vars(strip), "frames": frames},
    }


def run_videos(run_dir, config, metrics, max_videos):
    """The :class:`RunVideos` of a run.

    Args:
        run_dir: The run directory.
        config: Its config.json.
        metrics: Its metrics.json.
        max_videos: At most this many videos shown (see ``selection.select_videos``).
    """
    records = metrics.get("videos")
    if records is None:
        return RunVideos(predictions_missing=PREDICTIONS_MISSING)
    wrong, unsure, num_wrong = select_videos(records, max_videos)
    chosen = wrong + unsure
    strips, weights, reason = _strips(run_dir, config, chosen) if chosen else ([], None, None)
    size = thumb_size(config["input_size"])
    cards = [
        _card(v, s, None if weights is None else weights[k], size)
        for k, (v, s) in enumerate(zip(chosen, strips, strict=True))
    ]
    out = RunVideos(
        wrong=cards[: len(wrong)],
        unsure=cards[len(wrong) :],
        num_wrong=num_wrong,
        cells=confusion_cells(records, list(metrics["class_names"])),
        missing=sum(1 for s in strips if s.missing),
    )
    if out.missing:
        why = reason or "moved or unreadable"
        out.warnings.append(
            f"{out.missing} of the {len(chosen)} videos shown are missing ({why}); "
            "the page marks them"
        )
    return out
