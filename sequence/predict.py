"""Prediction on new videos with a trained run: the run's own backbone, weights and sampling."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidseq.errors import UsageError
from vidseq.extract.framespec import FrameSpec
from vidseq.extract.items import VideoItem
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
        UsageError: The weights found now are not those the run was trained on,
            or its features were made by an engine vidseq does not know.
    """
    from vidseq.extract.backbones import load_backbone
    from vidseq.extract.engines import ENGINES

    config = run.config
    # Every known engine gives the same features (to float32 rounding): a run
    # trained on one engine's cache predicts with any of them.
    if config["engine"] not in ENGINES:
        raise UsageError(
            f"{run.path}: features made with engine {config['engine']!r}; "
            f"expected one of {', '.join(ENGINES)}"
        )
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
    engine: str = "tf",
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
        engine: What runs the frozen backbone: ``"tf"`` or ``"openvino"``
            (``vidseq[openvino]``); whichever engine made the run's cache.
            An end-to-end (fine-tuned) run always runs with TensorFlow.

    Returns:
        One :class:`Prediction` per video, in the order given.

    Raises:
        UsageError: Incomplete run directory, weights that differ from the
            run's, an unknown engine, openvino without the package, or openvino
            asked for an end-to-end run.
    """
    from vidseq.extract.engines import check_engine

    if top_k < 1:
        raise UsageError(f"--top-k must be at least 1. Received: {top_k}")
    check_engine(engine)
    run = load_run(run_dir)
    if run.end_to_end:
        if engine != "tf":
            raise UsageError(
                f"{run_dir}: an end-to-end (fine-tuned) run predicts with its whole Keras "
                f"model; --engine {engine} applies to runs on cached features. Use --engine tf"
            )
        return _predict_end_to_end(run, videos, top_k, min(batch_size, 8), decode_workers)
    net = load_run_backbone(run)
    recorded = dict(run.config["sampling"])
    extractor = FeatureExtractor(
        net,
        FrameSpec.from_dict(recorded),
        batch_size=batch_size,
        decode_workers=decode_workers,
        engine=engine,
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


def _top(row, class_names, top_k):
    best = np.argsort(row)[::-1][:top_k]
    return [(class_names[i], float(row[i])) for i in best]


def _predict_end_to_end(run, videos, top_k, batch_size, decode_workers):
    """predict_videos for an end-to-end run: decodes clips (in threads) and runs the whole model.

    Frames are sampled with the run's recorded sampling, crop and face crop,
    and its centre sample of ``frames`` rows is taken, as evaluation does.
    """
    from concurrent.futures import ThreadPoolExecutor

    from vidseq.errors import SourceReadError
    from vidseq.extract.pipeline import default_decode_workers
    from vidseq.sequence.frames_data import FrameVideos, geometry_from_sampling, read_clip

    recorded = dict(run.config["sampling"])
    paths = [str(v) for v in videos]
    listed = FrameVideos(
        video_ids=np.asarray(paths, dtype=object),
        sources=[str(Path(v).resolve()) for v in paths],
        labels=np.full(len(paths), -1, dtype=np.int64),
        splits=np.asarray([""] * len(paths), dtype=object),
        groups=np.asarray([""] * len(paths), dtype=object),
        class_names=run.class_names,
        sampling=SamplingConfig.from_dict(recorded),
        geometry=geometry_from_sampling(recorded, run.config["input_size"]),
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
                rows = np.asarray(run.model.predict_on_batch(np.stack(list(clips.values()))))
                for i, row in zip(clips, rows, strict=True):
                    predictions[i].top = _top(row, run.class_names, top_k)
    return predictions
