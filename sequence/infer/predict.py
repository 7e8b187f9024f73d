"""Prediction on new videos with a trained run: the run's own backbone, weights and FrameSpec."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from vidseq.errors import SourceReadError, UsageError
from vidseq.extract.models.engines import check_engine
from vidseq.extract.pipeline import FeatureExtractor, default_decode_workers
from vidseq.extract.sources.items import VideoItem
from vidseq.sequence.data.batches import predict_fixed_batch
from vidseq.sequence.data.frame_clips import FrameVideos, read_clip
from vidseq.sequence.data.temporal import prepare_clip
from vidseq.sequence.infer.run_classifier import run_engine, top_labels
from vidseq.sequence.runs.saved_run import load_run

END_TO_END_BATCH = 8
"""Most clips an end-to-end run decodes and classifies at once (memory: T frames each)."""


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

    def summary(self) -> str:
        """One line: ``video: label p, label p`` (or why it could not be read)."""
        if self.error:
            return f"{self.video}: failed: {self.error}"
        return f"{self.video}: " + ", ".join(f"{label} {p:.3f}" for label, p in self.top)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "video": self.video,
            "top": [{"label": label, "probability": p} for label, p in self.top],
            "error": self.error,
        }


def predict_videos(
    run_dir,
    videos,
    *,
    top_k: int = 5,
    batch_size: int = 32,
    decode_workers: int | None = None,
    engine: str = "tf",
    precision: str = "fp32",
) -> list[Prediction]:
    """Classifies video files with a trained run.

    Frames are sampled and framed with the run's ``FrameSpec``, and for a
    feature run the features extracted with its backbone and weights
    (SHA-256 checked), so the head sees what it was trained on.

    Args:
        run_dir: A run directory (feature or end-to-end).
        videos: Paths of video files (or frame directories).
        top_k: How many labels to report per video.
        batch_size: Frames per CNN batch (feature runs); clips per batch of an
            end-to-end run (at most 8).
        decode_workers: Decoder threads.
        engine: What runs the frozen backbone: ``"tf"`` or ``"openvino"``
            (``vidseq[openvino]``); whichever engine made the run's cache.
            An end-to-end (fine-tuned) run always runs with TensorFlow.
        precision: Feature runs: ``"fp32"``, ``"bf16"`` or ``"int8"`` (the
            model quantised beside the run's cache; see
            :func:`~vidseq.sequence.infer.run_classifier.run_engine`).

    Returns:
        One :class:`Prediction` per video, in the order given.

    Raises:
        UsageError: Incomplete run directory, weights that differ from the
            run's, an unknown engine, openvino without the package, or openvino
            asked for an end-to-end run.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise UsageError(f"top_k must be an integer >= 1. Received: top_k={top_k!r}")
    check_engine(engine)
    run = load_run(run_dir)
    paths = [str(v) for v in videos]
    if run.end_to_end:
        if precision != "fp32":
            raise UsageError(
                f"{run_dir}: an end-to-end (fine-tuned) run predicts with its whole Keras "
                f"model in fp32. Received: precision={precision!r}"
            )
        if engine != "tf":
            raise UsageError(
                f"{run_dir}: an end-to-end (fine-tuned) run predicts with its whole Keras "
                f"model, so engine must be 'tf'. Received: engine={engine!r}"
            )
        batch = min(batch_size, END_TO_END_BATCH)
        return _predict_clips(run, paths, top_k, batch, decode_workers)
    runner = run_engine(run, engine, batch_size, precision)
    return _predict_features(run, paths, top_k, batch_size, decode_workers, runner)


def _predict_features(run, paths, top_k, batch_size, decode_workers, engine):
    """predict_videos for a feature run: extract features, then run the head on fixed batches."""
    spec = run.frame_spec
    extractor = FeatureExtractor(
        engine.net,
        spec,
        batch_size=batch_size,
        decode_workers=decode_workers,
        engine=engine,
    )
    items = [
        VideoItem(video_id=p, source=os.path.abspath(p), label=-1, split="", group="")
        for p in paths
    ]
    predictions = {p: Prediction(p) for p in paths}
    clips = {}
    for item, result in extractor.run(items):
        if isinstance(result, Exception):
            predictions[item.video_id].error = result.reason
        else:
            clips[item.video_id] = prepare_clip(
                result.features, result.frames.num_valid, run.frames
            )
    names = list(clips)
    for start in range(0, len(names), batch_size):
        chunk = names[start : start + batch_size]
        rows = predict_fixed_batch(run.model, np.stack([clips[n] for n in chunk]), batch_size)
        for name, row in zip(chunk, rows, strict=True):
            predictions[name].top = top_labels(row, run.class_names, top_k)
    return [predictions[p] for p in paths]


def _predict_clips(run, paths, top_k, batch_size, decode_workers):
    """predict_videos for an end-to-end run: decodes clips (in threads) and runs the whole model.

    Frames are read with the run's ``FrameSpec``, and its centre sample of
    ``frames`` rows is taken, as evaluation does.
    """
    listed = FrameVideos(
        video_ids=np.asarray(paths, dtype=object),
        sources=[os.path.abspath(p) for p in paths],
        labels=np.full(len(paths), -1, dtype=np.int64),
        splits=np.asarray([""] * len(paths), dtype=object),
        groups=np.asarray([""] * len(paths), dtype=object),
        class_names=run.class_names,
        frame_spec=run.frame_spec,
        input_size=run.input_size,
    )
    predictions = [Prediction(p) for p in paths]

    def read(i):
        try:
            return read_clip(listed, i, run.frames)
        except SourceReadError as error:
            return error

    workers = decode_workers or default_decode_workers()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vidseq-decode") as pool:
        for start in range(0, len(paths), batch_size):  # memory: one batch of clips at a time
            chunk = list(range(start, min(start + batch_size, len(paths))))
            clips = {}
            for i, result in zip(chunk, pool.map(read, chunk), strict=True):
                if isinstance(result, SourceReadError):
                    predictions[i].error = result.reason
                else:
                    clips[i] = result
            if clips:
                x = np.stack(list(clips.values()))
                rows = predict_fixed_batch(run.model, x, batch_size)
                for i, row in zip(clips, rows, strict=True):
                    predictions[i].top = top_labels(row, run.class_names, top_k)
    return predictions
