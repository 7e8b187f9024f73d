"""The batched extraction loop: dataset → sampled frames → frozen CNN → feature cache.

Decoding runs in background threads (OpenCV releases the GIL while it decodes
and resizes) and feeds a bounded queue; the main thread packs the frames of
many videos into full CNN batches, so the network never waits on one video's
decoder and never runs a batch smaller than ``batch_size`` except the last.
Padding rows (a video shorter than the requested frames) are not sent through
the CNN: they repeat the last real frame, so their features repeat its features.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vidseq.cache.schema import CacheMeta, FailedRecord, VideoRecord
from vidseq.cache.writer import CacheWriter, recorded_precision_check
from vidseq.errors import SourceReadError, UsageError
from vidseq.extract.calibration import DEFAULT_CALIBRATION_VIDEOS, lowered_engine
from vidseq.extract.decode.cheap_motion import SIGNAL_NAMES
from vidseq.extract.decode.frames import SampledFrames, read_frames
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.extraction_summary import ExtractionSummary
from vidseq.extract.models.backbones import Backbone, default_weights, load_backbone
from vidseq.extract.models.engines import check_engine, load_engine
from vidseq.extract.models.network import pad_to_groups
from vidseq.extract.models.precision import check_precision
from vidseq.extract.options import DEFAULT_BACKBONE, EXTRACT_PARAMS
from vidseq.extract.params import check_values
from vidseq.extract.sharding import Shard
from vidseq.extract.sources.dataset import load_dataset
from vidseq.extract.sources.items import Dataset, RejectedInput, VideoItem
from vidseq.outputs import check_writable_folder, refuse_inputs

"""Storage types of the cached features."""


def default_decode_workers(gpu: bool = False) -> int:
    """Decoder threads for this machine.

    On a CPU the network needs the cores, so at most 8 decoders share them. When a GPU
    runs the network, decoding is the bottleneck (an H200 with 16 cores: the decoders
    deliver a third of what ResNet50 takes, see docs/performance.md), so there is one
    decoder per core.

    Args:
        gpu: Whether the network runs on a GPU.

    Returns:
        A thread count, at least 2.
    """
    cores = os.cpu_count() or 2
    return max(2, cores if gpu else min(8, cores))


def _decode_in_background(
    items: list[VideoItem],
    read,
    workers: int,
) -> Iterator[tuple[VideoItem, SampledFrames | SourceReadError]]:
    """Yields each item with its frames (or its read error), decoding ahead in threads.

    At most ``2 * workers`` videos are decoded ahead, which bounds memory.
    """
    ahead = 2 * workers
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vidseq-decode") as pool:
        pending: deque[tuple[VideoItem, Future]] = deque()
        queue = iter(items)
        for item in queue:
            pending.append((item, pool.submit(read, item)))
            if len(pending) >= ahead:
                break
        try:
            while pending:
                item, future = pending.popleft()
                try:
                    result: SampledFrames | SourceReadError = future.result()
                except SourceReadError as error:
                    result = error
                next_item = next(queue, None)
                if next_item is not None:
                    pending.append((next_item, pool.submit(read, next_item)))
                yield item, result
        finally:  # the consumer stopped early (an error, --strict): drop queued work
            for _, future in pending:
                future.cancel()


@dataclass
class VideoFeatures:
    """One video's sampled frames (metadata) and the CNN features of all K rows.

    Attributes:
        item: The dataset item.
        frames: What the reader returned (its ``frames`` pixels are released once
            the CNN has seen them).
        features: (K, D) float32; padding rows repeat the last real frame's features.
    """

    item: VideoItem
    frames: SampledFrames
    features: np.ndarray
    filled: int = 0


class _BatchPacker:
    """Packs the real frames of consecutive videos into fixed-size CNN batches.

    For a clip encoder (``group`` G > 1) each video's real frames are completed
    to a multiple of G by repeating its last real frame, and the batch holds a
    multiple of G frames, so no group of G straddles two videos; the features
    of the repeats are dropped.
    """

    def __init__(self, extract, batch_size: int, frame_shape: tuple[int, int, int], group=1):
        self._extract = extract
        batch_size = -(-batch_size // group) * group
        self._batch = np.empty((batch_size, *frame_shape), dtype=np.uint8)
        self._slots: list[tuple[VideoFeatures, int, int]] = []
        self._used = 0
        self._group = group

    def add(self, video: VideoFeatures) -> Iterator[VideoFeatures]:
        """Queues a video's real frames; yields the videos whose features are complete."""
        real = pad_to_groups(video.frames.frames[: video.frames.num_valid], self._group)
        start = 0
        while start < len(real):
            take = min(len(real) - start, len(self._batch) - self._used)
            self._batch[self._used : self._used + take] = real[start : start + take]
            self._slots.append((video, start, take))
            self._used += take
            start += take
            if self._used == len(self._batch):
                yield from self.flush()

    def flush(self) -> Iterator[VideoFeatures]:
        """Runs the CNN on the frames queued so far; yields the videos it completed."""
        if not self._used:
            return
        features = self._extract(self._batch[: self._used])
        row = 0
        for video, start, take in self._slots:
            keep = max(0, min(take, video.frames.num_valid - start))
            video.features[start : start + keep] = features[row : row + keep]
            video.filled += keep
            row += take
            if video.filled == video.frames.num_valid and keep:
                _pad_and_release(video)
                yield video
        self._slots = []
        self._used = 0


