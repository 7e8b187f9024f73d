"""Live classification of a stream: camera, file, RTSP, HTTP MJPEG or HLS.

A reader thread reads the stream as fast as it delivers frames, fits each frame
for the CNN (face crop, size) and puts it in a ring buffer that holds the last
``window`` seconds (by arrival time, and never more than a fixed number of
frames). Every ``stride`` seconds the main thread takes the frames in the
buffer, samples them as the run's cache was sampled (its frame spec), runs the
backbone on the sampled frames it has not seen yet (features are kept while
their frame is in the buffer) and the head on the clip, and reports one
:class:`Decision`.

It never falls behind: the reader never waits for the classifier, the buffer
never grows past one window, and a decision always takes the newest window.
When classifying takes longer than a stride, the ticks it overran are skipped,
and frames that leave the buffer without having been in any classified window
are counted as dropped. A local file is played at its own frame rate, as a
camera would deliver it, and ends the watch at its end.

A live stream that stops delivering (closed connection, read timeout, bytes
that decode to no frame) is opened again with exponential backoff, up to
``max_reconnects`` times (default :data:`DEFAULT_MAX_RECONNECTS`) without a
frame in between: an attempt counts until a frame arrives, so a source that
accepts every connection but sends no decodable frame is given up on too. Each
attempt and each recovery is reported through ``log``. When every attempt
fails, :func:`watch` returns with ``status="lost"``. A watch that received no
frame at all has :attr:`WatchSummary.failed` set, whatever ended it.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone

import cv2
import numpy as np

from vidseq.bounds import MAX_CLASSES, check_count
from vidseq.cache.store import FeatureStore
from vidseq.errors import SourceReadError, UsageError
from vidseq.extract.decode.frame_stream import (
    DEFAULT_MAX_RECONNECTS,
    FrameFitter,
    frame_rate,
    is_file_source,
    open_stream,
    parse_source,
)
from vidseq.extract.decode.sampling import select_frames
from vidseq.sequence.infer.run_classifier import RunClassifier, load_classifier, top_labels
from vidseq.sequence.infer.window_plan import check_seconds

BACKOFF_FIRST_S = 0.5
"""Wait before the first reconnection attempt; it doubles with each failed one."""
BACKOFF_MAX_S = 8.0
"""The longest wait between two reconnection attempts."""
MAX_RECONNECTS = 1_000_000
"""The most reconnection attempts ``max_reconnects`` may ask for."""


@dataclass
class Decision:
    """One classification of the last window of a stream.

    Attributes:
        wall_time: When it was made (seconds since the epoch).
        stream_time: The stream's own clock at the window's newest frame, in
            seconds, as the decoder reports it (restarts after a reconnection).
        top: ``(label, probability)`` pairs, most probable first.
        latency: Seconds from the arrival of the window's newest frame to
            this decision.
        frames: Frames in the window.
        dropped: Frames dropped so far (never in any classified window).
    """

    wall_time: float
    stream_time: float
    top: list[tuple[str, float]]
    latency: float
    frames: int
    dropped: int

    def to_dict(self) -> dict:
        """JSON-ready form (``time`` in ISO 8601, UTC)."""
        return {
            "time": datetime.fromtimestamp(self.wall_time, timezone.utc).isoformat(),
            "stream_time": round(self.stream_time, 3),
            "top": [{"label": label, "probability": p} for label, p in self.top],
            "latency_s": round(self.latency, 4),
            "frames": self.frames,
            "dropped": self.dropped,
        }

    def summary(self) -> str:
        """One line for a terminal."""
        clock = datetime.fromtimestamp(self.wall_time).strftime("%H:%M:%S.%f")[:-4]
        top = ", ".join(f"{label} {p:.3f}" for label, p in self.top)
        return (
            f"{clock}  t={self.stream_time:8.2f}s  {top}  "
            f"latency {self.latency * 1000:.0f} ms  dropped {self.dropped}"
        )


@dataclass
class WatchSummary:
    """How a watch ended.

    Attributes:
        status: ``"ended"`` (end of a file), ``"stopped"`` (max_seconds, Ctrl-C,
            SIGTERM) or ``"lost"`` (the stream dropped and every reconnection
            attempt failed).
        decisions: Decisions made.
        frames: Frames received.
        dropped: Frames never in any classified window.
        skipped: Stride ticks skipped because classifying overran them.
        reconnects: Reconnections after which frames arrived again.
        seconds: Wall time from the stream's opening to the end.
        latencies: Each decision's latency, in seconds.
        source: The source watched.
    """

    status: str = "stopped"
    decisions: int = 0
    frames: int = 0
    dropped: int = 0
    skipped: int = 0
    reconnects: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    source: str = ""

    @property
    def failed(self) -> bool:
        """The stream was lost, or not a single frame was received (exit code 1)."""
        return self.status == "lost" or self.frames == 0

    def summary(self) -> str:
        """One line: decisions, frames, drops and latency."""
        if self.frames == 0:
            return (
                f"{self.status}: no frame received from {self.source} in {self.seconds:.1f} s "
                f"({self.reconnects} reconnections); check that it sends video"
            )
        latency = ""
        if self.latencies:
            median, worst = np.median(self.latencies), max(self.latencies)
            latency = f"; latency median {median * 1000:.0f} ms, max {worst * 1000:.0f} ms"
        return (
            f"{self.status}: {self.decisions} decisions in {self.seconds:.1f} s; "
            f"{self.frames} frames received, {self.dropped} dropped, {self.skipped} ticks "
            f"skipped, {self.reconnects} reconnections{latency}"
        )

    def to_dict(self) -> dict:
        """JSON-ready form: the counts, and the latencies' median and maximum in seconds."""
        latencies = [float(x) for x in self.latencies]
        return {
            "status": self.status,
            "decisions": self.decisions,
            "frames": self.frames,
            "dropped": self.dropped,
            "skipped": self.skipped,
            "reconnects": self.reconnects,
            "seconds": round(self.seconds, 3),
            "latency_median_s": round(float(np.median(latencies)), 4) if latencies else None,
            "latency_max_s": round(max(latencies), 4) if latencies else None,
        }


