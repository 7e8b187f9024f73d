"""merge_caches: combine shard caches into one (``vidseq cache merge``)."""

from __future__ import annotations

import os
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