def _pad_and_release(video: VideoFeatures) -> None:
    """Fills padding rows with the last real frame's features and drops the pixels."""
    num_valid = video.frames.num_valid
    video.features[num_valid:] = video.features[num_valid - 1]
    video.frames.frames = video.frames.frames[:0]


class FeatureExtractor:
    """Runs a backbone over the sampled frames of many videos, in shared full batches.

    Args:
        net: A loaded :class:`~vidseq.extract.models.backbones.Backbone`.
        frames: Which frames to take from each video and how to frame them
            (:class:`~vidseq.extract.decode.framespec.FrameSpec`); frames are brought
            to the backbone's input size.
        batch_size: Frames per CNN batch.
        decode_workers: Decoder threads; :func:`default_decode_workers` for the
            engine's device if None.
        engine: What runs the network: ``"tf"``, ``"openvino"`` (built on the
            first :meth:`run`, see :func:`vidseq.extract.models.engines.load_engine`)
            or an engine object already built from ``net``.

    Attributes:
        frames_done: Frames that went through the CNN so far.

    Raises:
        UsageError: ``frames`` is not a FrameSpec, or ``batch_size < 1``.
    """

    def __init__(self, net, frames: FrameSpec, *, batch_size=32, decode_workers=None, engine="tf"):
        _check_frames(frames)
        check_values(EXTRACT_PARAMS, {"batch_size": batch_size})
        self.net = net
        self.spec = frames
        self.geometry = frames.geometry(net.input_size)
        self.batch_size = batch_size
        self.decode_workers = decode_workers
        self.engine = engine
        self.frames_done = 0

    def _read(self, item: VideoItem) -> SampledFrames:
        return read_frames(item.source, self.spec.sampling, self.geometry)

    def _extract(self, batch: np.ndarray) -> np.ndarray:
        self.frames_done += len(batch)
        return self.engine.extract(batch)

    def load_engine(self):
        """Builds the engine if it was given by name; returns it."""
        if isinstance(self.engine, str):
            self.engine = load_engine(self.net, self.engine, batch_size=self.batch_size)
        return self.engine

    def run(
        self, items: list[VideoItem]
    ) -> Iterator[tuple[VideoItem, VideoFeatures | SourceReadError]]:
        """Yields each item with its features, or with the error that kept it from being read.

        Items come out in completion order, not necessarily in the order given.
        """
        engine = self.load_engine()
        workers = self.decode_workers or default_decode_workers(gpu=engine.on_gpu)
        packer = _BatchPacker(
            self._extract, self.batch_size, (*self.geometry.size, 3), self.net.clip_frames
        )
        for item, result in _decode_in_background(items, self._read, workers):
            if isinstance(result, SourceReadError):
                yield item, result
                continue
            features = np.empty((len(result.frame_indices), self.net.feature_dim), np.float32)
            for video in packer.add(VideoFeatures(item, result, features)):
                yield video.item, video
        for video in packer.flush():
            yield video.item, video


