"""ExtractionSummary: what one run of :func:`vidseq.extract.pipeline.extract_features` did."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from vidseq.cache.inspection import describe_check
from vidseq.cache.schema import FailedRecord
from vidseq.extract.sharding import Shard


@dataclass
class ExtractionSummary:
    """What one extraction run did.

    Attributes:
        out: The cache file written.
        done: Videos extracted by this run.
        skipped: Videos already in the cache (resumed or extracted before).
        failures: Videos that could not be read by this run.
        frames: Frames that went through the CNN.
        seconds: Wall-clock time of the run.
        setup_seconds: The part of ``seconds`` spent before the first video:
            reading the dataset, building the backbone and compiling it
            (TensorFlow: one traced call on a single frame; OpenVINO: the
            conversion, the first time, and compilation).
            ``frames / (seconds - setup_seconds)`` is the steady throughput a
            longer run converges to.
        warnings: Notes from the dataset source (e.g. unknown groups).
        shard: The part of the dataset this run extracted.
        precision_check: bf16 and INT8: agreement with FP32 features on
            held-out frames (what the cache records; see
            :mod:`vidseq.extract.calibration`); empty for FP32.
    """

    out: Path
    done: int = 0
    skipped: int = 0
    failures: list[FailedRecord] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    setup_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    shard: Shard = field(default_factory=Shard)
    precision_check: dict = field(default_factory=dict)

    @property
    def frames_per_second(self) -> float:
        """CNN frames per second over the whole run."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """For humans: videos done / failed / skipped, seconds, frames/s; then any agreement."""
        line = (
            f"{self.done} videos extracted, {len(self.failures)} failed, "
            f"{self.skipped} skipped (already cached); {self.frames} frames in "
            f"{self.seconds:.1f} s ({self.frames_per_second:.1f} frames/s) → {self.out}"
        )
        if self.precision_check:
            line += "\n" + describe_check(self.precision_check)
        return line

    def to_dict(self) -> dict:
        """The summary as JSON-ready values (the failures as dicts)."""
        return {
            "out": str(self.out),
            "done": self.done,
            "skipped": self.skipped,
            "failures": [dataclasses.asdict(failure) for failure in self.failures],
            "frames": self.frames,
            "seconds": self.seconds,
            "setup_seconds": self.setup_seconds,
            "frames_per_second": self.frames_per_second,
            "warnings": list(self.warnings),
            "shard": self.shard.to_dict(),
            "precision_check": dict(self.precision_check),
        }