@dataclass
class _Frame:
    number: int  # counted from the first frame received, across reconnections
    arrival: float  # time.monotonic() when read
    stream_time: float
    image: np.ndarray  # fitted for the CNN


class FrameRing:
    """The last ``window`` seconds of frames, shared by the reader and the classifier.

    Args:
        window: Seconds of frames kept (by arrival time).
        capacity: The most frames kept, whatever their times.

    Attributes:
        received: Frames pushed so far.
        dropped: Frames that left without having been in any snapshot.
    """

    def __init__(self, window: float, capacity: int):
        self.window = window
        self._frames: deque[_Frame] = deque()
        self._capacity = capacity
        self._lock = threading.Lock()
        self._covered = -1  # newest frame number in a snapshot so far
        self.received = 0
        self.dropped = 0

    def push(self, frame: _Frame) -> None:
        """Adds the newest frame (reader thread)."""
        with self._lock:
            self._frames.append(frame)
            self.received += 1
            self._trim(frame.arrival)

    def snapshot(self, now: float) -> list[_Frame]:
        """The frames of the last window, oldest first; they count as classified.

        Empty when no frame arrived since the last snapshot (a stalled or
        reconnecting stream): there is nothing new to decide.
        """
        with self._lock:
            self._trim(now)
            if not self._frames or self._frames[-1].number <= self._covered:
                return []
            self._covered = self._frames[-1].number
            return list(self._frames)

    def _trim(self, now: float) -> None:
        frames = self._frames
        while frames and (len(frames) > self._capacity or frames[0].arrival < now - self.window):
            if frames.popleft().number > self._covered:
                self.dropped += 1


