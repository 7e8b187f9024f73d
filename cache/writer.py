"""CacheWriter: crash-safe, resumable writing of a feature cache.

Design (why it is safe to ``kill -9`` at any moment):

* **Part files.** Finished videos are kept in memory and *committed* every
  ``commit_every`` videos (default 32) or ``commit_seconds`` (default 30 s),
  whichever comes first, as one small part file in the sibling folder
  ``<out>.parts/``. A part is itself a valid schema-v1 file in the packed
  layout, written as ``part-NNNNNN.h5.tmp``, flushed and fsync'd, then renamed
  into place with ``os.replace`` (atomic on POSIX) and the folder fsync'd. A
  kill therefore loses at most the videos since the last commit (32 videos or
  30 seconds of work); a part is either complete or absent, never half-written.
* **Resume.** A new writer on the same output reads the ids of the final file
  (if any) and of every part: :attr:`CacheWriter.done_ids`. The caller skips
  them. Failed videos are not "done": a rerun tries them again.
* **One writer at a time.** An exclusive, non-blocking ``fcntl.flock`` on
  ``<out>.parts/lock`` makes a second writer of the same output fail at once
  with CacheError. The kernel drops the lock when its process dies, so a killed
  run never leaves a stale lock behind. An output reached through a symlink is
  locked and written at the symlink's target (``outputs.real_output``): two
  writers through two names of one file see each other, and the symlink stays.
* **Finalize.** :meth:`CacheWriter.finalize` packs the existing final file (if
  compatible), every part and the pending videos into ``<out>.tmp-<pid>``,
  fsyncs it and renames it over ``out``; only then is the parts folder removed.
  ``out`` is thus always either the old complete file or the new complete one.
  A kill between the rename and the removal of the parts is harmless: the parts
  repeat videos already in ``out``, and packing takes each id once.
* **Ordering.** Packed files hold videos sorted by ``video_id``, so a resumed, a
  sharded-then-merged and an uninterrupted run give identical files.
* **Mismatch.** An existing final file or parts made with another
  :class:`~vidseq.cache.schema.CacheMeta` (backbone, weights hash, engine, input
  size, feature dim, sampling, classes, dtype) is a CacheError listing the
  differences, and nothing is touched, unless ``overwrite=True``. Then the old
  parts are deleted only when the new run writes its first part, a marker
  ``<out>.parts/OVERWRITE`` says that the parts replace the old final file (so
  an interrupted overwrite run resumes, with or without ``overwrite``), and the
  old final file stays until the new complete one is renamed over it.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import re
import time
from pathlib import Path

import numpy as np

from vidseq.cache import reading, schema
from vidseq.cache.packing import FileSource, MemorySource, pack
from vidseq.cache.schema import CacheMeta, FailedRecord, VideoRecord
from vidseq.errors import CacheError
from vidseq.outputs import real_output

LOCK_NAME = "lock"
OVERWRITE_MARKER = "OVERWRITE"
_PART_RE = re.compile(r"^part-(\d{6,})\.h5$")


def parts_dir_for(out_path) -> Path:
    """The folder holding the part files of an unfinished cache: ``<out>.parts``."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".parts")


def recorded_precision_check(out_path, meta: CacheMeta, *, overwrite: bool = False) -> dict:
    """The agreement check that the files a :class:`CacheWriter` would resume already record.

    A rerun continues the final file and the part files (an interrupted
    overwrite run: its parts only). When each of them was made with ``meta``'s
    compared settings (backbone, weights hash, engine, precision, sampling ...;
    see :meth:`CacheMeta.differences`), the ``precision_check`` they record
    describes the features still to be written as well: extraction need not
    run it again.

    Args:
        out_path: The final cache file.
        meta: What the new run produces.
        overwrite: Whether the new run replaces an existing cache.

    Returns:
        The recorded ``precision_check``; {} when nothing would be resumed, a
        file disagrees with ``meta`` or cannot be read, or none records a check.
    """
    out_path = real_output(out_path)
    parts_dir = parts_dir_for(out_path)
    marker = (parts_dir / OVERWRITE_MARKER).exists()
    if overwrite and not marker:
        return {}
    paths = [p for p in parts_dir.glob("part-*.h5") if _PART_RE.match(p.name)]
    if not marker and out_path.exists():
        paths.insert(0, out_path)
    checks = []
    for path in paths:
        try:
            h5, found = reading.open_cache(path)
        except CacheError:
            return {}
        h5.close()
        if meta.differences(found):
            return {}
        checks.append(found.precision_check)
    return next((check for check in checks if check), {})


