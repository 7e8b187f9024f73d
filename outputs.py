"""Safe output paths: one rule for every command that writes a file or a folder.

* An output is never one of the command's own inputs, even with ``--overwrite``:
  paths are compared after resolving symlinks (``os.path.realpath``) and, when
  both exist, with ``os.path.samefile`` (hard links). Files inside an input
  folder given as ``within`` (a run directory read by ``predict``) are inputs
  too.
* An output that exists is refused unless ``overwrite``; a folder is never
  taken for a file.
* The folder the output goes to must be writable; that is checked before any
  work starts, so a long extraction does not end in ``permission denied``.
* :func:`atomic_output` writes to a temporary name in the same folder and
  renames it into place (``os.replace``): a failure leaves the old file whole.
* :func:`real_output` is where a writer locks and writes: through a symlink,
  the file it points to (the symlink stays a symlink).

Imports nothing of vidseq but its errors, so that every layer may use it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from vidseq.errors import UsageError


def real_output(path) -> Path:
    """The path a writer locks and replaces: ``path`` with its symlinks resolved.

    A path without symlinks comes back as given (relative paths stay relative).
    """
    path = Path(path)
    real = os.path.realpath(path)
    return path if real == os.path.abspath(path) else Path(real)


def same_path(a, b) -> bool:
    """Whether two paths name the same file or folder (symlinks and hard links too)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def is_within(path, folder) -> bool:
    """Whether ``path`` (resolved) lies inside ``folder`` (resolved), at any depth."""
    folder = os.path.realpath(folder)
    return os.path.realpath(path).startswith(folder.rstrip(os.sep) + os.sep)


def refuse_inputs(out, inputs=(), *, within=(), flag="out") -> None:
    """Refuses an output that is one of the inputs, or an existing file inside ``within``.

    Args:
        out: The output path.
        inputs: Paths the command reads (files or folders).
        within: Folders the command reads as a whole (a run directory): an
            existing path inside one is an input too.
        flag: The flag that named ``out``, for the message.

    Raises:
        UsageError: ``out`` would write over an input.
    """
    for source in inputs:
        if same_path(out, source):
            raise UsageError(
                f"{flag} must not be one of the command's own inputs (never written over, "
                f"even with --overwrite); choose another path. Received: {flag}={out} "
                f"(the input {source})"
            )
    for folder in within:
        if os.path.lexists(out) and (same_path(out, folder) or is_within(out, folder)):
            raise UsageError(
                f"{flag} must not be a file of the input {folder} (never written over, even "
                f"with --overwrite); choose another path. Received: {flag}={out}"
            )


def check_writable_folder(out, *, flag="out") -> None:
    """Refuses an output whose nearest existing folder is not a writable folder."""
    parent = Path(os.path.abspath(out)).parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{flag} must be in a folder; {parent} is a file. Received: {flag}={out}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(
            f"{flag} must be in a writable folder; cannot write in {parent} (permission "
            f"denied). Received: {flag}={out}"
        )


def check_output(out, inputs=(), *, within=(), overwrite=False, folder=False, flag="out"):
    """Checks an output path before any work; every command's one rule.

    Args:
        out: The file (or folder, with ``folder=True``) the command will write.
        inputs: Paths the command reads: never written over.
        within: Folders read as a whole: their existing files are never written over.
        overwrite: Replace an existing output that is not an input.
        folder: ``out`` is a folder (an existing empty folder is not "existing").
        flag: The flag that named ``out``, for the messages.

    Returns:
        ``out`` as a Path.

    Raises:
        UsageError: One line naming ``flag`` and the problem.
    """
    refuse_inputs(out, inputs, within=within, flag=flag)
    path = Path(out)
    if folder and path.exists() and not path.is_dir():
        raise UsageError(f"{flag} must be a folder; it is a file. Received: {flag}={out}")
    if not folder and path.is_dir():
        raise UsageError(f"{flag} must name a file, not a folder. Received: {flag}={out}")
    occupied = path.is_dir() and any(path.iterdir()) if folder else os.path.lexists(path)
    if occupied and not overwrite:
        raise UsageError(
            f"{flag} must be a new path, and it exists; choose another path, or replace it "
            "with --overwrite. "
            f"Received: {flag}={out}"
        )
    check_writable_folder(path, flag=flag)
    return path


def check_output_files(folder, names, inputs=(), *, overwrite=False, flag="out"):
    """Checks a folder that a command writes some named files into, before any work.

    The folder may exist and hold other files: they are never touched. Each of
    ``names`` inside it is an output under :func:`check_output`'s rule: never
    one of ``inputs``, and replaced only with ``overwrite``.

    Args:
        folder: The folder (created when missing).
        names: The names of the files the command writes into it.
        inputs: Paths the command reads: never written over.
        overwrite: Replace those of ``names`` that exist.
        flag: The flag that named ``folder``, for the messages.

    Returns:
        ``folder`` as a Path.

    Raises:
        UsageError: One line naming ``flag`` and the problem.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{flag} must be a folder; it is a file. Received: {flag}={folder}")
    refuse_inputs(folder, inputs, flag=flag)
    for name in names:
        path = folder / name
        refuse_inputs(path, inputs, flag=flag)
        if os.path.lexists(path) and not overwrite:
            raise UsageError(
                f"{flag} must not hold {name} already, and it does; choose another folder, "
                f"or replace it with --overwrite. Received: {flag}={folder}"
            )
    check_writable_folder(folder / names[0], flag=flag)
    return folder


@contextlib.contextmanager
def atomic_output(path, mode="wb", **open_kwargs):
    """Opens a temporary file beside ``path``; renames it over ``path`` when the block ends.

    Through a symlink the file it points to is replaced. If the block raises,
    the temporary file is removed and ``path`` is left as it was.

    Args:
        path: The final file.
        mode: ``open`` mode of the temporary file (``"w"`` or ``"wb"``).
        **open_kwargs: ``encoding``, ``newline``.

    Yields:
        The open temporary file.
    """
    dest = real_output(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent or ".")
    try:
        with os.fdopen(fd, mode, **open_kwargs) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