class StreamReader(threading.Thread):
    """Reads a stream into a :class:`FrameRing` until told to stop, reconnecting when it drops.

    Args:
        source: What :func:`~vidseq.extract.decode.frame_stream.parse_source` returned.
        capture: The stream, already opened.
        ring: Where frames go.
        fit: A :class:`~vidseq.extract.decode.frame_stream.FrameFitter`.
        max_reconnects: Reconnection attempts without a frame before giving up.
        stop: Set by the owner to stop reading; the reader sets it when done.
        log: Called with one line per reconnection event.

    Attributes:
        status: ``"ended"``, ``"lost"``, or None while reading (or when stopped).
        reconnects: Reconnections after which frames arrived again.
    """

    def __init__(self, source, capture, ring, fit, *, max_reconnects, stop, log):
        super().__init__(name="vidseq-watch-reader", daemon=True)
        self.source, self.capture, self.ring, self.fit = source, capture, ring, fit
        self.max_reconnects, self.stop, self.log = max_reconnects, stop, log
        self.status: str | None = None
        self.reconnects = 0
        self._attempts = 0  # reconnection attempts since the last frame
        self._file = is_file_source(source)

    def run(self) -> None:
        number, started = 0, time.monotonic()
        fps = frame_rate(self.capture)
        try:
            while not self.stop.is_set():
                ok, image = self.capture.read()
                if not ok:
                    if self._file or not self._reopen():
                        if self._file or not self.stop.is_set():  # not stopped by its owner
                            self.status = "ended" if self._file else "lost"
                        return
                    continue
                if self._attempts:  # frames again after reconnecting
                    self.reconnects, self._attempts = self.reconnects + 1, 0
                if self._file:  # play a file at its own rate, as a camera would deliver it
                    self.stop.wait(max(0.0, started + number / fps - time.monotonic()))
                stream_ms = self.capture.get(cv2.CAP_PROP_POS_MSEC)
                stream_time = stream_ms / 1000 if math.isfinite(stream_ms) else number / fps
                self.ring.push(_Frame(number, time.monotonic(), stream_time, self.fit(image)))
                number += 1
        finally:
            self.capture.release()
            self.stop.set()

    def _reopen(self) -> bool:
        """Reconnects with exponential backoff; False when the attempts since the last
        frame are used up or stop was set."""
        self.capture.release()
        while self._attempts < self.max_reconnects:
            self._attempts += 1
            delay = min(BACKOFF_FIRST_S * 2 ** (self._attempts - 1), BACKOFF_MAX_S)
            self.log(
                f"stream lost: {self.source}; reconnecting in {delay:.1f} s "
                f"(attempt {self._attempts}/{self.max_reconnects})"
            )
            if self.stop.wait(delay):
                return False
            try:
                self.capture = open_stream(self.source)
            except SourceReadError:  # still unreachable: try again
                continue
            self.log(f"reconnected: {self.source}")
            return True
        self.log(
            f"stream lost: {self.source}; gave up after {self.max_reconnects} attempts "
            "without a frame"
        )
        return False


def training_clip_seconds(cache_path) -> float:
    """The median length, in seconds, of the videos of a run's cache.

    Raises:
        UsageError: The cache cannot be read (then give the window explicitly).
    """
    try:
        with FeatureStore(cache_path) as store:
            seconds = store.num_source_frames / np.maximum(store.fps, 1e-9)
            return float(np.median(seconds))
    except (OSError, UsageError, ValueError) as error:
        raise UsageError(
            f"window not given, and the run's cache {cache_path} cannot be read to find the "
            f"length of its training clips ({error}); give window=SECONDS"
        ) from None


class _LiveClassifier:
    """Classifies snapshots of the ring, reusing features while their frame is buffered."""

    def __init__(self, classifier: RunClassifier, top_k: int):
        self.classifier = classifier
        self.top_k = top_k
        self._features: dict[int, np.ndarray] = {}  # frame number -> features

    def __call__(self, frames: list[_Frame], dropped: int) -> Decision:
        span = frames[-1].arrival - frames[0].arrival
        fps = (len(frames) - 1) / span if span > 0 else 1.0
        selection = select_frames(self.classifier.spec.sampling, len(frames), fps)
        chosen = [frames[int(i)] for i in selection.indices]
        clip = self._clip(chosen, selection.num_valid, oldest=frames[0].number)
        row = self.classifier.classify([(clip, selection.num_valid)])[0]
        newest = frames[-1]
        return Decision(
            wall_time=time.time(),
            stream_time=newest.stream_time,
            top=top_labels(row, self.classifier.class_names, self.top_k),
            latency=time.monotonic() - newest.arrival,
            frames=len(frames),
            dropped=dropped,
        )

    def _clip(self, chosen: list[_Frame], num_valid: int, *, oldest: int) -> np.ndarray:
        """The (K, D) features of the chosen frames; a frame encoder's are reused."""
        if self.classifier.clip_frames > 1:  # a clip encoder: grouped as extraction did
            return self.classifier.clip_features(np.stack([f.image for f in chosen]), num_valid)
        new = {f.number: f for f in chosen if f.number not in self._features}
        if new:
            features = self.classifier.features(np.stack([f.image for f in new.values()]))
            self._features.update(zip(new, features, strict=True))
        self._features = {n: v for n, v in self._features.items() if n >= oldest}
        return np.stack([self._features[f.number] for f in chosen])