def check_cache_output(out, data):
    """Refuses, before any work, a cache path that is the dataset, a folder or not writable."""
    refuse_inputs(out, [data], flag="out")
    if Path(out).is_dir():
        raise UsageError(f"out must name a cache file, not a folder. Received: out={out}")
    check_writable_folder(out, flag="out")


def extract_features(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    source: str = "auto",
    split: int = 1,
    backbone: str = DEFAULT_BACKBONE,
    weights: str | None = None,
    input_size: tuple[int, int] | None = None,
    pooling: str | None = None,
    frames: FrameSpec | None = None,
    engine: str = "tf",
    batch_size: int = 32,
    decode_workers: int | None = None,
    dtype: str = "float16",
    commit_every: int = 32,
    overwrite: bool = False,
    shard: Shard | None = None,
    strict: bool = False,
    seed: int = 0,
    progress: bool = True,
    precision: str = "fp32",
    calibration_videos: int = DEFAULT_CALIBRATION_VIDEOS,
    agreement_probe=None,
) -> ExtractionSummary:
    """Extracts frozen-CNN features of every video of a dataset into an HDF5 cache.

    Resumable: videos already committed to ``out`` (or to its part files, after a
    crash) are skipped, and rerunning the same command finishes the cache.

    Args:
        data: Dataset root folder or CSV (see ``vidseq.extract.sources.dataset.load_dataset``).
        out: The cache file to write; ``{shard}`` and ``{num_shards}`` in it are
            filled in (``feats-{shard}.h5``).
        source: The dataset source: ``"auto"``, ``"folder"``, ``"ucf101"``,
            ``"manifest"`` or ``"fer2013"``.
        split: UCF-101 official split (1, 2 or 3).
        backbone: The network: a name from the backbone registry, or
            ``"hub:PRESET"`` (a keras-hub preset name, ``kaggle://`` or
            ``hf://`` handle, or local preset directory; see
            :mod:`vidseq.extract.models.hub`).
        weights: ``"imagenet"``, ``"none"`` (random init from ``seed``) or a weights
            file; None means ImageNet weights, or random init for a backbone that has
            none (``tiny``), or a keras-hub preset's own weights (``"preset"``).
        input_size: ``(height, width)`` fed to the CNN; the backbone's default if None.
        pooling: keras-hub backbones: ``"cls"`` or ``"mean"`` overrides the
            family's pooled feature; None keeps it.
        frames: Which frames to take and how to frame them
            (:class:`~vidseq.extract.decode.framespec.FrameSpec`: sampling, crop, face
            crop, FER-2013 clip length); ``FrameSpec()`` (16 uniform frames,
            resized) if None. Its ``to_dict()`` is the cache's ``sampling``.
        engine: What runs the network: ``"tf"`` (TensorFlow) or ``"openvino"``
            (needs the ``vidseq[openvino]`` extra; features equal to float32
            rounding, faster on CPUs). Recorded in the cache: resuming or
            merging with another engine's features is refused.
        batch_size: Frames per CNN batch, shared across videos.
        decode_workers: Decoder threads; a sensible default for the machine if None.
        dtype: ``"float16"`` or ``"float32"`` for the stored features.
        commit_every: Videos per committed part file: at most this many videos (or 30 s
            of work) are lost when the run is killed.
        overwrite: Replace an existing cache made with other settings.
        shard: Extract only this :class:`~vidseq.extract.sharding.Shard` of the
            dataset; if None, the shard a cluster job array gives this process
            (``VIDSEQ_NUM_SHARDS``/``VIDSEQ_SHARD_INDEX``, SLURM, Kubernetes; see
            :func:`~vidseq.extract.sharding.resolve_shard`), else all of it.
        strict: Stop at the first unreadable video instead of recording it.
        seed: Seed of random-init weights and of the group-aware split.
        progress: Show a tqdm progress bar on stderr.
        precision: ``"fp32"``; ``"bf16"`` (either engine, CPUs with AVX512_BF16
            or AMX) or ``"int8"`` (``engine="openvino"``, NNCF quantisation
            calibrated on this dataset; see :mod:`vidseq.extract.calibration`).
            Recorded in the cache with the agreement of its features with
            FP32 ones on held-out videos (``precision_check``); a resumed
            run keeps the check its cache records for the same precision
            and network (run again only with an ``agreement_probe``).
        calibration_videos: INT8: videos whose sampled frames calibrate the
            quantisation (the quantised model is kept beside the cache, so a
            rerun does not calibrate again).
        agreement_probe: Optional ``probe(check) -> dict`` adding figures to
            the agreement check (see
            :func:`vidseq.sequence.infer.precision_agreement.top1_probe`).

    Returns:
        An :class:`ExtractionSummary`. Malformed dataset rows (FER-2013 CSV)
        are among its ``failures`` and in the cache's ``failed/`` table.

    Raises:
        UsageError: Bad arguments, dataset layout or an incompatible existing cache.
        SourceReadError: With ``strict``, the first video (or malformed dataset
            row) that cannot be read.
    """
    started = time.perf_counter()
    frames = FrameSpec() if frames is None else _check_frames(frames)
    check_engine(engine)
    check_precision(engine, precision)
    given = {"source": source, "split": split, "batch_size": batch_size, "dtype": dtype}
    check_values(EXTRACT_PARAMS, {**given, "commit_every": commit_every, "seed": seed})
    shard = Shard.resolve() if shard is None else shard
    check_cache_output(shard.output_path(out), data)
    dataset = load_dataset(data, source, split=split, seed=seed, clip_length=frames.clip_length)
    frames = dataclasses.replace(frames, clip_length=dataset.clip_length)
    items, rejected = shard.select(dataset.items), _rejected_in(shard, dataset)
    if strict and rejected:
        raise SourceReadError(rejected[0].path, rejected[0].reason)
    net = _load_network(backbone, weights, input_size, seed, pooling)
    summary = ExtractionSummary(
        out=Path(shard.output_path(out)), warnings=list(dataset.warnings), shard=shard
    )
    meta = _cache_meta(net, frames, dataset, engine=engine, dtype=dtype, precision=precision)
    runner, summary.precision_check = lowered_engine(
        net,
        frames,
        dataset,
        summary.out,
        engine,
        precision,
        batch_size,
        calibration_videos,
        agreement_probe,
        recorded=recorded_precision_check(summary.out, meta, overwrite=overwrite),
    )
    extractor = FeatureExtractor(
        net, frames, batch_size=batch_size, decode_workers=decode_workers, engine=runner
    )
    extractor.load_engine()  # OpenVINO: converted (once) and compiled before any write
    meta = dataclasses.replace(meta, precision_check=summary.precision_check)
    with CacheWriter(summary.out, meta, overwrite=overwrite, commit_every=commit_every) as writer:
        todo = [item for item in items if item.video_id not in writer.done_ids]
        summary.skipped = len(items) - len(todo)
        _record_rejected(writer, rejected, summary)
        if todo and extractor.engine.name == "tf":  # trace now: setup_seconds holds it
            extractor.engine.extract(np.zeros((1, *net.input_size, 3), dtype=np.uint8))
        summary.setup_seconds = time.perf_counter() - started
        _extract_into(writer, todo, extractor, summary, strict, progress)
        summary.out = writer.finalize()
    summary.frames = extractor.frames_done
    summary.seconds = time.perf_counter() - started
    return summary


