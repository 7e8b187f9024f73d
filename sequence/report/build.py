"""``vidseq report``: one self-contained HTML page for a run, a comparison or a tuning study."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from vidseq.errors import UsageError
from vidseq.outputs import check_output, same_path
from vidseq.sequence.report.pages import write_page
from vidseq.sequence.report.run_page import run_page
from vidseq.sequence.report.study_pages import COMPARE_FILE, TUNE_FILE, compare_page, tune_page
from vidseq.sequence.report.timeline_page import timeline_page
from vidseq.sequence.runs.run_dir import CONFIG_FILE, REPORT_PAGE

DEFAULT_MAX_VIDEOS = 50
KINDS = ("run", "compare", "tune", "timeline")


@dataclass
class ReportResult:
    """What :func:`report` wrote.

    Attributes:
        path: The HTML file.
        kind: ``"run"``, ``"compare"``, ``"tune"`` or ``"timeline"``.
        source: The directory (or run) it describes.
        bytes: Size of the file.
        seconds: Time taken.
        warnings: Lines for the user (missing videos, missing predictions).
        facts: Counts of the page (``videos_shown``, ``missing``,
            ``misclassified``; ``runs_linked``; ``segments``).
    """

    path: Path
    kind: str
    source: str
    bytes: int = 0
    seconds: float = 0.0
    warnings: list = field(default_factory=list)
    facts: dict = field(default_factory=dict)

    def summary(self):
        """One line: what, where, how big."""
        details = ", ".join(f"{k} {v}" for k, v in self.facts.items())
        return (
            f"wrote the {self.kind} report {self.path} ({self.bytes / 1e6:.2f} MB, {details}) "
            f"in {self.seconds:.1f} s; open it in a browser"
        )

    def to_dict(self):
        """JSON-ready form."""
        return {
            "path": str(self.path),
            "kind": self.kind,
            "source": self.source,
            "bytes": self.bytes,
            "seconds": self.seconds,
            "warnings": list(self.warnings),
            "facts": dict(self.facts),
        }


def report_kind(path):
    """Whether ``path`` is a run, compare or tune directory.

    Raises:
        UsageError: It is none of them.
    """
    path = Path(path)
    if (path / CONFIG_FILE).is_file():
        return "run"
    if (path / COMPARE_FILE).is_file():
        return "compare"
    if (path / TUNE_FILE).is_file():
        return "tune"
    raise UsageError(
        f"{path}: not a run, compare or tune directory (no {CONFIG_FILE}, {COMPARE_FILE} "
        f"or {TUNE_FILE}). Received: path={str(path)!r}"
    )


def _check_max_videos(max_videos):
    if isinstance(max_videos, bool) or not isinstance(max_videos, int) or max_videos < 0:
        raise UsageError(f"max_videos must be an integer >= 0. Received: max_videos={max_videos!r}")


def report(path, *, out=None, max_videos=DEFAULT_MAX_VIDEOS, overwrite=False):
    """Writes one self-contained HTML page for a run, a compare directory or a tune directory.

    The page opens from disk with no network: thumbnails are embedded JPEG
    data URIs, charts inline SVG, the one script and style inline.

    Args:
        path: A run directory, a ``vidseq compare`` output directory, or a
            tuning directory (``tune.json`` + ``trials.csv``).
        out: The HTML file (default: ``PATH/report.html``).
        max_videos: At most this many videos with filmstrips on a run's page
            (the misclassified first, most wrong first; then the least
            confident right ones).
        overwrite: Replace an existing ``out`` other than the directory's own
            page (never a file inside ``path``, and ``out`` must end in
            ``.html``: the run's cache and videos, which the page reads, never do).

    Returns:
        A :class:`ReportResult`. A run whose cache or videos have moved still
        gets its page, the missing videos marked, with a warning.

    Raises:
        UsageError: ``path`` is none of those directories, a run is not
            finished, or ``max_videos`` is not an integer >= 0.
    """
    start = time.perf_counter()
    _check_max_videos(max_videos)
    kind = report_kind(path)
    own_page = Path(path) / REPORT_PAGE
    if out is not None and not same_path(out, own_page):
        if Path(out).suffix.lower() not in (".html", ".htm"):  # never a cache or a video it reads
            raise UsageError(f"out must name an .html file. Received: out={out}")
        check_output(out, [path], within=[path], overwrite=overwrite, flag="out")
    if kind == "run":
        html, warnings, facts = run_page(path, max_videos=max_videos)
    elif kind == "compare":
        html, warnings, facts = compare_page(path)
    else:
        html, warnings, facts = tune_page(path)
    out = Path(out) if out is not None else own_page
    write_page(out, html)
    return ReportResult(
        out, kind, str(path), out.stat().st_size, time.perf_counter() - start, warnings, facts
    )


def timeline_report(windowed, out, *, run_dir=""):
    """Writes the timeline page of windowed predictions (``predict --window ... --report FILE``).

    Args:
        windowed: The windowed result's ``to_dict()``.
        out: The HTML file.
        run_dir: The run that predicted (shown on the page).

    Returns:
        A :class:`ReportResult` of kind ``"timeline"``.
    """
    start = time.perf_counter()
    html, warnings, facts = timeline_page(windowed, run_dir=str(run_dir))
    out = write_page(out, html)
    return ReportResult(
        out,
        "timeline",
        str(run_dir),
        out.stat().st_size,
        time.perf_counter() - start,
        warnings,
        facts,
    )


def report_after_training(path, warnings, *, max_videos=DEFAULT_MAX_VIDEOS):
    """Writes ``path``'s page at the end of a command; a failure becomes a warning, never an error.

    Training must not lose its run to its report: any error writing the page
    is appended to ``warnings`` (as are the page's own warnings).

    Returns:
        The :class:`ReportResult`, or None when the page could not be written.
    """
    try:
        result = report(path, max_videos=max_videos)
    except Exception as e:  # the run is done and saved: the page is a extra
        warnings.append(f"report.html not written ({type(e).__name__}: {e})".splitlines()[0])
        return None
    warnings.extend(result.warnings)
    return result
