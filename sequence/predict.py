"""Prediction on new videos with a trained run: the run's own backbone, weights and sampling."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidseq.errors import UsageError
from vidseq.extract.dataset import VideoItem
from vidseq.extract.faces import face_crop_from_sampling
from vidseq.extract.pipeline import FeatureExtractor
from vidseq.extract.sampling import SamplingConfig
from vidseq.sequence.run_dir import SequenceRun, load_run
from vidseq.sequence.temporal import prepare_clip


@dataclass
class Prediction:
    """The classification of one video.

    Attributes:
        video: The path as given.
        top: ``(class name, probability)`` pairs, most probable first.
        error: Why the video could not be read (then ``top`` is empty).
    """

    video: str
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "video": self.video,
            "top": [{"label": label, "probability": p} for label, p in self.top],
            "error": self.error,
        }


def load_run_backbone(run: SequenceRun):
    """Rebuilds the backbone that made the run's training features, hash checked.

    Args:
        run: A loaded run directory.

    Returns:
        The :class:`~vidseq.extract.backbones.Backbone`.

    Raises:
        UsageError: The weights found now are not those the run was trained on.
    """
    from vidseq.extract.backbones import load_backbone

    config = run.config
    if config["engine"] != "tf":
        raise UsageError(f"{run.path}: features made with engine {config['engine']!r}; use tf")
    net = load_backbone(
        config["backbone"],
        config["weights"],
        input_size=tuple(config["input_size"]),
        seed=int(config.get("weights_seed", 0)),
    )
    if net.weights_sha256 != config["weights_sha256"]:
        raise UsageError(
            f"{run.path}: the {config['backbone']} weights {config['weights']!r} have SHA-256 "
            f"{net.weights_sha256[:12]}…, but the run was trained on features of "
            f"{config['weights_sha256'][:12]}…; supply the same weights"
        )
    return net


def predict_videos(
    run_dir,
    videos,
    *,
    top_k: int = 5,
    batch_size: int = 32,
    decode_workers: int | None = None,
) -> list[Prediction]:
    """Classifies video files with a trained run.

    Frames are sampled and the features extracted exactly as for the run's
    cache (backbone, weights, input size, sampling, crop and face crop come
    from its config.json), so the head sees what it was trained on.

    Args:
        run_dir: A run directory written by ``train_sequence``.
        videos: Paths of video files (or frame directories).
        top_k: How many labels to report per video.
        batch_size: Frames per CNN batch.
        decode_workers: Decoder threads.

    Returns:
        One :class:`Prediction` per video, in the order given.

    Raises:
        UsageError: Incomplete run directory, or weights that differ from the run's.
    """
    if top_k < 1:
        raise UsageError(f"--top-k must be at least 1. Received: {top_k}")
    run = load_run(run_dir)
    net = load_run_backbone(run)
    recorded = dict(run.config["sampling"])
    extractor = FeatureExtractor(
        net,
        SamplingConfig.from_dict(recorded),
        crop=recorded.get("crop", "resize"),
        face_crop=face_crop_from_sampling(recorded),
        batch_size=batch_size,
        decode_workers=decode_workers,
    )
    items = [
        VideoItem(video_id=str(v), source=str(Path(v).resolve()), label=-1, split="", group="")
        for v in videos
    ]
    predictions = {item.video_id: Prediction(item.video_id) for item in items}
    clips = {}
    for item, result in extractor.run(items):
        if isinstance(result, Exception):
            predictions[item.video_id].error = result.reason
        else:
            clips[item.video_id] = prepare_clip(
                result.features, result.frames.num_valid, run.frames
            )
    if clips:
        names = list(clips)
        probabilities = np.asarray(run.model.predict(np.stack(list(clips.values())), verbose=0))
        for name, row in zip(names, probabilities, strict=True):
            best = np.argsort(row)[::-1][:top_k]
            predictions[name].top = [(run.class_names[i], float(row[i])) for i in best]
    return [predictions[item.video_id] for item in items]
