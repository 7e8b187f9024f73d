"""Packing: the one implementation that writes a schema-v1 file from several sources.

The writer's part files, the writer's final file and ``vidseq cache merge`` are
all written here by :func:`pack`: videos from any number of sources (cache files
or videos held in memory) are ordered by ``video_id`` and their rows copied,
run by run, into one packed file that is written beside its destination and
renamed into place only when complete and on disk.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from vidseq.cache import reading, schema, storage
from vidseq.cache.schema import CacheMeta, FailedRecord, VideoRecord
from vidseq.errors import CacheError, StorageError

CHUNK_BYTES = 128 * 1024
"""Target size of one ``features`` chunk (see :func:`feature_chunk_rows`)."""

COPY_BLOCK_BYTES = 32 * 1024 * 1024
"""Rows are copied through a buffer of about this size, written chunk-aligned."""

MAX_OPEN_FILES = 64
"""Source files kept open at once while packing (parts can number thousands)."""


def feature_chunk_rows(feature_dim: int, dtype, num_rows: int) -> int:
    """Rows per chunk of ``features``: about 128 KiB, a power of two, whole rows.

    With ResNet50 (D=2048, float16) that is 32 rows, two videos of 16 frames:
    reading one video touches one or two chunks (at most 256 KiB, one read each),
    and reading the whole file is a few thousand large sequential chunk reads,
    where HDF5's per-chunk overhead (microseconds) is lost in the copy itself.
    No compression: float features barely compress and decompressing would
    cost more than reading.

    Args:
        feature_dim: D.
        dtype: Storage type.
        num_rows: F (a chunk is never longer than the dataset).

    Returns:
        The number of rows per chunk (at least 1).
    """
    row_bytes = max(1, feature_dim * np.dtype(dtype).itemsize)
    rows = max(1, CHUNK_BYTES // row_bytes)
    rows = 1 << (rows.bit_length() - 1)  # round down to a power of two
    return max(1, min(rows, 8192, num_rows))


class _Source:
    """Videos to pack: index columns in memory, rows read on demand."""

    name: str
    columns: dict[str, np.ndarray]  # every videos/* column, including offset and length
    failed: list[FailedRecord]
    row_specs: dict[str, tuple[np.dtype, tuple[int, ...]]]  # name -> (dtype, trailing shape)

    def read_rows(self, name: str, start: int, stop: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Releases what the source holds open (it reopens on demand)."""


