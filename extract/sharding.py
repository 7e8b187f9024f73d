"""Which shard this process extracts: flags, or the variables of a cluster job array.

One extraction is split into N disjoint shards (a :class:`Shard` selects its
videos by a stable hash of their ids); each process extracts shard I into its
own file. N and I come from, in order of precedence:

1. the flags ``--num-shards`` / ``--shard-index`` (the ``num_shards`` and
   ``shard_index`` arguments);
2. ``VIDSEQ_NUM_SHARDS`` / ``VIDSEQ_SHARD_INDEX``: vidseq's own variables, for
   any scheduler (e.g. ``VIDSEQ_SHARD_INDEX=$PBS_ARRAY_INDEX``), and the way to
   give a Kubernetes Indexed Job its shard count;
3. a SLURM job array: I = ``SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN``
   (arrays may start anywhere, e.g. ``--array=1-8``), N =
   ``SLURM_ARRAY_TASK_COUNT``; the array must be a contiguous range (step 1);
4. a Kubernetes Indexed Job: I = ``JOB_COMPLETION_INDEX``. Kubernetes does not
   export the Job's ``completions``, so N must come from ``--num-shards`` or
   ``VIDSEQ_NUM_SHARDS``.

Each value is taken from the first source that has it. Without any, the run is
one shard of one. This module is pure (no I/O but the environment mapping it is
given) and imports nothing heavy.
"""

from __future__ import annotations

import os
import string
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vidseq.errors import UsageError

ENV_NUM_SHARDS = "VIDSEQ_NUM_SHARDS"
ENV_SHARD_INDEX = "VIDSEQ_SHARD_INDEX"
SLURM_TASK_ID = "SLURM_ARRAY_TASK_ID"
SLURM_TASK_MIN = "SLURM_ARRAY_TASK_MIN"
SLURM_TASK_MAX = "SLURM_ARRAY_TASK_MAX"
SLURM_TASK_COUNT = "SLURM_ARRAY_TASK_COUNT"
SLURM_TASK_STEP = "SLURM_ARRAY_TASK_STEP"
K8S_COMPLETION_INDEX = "JOB_COMPLETION_INDEX"

FLAGS = "num_shards/shard_index (--num-shards/--shard-index)"
PLACEHOLDERS = ("shard", "num_shards")
"""Placeholders of an ``--out`` path filled by :func:`shard_output_path`."""


def _int_var(environ: Mapping[str, str], name: str) -> int | None:
    """An integer environment variable; None when unset or empty."""
    text = environ.get(name)
    if text is None or not str(text).strip():
        return None
    try:
        return int(str(text).strip())
    except ValueError:
        raise UsageError(
            f"environment variable {name} must be an integer. Received: {name}={text!r}"
        ) from None


def _slurm(environ: Mapping[str, str]) -> tuple[int | None, int | None]:
    """(count, index) of a SLURM job array task; (None, None) outside an array."""
    task = _int_var(environ, SLURM_TASK_ID)
    if task is None:
        return None, None
    low = _int_var(environ, SLURM_TASK_MIN)
    high = _int_var(environ, SLURM_TASK_MAX)
    count = _int_var(environ, SLURM_TASK_COUNT)
    step = _int_var(environ, SLURM_TASK_STEP)
    low = 0 if low is None else low
    if count is None:
        if high is None:
            raise UsageError(
                f"{SLURM_TASK_ID}={task} is set but neither {SLURM_TASK_COUNT} nor "
                f"{SLURM_TASK_MAX}: cannot tell the number of shards; pass {FLAGS}"
            )
        count = high - low + 1
    contiguous = (step in (None, 1)) and (high is None or high - low + 1 == count)
    if not contiguous:
        raise UsageError(
            f"the SLURM job array is not a contiguous range ({SLURM_TASK_MIN}={low}, "
            f"{SLURM_TASK_MAX}={high}, {SLURM_TASK_COUNT}={count}, {SLURM_TASK_STEP}={step}): "
            f"shards need --array=FIRST-LAST with step 1 (a %LIMIT is fine), or pass {FLAGS}"
        )
    return count, task - low