def _check_frames(frames) -> FrameSpec:
    if not isinstance(frames, FrameSpec):
        raise UsageError(f"frames must be a FrameSpec. Received: frames={frames!r}")
    return frames


def _rejected_in(shard: Shard, dataset: Dataset) -> list[RejectedInput]:
    """The dataset's rejected inputs that belong to ``shard``."""
    return [rejected for rejected in dataset.rejected if shard.holds(rejected.input_id)]


def _load_network(backbone: str, weights: str | None, input_size, seed: int, pooling) -> Backbone:
    """The backbone; ``weights=None`` means the backbone's default weights."""
    if weights is None:
        weights = default_weights(backbone)
    try:
        return load_backbone(backbone, weights, input_size=input_size, seed=seed, pooling=pooling)
    except UsageError as error:
        if weights != "imagenet":
            raise
        raise UsageError(
            f"{error}; or choose backbone=tiny, a random-init network for tests"
        ) from None


def _cache_meta(
    net: Backbone, frames: FrameSpec, dataset: Dataset, *, engine, dtype, precision
) -> CacheMeta:
    """What the cache records about the features it holds."""
    return CacheMeta(
        backbone=net.name,
        weights=net.weights,
        weights_sha256=net.weights_sha256,
        engine=engine,
        input_size=tuple(net.input_size),
        feature_dim=net.feature_dim,
        sampling=frames.to_dict(),
        class_names=list(dataset.class_names),
        dtype=dtype,
        weights_seed=net.seed,
        backbone_config=net.config,
        precision=precision,
    )