class FileSource(_Source):
    """A schema-v1 file (a final cache, a part file, a shard).

    The index is read once at construction and the file closed; rows are read by
    reopening it on demand (see :func:`pack`, which bounds how many stay open).

    Args:
        path: The file.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.name = str(path)
        self._h5 = None
        h5, self.meta = reading.open_cache(self.path)
        try:
            self.columns = {}
            group = h5[schema.VIDEOS]
            for column, item in group.items():
                if isinstance(item, h5py.Dataset) and item.ndim >= 1:
                    self.columns[column] = read_column(item)
            failed = h5[schema.FAILED]
            ids, paths, errors = (read_column(failed[c]) for c in schema.FAILED_COLUMNS)
            self.failed = [FailedRecord(*t) for t in zip(ids, paths, errors, strict=True)]
            self.row_specs = {
                name: (h5[name].dtype, h5[name].shape[1:]) for name in schema.row_dataset_names(h5)
            }
            self.num_rows = h5[schema.FEATURES].shape[0]
        except (OSError, KeyError) as exc:
            raise CacheError(f"{path}: damaged vidseq cache ({exc})") from exc
        finally:
            h5.close()
        check_index(self.name, self.columns, self.num_rows)

    @property
    def video_ids(self) -> np.ndarray:
        return self.columns[schema.VIDEO_ID]

    def read_rows(self, name, start, stop):
        if self._h5 is None:
            self._h5 = h5py.File(self.path, "r")
        try:
            return self._h5[name][start:stop]
        except OSError as exc:
            raise CacheError(f"{self.name}: cannot read rows of {name!r} ({exc})") from exc

    def close(self):
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None


def text_array(values) -> np.ndarray:
    """A 1-D object array of str (never a 2-D one, whatever the strings)."""
    values = list(values)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def read_column(dataset: h5py.Dataset) -> np.ndarray:
    if h5py.check_string_dtype(dataset.dtype) is not None:
        return dataset.asstr()[()]
    return dataset[()]


def check_index(where: str, columns: dict[str, np.ndarray], num_rows: int) -> None:
    offsets = columns[schema.OFFSET].astype(np.int64)
    lengths = columns[schema.LENGTH].astype(np.int64)
    num_valid = columns[schema.NUM_VALID].astype(np.int64)
    if len(offsets) and (
        offsets.min() < 0
        or lengths.min() < 0
        or (offsets + lengths).max() > num_rows
        or num_valid.min() < 0
        or (num_valid > lengths).any()
    ):
        raise CacheError(
            f"{where}: videos/offset, videos/length or videos/num_valid point outside "
            f"the {num_rows} rows of 'features'"
        )


class MemorySource(_Source):
    """Videos held in memory by a writer, not yet on disk.

    Args:
        name: Name used in messages.
        meta: The writer's meta (``features`` are stored in ``meta.dtype``).
        records: One :class:`VideoRecord` per video.
        rows: One dict per video, row dataset name -> array with the video's rows
            (``features``, ``frame_indices``, ``timestamps_ms`` and extras).
        failed: Failures to record.
    """

    def __init__(self, name, meta: CacheMeta, records: list[VideoRecord], rows, failed):
        self.name = name
        self.failed = list(failed)
        lengths = np.array([len(r[schema.FEATURES]) for r in rows], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self.columns = {
            schema.VIDEO_ID: text_array([r.video_id for r in records]),
            schema.PATH: text_array([r.path for r in records]),
            schema.LABEL: np.array([r.label for r in records], dtype=np.int32),
            schema.SPLIT: text_array([r.split for r in records]),
            schema.GROUP: text_array([r.group for r in records]),
            schema.OFFSET: offsets,
            schema.LENGTH: lengths.astype(np.int32),
            schema.NUM_VALID: np.array([r.num_valid for r in records], dtype=np.int32),
            schema.FPS: np.array([r.fps for r in records], dtype=np.float64),
            schema.NUM_SOURCE_FRAMES: np.array(
                [r.num_source_frames for r in records], dtype=np.int64
            ),
        }
        names = list(rows[0]) if rows else [schema.FEATURES, *schema.ROW_DATASETS]
        self._rows = {}
        self.row_specs = {}
        for name in names:
            if rows:
                data = np.concatenate([r[name] for r in rows])
            elif name == schema.FEATURES:
                data = np.empty((0, meta.feature_dim), dtype=meta.dtype)
            else:
                data = np.empty((0,), dtype=schema.ROW_DATASETS[name])
            self._rows[name] = data
            self.row_specs[name] = (data.dtype, data.shape[1:])
        self.num_rows = int(lengths.sum())

    def read_rows(self, name, start, stop):
        return self._rows[name][start:stop]


def _check_row_specs(sources: Sequence[_Source]) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """The row datasets common to all sources; CacheError if they disagree."""
    first = sources[0]
    for src in sources[1:]:
        if set(src.row_specs) != set(first.row_specs):
            raise CacheError(
                f"{src.name} and {first.name} disagree on the row-aligned datasets: "
                f"{sorted(src.row_specs)} vs {sorted(first.row_specs)}"
            )
        for name, (dtype, shape) in src.row_specs.items():
            if name == schema.FEATURES:
                continue  # cast to meta.dtype; the dimension is checked by the meta
            if (dtype, shape) != first.row_specs[name]:
                other_dtype, other_shape = first.row_specs[name]
                raise CacheError(
                    f"{src.name} and {first.name} disagree on dataset {name!r}: "
                    f"{dtype}{list(shape)} vs {other_dtype}{list(other_shape)}"
                )
        if set(src.columns) != set(first.columns):
            raise CacheError(
                f"{src.name} and {first.name} disagree on the videos/ columns: "
                f"{sorted(src.columns)} vs {sorted(first.columns)}"
            )
    return first.row_specs


def pack(
    dest,
    meta: CacheMeta,
    sources: Sequence[_Source],
    *,
    duplicates: str = "last",
    tmp_path=None,
) -> Path:
    """Writes the videos of all sources, ordered by ``video_id``, into one packed file.

    The file is written to ``tmp_path``, flushed and fsync'd, then renamed over
    ``dest`` (``os.replace``, atomic on POSIX) and the directory fsync'd: ``dest``
    is either its old self or the complete new file, never half-written.

    Args:
        dest: Destination path.
        meta: Root attributes to write (``features`` are stored in ``meta.dtype``).
        sources: Where the videos come from, oldest first.
        duplicates: ``"last"``: a video id found in several sources is taken from
            the last one (a resumed writer); ``"error"``: it is a CacheError naming
            the id (merging shards).
        tmp_path: Where to write before the rename (default ``<dest>.tmp-<pid>``).

    Returns:
        ``dest`` as a Path.

    Raises:
        CacheError: Sources disagree on their datasets, or share an id with
            ``duplicates="error"``.
        StorageError: The disk is full or a file size limit was reached (the
            temporary file is removed; ``dest`` is left as it was).
    """
    if duplicates not in ("last", "error"):
        raise ValueError(
            f"duplicates must be 'last' or 'error'. Received: duplicates={duplicates!r}"
        )
    dest = Path(dest)
    if tmp_path is None:
        tmp_path = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
    tmp = Path(tmp_path)
    if not sources:
        sources = [MemorySource("(empty)", meta, [], [], [])]
    row_specs = _check_row_specs(sources)
    chosen = _choose_rows(sources, duplicates)
    columns, runs, num_rows = _gather(sources, chosen)
    failed = _latest_failures(sources, chosen)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    storage.check_room(dest, tmp.parent, _size_bound(meta, row_specs, num_rows, columns, failed))
    try:
        with h5py.File(tmp, "w") as h5:
            schema.write_meta(h5, meta)
            _write_packed(h5, meta, row_specs, num_rows, runs, sources, columns, failed)
            h5.flush()
        storage.fsync(tmp)
        os.replace(tmp, dest)
        storage.fsync(dest.parent)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        reason = storage.storage_failure(exc)
        if reason:
            raise StorageError(
                f"cannot write {dest}: {reason}; {dest} was left as it was and nothing "
                "committed before is lost: make room, then rerun the same command"
            ) from exc
        raise
    finally:
        for src in sources:
            src.close()
    return dest


def _choose_rows(sources: Sequence[_Source], duplicates: str) -> dict[str, tuple[int, int]]:
    """``video_id -> (source, row)``; later sources win for ``"last"``."""
    chosen: dict[str, tuple[int, int]] = {}
    for s, src in enumerate(sources):
        for row, vid in enumerate(src.columns[schema.VIDEO_ID]):
            if duplicates == "error" and vid in chosen:
                other = sources[chosen[vid][0]].name
                raise CacheError(f"video id {vid!r} is in both {other} and {src.name}")
            chosen[vid] = (s, row)
    return chosen


def _gather(sources: Sequence[_Source], chosen: dict[str, tuple[int, int]]):
    """The packed ``videos/`` columns (by id), the row runs to copy, and the row count.

    A run ``[source, start row, row count]`` covers consecutive videos whose rows
    follow each other in one source, so that they are copied in one read.
    """
    order = sorted(chosen)
    n = len(order)
    src_of = np.fromiter((chosen[v][0] for v in order), dtype=np.int64, count=n)
    row_of = np.fromiter((chosen[v][1] for v in order), dtype=np.int64, count=n)
    columns = {}
    for column, values in sources[0].columns.items():
        out = np.empty((n, *values.shape[1:]), dtype=values.dtype)
        for s, src in enumerate(sources):
            sel = src_of == s
            if sel.any():
                out[sel] = src.columns[column][row_of[sel]]
        columns[column] = out
    src_offsets = columns[schema.OFFSET].astype(np.int64)
    lengths = columns[schema.LENGTH].astype(np.int64)
    offsets = np.zeros(n, dtype=np.int64)
    if n:
        offsets[1:] = np.cumsum(lengths)[:-1]
    columns[schema.OFFSET] = offsets
    runs: list[list[int]] = []
    for i in range(n):
        s, start, length = int(src_of[i]), int(src_offsets[i]), int(lengths[i])
        if runs and runs[-1][0] == s and runs[-1][1] + runs[-1][2] == start:
            runs[-1][2] += length
        elif length:
            runs.append([s, start, length])
    return columns, runs, int(lengths.sum())


def _latest_failures(sources: Sequence[_Source], chosen) -> list[FailedRecord]:
    """The failures, sorted by id: the latest record of each, none for a video now done."""
    failures: dict[str, FailedRecord] = {}
    for src in sources:
        for rec in src.failed:
            failures[rec.video_id] = rec  # duplicates collapse to the latest
    return [failures[v] for v in sorted(failures) if v not in chosen]


def _write_packed(h5, meta, row_specs, num_rows, runs, sources, columns, failed) -> None:
    """Writes the row datasets, the ``videos/`` index and the ``failed/`` table."""
    open_sources: OrderedDict[int, _Source] = OrderedDict()
    # Canonical order (features, then by name), whatever the sources' order.
    for name in [schema.FEATURES, *sorted(set(row_specs) - {schema.FEATURES})]:
        dtype, trailing = row_specs[name]
        if name == schema.FEATURES:
            dtype = np.dtype(meta.dtype)
        _write_rows(h5, name, dtype, trailing, num_rows, runs, sources, open_sources)
    group = h5.create_group(schema.VIDEOS)
    unknown = sorted(set(columns) - set(schema.VIDEO_COLUMNS))
    for column in [*schema.VIDEO_COLUMNS, *unknown]:
        dtype = schema.VIDEO_COLUMNS.get(column, columns[column].dtype)
        _create(group, column, columns[column], dtype)
    group = h5.create_group(schema.FAILED)
    for column in schema.FAILED_COLUMNS:
        values = text_array([getattr(f, column) for f in failed])
        _create(group, column, values, schema.STRING_DTYPE)


PACK_OVERHEAD_BYTES = 64 * 1024
"""Upper bound of what a packed file holds besides its data (headers, B-trees, heaps)."""


def _size_bound(meta, row_specs, num_rows, columns, failed) -> int:
    """An upper bound of the size of the packed file, in bytes."""
    total = PACK_OVERHEAD_BYTES
    for name, (dtype, trailing) in row_specs.items():
        itemsize = np.dtype(meta.dtype if name == schema.FEATURES else dtype).itemsize
        total += num_rows * int(np.prod(trailing, dtype=np.int64)) * itemsize
    total += 64 * (num_rows // max(1, feature_chunk_rows(meta.feature_dim, meta.dtype, 1 << 30)))
    texts = [values for values in columns.values() if values.dtype == object]
    texts += [[getattr(f, c) for f in failed] for c in schema.FAILED_COLUMNS]
    for values in texts:  # variable-length strings: a reference, a heap object, padding
        total += sum(56 + len(str(v).encode("utf-8")) for v in values)
    total += sum(16 * len(values) for values in columns.values() if values.dtype != object)
    return total


def _create(group, name, values, dtype):
    if h5py.check_string_dtype(np.dtype(dtype)) is not None:
        values = np.asarray(values, dtype=object)
    group.create_dataset(name, data=values, dtype=dtype, track_times=False)


def _write_rows(h5, name, dtype, trailing, num_rows, runs, sources, open_sources):
    """Copies one row dataset run by run through a chunk-aligned buffer."""
    shape = (num_rows, *trailing)
    chunks = None
    if name == schema.FEATURES and num_rows:
        rows = feature_chunk_rows(int(np.prod(trailing)), dtype, num_rows)
        chunks = (rows, *trailing)
    ds = h5.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, track_times=False)
    if not num_rows:
        return
    row_bytes = max(1, int(np.prod(trailing, dtype=np.int64)) * np.dtype(dtype).itemsize)
    step = chunks[0] if chunks else 1
    block = max(step, (COPY_BLOCK_BYTES // row_bytes) // step * step)
    block = min(block, num_rows)
    buf = np.empty((block, *trailing), dtype=dtype)
    fill = 0
    written = 0
    for s, start, count in runs:
        src = sources[s]
        open_sources[s] = src
        open_sources.move_to_end(s)
        if len(open_sources) > MAX_OPEN_FILES:
            open_sources.popitem(last=False)[1].close()
        while count:
            take = min(count, block - fill)
            buf[fill : fill + take] = src.read_rows(name, start, start + take)
            fill += take
            start += take
            count -= take
            if fill == block:
                ds[written : written + fill] = buf
                written += fill
                fill = 0
    if fill:
        ds[written : written + fill] = buf[:fill]
