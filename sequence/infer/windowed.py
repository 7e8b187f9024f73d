"""Windowed prediction over long videos: one decoding pass, bounded memory.

Each video is decoded once, from the start. The windows are planned from the
container's frame count (:mod:`vidseq.sequence.infer.window_plan`); every frame that some
window samples is decoded once and goes through the backbone once, in batches,
whichever number of windows share it. Its features wait in a small cache keyed
by frame index, and leave it as soon as no later window needs them. A window is
classified by the head as soon as its last frame has features. So memory holds
one CNN batch of frames plus the features of about one window's span, however
long the video is.

The container's frame count is only a first guess, as for
:func:`~vidseq.extract.decode.frames.read_frames`: when the pass counts another number
of frames, the windows are planned again with the real count and the video is
decoded a second time (rare: a broken header).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from vidseq.errors import SourceReadError
from vidseq.extract.decode.frame_stream import SequentialDecoder
from vidseq.sequence.infer.run_classifier import RunClassifier, load_classifier, top_labels
from vidseq.sequence.infer.window_plan import (
    Segment,
    Window,
    check_seconds,
    merge_segments,
    plan_windows,
)


@dataclass
class WindowResult:
    """The classification of one window.

    Attributes:
        start: Start time in seconds.
        end: End time in seconds.
        frame_indices: The source frames sampled (padding included).
        probabilities: (C,) class probabilities.
        top: ``(label, probability)`` pairs, most probable first.
    """

    start: float
    end: float
    frame_indices: list[int]
    probabilities: np.ndarray
    top: list[tuple[str, float]]

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "start": self.start,
            "end": self.end,
            "top": [{"label": label, "probability": p} for label, p in self.top],
            "frame_indices": self.frame_indices,
        }


@dataclass
class VideoTimeline:
    """The windows and segments of one video.

    Attributes:
        path: The video as given.
        class_names: Class names, index = probability column.
        windows: One :class:`WindowResult` per window, in time order.
        segments: Runs of windows with the same top label
            (:func:`~vidseq.sequence.infer.window_plan.merge_segments`).
        fps: The video's frame rate.
        num_frames: Frames decoded.
        error: Why the video could not be read (then there are no windows).
    """

    path: str
    class_names: list[str]
    windows: list[WindowResult] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    fps: float = 0.0
    num_frames: int = 0
    error: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready form: ``{"path", "windows": [...], "segments": [...]}`` (and ``error``)."""
        out = {
            "path": self.path,
            "windows": [w.to_dict() for w in self.windows],
            "segments": [s.to_dict() for s in self.segments],
        }
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class WindowedPrediction:
    """What :func:`predict_windows` returns.

    Attributes:
        videos: One :class:`VideoTimeline` per video, in the order given.
        cnn_frames: Frames that went through the backbone.
        seconds: Wall time.
    """

    videos: list[VideoTimeline]
    cnn_frames: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """One line: videos, windows, CNN frames, seconds and frames/s."""
        windows = sum(len(v.windows) for v in self.videos)
        rate = self.cnn_frames / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{len(self.videos)} video(s), {windows} windows, {self.cnn_frames} frames through "
            f"the CNN in {self.seconds:.1f} s ({rate:.0f} frames/s)"
        )

    def to_dict(self) -> dict:
        """JSON-ready form: ``{"videos": [...]}``."""
        return {"videos": [v.to_dict() for v in self.videos]}


def predict_windows(
    run_dir,
    videos,
    *,
    window,
    stride,
    top_k: int = 5,
    batch_size: int = 32,
    engine: str = "tf",
    progress: bool = False,
    precision: str = "fp32",
) -> WindowedPrediction:
    """Classifies sliding windows of each video with a trained feature run.

    Each window is sampled as the run's cache was (its frame spec), inside the
    window's frame range; see :mod:`vidseq.sequence.infer.window_plan`.

    Args:
        run_dir: A run directory written by ``train_sequence``.
        videos: Paths of video files.
        window: Window length in seconds (ideally the length of the clips the
            run was trained on).
        stride: Seconds between window starts.
        top_k: Labels reported per window.
        batch_size: Frames per backbone call.
        engine: ``"tf"`` or ``"openvino"``.
        progress: Show a progress bar per video.
        precision: ``"fp32"``, ``"bf16"`` or ``"int8"`` (the model quantised
            beside the run's cache; see
            :func:`~vidseq.sequence.infer.run_classifier.run_engine`).

    Returns:
        A :class:`WindowedPrediction`.

    Raises:
        UsageError: Bad window, stride or top_k, or a run that cannot be used
            (see :func:`~vidseq.sequence.infer.run_classifier.load_classifier`).
    """
    check_seconds("window", window)
    check_seconds("stride", stride)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be an integer >= 1. Received: top_k={top_k!r}")
    classifier = load_classifier(run_dir, engine=engine, batch_size=batch_size, precision=precision)
    began = time.perf_counter()
    passes = _WindowPass(classifier, batch_size)
    timelines = []
    for video in videos:
        timeline = VideoTimeline(str(video), classifier.class_names)
        try:
            _predict_video(timeline, passes, window, stride, top_k, progress)
        except SourceReadError as error:
            timeline.error = error.reason
        timelines.append(timeline)
    return WindowedPrediction(timelines, passes.cnn_frames, time.perf_counter() - began)