class CacheWriter:
    """Writes a feature cache crash-safely; resumes what an earlier run committed.

    Use it as a context manager::

        with CacheWriter("features.h5", meta) as writer:
            for item in items:
                if item.video_id in writer.done_ids:
                    continue
                writer.add(record, features, frame_indices, timestamps_ms)
            writer.finalize()

    Leaving the ``with`` block without :meth:`finalize` (an exception, Ctrl-C)
    commits the pending videos and releases the lock: a rerun resumes.

    Args:
        out_path: The final cache file.
        meta: What produces the features; must agree with an existing cache or parts.
        overwrite: Replace an existing cache (or parts) made with other settings
            instead of refusing.
        commit_every: Commit after this many videos (or failures).
        commit_seconds: Commit when this many seconds passed since the last commit.

    Attributes:
        done_ids: Video ids already committed successfully (final file or parts).
        out_path: The final cache file.
        parts_dir: ``<out>.parts``.

    Raises:
        CacheError: Another process writes the same output, or an existing cache
            or parts disagree with ``meta`` (without ``overwrite``), or the output
            exists and is not a vidseq cache (without ``overwrite``).
    """

    def __init__(
        self,
        out_path,
        meta: CacheMeta,
        *,
        overwrite: bool = False,
        commit_every: int = 32,
        commit_seconds: float = 30.0,
    ):
        if int(commit_every) < 1:
            raise ValueError(f"commit_every must be >= 1. Received: commit_every={commit_every}")
        if not commit_seconds > 0:
            raise ValueError(
                f"commit_seconds must be > 0. Received: commit_seconds={commit_seconds}"
            )
        self.out_path = real_output(out_path)  # through a symlink: lock and replace its target
        self.parts_dir = parts_dir_for(self.out_path)
        self.meta = meta
        self.overwrite = bool(overwrite)
        self.commit_every = int(commit_every)
        self.commit_seconds = float(commit_seconds)
        self.done_ids: set[str] = set()
        self._records: list[VideoRecord] = []
        self._rows: list[dict[str, np.ndarray]] = []
        self._failures: list[FailedRecord] = []
        self._sources = []  # FileSources found at open: final file and parts
        self._new_parts: list[Path] = []
        self._stale_parts: list[Path] = []
        self._replacing = False
        self._began = False
        self._row_specs = None  # row dataset name -> (dtype, trailing shape)
        self._lock_fd = None
        self._closed = False
        self._last_commit = time.monotonic()
        self._open()

    # -- opening ----------------------------------------------------------------------------

    def _open(self):
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.parts_dir.exists()
        self.parts_dir.mkdir(exist_ok=True)
        lock_path = self.parts_dir / LOCK_NAME
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CacheError(
                f"another vidseq process is writing {self.out_path} (it holds {lock_path})"
            ) from None
        self._lock_fd = fd
        try:
            self._scan()
        except BaseException:
            self._release(remove_dir=created)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._remove_stale_temporaries()

    def _scan(self):
        marker = (self.parts_dir / OVERWRITE_MARKER).exists()
        parts = sorted(
            (p for p in self.parts_dir.iterdir() if _PART_RE.match(p.name)),
            key=lambda p: int(_PART_RE.match(p.name).group(1)),
        )
        self._next_part = 1 + max((int(_PART_RE.match(p.name).group(1)) for p in parts), default=0)
        part_sources = [FileSource(p) for p in parts]
        part_diffs = sorted({d for s in part_sources for d in self.meta.differences(s.meta)})

        final = None
        if self.out_path.exists() and not marker:
            try:
                final = FileSource(self.out_path)
            except CacheError as exc:
                if not self.overwrite:
                    raise CacheError(
                        f"{self.out_path} exists and is not a usable vidseq cache ({exc}); "
                        f"refusing to replace it without overwrite"
                    ) from None
        if self.overwrite:
            self._replacing = True
            if marker and not part_diffs:
                self._sources = part_sources  # resume an interrupted overwrite run
            else:
                self._stale_parts = parts
                self._sources = []
        else:
            if part_diffs:
                raise CacheError(
                    f"{self.parts_dir} holds parts of an unfinished run made with other "
                    f"settings ({'; '.join(part_diffs)}); use overwrite to start again"
                )
            if final is not None:
                diffs = self.meta.differences(final.meta)
                if diffs:
                    raise CacheError(
                        f"{self.out_path} was made with other settings ({'; '.join(diffs)}); "
                        f"use overwrite to replace it"
                    )
            self._replacing = marker
            self._sources = ([final] if final is not None else []) + part_sources
        for src in self._sources:
            self.done_ids.update(src.video_ids)
        if self._sources:
            self._row_specs = dict(self._sources[0].row_specs)

    def _remove_stale_temporaries(self):
        for path in self.parts_dir.glob("*.tmp"):
            path.unlink(missing_ok=True)
        prefix = self.out_path.name + ".tmp-"
        for path in self.out_path.parent.glob(glob.escape(prefix) + "*"):
            pid = path.name[len(prefix) :]
            if pid.isdigit() and not _process_alive(int(pid)):
                path.unlink(missing_ok=True)

    # -- adding -----------------------------------------------------------------------------

    def add(self, record: VideoRecord, features, frame_indices, timestamps_ms, row_extras=None):
        """Adds one finished video; commits when the commit interval is reached.

        Args:
            record: Its index entry.
            features: (T, D) array, stored in ``meta.dtype``.
            frame_indices: (T,) source frame index of each row.
            timestamps_ms: (T,) time of each row in the video.
            row_extras: Optional dict name -> array with T rows (e.g.
                ``{"face_found": bool (T,)}``), stored as extra row-aligned
                datasets. Every video of a cache must give the same names.

        Raises:
            ValueError: Shapes, label or text that the format cannot hold.
        """
        self._check_open()
        _check_record(record, len(self.meta.class_names))
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != self.meta.feature_dim:
            raise ValueError(
                f"features of {record.video_id!r} must have shape (T, {self.meta.feature_dim}). "
                f"Received: shape={features.shape}"
            )
        num = features.shape[0]
        rows = {schema.FEATURES: features.astype(self.meta.dtype)}
        for name, value, dtype in (
            (schema.FRAME_INDICES, frame_indices, np.int64),
            (schema.TIMESTAMPS_MS, timestamps_ms, np.float64),
        ):
            value = np.asarray(value)
            if value.shape != (num,):
                raise ValueError(
                    f"{name} of {record.video_id!r} must have shape ({num},). "
                    f"Received: shape={value.shape}"
                )
            rows[name] = value.astype(dtype)
        for name, value in sorted((row_extras or {}).items()):
            value = np.asarray(value)
            if name in rows or "/" in name or not name:
                raise ValueError(f"row_extras may not be named {name!r}")
            if value.ndim < 1 or value.shape[0] != num:
                raise ValueError(
                    f"row_extras[{name!r}] of {record.video_id!r} must have {num} rows. "
                    f"Received: shape={value.shape}"
                )
            rows[name] = value
        if not 0 <= int(record.num_valid) <= num:
            raise ValueError(
                f"num_valid of {record.video_id!r} must be in [0, {num}]. "
                f"Received: num_valid={record.num_valid}"
            )
        specs = {name: (value.dtype, value.shape[1:]) for name, value in rows.items()}
        specs[schema.FEATURES] = (np.dtype(self.meta.dtype), (self.meta.feature_dim,))
        if self._row_specs is None:
            self._row_specs = specs
        elif specs != self._row_specs:
            raise ValueError(
                f"row datasets of {record.video_id!r} differ from the cache's: "
                f"{_describe_specs(specs)} vs {_describe_specs(self._row_specs)}"
            )
        self._records.append(record)
        self._rows.append(rows)
        self._maybe_commit()

    def add_failure(self, failed: FailedRecord):
        """Records an input that could not be read (it stays out of ``done_ids``).

        Args:
            failed: The failure.
        """
        self._check_open()
        for name in ("video_id", "path", "error"):
            _check_text(f"failed.{name}", getattr(failed, name))
        self._failures.append(failed)
        self._maybe_commit()

    def _maybe_commit(self):
        pending = len(self._records) + len(self._failures)
        if (
            pending >= self.commit_every
            or time.monotonic() - self._last_commit >= self.commit_seconds
        ):
            self.commit()

    # -- committing -------------------------------------------------------------------------

    def _pending_source(self):
        return MemorySource(
            f"{self.out_path} (pending)", self.meta, self._records, self._rows, self._failures
        )

    def _begin_writing(self):
        """First write of this run: drop stale parts, mark an overwrite run."""
        if self._began:
            return
        for path in self._stale_parts:
            path.unlink(missing_ok=True)
        self._stale_parts = []
        marker = self.parts_dir / OVERWRITE_MARKER
        if self._replacing and not marker.exists():
            with open(marker, "w") as f:
                f.write("these parts replace the existing final file\n")
                f.flush()
                os.fsync(f.fileno())
            _fsync_dir(self.parts_dir)
        self._began = True

    def commit(self):
        """Writes the pending videos and failures as one new part file, atomically.

        Does nothing when nothing is pending.
        """
        self._check_open()
        if not self._records and not self._failures:
            self._last_commit = time.monotonic()
            return
        self._begin_writing()
        dest = self.parts_dir / f"part-{self._next_part:06d}.h5"
        pack(
            dest,
            self.meta,
            [self._pending_source()],
            duplicates="last",
            tmp_path=dest.with_name(dest.name + ".tmp"),
        )
        self._next_part += 1
        self._new_parts.append(dest)
        self.done_ids.update(r.video_id for r in self._records)
        self._records, self._rows, self._failures = [], [], []
        self._last_commit = time.monotonic()

    def finalize(self) -> Path:
        """Packs the final file, the parts and the pending videos into ``out``, atomically.

        Then removes the parts folder and releases the lock; the writer is closed.

        Returns:
            The path of the final cache.
        """
        self._check_open()
        self._begin_writing()
        sources = list(self._sources) + [FileSource(p) for p in self._new_parts]
        if self._records or self._failures:
            sources.append(self._pending_source())
        pack(self.out_path, self.meta, sources, duplicates="last")
        self._records, self._rows, self._failures = [], [], []
        for path in self.parts_dir.iterdir():
            if path.name != LOCK_NAME:
                path.unlink(missing_ok=True)
        self._release(remove_dir=True)
        return self.out_path

    def close(self):
        """Commits what is pending and releases the lock, without finalizing."""
        if self._closed:
            return
        try:
            self.commit()
        finally:
            self._release(remove_dir=False)

    def _release(self, remove_dir: bool):
        if remove_dir:
            (self.parts_dir / LOCK_NAME).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.parts_dir.rmdir()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None
        self._closed = True

    def _check_open(self):
        if self._closed:
            raise RuntimeError(f"the CacheWriter of {self.out_path} is closed")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    def __repr__(self):
        return (
            f"CacheWriter({str(self.out_path)!r}, done={len(self.done_ids)}, "
            f"pending={len(self._records)}, closed={self._closed})"
        )


def _check_text(name, value):
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a str. Received: {name}={value!r}")
    if "\x00" in value:
        raise ValueError(f"{name} may not contain NUL characters. Received: {name}={value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{name} is not valid UTF-8 text. Received: {name}={value!r}") from exc


def _check_record(record: VideoRecord, num_classes: int):
    _check_text("video_id", record.video_id)
    if not record.video_id:
        raise ValueError("video_id may not be empty")
    for name in ("path", "split", "group"):
        _check_text(name, getattr(record, name))
    if not -1 <= int(record.label) < num_classes:
        raise ValueError(
            f"label of {record.video_id!r} must be -1 or an index into the "
            f"{num_classes} class names. Received: label={record.label}"
        )


def _describe_specs(specs):
    return ", ".join(f"{n}: {d}{list(s)}" for n, (d, s) in sorted(specs.items()))


def _fsync_dir(path: Path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