@contextlib.contextmanager
def _stop_on_sigterm(stop: threading.Event):
    """Sets ``stop`` on SIGTERM while inside (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_watch_args(stride, max_seconds, max_reconnects, top_k):
    check_seconds("stride", stride)
    if max_seconds is not None:
        check_seconds("max_seconds", max_seconds)
    check_count("max_reconnects", max_reconnects, low=0, high=MAX_RECONNECTS)
    check_count("top_k", top_k, high=MAX_CLASSES)


def watch(
    run_dir,
    source,
    *,
    window=None,
    stride=1.0,
    max_seconds=None,
    max_reconnects: int = DEFAULT_MAX_RECONNECTS,
    top_k: int = 3,
    engine: str = "tf",
    on_decision=None,
    log=None,
    precision: str = "fp32",
) -> WatchSummary:
    """Classifies a live stream every ``stride`` seconds until it ends or is stopped.

    Args:
        run_dir: A run directory trained on cached features.
        source: A camera index (``0`` or ``"0"``), a video file, or a URL
            (``rtsp://``, ``http(s)://`` MJPEG or HLS): anything OpenCV's
            FFmpeg backend opens.
        window: Seconds of stream per decision; default: the median length of
            the run's training videos (read from its cache).
        stride: Seconds between decisions.
        max_seconds: Stop after this long (default: run until the stream
            ends, Ctrl-C or SIGTERM).
        max_reconnects: Reconnection attempts without a frame in between
            before a live stream counts as lost (default 3).
        top_k: Labels per decision.
        engine: ``"tf"`` or ``"openvino"``.
        on_decision: Called with each :class:`Decision` (from this thread).
        log: Called with one line per reconnection event (default: ignored).
        precision: ``"fp32"``, ``"bf16"`` or ``"int8"`` (see
            :func:`~vidseq.sequence.infer.run_classifier.run_engine`).

    Returns:
        A :class:`WatchSummary`; its ``status`` says how it ended.

    Raises:
        SourceReadError: The source cannot be opened at all.
        UsageError: Bad arguments, or a run that cannot be used.
    """
    _check_watch_args(stride, max_seconds, max_reconnects, top_k)
    classifier = load_classifier(run_dir, engine=engine, precision=precision)
    window = check_seconds("window", window) if window is not None else None
    window = window or training_clip_seconds(classifier.cache_path)
    classifier.warm_up()
    parsed = parse_source(source)
    capture = open_stream(parsed)
    ring = FrameRing(window, capacity=max(64, math.ceil(window * 120)))
    stop = threading.Event()
    reader = StreamReader(
        parsed,
        capture,
        ring,
        FrameFitter(classifier.geometry),
        max_reconnects=max_reconnects,
        stop=stop,
        log=log or (lambda line: None),
    )
    summary = WatchSummary(source=str(source))
    started = time.monotonic()
    reader.start()
    with _stop_on_sigterm(stop), contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: a clean end
        _decide(
            ring,
            _LiveClassifier(classifier, top_k),
            stop,
            summary,
            schedule=(started, stride, max_seconds),
            emit=on_decision or (lambda decision: None),
        )
    stop.set()
    reader.join(timeout=10)
    summary.status = reader.status or "stopped"
    summary.frames, summary.dropped = ring.received, ring.dropped
    summary.reconnects = reader.reconnects
    summary.seconds = time.monotonic() - started
    return summary


def _decide(ring, classify, stop, summary, *, schedule, emit):
    """The decision loop: one decision per stride tick until stop or the time limit."""
    started, stride, max_seconds = schedule
    end = math.inf if max_seconds is None else started + max_seconds
    tick = started + stride
    while tick <= end + 1e-9:
        if stop.wait(max(0.0, tick - time.monotonic())):
            return
        frames = ring.snapshot(time.monotonic())
        if frames:
            decision = classify(frames, ring.dropped)
            summary.decisions += 1
            summary.latencies.append(decision.latency)
            emit(decision)
        tick += stride
        late = time.monotonic() - tick
        if late > 0:  # classifying overran whole ticks: skip them, never queue
            missed = math.floor(late / stride) + 1
            summary.skipped += missed
            tick += missed * stride
    stop.wait(max(0.0, end - time.monotonic()))
