"""The parameters of the inference and export commands, each declared once.

Each tuple lists the keyword parameters of one API function, as the command of
the same name takes them (see :mod:`vidseq.extract.params`): its flags, their
checks on the command line and the tables of ``docs/cli.md`` come from here.
The training commands' parameters are their configs' fields
(:mod:`vidseq.sequence.config`); extraction's are in :mod:`vidseq.extract.options`.

This module imports no TensorFlow (the command line's help stays fast).
"""

from __future__ import annotations

from vidseq.cache.schema import ENGINES, PRECISIONS
from vidseq.extract.decode.frame_stream import DEFAULT_MAX_RECONNECTS
from vidseq.extract.options import PRECISION_HELP
from vidseq.extract.params import Param
from vidseq.sequence.config import COMPARE_HEADS, COMPARE_SEEDS
from vidseq.sequence.export.manifest import FORMATS, PARTS
from vidseq.sequence.report.build import DEFAULT_MAX_VIDEOS
from vidseq.sequence.studies.tune_space import STUDY_NAME

ENGINE_HELP = "what runs the CNN: tf, or openvino (faster on CPUs; pip install 'vidseq[openvino]')"
_SECONDS = {"kind": float, "low": 0.0, "low_open": True}

EVALUATE_PARAMS = (
    Param("run_dir", positional=True, metavar="run", help="run directory"),
    Param(
        "cache",
        positional=True,
        nargs="*",
        help="default: the run's cache; several files or a quoted glob are read as one cache",
    ),
    Param("split", default="test", choices=("test", "val", "train"), help="split to evaluate"),
    Param(
        "num_clips",
        kind=int,
        low=1,
        optional=True,
        flag="--clips",
        help="temporal samples per video",
    ),
    Param(
        "out_dir", kind=str, optional=True, flag="--out", help="report folder (default: the run)"
    ),
    Param(
        "overwrite",
        kind=bool,
        default=False,
        help="replace the report files of an earlier evaluation in --out",
    ),
)
"""``vidseq.evaluate`` (``evaluate_run``)."""

PREDICT_PARAMS = (
    Param(
        "run",
        positional=True,
        help="run directory, or export directory of vidseq export",
    ),
    Param("videos", positional=True, nargs="+", metavar="VIDEO", help="video files"),
    Param("top_k", kind=int, low=1, default=5, help="classes listed per video or window"),
    Param("engine", choices=ENGINES, default="tf", help=ENGINE_HELP),
    Param("precision", choices=PRECISIONS, default="fp32", help=PRECISION_HELP),
    Param(
        "window",
        **_SECONDS,
        optional=True,
        help="seconds per window: classify sliding windows",
    ),
    Param(
        "stride",
        **_SECONDS,
        optional=True,
        help="seconds between windows (default: --window)",
    ),
    Param("plot", kind=str, optional=True, help="PNG timeline of the windows (--window)"),
    Param("csv", kind=str, optional=True, help="CSV of the windows (--window)"),
    Param(
        "report",
        kind=str,
        optional=True,
        metavar="FILE",
        help="HTML timeline page of the windows (--window)",
    ),
    Param(
        "overwrite",
        kind=bool,
        default=False,
        help="replace existing --csv, --plot and --report files",
    ),
)
"""``vidseq.predict``: whole videos, or sliding windows with ``window``."""

WATCH_PARAMS = (
    Param("run_dir", positional=True, metavar="run", help="run directory (cached features)"),
    Param(
        "source",
        positional=True,
        help="camera index (0), video file, rtsp:// or http(s):// (MJPEG, HLS) URL",
    ),
    Param(
        "window",
        **_SECONDS,
        optional=True,
        help="seconds per decision (default: training clips)",
    ),
    Param("stride", **_SECONDS, default=1.0, help="seconds between decisions"),
    Param("max_seconds", **_SECONDS, optional=True, help="stop after this long"),
    Param(
        "max_reconnects",
        kind=int,
        low=0,
        default=DEFAULT_MAX_RECONNECTS,
        help="reconnection attempts without a frame before giving up",
        aliases=(("--reconnect", {"type": int, "help": "alias of --max-reconnects"}),),
    ),
    Param("top_k", kind=int, low=1, default=3, help="labels per decision"),
    Param("engine", choices=ENGINES, default="tf", help=ENGINE_HELP),
    Param("precision", choices=PRECISIONS, default="fp32", help=PRECISION_HELP),
)
"""``vidseq.watch``."""

