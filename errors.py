"""Exceptions shared by every vidseq package.

The CLI maps them to exit codes: :class:`UsageError` (bad input, the user's to
fix) and :class:`SourceReadError` (an input that cannot be read, raised where
it stops the command, e.g. ``--strict`` or an unopenable stream) exit with 2 and
one line on stderr; any other :class:`VidseqError` exits with 1. This module
imports nothing so that every package may use it.
"""


class VidseqError(Exception):
    """Base class of the errors vidseq raises on purpose."""


class UsageError(VidseqError, ValueError):
    """Bad input: a wrong argument, an unreadable dataset layout, a bad cache or run."""


class CacheError(UsageError):
    """A file that is not a usable vidseq cache, or one that disagrees with the request."""


class StorageError(VidseqError):
    """Writing failed because the disk is full or a file size limit was reached.

    A runtime failure (exit code 1), not bad input: what was committed before is
    kept, and rerunning the same command once there is room resumes.
    """


class SourceReadError(VidseqError):
    """One video, clip or frame directory could not be read.

    Extraction records it in the cache's ``failed/`` table and goes on.

    Args:
        path: The source that failed (a file or directory path, or a clip's
            first image).
        reason: What went wrong, in a few words.
    """

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason
