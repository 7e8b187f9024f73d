"""One line for the failures a user causes or can fix: a full disk, a permission, memory.

The command line turns these exceptions into one line on stderr instead of a
traceback (``VIDSEQ_DEBUG=1`` keeps the traceback):

* ``OSError`` with ``ENOSPC``/``EDQUOT``/``EFBIG`` (the disk or a quota is full),
  ``EACCES``/``EPERM``/``EROFS`` (not allowed to write or read),
  ``EISDIR``/``ENOTDIR`` (a folder where a file was expected, or the reverse),
  ``ELOOP`` (a symlink loop), ``ENOENT`` (a missing file): the message names the
  path and what to do.
* ``MemoryError`` and TensorFlow's ``ResourceExhaustedError`` (matched by
  name: this module imports no TensorFlow).

:func:`resume_hint` says how to continue after Ctrl-C, per command.

Imports nothing, so that every layer may use it.
"""

from __future__ import annotations

import errno

_WHAT_TO_DO = {
    errno.ENOSPC: "no space left on the device; free some space, then rerun",
    errno.EDQUOT: "disk quota exceeded; free some space, then rerun",
    errno.EFBIG: "file too large (the file size limit, ulimit -f); raise it, then rerun",
    errno.EACCES: "permission denied; change its permissions or choose another path",
    errno.EPERM: "operation not permitted; change its permissions or choose another path",
    errno.EROFS: "read-only file system; choose a path on a writable disk",
    errno.EISDIR: "is a folder; name a file",
    errno.ENOTDIR: "a part of the path is not a folder; fix the path",
    errno.ELOOP: "too many levels of symbolic links (a symlink loop); fix the link",
    errno.ENOENT: "no such file or folder; check the path",
    errno.EEXIST: "exists and is in the way (a file where a folder goes?); choose another path",
    errno.ENAMETOOLONG: "file name too long; choose a shorter path",
}
"""errno -> what it means and what to do, for :func:`describe_failure`."""

OUT_OF_MEMORY = (
    "out of memory; use a smaller --batch-size or fewer --frames, or a machine with more memory"
)

TRAINING_COMMANDS = ("train-sequence", "finetune")
"""Commands that resume with ``--resume`` (the others resume by rerunning them)."""
RERUN_COMMANDS = ("extract-features",)
"""Commands that resume when the same command is rerun."""


def describe_failure(error: BaseException, *, where=None, command: str = "") -> str | None:
    """One line for an OS or memory failure, or None for any other exception.

    Args:
        error: The exception.
        where: The path to name when the error names none (the command's output).
        command: The command that failed: training commands are told to rerun
            with ``--resume``.
    """
    if isinstance(error, MemoryError) or type(error).__name__ == "ResourceExhaustedError":
        return OUT_OF_MEMORY
    if not isinstance(error, OSError) or error.errno not in _WHAT_TO_DO:
        return None
    path = error.filename if error.filename is not None else where
    if error.filename2 is not None:
        path = f"{error.filename} -> {error.filename2}"
    text = f"{path}: " if path is not None else ""
    text += _WHAT_TO_DO[error.errno]
    if command in TRAINING_COMMANDS:
        text = text.replace("then rerun", "then rerun the same command with --resume")
    return text


def resume_hint(command: str) -> str:
    """What to tell the user after Ctrl-C stopped ``command``."""
    if command in TRAINING_COMMANDS:
        return "interrupted; rerun the same command with --resume to continue"
    if command in RERUN_COMMANDS:
        return "interrupted; rerun the same command to resume"
    return "interrupted"
