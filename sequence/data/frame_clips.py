"""Raw-frame inputs for end-to-end models: the videos a cache lists, decoded batch by batch.

Fine-tuning and training from scratch read pixels, not cached features. A
:class:`FrameVideos` is the list of videos to read (from a feature cache: the
exact source frame indices it recorded; from a dataset: sampled on the fly), and
:class:`FrameBatches` is a ``keras.utils.PyDataset`` that decodes one batch per
call. ``fit``/``predict`` run it in ``workers`` threads (OpenCV releases the GIL
while it decodes and resizes), a few batches ahead of the network, so the CNN
does not wait on decoding, and at most ``max_queue_size`` batches exist at once:
memory is bounded by the batch, never by the dataset.

Frames stay uint8 RGB until the model's own preprocessing layer. A clip is a
``(T, H, W, 3)`` array whose first ``num_valid`` rows are real frames and whose
other rows are all zero (padding): the end-to-end model zeroes the features of
all-zero frames (:class:`~vidseq.sequence.heads.layers.PaddingFrameMask`) so the head's
``Masking`` skips them, as it skips the zero rows of cached features.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass

import numpy as np

from vidseq.cache.files import absolute_cache_spec
from vidseq.cache.store import FeatureStore
from vidseq.errors import UsageError
from vidseq.extract.decode.frames import read_frames
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.decode.sampling import SamplingConfig
from vidseq.extract.sources.dataset import load_dataset
from vidseq.extract.sources.items import source_from_text
from vidseq.sequence.data.batches import VideoBatches
from vidseq.sequence.data.temporal import segment_positions

RANDOM_VARIANT_MODES = ("uniform", "motion", "keyframes")
"""Sampling modes with a random variant (TSN offsets, in time, motion or shots) for augmentation."""


def default_frame_workers() -> int:
    """Decoder threads of a :class:`FrameBatches`: the cores, between 2 and 8."""
    return max(2, min(8, os.cpu_count() or 2))


@dataclass
class FrameVideos:
    """The videos an end-to-end model reads, and how to read their frames.

    Attributes:
        video_ids: (N,) ids.
        sources: N ``read_frames`` sources (a path, or a tuple of image paths /
            FER-2013 row references for a clip).
        labels: (N,) int64 labels (-1 unlabelled).
        splits: (N,) split names.
        groups: (N,) group names.
        class_names: The class names, index = label.
        frame_spec: How the frames were (or are) sampled and framed (the cache's).
        input_size: ``(height, width)`` of the frames read (the model's input).
        frame_indices: Per video, the source frame index of every cached row
            (from a cache), or None: frames are sampled with ``sampling`` when read.
        num_valid: (N,) real cached rows per video, or None (no cache).
    """

    video_ids: np.ndarray
    sources: list
    labels: np.ndarray
    splits: np.ndarray
    groups: np.ndarray
    class_names: list
    frame_spec: FrameSpec
    input_size: tuple
    frame_indices: list | None = None
    num_valid: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def sampling(self) -> SamplingConfig:
        """The frame sampling of :attr:`frame_spec`."""
        return self.frame_spec.sampling

    @functools.cached_property
    def geometry(self):
        """The ``FrameGeometry`` of the frames read: the spec's crops at ``input_size``.

        Built (and checked) once, not for every clip the decoder threads read.
        """
        return self.frame_spec.geometry(self.input_size)

    def max_valid(self) -> int:
        """The most real frames any video has (the cache's), or the sampling's K."""
        if self.num_valid is not None and len(self.num_valid):
            return int(np.max(self.num_valid))
        return int(self.sampling.num_frames)

    def is_dense(self, indices, frames: int) -> bool:
        """Whether some of these videos have more cached real rows than ``frames``."""
        if self.num_valid is None:
            return False
        return bool((self.num_valid[np.asarray(indices, dtype=np.int64)] > frames).any())

    def predict(self, model, indices, *, frames, batch_size, offset=0.5):
        """Class probabilities of some videos (an evaluation clip source; see ``evaluation``).

        The clips are decoded in background threads while the model runs.

        Returns:
            A (len(indices), num_classes) float64 array, in the order of ``indices``.
        """
        batches = FrameBatches(
            self,
            indices,
            len(self.class_names),
            frames=frames,
            batch_size=batch_size,
            clip_offset=offset,
            targets=False,
        )
        return np.asarray(model.predict(batches, verbose=0), dtype=np.float64)


def videos_from_cache(store, input_size) -> FrameVideos:
    """The videos of an open ``FeatureStore``, with the frame indices it recorded.

    Args:
        store: An open :class:`~vidseq.cache.store.FeatureStore`.
        input_size: ``(height, width)`` of the frames to read (the model's input).

    Returns:
        A :class:`FrameVideos` reading exactly the frames the cache lists, with
        the cache's crop mode and face crop.
    """
    return FrameVideos(
        video_ids=np.asarray(store.video_ids, dtype=object),
        sources=[source_from_text(p) for p in store.paths],
        labels=np.asarray(store.labels, dtype=np.int64),
        splits=np.asarray([str(s) for s in store.splits], dtype=object),
        groups=np.asarray([str(g) for g in store.groups], dtype=object),
        class_names=list(store.class_names),
        frame_spec=FrameSpec.from_dict(dict(store.meta.sampling)),
        input_size=tuple(int(v) for v in input_size),
        frame_indices=[np.asarray(store.frame_indices(i)) for i in range(len(store))],
        num_valid=np.asarray(store.num_valid, dtype=np.int64),
    )


def videos_from_dataset(dataset, frame_spec: FrameSpec, input_size) -> FrameVideos:
    """The items of a loaded dataset (``sources.dataset.load_dataset``), sampled on read."""
    items = dataset.items
    return FrameVideos(
        video_ids=np.asarray([item.video_id for item in items], dtype=object),
        sources=[item.source for item in items],
        labels=np.asarray([item.label for item in items], dtype=np.int64),
        splits=np.asarray([item.split for item in items], dtype=object),
        groups=np.asarray([item.group for item in items], dtype=object),
        class_names=list(dataset.class_names),
        frame_spec=frame_spec,
        input_size=tuple(int(v) for v in input_size),
    )


def videos_for_run(config, cache=None):
    """The videos an end-to-end run reads: its cache's, another cache's, or its dataset's.

    Args:
        config: The run's config.json dict.
        cache: A feature cache listing the videos (default: the run's cache,
            or the dataset it was trained on).

    Returns:
        ``(videos, source_name)``: a :class:`FrameVideos` and the absolute path
        it came from.

    Raises:
        UsageError: No source recorded, or class names that differ from the run's.
    """
    if cache is None:
        cache = config.get("cache_path")
    if cache is not None:
        with FeatureStore(cache) as store:
            videos = videos_from_cache(store, config["input_size"])
        name = str(absolute_cache_spec(cache))
    else:
        data = config.get("data")
        if not data:
            raise UsageError("the run's config.json names no cache or dataset; pass cache=")
        dataset = load_dataset(
            data["path"],
            data["source"],
            split=data["split"],
            seed=data["seed"],
            clip_length=data["clip_length"],
        )
        spec = FrameSpec.from_dict(dict(config["sampling"]))
        videos = videos_from_dataset(dataset, spec, config["input_size"])
        name = str(data["path"])
    if list(videos.class_names) != list(config["class_names"]):
        raise UsageError(
            f"{name}: class names {videos.class_names} differ from the run's "
            f"{config['class_names']}"
        )
    return videos, name


def read_clip(videos: FrameVideos, i: int, frames: int, *, offset=0.5, rng=None) -> np.ndarray:
    """Decodes one video's clip as the end-to-end model reads it.

    Without ``rng``: from a cache, the cached rows at ``offset`` of each of
    ``frames`` segments (all real rows when there are no more than ``frames``),
    read by their recorded source frame indices; without a cache, the sampling's
    selection. With ``rng`` (augmentation): with ``uniform`` sampling, a random
    frame of each of ``frames`` equal segments of the video's real length (TSN;
    with ``motion`` or ``keyframes``, of equal motion segments or of each
    shot's segments), and, independently, a horizontal flip with probability 1/2.

    Args:
        videos: The video list.
        i: Which video.
        frames: T, rows of the clip.
        offset: In-segment offset of the cached rows (evaluation clips).
        rng: A ``numpy.random.Generator`` for augmentation, or None.

    Returns:
        A (T, H, W, 3) uint8 array; rows after the real frames are zero.

    Raises:
        SourceReadError: The source cannot be read.
    """
    source, sampling, geometry = videos.sources[i], videos.sampling, videos.geometry
    if sampling.num_frames != frames:
        sampling = dataclasses.replace(sampling, num_frames=frames)
    if rng is not None and sampling.mode in RANDOM_VARIANT_MODES:
        read = read_frames(source, sampling, geometry, rng=rng)
    elif videos.frame_indices is not None:
        positions = segment_positions(int(videos.num_valid[i]), frames, offset)
        indices = np.asarray(videos.frame_indices[i])[positions]
        read = read_frames(source, sampling, geometry, frame_indices=indices)
    else:
        read = read_frames(source, sampling, geometry)
    valid = min(int(read.num_valid), frames)
    height, width = geometry.size
    clip = np.zeros((frames, height, width, 3), dtype=np.uint8)
    clip[:valid] = read.frames[:valid]
    if rng is not None and rng.random() < 0.5:
        clip = np.ascontiguousarray(clip[:, :, ::-1])
    return clip


class FrameBatches(VideoBatches):
    """Batches of uint8 clips (and one-hot targets) decoded on demand.

    Training batches are shuffled; with ``augment`` each video gets random TSN
    offsets and a random flip. Every random choice of epoch ``e`` comes from
    ``numpy.random.default_rng([seed, e])`` (the order) and
    ``default_rng([seed, e, video])`` (a video's augmentation), so batches do
    not depend on which thread decodes them, and a resumed run draws what the
    interrupted one would have.

    Args:
        videos: A :class:`FrameVideos`.
        indices: Which videos (indices into ``videos``).
        num_classes: Width of the one-hot targets.
        frames: T, rows per clip.
        batch_size: Videos per batch.
        training: Shuffle and yield sample weights.
        augment: Random segment offsets and flips (training only).
        seed: Seed of every random choice.
        epoch: Epoch whose plan the first batches use (resume).
        clip_offset: In-segment offset of the cached rows (evaluation).
        targets: Yield targets; False yields inputs only.
        class_weights: Optional (num_classes,) sample weights (training only).
        workers: Decoder threads (default :func:`default_frame_workers`).
        max_queue_size: Batches decoded ahead (default ``workers``).
    """

    def __init__(
        self,
        videos: FrameVideos,
        indices,
        num_classes,
        *,
        frames,
        batch_size,
        training=False,
        augment=False,
        seed=0,
        epoch=0,
        clip_offset=0.5,
        targets=True,
        class_weights=None,
        workers=None,
        max_queue_size=None,
    ):
        workers = int(workers or default_frame_workers())
        super().__init__(
            workers=workers,
            use_multiprocessing=False,
            max_queue_size=int(max_queue_size or workers),
        )
        self.videos = videos
        self.indices = np.asarray(indices, dtype=np.int64)
        self.num_classes = int(num_classes)
        self.frames = int(frames)
        self.batch_size = int(batch_size)
        self.training = bool(training)
        self.augment = bool(augment) and self.training
        self.seed = int(seed)
        self.clip_offset = clip_offset
        self.targets = targets
        self.class_weights = None if class_weights is None else np.asarray(class_weights)
        if len(self.indices) == 0:
            raise UsageError("no video to make batches of")
        self.set_epoch(epoch)

    def set_epoch(self, epoch):
        """Makes the next batches those of ``epoch``."""
        self.epoch = int(epoch)
        if self.training:
            self._order = np.random.default_rng([self.seed, self.epoch]).permutation(
                len(self.indices)
            )
        else:
            self._order = np.arange(len(self.indices))

    def batch_of_positions(self, positions):
        """The batch of the videos at ``positions`` (a part of a batch, for one replica)."""
        chosen = self.indices[positions]
        x = np.stack(
            [
                read_clip(
                    self.videos,
                    int(i),
                    self.frames,
                    offset=self.clip_offset,
                    rng=np.random.default_rng([self.seed, self.epoch, int(i)])
                    if self.augment
                    else None,
                )
                for i in chosen
            ]
        )
        return self.with_targets(x, self.videos.labels, chosen)