def _predict_video(timeline, windowed, window, stride, top_k, progress):
    """Fills one timeline: plan from the header count, decode, replan if the count was wrong."""
    decoder = SequentialDecoder(timeline.path, windowed.classifier.geometry)
    sampling = windowed.classifier.spec.sampling

    def run(num_frames):
        plan = plan_windows(
            num_frames, decoder.fps, window=window, stride=stride, sampling=sampling
        )
        return plan, windowed.run(decoder, plan, progress)

    plan, rows = run(decoder.claimed_frames) if decoder.claimed_frames else ([], None)
    if rows is None:
        for _ in decoder.frames([]):  # no header count: this pass only counts
            pass
    if decoder.count != decoder.claimed_frames:
        plan, rows = run(decoder.count)
    names = timeline.class_names
    timeline.fps, timeline.num_frames = decoder.fps, decoder.count
    timeline.windows = [
        WindowResult(
            w.start_s, w.end_s, w.frame_indices.tolist(), row, top_labels(row, names, top_k)
        )
        for w, row in zip(plan, rows, strict=True)
    ]
    best = [int(np.argmax(w.probabilities)) for w in timeline.windows]
    timeline.segments = merge_segments(
        [w.start for w in timeline.windows],
        [w.end for w in timeline.windows],
        [names[i] for i in best],
        [float(w.probabilities[i]) for w, i in zip(timeline.windows, best, strict=True)],
    )


class _WindowPass:
    """Runs decoding passes: shared frames through the backbone once, windows through the head.

    Args:
        classifier: The run's :class:`RunClassifier`.
        batch_size: Frames per backbone call.

    Attributes:
        cnn_frames: Frames that went through the backbone so far.
    """

    def __init__(self, classifier: RunClassifier, batch_size: int):
        self.classifier = classifier
        self.batch_size = batch_size
        self.cnn_frames = 0

    def run(self, decoder: SequentialDecoder, plan: list[Window], progress: bool) -> list:
        """One pass over ``decoder``'s file; returns one probability row per window of ``plan``.

        Windows whose frames the file turns out not to hold get no row (the
        caller sees that the count differs from the plan's and plans again).
        """
        needed = np.unique(np.concatenate([w.frame_indices for w in plan]))
        # keep_from[i]: the smallest frame index that window i or a later one samples.
        firsts = np.array([w.frame_indices.min() for w in plan])
        keep_from = np.minimum.accumulate(firsts[::-1])[::-1]
        state = _PassState(plan, keep_from)
        bar = tqdm(total=len(needed), unit="frame", disable=not progress, leave=False)
        with bar:
            for index, frame in decoder.frames(needed.tolist()):
                state.pending.append((index, frame))
                if len(state.pending) == self.batch_size:
                    self._flush(state)
                    bar.update(self.batch_size)
            bar.update(len(state.pending))
            self._flush(state)
        return state.rows

    def _flush(self, state: _PassState) -> None:
        """Backbone on the pending frames, head on the windows they complete, then eviction."""
        per_clip = self.classifier.clip_frames > 1  # keep the frames: features per window
        if state.pending:
            indices = [index for index, _ in state.pending]
            frames = np.stack([frame for _, frame in state.pending])
            features = frames if per_clip else self.classifier.features(frames)
            self.cnn_frames += 0 if per_clip else len(indices)
            state.features.update(zip(indices, features, strict=True))
            state.newest = indices[-1]
            state.pending = []
        ready = []
        while state.done < len(state.plan) and state.plan[state.done].frame_indices[-1] <= (
            state.newest
        ):
            ready.append(state.plan[state.done])
            state.done += 1
        if ready:
            clips = [
                (np.stack([state.features[int(i)] for i in w.frame_indices]), w.num_valid)
                for w in ready
            ]
            if per_clip:  # a clip encoder groups each window's frames as extraction did
                clips = [(self.classifier.clip_features(f, n), n) for f, n in clips]
                self.cnn_frames += sum(n for _, n in clips)
            state.rows.extend(self.classifier.classify(clips))
        floor = state.keep_from[state.done] if state.done < len(state.plan) else np.inf
        while state.features and next(iter(state.features)) < floor:
            del state.features[next(iter(state.features))]


@dataclass
class _PassState:
    """The moving parts of one decoding pass."""

    plan: list[Window]
    keep_from: np.ndarray
    pending: list = field(default_factory=list)  # (index, frame) awaiting the backbone
    features: dict = field(default_factory=dict)  # frame index -> features, ascending
    newest: int = -1  # highest frame index with features
    done: int = 0  # windows classified
    rows: list = field(default_factory=list)  # probabilities of the classified windows