def _record_rejected(writer, rejected: list[RejectedInput], summary: ExtractionSummary) -> None:
    """Records malformed dataset inputs as failures, on every run like unreadable videos."""
    for rejected_input in rejected:
        failure = FailedRecord(rejected_input.input_id, rejected_input.path, rejected_input.reason)
        writer.add_failure(failure)
        summary.failures.append(failure)


def _extract_into(writer, todo, extractor, summary, strict, progress) -> None:
    """Extracts ``todo`` and commits each video (or its failure) to ``writer``."""
    with tqdm(total=len(todo), unit="video", disable=not progress, desc="extract") as bar:
        for item, result in extractor.run(todo):
            if isinstance(result, SourceReadError):
                if strict:
                    raise result
                failure = FailedRecord(item.video_id, _source_text(item.source), result.reason)
                writer.add_failure(failure)
                summary.failures.append(failure)
            else:
                writer.add(
                    _record(result),
                    result.features,
                    result.frames.frame_indices,
                    result.frames.timestamps_ms,
                    row_extras=_row_extras(result.frames),
                )
                summary.done += 1
            bar.update(1)
            elapsed = bar.format_dict["elapsed"]
            if elapsed > 0:
                rate = extractor.frames_done / elapsed
                bar.set_postfix(frames_per_s=f"{rate:.1f}", refresh=False)


def _record(video: VideoFeatures) -> VideoRecord:
    """The cache's index row of an extracted video."""
    item, frames = video.item, video.frames
    return VideoRecord(
        video_id=item.video_id,
        path=_source_text(item.source),
        label=item.label,
        split=item.split,
        group=item.group,
        num_valid=frames.num_valid,
        fps=frames.fps,
        num_source_frames=frames.num_source_frames,
    )


def _row_extras(frames: SampledFrames) -> dict | None:
    """Per-frame facts beside the features: face found, and the motion signal that chose it."""
    extras = {}
    if frames.face_found is not None:
        extras["face_found"] = frames.face_found
    if frames.motion_signal is not None:
        code = SIGNAL_NAMES.index(frames.motion_signal)
        extras["motion_signal"] = np.full(len(frames.frame_indices), code, dtype=np.uint8)
    return extras or None


def _source_text(source: str | tuple[str, ...]) -> str:
    """The cache's ``videos/path`` text: a path, or a JSON list of image paths for a clip."""
    if isinstance(source, str):
        return source
    return json.dumps(list(source))
