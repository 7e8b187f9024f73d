"""Room on disk: refuse a write that cannot fit, and say why one failed for lack of room.

A write known to fail is never started (HDF5 may crash on a failed write while
it frees objects); a failure the kernel reports is turned into a
:class:`vidseq.errors.StorageError` that says what to do.
"""

from __future__ import annotations

import errno
import os
import re
import resource
from pathlib import Path

from vidseq.errors import StorageError


def check_room(dest: Path, folder: Path, needed: int) -> None:
    """Refuses, before HDF5 writes anything, a file that cannot fit.

    HDF5 reports some failed writes only while it frees objects, where h5py can
    merely print them, and the library may then crash: a write that is known to
    fail is never started.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY and needed > soft:
        reason = (
            f"{STORAGE_ERRNOS[errno.EFBIG]}: it needs up to {needed} bytes, the limit is {soft}"
        )
    else:
        try:
            stat = os.statvfs(folder)
        except OSError:
            return
        free = stat.f_bavail * stat.f_frsize
        if needed <= free:
            return
        reason = f"{STORAGE_ERRNOS[errno.ENOSPC]}: it needs up to {needed} bytes, {free} are free"
    raise StorageError(
        f"cannot write {dest}: {reason}; {dest} was left as it was and nothing committed "
        "before is lost: make room, then rerun the same command"
    )


STORAGE_ERRNOS = {
    errno.ENOSPC: "no space left on device (ENOSPC)",
    errno.EFBIG: "file too large: the file size limit (ulimit -f) was reached (EFBIG)",
    errno.EDQUOT: "disk quota exceeded (EDQUOT)",
}
HDF5_ERRNO = re.compile(r"errno = (\d+)")


def storage_failure(exc: BaseException) -> str | None:
    """Says why a write failed for lack of room, or returns None for any other error.

    h5py reports a failed ``write(2)`` as a RuntimeError or OSError whose text
    holds ``errno = 28`` and, while closing the file, raises another one on top:
    the whole chain of causes is searched.

    Args:
        exc: The exception raised while writing.

    Returns:
        A few words (``"no space left on device (ENOSPC)"``, ...) or None.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        codes = [getattr(exc, "errno", None)] if isinstance(exc, OSError) else []
        codes += [int(code) for code in HDF5_ERRNO.findall(str(exc))]
        for code in codes:
            if code in STORAGE_ERRNOS:
                return STORAGE_ERRNOS[code]
        exc = exc.__cause__ or exc.__context__
    return None


def fsync(path: Path) -> None:
    """Flushes a file or folder to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
