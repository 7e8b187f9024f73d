"""FeatureStore: read-only access to a feature cache.

The columnar index (ids, labels, splits, offsets, ...) is read once when the
store opens; feature rows are read on demand,
one video at a time or many at once in large contiguous slices.

Several cache files with the same settings (the shards of one extraction) open
as one store: a list of paths or a glob pattern (``"feats-*.h5"``). Their
videos are ordered by ``video_id`` like a merged file's, so reading the shards
equals reading ``vidseq cache merge``'s output.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np

from vidseq.cache import reading, schema
from vidseq.cache.files import cache_files, check_unique_ids, is_single_cache
from vidseq.cache.packing import check_index, read_column
from vidseq.cache.schema import FailedRecord
from vidseq.cache.writer import parts_dir_for
from vidseq.errors import CacheError

READ_BLOCK_BYTES = 64 * 1024 * 1024
"""Many-video reads go through slices of about this size."""

GAP_BYTES = 4 * 1024 * 1024
"""Two wanted videos closer than this are read with one slice (the gap is discarded)."""

MAX_OPEN_FILES = 64
"""Files of a several-file store kept open at once (shards can number thousands)."""


class FeatureStore:
    """A feature cache opened read-only; use it as a context manager or call :meth:`close`.

    Several files with the same settings (shards) open as one store: their
    metas must agree and their video ids must be unique across them. The videos
    are ordered by ``video_id`` as in a merged file (one file keeps its own
    order, which is the same for packed files), so every index array, ``load``
    and ``iter_videos`` equal those of the file ``vidseq cache merge`` would
    write; only ``offsets`` differ, which address the files' rows as if they
    were concatenated in the order of :attr:`files`.

    Args:
        path: The cache file; or a glob pattern, or a list of files and
            patterns (see :func:`cache_files`).

    Attributes:
        path: The cache file; for several files, the pattern given (for a
            list: its first file).
        files: The cache files, one for a single file.
        meta: Its :class:`~vidseq.cache.schema.CacheMeta`.
        class_names: ``meta.class_names``; the index is the label id.
        video_ids, paths, splits, groups: (N,) object arrays of str.
        labels: (N,) int32, -1 for unlabelled.
        offsets: (N,) int64 first row of each video in ``features``.
        lengths: (N,) int32 rows of each video.
        num_valid: (N,) int32 leading rows that are real frames.
        fps: (N,) float64.
        num_source_frames: (N,) int64.
        failed: The inputs recorded as unreadable, as FailedRecords.
        row_names: Names of the row-aligned datasets: ``features`` first, then the
            others (``frame_indices``, ``timestamps_ms``, extras such as
            ``face_found``) sorted by name.
        num_rows: F, rows of ``features``.
        schema_version: The file's schema version.
        vidseq_version: The version that wrote the file.

    Raises:
        CacheError: Missing, truncated or non-HDF5 file, an HDF5 file that is not
            a vidseq cache, a newer schema version, a missing attribute or dataset.
            For several files also: a pattern that matches nothing, files whose
            settings or row datasets differ (the differences are listed), a video
            id in two files (named), or a file with unfinished parts.
    """

    _h5 = None
    _bases = None  # several files: first virtual row of each file, and the total

    def __init__(self, path):
        if not (is_single_cache(path) and os.path.isfile(path)):
            files = cache_files(path)
            if len(files) > 1:
                self._open_many(path, files)
                return
            path = files[0]
        self.path = Path(path)
        self.files = [self.path]
        self._h5, self.meta = reading.open_cache(self.path)
        try:
            h5 = self._h5
            videos = h5[schema.VIDEOS]
            columns = {c: read_column(videos[c]) for c in schema.VIDEO_COLUMNS}
            failed = h5[schema.FAILED]
            failed_columns = [read_column(failed[c]) for c in schema.FAILED_COLUMNS]
            self.row_names = schema.row_dataset_names(h5)
            self.num_rows = int(h5[schema.FEATURES].shape[0])
            self.schema_version = int(np.asarray(h5.attrs[schema.ATTR_SCHEMA_VERSION]))
            self.vidseq_version = str(h5.attrs[schema.ATTR_VIDSEQ_VERSION])
        except (OSError, KeyError, RuntimeError) as exc:
            self._h5.close()
            raise CacheError(f"{self.path}: damaged vidseq cache ({exc})") from exc
        try:
            check_index(str(self.path), columns, self.num_rows)
            reading.check_labels(str(self.path), columns[schema.LABEL], len(self.meta.class_names))
        except CacheError:
            self._h5.close()
            raise
        self.class_names = list(self.meta.class_names)
        self.video_ids = columns[schema.VIDEO_ID]
        self.paths = columns[schema.PATH]
        self.labels = columns[schema.LABEL].astype(np.int32, copy=False)
        self.splits = columns[schema.SPLIT]
        self.groups = columns[schema.GROUP]
        self.offsets = columns[schema.OFFSET].astype(np.int64, copy=False)
        self.lengths = columns[schema.LENGTH].astype(np.int32, copy=False)
        self.num_valid = columns[schema.NUM_VALID].astype(np.int32, copy=False)
        self.fps = columns[schema.FPS].astype(np.float64, copy=False)
        self.num_source_frames = columns[schema.NUM_SOURCE_FRAMES].astype(np.int64, copy=False)
        self.failed = [FailedRecord(*t) for t in zip(*failed_columns, strict=True)]
        self._index = None

    # -- index --------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.video_ids)

    def index_of(self, video_id: str) -> int:
        """Position of a video in the index.

        Args:
            video_id: Its id.

        Returns:
            Its index i (for :meth:`features` and the index arrays).

        Raises:
            CacheError: No video has this id.
        """
        if self._index is None:
            self._index = {v: i for i, v in enumerate(self.video_ids)}
        try:
            return self._index[video_id]
        except KeyError:
            raise CacheError(f"{self.path}: no video with id {video_id!r}") from None

    def _check_i(self, i) -> int:
        n = len(self)
        if not -n <= int(i) < n:
            raise IndexError(f"video index {i} is out of range for {n} videos in {self.path}")
        return int(i) % n

    def file_of(self, i: int) -> Path:
        """The file that holds video ``i`` (the cache file itself for a single file)."""
        i = self._check_i(i)
        if self._bases is None:
            return self.path
        return self.files[int(self._owner[i])]

    # -- several files ------------------------------------------------------------------------

    def _open_many(self, spec, files: list[Path]) -> None:
        """Opens several files as one store (see the class docstring)."""
        self.path = Path(spec) if is_single_cache(spec) else files[0]
        self.files = files
        self._handles: OrderedDict[int, h5py.File] = OrderedDict()
        stores = [self._read_part(path) for path in files]
        _check_parts_agree(stores)
        first = stores[0]
        self.meta = first.meta
        self.row_names = list(first.row_names)
        self._row_bytes_of = {
            name: max(1, int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
            for name, (dtype, shape) in first._dtypes.items()
        }
        self._row_bytes_of[schema.FEATURES] = (
            self.meta.feature_dim * np.dtype(self.meta.dtype).itemsize
        )
        self.schema_version = max(part.schema_version for part in stores)
        self.vidseq_version = ", ".join(sorted({part.vidseq_version for part in stores}))
        sizes = [part.num_rows for part in stores]
        self._bases = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.num_rows = int(self._bases[-1])

        ids = np.concatenate([part.video_ids for part in stores])
        owner = np.repeat(np.arange(len(stores)), [len(part) for part in stores])
        order = np.array(sorted(range(len(ids)), key=ids.__getitem__), dtype=np.int64)
        ids = ids[order]
        check_unique_ids(ids, owner[order], files)

        def column(name, dtype=None):
            values = np.concatenate([getattr(part, name) for part in stores])[order]
            return values if dtype is None else values.astype(dtype, copy=False)

        self.class_names = list(self.meta.class_names)
        self.video_ids = ids
        self.paths = column("paths")
        self.labels = column("labels", np.int32)
        self.splits = column("splits")
        self.groups = column("groups")
        offsets = np.concatenate([part.offsets + self._bases[k] for k, part in enumerate(stores)])
        self.offsets = offsets[order].astype(np.int64, copy=False)
        self._owner = owner[order]
        self.lengths = column("lengths", np.int32)
        self.num_valid = column("num_valid", np.int32)
        self.fps = column("fps", np.float64)
        self.num_source_frames = column("num_source_frames", np.int64)
        # Failures as a merge keeps them: one per id, the last file's, none for an id
        # that succeeded elsewhere, ordered by id.
        failures = {rec.video_id: rec for part in stores for rec in part.failed}
        done = set(ids.tolist())
        self.failed = [failures[v] for v in sorted(failures) if v not in done]
        self._index = None

    @staticmethod
    def _read_part(path: Path) -> FeatureStore:
        """One file of a several-file store: its index, with the types of its row datasets."""
        if parts_dir_for(path).exists():
            raise CacheError(
                f"{path} has unfinished parts in {parts_dir_for(path)}: rerun its "
                f"extraction to finish it before reading it with other files"
            )
        with FeatureStore(path) as part:
            part._dtypes = {
                name: (part._h5[name].dtype, part._h5[name].shape[1:]) for name in part.row_names
            }
        return part

    def _handle(self, k: int) -> h5py.File:
        """File ``k`` of a several-file store, open (at most MAX_OPEN_FILES stay open)."""
        if self._handles is None:
            raise CacheError(f"{self.path}: the store is closed")
        h5 = self._handles.get(k)
        if h5 is None:
            try:
                h5 = h5py.File(self.files[k], "r")
            except OSError as exc:
                raise CacheError(f"{self.files[k]}: cannot reopen ({exc})") from exc
            self._handles[k] = h5
            if len(self._handles) > MAX_OPEN_FILES:
                self._handles.popitem(last=False)[1].close()
        else:
            self._handles.move_to_end(k)
        return h5

    def _read_many(self, name, start, end):
        """Rows ``start:end`` of the files' rows concatenated in :attr:`files` order."""
        bases = self._bases
        k = min(int(np.searchsorted(bases, start, side="right")) - 1, len(self.files) - 1)
        pieces = []
        while True:
            stop = min(end, int(bases[k + 1]))
            try:
                pieces.append(self._handle(k)[name][start - bases[k] : max(start, stop) - bases[k]])
            except OSError as exc:
                raise CacheError(f"{self.files[k]}: cannot read rows of {name!r} ({exc})") from exc
            start = stop
            k += 1
            if start >= end or k >= len(self.files):
                break
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    # -- one video ----------------------------------------------------------------------------

    def rows(self, name: str, i: int) -> np.ndarray:
        """The rows of one video in a row-aligned dataset (e.g. ``face_found``).

        Args:
            name: Dataset name (see :attr:`row_names`).
            i: Video index.

        Returns:
            Array of ``lengths[i]`` rows.

        Raises:
            CacheError: The cache has no row-aligned dataset of that name.
        """
        if name not in self.row_names:
            raise CacheError(
                f"{self.path}: no row-aligned dataset {name!r} (has: {', '.join(self.row_names)})"
            )
        i = self._check_i(i)
        start = int(self.offsets[i])
        return self._read(name, start, start + int(self.lengths[i]))

    def features(self, i: int, dtype=None) -> np.ndarray:
        """Features of one video, reading only its rows.

        Args:
            i: Video index (see :meth:`index_of`).
            dtype: Convert to this type; default: as stored (``meta.dtype``).

        Returns:
            (T, D) array, T = ``lengths[i]`` (padding rows included; see :meth:`mask`).
        """
        x = self.rows(schema.FEATURES, i)
        return x if dtype is None else x.astype(dtype, copy=False)

    def frame_indices(self, i: int) -> np.ndarray:
        """(T,) int64 source frame index of each row of video ``i``."""
        return self.rows(schema.FRAME_INDICES, i)

    def timestamps_ms(self, i: int) -> np.ndarray:
        """(T,) float64 time in milliseconds of each row of video ``i``."""
        return self.rows(schema.TIMESTAMPS_MS, i)

    def mask(self, i: int) -> np.ndarray:
        """(T,) bool, True for the first ``num_valid[i]`` rows (real frames) of video ``i``."""
        i = self._check_i(i)
        return np.arange(int(self.lengths[i])) < int(self.num_valid[i])

    # -- many videos --------------------------------------------------------------------------

    def select(self, indices=None, *, split: str | None = None) -> np.ndarray:
        """Video indices, optionally restricted to one split.

        Args:
            indices: Indices to start from (default: all videos), order kept.
            split: Keep only the videos of this split (``"train"``, ``"val"``, ...).

        Returns:
            (N,) int64 indices.
        """
        if indices is None:
            idx = np.arange(len(self), dtype=np.int64)
        else:
            idx = np.asarray(indices, dtype=np.int64).reshape(-1)
            if len(idx) and (idx.min() < -len(self) or idx.max() >= len(self)):
                raise IndexError(
                    f"video indices out of range for {len(self)} videos in {self.path}"
                )
            idx = idx % max(len(self), 1)
        if split is not None:
            idx = idx[self.splits[idx] == split] if len(idx) else idx
        return idx

    def load(
        self,
        indices=None,
        *,
        split: str | None = None,
        dtype=np.float32,
        length: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Loads many videos as padded arrays, reading large contiguous slices.

        Args:
            indices: Which videos (default: all), in this order.
            split: Keep only the videos of this split.
            dtype: Type of the returned features.
            length: T of the result; default: the longest video of the cache (so
                every split gets the same T). Shorter videos are zero-padded.

        Returns:
            ``(X, mask, y)``: X (N, T, D) features, mask (N, T) bool True for the
            first ``num_valid`` rows of each video, y (N,) int32 labels.
        """
        idx = self.select(indices, split=split)
        longest = int(self.lengths.max()) if len(self) else 0
        t = longest if length is None else int(length)
        if len(idx) and int(self.lengths[idx].max()) > t:
            raise ValueError(
                f"length={length} is shorter than the longest selected video "
                f"({int(self.lengths[idx].max())} rows)"
            )
        x = np.zeros((len(idx), t, self.meta.feature_dim), dtype=dtype)
        positions: dict[int, list[int]] = {}
        for pos, i in enumerate(idx.tolist()):
            positions.setdefault(i, []).append(pos)
        by_offset = sorted(positions, key=lambda i: int(self.offsets[i]))
        for i, rows in self._iter_rows(by_offset, schema.FEATURES):
            for pos in positions[i]:
                x[pos, : len(rows)] = rows
        mask = np.arange(t)[None, :] < self.num_valid[idx][:, None]
        return x, mask, self.labels[idx].copy()

    def iter_videos(self, indices=None) -> Iterator[tuple[int, np.ndarray]]:
        """Iterates over videos without loading them all, reading in large slices.

        Args:
            indices: Which videos (default: all), in this order.

        Yields:
            ``(i, features)`` with features (T, D) as stored.
        """
        yield from self._iter_rows(self.select(indices).tolist(), schema.FEATURES)

    def _iter_rows(self, indices: Sequence[int], name: str):
        """Yields (i, rows of dataset ``name``) in the given order, block by block."""
        if self._bases is None:
            ds = self._h5[name]
            row_bytes = max(1, int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize)
        else:
            row_bytes = self._row_bytes_of[name]
        budget = max(1, READ_BLOCK_BYTES // row_bytes)
        gap = GAP_BYTES // row_bytes
        j = 0
        while j < len(indices):
            k, total = j, 0
            while k < len(indices) and (k == j or total + int(self.lengths[indices[k]]) <= budget):
                total += int(self.lengths[indices[k]])
                k += 1
            block = indices[j:k]
            found = {}
            spans: list[list] = []  # [start, end, [videos]]
            for i in sorted(set(block), key=lambda v: int(self.offsets[v])):
                start = int(self.offsets[i])
                end = start + int(self.lengths[i])
                if spans and start - spans[-1][1] <= gap and end - spans[-1][0] <= budget:
                    spans[-1][1] = max(spans[-1][1], end)
                    spans[-1][2].append(i)
                else:
                    spans.append([start, end, [i]])
            for start, end, members in spans:
                data = self._read(name, start, end)
                for i in members:
                    a = int(self.offsets[i]) - start
                    found[i] = data[a : a + int(self.lengths[i])]
            for i in block:
                yield i, found[i]
            j = k

    def _read(self, name, start, end):
        if self._bases is not None:
            return self._read_many(name, start, end)
        try:
            return self._h5[name][start:end]
        except OSError as exc:
            raise CacheError(f"{self.path}: cannot read rows of {name!r} ({exc})") from exc

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """Closes the file, or the files (idempotent)."""
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None
        if self._bases is not None and self._handles is not None:
            for h5 in self._handles.values():
                h5.close()
            self._handles = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    def __repr__(self):
        files = f", files={len(self.files)}" if len(self.files) > 1 else ""
        return (
            f"FeatureStore({str(self.path)!r}{files}, videos={len(self)}, "
            f"backbone={self.meta.backbone!r}, feature_dim={self.meta.feature_dim})"
        )


def _check_parts_agree(stores: list[FeatureStore]) -> None:
    """The files of a several-file store share their meta and row datasets; CacheError if not."""
    first = stores[0]
    for part in stores[1:]:
        diffs = first.meta.differences(part.meta)
        if diffs:
            raise CacheError(f"{part.path} disagrees with {first.path}: {'; '.join(diffs)}")
        if part.row_names != first.row_names:
            raise CacheError(
                f"{part.path} and {first.path} disagree on the row-aligned datasets: "
                f"{part.row_names} vs {first.row_names}"
            )
        for name in part.row_names[1:]:
            if part._dtypes[name] != first._dtypes[name]:
                raise CacheError(
                    f"{part.path} and {first.path} disagree on dataset {name!r}: "
                    f"{part._dtypes[name]} vs {first._dtypes[name]}"
                )
