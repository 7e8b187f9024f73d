"""merge_caches: combine shard caches into one (``vidseq cache merge``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vidseq.cache.packing import FileSource, pack
from vidseq.cache.writer import parts_dir_for
from vidseq.errors import CacheError
from vidseq.outputs import real_output, same_path


def merge_caches(out, inputs, *, overwrite: bool = False) -> Path:
    """Merges caches written with the same settings (e.g. shards) into one packed file.

    The output is packed exactly like :meth:`CacheWriter.finalize` packs (the same
    code: videos ordered by ``video_id``), so merging the shards of a run gives
    the file a single unsharded run would have written. It is written to
    ``<out>.tmp-<pid>`` and renamed into place when complete. Failures recorded
    in any input are kept, except for ids that succeeded in another input.

    Args:
        out: The merged cache to write.
        inputs: Cache files to merge (at least one).
        overwrite: Replace ``out`` if it exists.

    Returns:
        ``out`` as a Path.

    Raises:
        CacheError: No inputs, an input that is not a valid cache or is
            unfinished, inputs that disagree (the differences are listed) or share
            a video id (named), ``out`` among the inputs, or ``out`` exists
            without ``overwrite``.
    """
    out = Path(out)
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise CacheError("cache merge needs at least one input cache")
    for path in inputs:
        if same_path(out, path):
            raise CacheError(f"the output {out} is also an input; write the merge elsewhere")
    if len({os.path.realpath(p) for p in inputs}) != len(inputs):
        raise CacheError("the same input cache is given twice")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise CacheError(f"{out} already exists; use overwrite to replace it")
    if out.is_dir():
        raise CacheError(f"{out} is a directory, expected a cache file path")
    for path in inputs:
        if parts_dir_for(path).exists():
            raise CacheError(
                f"{path} has unfinished parts in {parts_dir_for(path)}: "
                f"rerun its extraction to finish it before merging"
            )
    sources = [FileSource(p) for p in inputs]
    first = sources[0]
    for src in sources[1:]:
        diffs = first.meta.differences(src.meta)
        if diffs:
            raise CacheError(f"{src.name} disagrees with {first.name}: {'; '.join(diffs)}")
    return pack(real_output(out), first.meta, sources, duplicates="error")


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


@dataclass
class MergeResult:
    """What ``vidseq cache merge`` did.

    Attributes:
        out: The merged cache.
        inputs: The caches merged into it.
    """

    out: Path
    inputs: list[Path]

    def summary(self) -> str:
        """One line."""
        return f"merged {len(self.inputs)} caches into {self.out}"

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"out": str(self.out), "inputs": [str(p) for p in self.inputs]}


def cache_merge(out, inputs, *, overwrite: bool = False) -> MergeResult:
    """``vidseq cache merge``: :func:`merge_caches`, with a result that prints itself.

    Args:
        out: The merged cache to write.
        inputs: Cache files to merge (at least one).
        overwrite: Replace ``out`` if it exists.

    Returns:
        The :class:`MergeResult`.
    """
    merged = merge_caches(out, inputs, overwrite=overwrite)
    return MergeResult(merged, [Path(p) for p in inputs])