def resolve_shard(
    num_shards: int | None = None,
    shard_index: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[int, int]:
    """The shard this process extracts, from flags or job-array variables.

    Explicit arguments take precedence over (with both given, the environment
    is not read at all) ``VIDSEQ_NUM_SHARDS`` /
    ``VIDSEQ_SHARD_INDEX``, which take precedence over a SLURM array
    (``SLURM_ARRAY_TASK_ID`` minus ``SLURM_ARRAY_TASK_MIN``, of
    ``SLURM_ARRAY_TASK_COUNT``), which takes precedence over a Kubernetes
    Indexed Job (``JOB_COMPLETION_INDEX``; its count must come from the flag or
    ``VIDSEQ_NUM_SHARDS``). Each of N and I is taken from the first source
    that has it.

    Args:
        num_shards: ``--num-shards``; None when not given.
        shard_index: ``--shard-index``; None when not given.
        environ: The environment to read (default: ``os.environ``).

    Returns:
        ``(num_shards, shard_index)`` with ``0 <= shard_index < num_shards``;
        ``(1, 0)`` when nothing says otherwise.

    Raises:
        UsageError: A variable that is not an integer; a count below 1; an index
            outside ``[0, count)``; a count but no index (or the reverse) for more
            than one shard; a SLURM array that is not a contiguous range; an index
            whose source (a SLURM array) has its own count that differs from the
            count given by a higher-precedence source.
    """
    if num_shards is not None and shard_index is not None:
        environ = {}  # both flags: the environment is not read at all
    sources = _value_sources(num_shards, shard_index, os.environ if environ is None else environ)
    count_from = next((s for s in sources if s[1] is not None), None)
    index_from = next((s for s in sources if s[2] is not None), None)
    if count_from is None:
        return _without_count(index_from)
    count = int(count_from[1])
    if count < 1:
        raise UsageError(
            f"the number of shards must be at least 1. Received: {count} from {count_from[0]}"
        )
    if index_from is None:
        if count == 1:
            return 1, 0
        raise UsageError(
            f"{count} shards (from {count_from[0]}) but no shard index: pass shard_index=I, "
            f"set {ENV_SHARD_INDEX}, or run as a SLURM array / Kubernetes Indexed Job"
        )
    name, own_count, index = index_from
    if own_count is not None and own_count != count and index_from is not count_from:
        raise UsageError(
            f"the shard index comes from {name}, which has {own_count} tasks, but the number "
            f"of shards is {count} (from {count_from[0]}); make them agree or give both flags"
        )
    if not 0 <= index < count:
        raise UsageError(
            f"shard index must be in [0, {count - 1}] for {count} shards. "
            f"Received: {index} from {name}"
        )
    return count, int(index)


def _value_sources(num_shards, shard_index, environ: Mapping[str, str]) -> list[tuple]:
    """``(name, count, index)`` of every place N and I can come from, by precedence."""
    slurm_count, slurm_index = _slurm(environ)
    return [
        (FLAGS, num_shards, shard_index),
        (
            f"{ENV_NUM_SHARDS}/{ENV_SHARD_INDEX}",
            _int_var(environ, ENV_NUM_SHARDS),
            _int_var(environ, ENV_SHARD_INDEX),
        ),
        (f"SLURM array ({SLURM_TASK_ID})", slurm_count, slurm_index),
        (
            f"Kubernetes Indexed Job ({K8S_COMPLETION_INDEX})",
            None,
            _int_var(environ, K8S_COMPLETION_INDEX),
        ),
    ]


def _without_count(index_from) -> tuple[int, int]:
    """One shard of one, unless an index other than 0 asks for a count nobody gave."""
    if index_from is None or index_from[2] == 0:
        return 1, 0
    name, _, index = index_from
    hint = f" (set {ENV_NUM_SHARDS} to the Job's completions)" if "Kubernetes" in name else ""
    raise UsageError(
        f"shard index {index} comes from {name} but no number of shards is given: "
        f"pass num_shards=N or set {ENV_NUM_SHARDS}{hint}"
    )


def shard_output_path(out: str | os.PathLike, num_shards: int, shard_index: int) -> str:
    """Fills the ``{shard}`` and ``{num_shards}`` placeholders of an output path.

    ``feats-{shard}.h5`` becomes ``feats-3.h5`` for shard 3; format specs work
    (``feats-{shard:03d}-of-{num_shards}.h5`` gives ``feats-003-of-8.h5``). A
    path without braces is returned unchanged.

    Args:
        out: The output path, possibly with placeholders.
        num_shards: N.
        shard_index: I.

    Returns:
        The path of this shard's cache file.

    Raises:
        UsageError: Unknown placeholder or malformed braces.
    """
    text = os.fspath(out)
    if "{" not in text and "}" not in text:
        return text
    try:
        names = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    except ValueError as exc:
        raise UsageError(f"malformed placeholder in out ({exc}). Received: out={text!r}") from None
    unknown = sorted(name for name in names if name.split(".")[0].split("[")[0] not in PLACEHOLDERS)
    if unknown or "" in names:
        raise UsageError(
            f"unknown placeholder {{{unknown[0] if unknown else ''}}} in out; known: {{shard}}, "
            f"{{num_shards}} (double the braces for a literal brace). Received: out={text!r}"
        )
    try:
        return text.format(shard=shard_index, num_shards=num_shards)
    except (ValueError, IndexError, KeyError, AttributeError) as exc:
        raise UsageError(f"malformed placeholder in out ({exc}). Received: out={text!r}") from None


def shard_of(video_id: str, num_shards: int) -> int:
    """The shard a video belongs to: a stable hash of its id, independent of the dataset order.

    Args:
        video_id: The video's id.
        num_shards: Number of shards.

    Returns:
        An index in ``[0, num_shards)``.
    """
    return zlib.crc32(video_id.encode("utf-8")) % num_shards


@dataclass(frozen=True)
class Shard:
    """Which part of a dataset one extraction process extracts: shard ``index`` of ``num_shards``.

    Args:
        num_shards: N, the number of disjoint shards (>= 1).
        index: I, this process's shard, in ``[0, N)``.

    Raises:
        UsageError: For an N below 1 or an I outside ``[0, N)``.
    """

    num_shards: int = 1
    index: int = 0

    def __post_init__(self):
        count, index = self.num_shards, self.index
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise UsageError(f"num_shards must be an integer >= 1. Received: num_shards={count!r}")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
            raise UsageError(
                f"shard index must be an integer in [0, {count - 1}]. Received: index={index!r}"
            )

    @classmethod
    def resolve(
        cls,
        num_shards: int | None = None,
        shard_index: int | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Shard:
        """The shard of this process, from the arguments or a job array (:func:`resolve_shard`)."""
        return cls(*resolve_shard(num_shards, shard_index, environ))

    def holds(self, video_id: str) -> bool:
        """Whether the video (or rejected input) ``video_id`` belongs to this shard."""
        return shard_of(video_id, self.num_shards) == self.index

    def select(self, items: Sequence) -> list:
        """The items (anything with a ``video_id``) of this shard, in their order."""
        return [item for item in items if self.holds(item.video_id)]

    def output_path(self, out: str | os.PathLike) -> str:
        """``out`` with its ``{shard}`` and ``{num_shards}`` placeholders filled in."""
        return shard_output_path(out, self.num_shards, self.index)

    def to_dict(self) -> dict:
        """``{"num_shards": N, "index": I}``."""
        return {"num_shards": self.num_shards, "index": self.index}