EXPORT_PARAMS = (
    Param("run_dir", positional=True, metavar="run", help="run directory"),
    Param("format", choices=tuple(FORMATS), required=True, help="the serving format"),
    Param(
        "out_dir",
        kind=str,
        flag="--out",
        required=True,
        help="export directory to create (or empty)",
    ),
    Param("part", choices=PARTS, default="end-to-end", help="end-to-end (frames in) or head"),
    Param(
        "batch",
        kind=int,
        low=1,
        optional=True,
        help="fixed batch size (default: dynamic)",
    ),
)
"""``vidseq.export``."""

DEMO_PARAMS = (
    Param("workdir", kind=str, default="vidseq-demo", help="folder of the demo's files"),
    Param("seed", kind=int, low=0, default=0, help="seed of the sample data, the CNN and training"),
    Param("overwrite", kind=bool, default=False, help="replace a previous demo's files"),
)
"""``vidseq.demo``."""

REPORT_PARAMS = (
    Param(
        "path",
        positional=True,
        metavar="RUN|COMPARE_DIR|TUNE_DIR",
        help="run directory, compare output directory or tuning directory",
    ),
    Param("out", kind=str, optional=True, help="HTML file (default: PATH/report.html)"),
    Param(
        "max_videos",
        kind=int,
        low=0,
        default=DEFAULT_MAX_VIDEOS,
        help="videos with filmstrips, the misclassified first",
    ),
    Param("overwrite", kind=bool, default=False, help="replace an existing --out file"),
)
"""``vidseq.report``."""

TUNE_PARAMS = (
    Param(
        "cache",
        positional=True,
        nargs="+",
        help="feature cache (as for train-sequence)",
    ),
    Param(
        "out_dir",
        kind=str,
        flag="--out",
        required=True,
        help="folder: best/, trials.csv, tune.json, plots",
    ),
    Param(
        "trials",
        kind=int,
        low=1,
        optional=True,
        help="trials in the study in all (default 30)",
        doc="trials the study holds in all, complete, pruned or failed (default: 30 when "
        "`--timeout` is not given either)",
    ),
    Param(
        "timeout",
        **_SECONDS,
        optional=True,
        help="start no trial after SECONDS of this call",
    ),
    Param("heads", kind=str, optional=True, help="comma-separated heads (default: all but pool)"),
    Param(
        "space",
        kind=str,
        optional=True,
        help="search space file (JSON or YAML)",
        doc="JSON or YAML file narrowing or widening the default space ([tune.md](tune.md))",
    ),
    Param(
        "storage",
        kind=str,
        optional=True,
        help="Optuna storage shared by workers: sqlite:///F, postgresql://..., mysql://..., "
        "journal:PATH (default: sqlite:///OUT/study.db)",
    ),
    Param("study_name", kind=str, default=STUDY_NAME, help="the study in the storage"),
    Param(
        "seed",
        kind=int,
        default=0,
        help="every trial's seed",
        doc="every trial's seed (validation carve-out, folds, initialisation, batches)",
    ),
    Param(
        "folds",
        kind=int,
        low=1,
        default=1,
        help="score each trial by K-fold cross-validation over the train and val videos",
        doc="score each trial by its mean validation accuracy over K group-aware folds of the "
        "train and val videos pooled (K runs per trial; 1: the validation split, one run). "
        "See [tune.md](tune.md)",
    ),
)
"""``vidseq.tune``."""

COMPARE_PARAMS = (
    Param("cache", positional=True, nargs="+", help="feature cache (as for train-sequence)"),
    Param(
        "out_dir",
        kind=str,
        flag="--out",
        required=True,
        help="folder for the runs and the comparison",
    ),
    Param("heads", kind=str, default=",".join(COMPARE_HEADS), help="comma-separated head names"),
    Param(
        "seeds",
        kind=str,
        default=",".join(map(str, COMPARE_SEEDS)),
        help="comma-separated seeds",
    ),
    Param("overwrite", kind=bool, default=False, help="replace a non-empty --out"),
)
"""``vidseq.compare``'s own parameters; its training settings are ``TrainConfig``'s."""
