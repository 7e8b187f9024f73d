"""The ``vidseq`` command line: parse, call the Python API, print, return an exit code.

Every command calls one public function of :mod:`vidseq` with its flags as keyword
arguments; the flags come from the parameters' declarations (:mod:`vidseq.extract.params`).

Exit codes: 0 success; 1 runtime failure; 2 usage or bad input; 3 finished, but
some inputs failed and were recorded in the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from vidseq.bounds import json_safe
from vidseq.errors import SourceReadError, UsageError, VidseqError
from vidseq.extract.params import OneLineParser, add_flags, as_flags, command_flags
from vidseq.failures import describe_failure, resume_hint
from vidseq.quiet import debug_requested, quiet_decoders, quiet_tensorflow
from vidseq.version import __version__

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_BROKEN_PIPE = 141  # as a Unix tool killed by SIGPIPE: its reader went away
# Commands that never import TensorFlow (inspecting a cache must stay fast).
WITHOUT_TENSORFLOW = ("make-sample", "inspect", "cache")
OUTPUT_FLAGS = ("json", "quiet", "verbose")
"""Flags that choose what is printed, not what is computed (no API keyword)."""
OUTPUT_DESTS = ("out", "out_dir", "workdir")
"""Where a command writes, named in its one-line OS errors."""


def _print_json(value) -> None:
    print(json.dumps(json_safe(value), indent=2, ensure_ascii=False, default=str, allow_nan=False))


def _print_result(result, as_json) -> None:
    """A result's warnings on stderr, then its JSON or its summary on stdout."""
    for warning in getattr(result, "warnings", ()):
        print(f"warning: {warning}", file=sys.stderr)
    if as_json:
        _print_json(result.to_dict())
    else:
        print(result.summary())


def _api_kwargs(args, params) -> dict:
    """The parsed values of the declared ``params``, as the API's keyword arguments."""
    return {param.name: getattr(args, param.name) for param in params}


def _add_command(commands, name, params, func, **texts):
    """A command whose flags are the declared ``params`` (``texts``: help, description)."""
    parser = commands.add_parser(name, **texts)
    add_flags(parser, params)
    parser.set_defaults(func=func)
    return parser


def cmd_make_sample(args) -> int:
    from vidseq.extract.options import MAKE_SAMPLE_PARAMS
    from vidseq.extract.sources.sample_dataset import write_sample

    _print_result(write_sample(**_api_kwargs(args, MAKE_SAMPLE_PARAMS)), as_json=False)
    return EXIT_OK


def cmd_extract_features(args) -> int:
    from vidseq.extract.options import extract_kwargs
    from vidseq.extract.pipeline import extract_features
    from vidseq.sequence.infer.precision_agreement import top1_probe

    kwargs = extract_kwargs(vars(args))
    if args.check_against is not None:  # top-1 labels of a run, FP32 against this precision
        kwargs["agreement_probe"] = top1_probe(args.check_against)
    shard = kwargs["shard"]
    if shard.num_shards > 1:
        where = shard.output_path(args.out)
        print(f"shard {shard.index} of {shard.num_shards} → {where}", file=sys.stderr)
    summary = extract_features(args.data, args.out, **kwargs)
    for failure in summary.failures:
        print(f"failed: {failure.path}: {failure.error}", file=sys.stderr)
    _print_result(summary, as_json=False)
    return EXIT_PARTIAL if summary.failures else EXIT_OK


def _cache_arg(values):
    """One cache argument as given (a file or a glob), or the list of several files."""
    if not values or isinstance(values, str):
        return values or None
    return values[0] if len(values) == 1 else list(values)


def cmd_inspect(args) -> int:
    from vidseq.cache.inspection import inspect_cache

    _print_result(inspect_cache(_cache_arg(args.cache), video=args.video), args.json)
    return EXIT_OK


def cmd_cache_merge(args) -> int:
    from vidseq.cache.merge import cache_merge
    from vidseq.extract.options import CACHE_MERGE_PARAMS

    print(cache_merge(**_api_kwargs(args, CACHE_MERGE_PARAMS)).summary())
    return EXIT_OK


def _add_cache_parsers(commands) -> None:
    from vidseq.extract.options import CACHE_MERGE_PARAMS, INSPECT_PARAMS

    help_text = "summary of a cache or of one video in it"
    inspect = _add_command(commands, "inspect", INSPECT_PARAMS, cmd_inspect, help=help_text)
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    cache = commands.add_parser("cache", help="cache maintenance")
    cache_commands = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    help_text = "combine shard files into one cache"
    _add_command(cache_commands, "merge", CACHE_MERGE_PARAMS, cmd_cache_merge, help=help_text)


def _report_training(result) -> int:
    """Prints a training result's replica digest, warnings and summary line."""
    if result.replicas > 1 or not result.chief:
        print(f"final weights sha256 {result.weights_sha256}", file=sys.stderr)
    _print_result(result, as_json=False)
    return EXIT_OK


def _run_options(args) -> dict:
    """resume, overwrite and verbose of a training command."""
    return {
        "resume": args.resume,
        "overwrite": args.overwrite,
        "report": not args.no_report,
        "verbose": 0 if args.quiet else 2,
    }


def cmd_train_sequence(args) -> int:
    from vidseq.sequence.config import TrainConfig
    from vidseq.sequence.train.training import train_sequence

    config = TrainConfig.from_dict(_settings(args, TrainConfig))
    result = train_sequence(_cache_arg(args.cache), args.out, config, **_run_options(args))
    return _report_training(result)


def _names(text, kind=str, flag="--heads"):
    """A comma-separated list of names (or of integers: ``kind=int``)."""
    try:
        return [kind(name.strip()) for name in text.split(",") if name.strip()]
    except ValueError:
        raise UsageError(f"{flag[2:]} must be integers. Received: {flag} {text}") from None


def cmd_compare(args) -> int:
    from vidseq.sequence.config import TrainConfig
    from vidseq.sequence.studies.compare import compare

    config = TrainConfig.from_dict({**_settings(args, TrainConfig), "head": "lstm"})
    result = compare(
        _cache_arg(args.cache),
        args.out_dir,
        heads=_names(args.heads),
        seeds=_names(args.seeds, int, "--seeds"),
        config=config,
        overwrite=args.overwrite,
        log=None if args.json or args.quiet else print,
        report=not args.no_report,
    )
    if args.json:
        _print_json({"seeds": result.seeds, "accuracies": result.accuracies()})
    else:
        print(result.summary())
        print(f"wrote {', '.join(str(p) for p in result.files)}")
    for head, error in result.failed.items():
        print(f"failed: {head}: {error}", file=sys.stderr)
    return EXIT_PARTIAL if result.failed else EXIT_OK


def _add_compare_parser(commands) -> None:
    from vidseq.sequence.command_params import COMPARE_PARAMS
    from vidseq.sequence.config import COMPARE_SETTINGS, TrainConfig

    parser = _add_command(
        commands,
        "compare",
        COMPARE_PARAMS,
        cmd_compare,
        help="features.h5 → every head trained on the same splits and seeds, vs bag-of-frames",
        description="Train each head with each seed (one run after another), evaluate each on "
        "the test split, fit the bag-of-frames baseline, and write comparison.json, "
        "comparison.md and comparison.png. Exit 3 when a head failed (the others still ran).",
    )
    params = [p for p in TrainConfig.params() if p.name in COMPARE_SETTINGS]
    add_flags(parser, params, TrainConfig.defaults())
    parser.add_argument("--json", action="store_true", help="print per-seed accuracies as JSON")
    parser.add_argument("--quiet", action="store_true", help="no per-run lines")
    parser.add_argument("--no-report", action="store_true", help="do not write the report pages")


def cmd_tune(args) -> int:
    """``tune``: an Optuna study of heads and settings; the best retrained into DIR/best."""
    from vidseq.sequence.command_params import TUNE_PARAMS
    from vidseq.sequence.studies.tune import tune

    kwargs = {**_api_kwargs(args, TUNE_PARAMS), "cache": _cache_arg(args.cache)}
    kwargs["heads"] = _names(args.heads) if args.heads else None
    quiet = args.json or args.quiet
    result = tune(**kwargs, report=not args.no_report, log=None if quiet else print)
    _print_result(result, args.json)
    return EXIT_OK


def cmd_report(args) -> int:
    """``report``: one self-contained HTML page for a run, compare or tune directory."""
    from vidseq.sequence.command_params import REPORT_PARAMS
    from vidseq.sequence.report.build import report

    _print_result(report(**_api_kwargs(args, REPORT_PARAMS)), args.json)
    return EXIT_OK


def cmd_evaluate(args) -> int:
    from vidseq.sequence.command_params import EVALUATE_PARAMS
    from vidseq.sequence.runs.evaluation import evaluate_run

    kwargs = {**_api_kwargs(args, EVALUATE_PARAMS), "cache": _cache_arg(args.cache)}
    _print_result(evaluate_run(**kwargs), args.json)
    return EXIT_OK


def cmd_predict(args) -> int:
    from vidseq.sequence.command_params import PREDICT_PARAMS
    from vidseq.sequence.export.predict_any import predict

    progress = sys.stderr.isatty() and not args.json
    result = predict(**_api_kwargs(args, PREDICT_PARAMS), progress=progress)
    if args.json:
        _print_json(result.to_dict() if result.windows else result.to_dict()["predictions"])
    elif result.summary():
        print(result.summary())
    for path in result.files:
        print(f"wrote {path}", file=sys.stderr)
    for video, error in result.failures:
        print(f"failed: {video}: {error}", file=sys.stderr)
    if result.windows is not None:
        print(f"predict: {result.windows.summary()}", file=sys.stderr)
    return EXIT_PARTIAL if result.failures else EXIT_OK


def cmd_watch(args) -> int:
    """``watch``: one decision per stride on a live stream."""
    from vidseq.sequence.command_params import WATCH_PARAMS
    from vidseq.sequence.infer.watch import watch

    def emit(decision):
        text = json.dumps(json_safe(decision.to_dict())) if args.json else decision.summary()
        print(text, flush=True)

    summary = watch(
        **_api_kwargs(args, WATCH_PARAMS),
        on_decision=emit,
        log=lambda line: print(f"vidseq watch: {line}", file=sys.stderr, flush=True),
    )
    print(f"vidseq watch: {summary.summary()}", file=sys.stderr)
    return EXIT_FAILURE if summary.failed else EXIT_OK


def cmd_export(args) -> int:
    from vidseq.sequence.command_params import EXPORT_PARAMS
    from vidseq.sequence.export.build import export_run

    print(export_run(**_api_kwargs(args, EXPORT_PARAMS)).summary())
    return EXIT_OK


def cmd_demo(args) -> int:
    from vidseq.sequence.command_params import DEMO_PARAMS
    from vidseq.sequence.studies.demo import DEMO_NEXT_STEP, run_demo

    result = run_demo(**_api_kwargs(args, DEMO_PARAMS))
    print(f"\ndone: {result.summary()}.\n{DEMO_NEXT_STEP}")
    return EXIT_OK


RUN_COMMANDS = (
    ("evaluate", "EVALUATE_PARAMS", "run directory + cache → metrics, report, confusion matrix"),
    ("predict", "PREDICT_PARAMS", "run directory (or export directory) + videos → labels"),
    ("watch", "WATCH_PARAMS", "run directory + live stream → a label every stride"),
    ("export", "EXPORT_PARAMS", "run directory → SavedModel, OpenVINO IR, ONNX or LiteRT"),
    ("demo", "DEMO_PARAMS", "the whole pipeline on offline sample data"),
    ("report", "REPORT_PARAMS", "run, compare or tune directory → one self-contained HTML page"),
    ("tune", "TUNE_PARAMS", "features.h5 → Optuna search of heads and settings, the best run"),
)
"""The commands whose flags are declared in sequence/command_params.py: name, tuple, help."""
JSON_HELP = {
    "evaluate": "print the metrics as JSON",
    "predict": "print the predictions as JSON",
    "watch": "one JSON object per decision",
    "report": "print what was written as JSON",
    "tune": "print tune.json",
}


def _add_run_parsers(commands) -> None:
    """evaluate, predict, watch, export, demo, report and tune."""
    from vidseq.sequence import command_params

    handlers = {"evaluate": cmd_evaluate, "predict": cmd_predict, "watch": cmd_watch}
    handlers.update({"export": cmd_export, "demo": cmd_demo, "report": cmd_report})
    handlers["tune"] = cmd_tune
    for name, params, help_text in RUN_COMMANDS:
        params = getattr(command_params, params)
        parser = _add_command(commands, name, params, handlers[name], help=help_text)
        if name in JSON_HELP:
            parser.add_argument("--json", action="store_true", help=JSON_HELP[name])
        if name == "tune":
            parser.add_argument("--quiet", action="store_true", help="no per-trial lines")
            parser.add_argument("--no-report", action="store_true", help="no report.html")


def _add_run_arguments(parser) -> None:
    """--resume, --overwrite, --quiet, --no-report: how a training run goes."""
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    parser.add_argument("--no-report", action="store_true", help="do not write report.html")


def _settings(args, config_class) -> dict:
    """The parsed flags that are settings of ``config_class`` (for its from_dict)."""
    names = config_class.setting_names()
    return {key: value for key, value in vars(args).items() if key in names}


def _add_train_parser(commands) -> None:
    from vidseq.sequence.config import TrainConfig

    parser = commands.add_parser(
        "train-sequence",
        help="features.h5 → trained temporal head (run directory)",
        description="Train a temporal head on a feature cache. Splits come from the cache; "
        "validation is the cache's val split or a group-aware part of train.",
    )
    parser.add_argument(
        "cache",
        nargs="+",
        help="feature cache (features.h5); several files or a quoted glob ('feats-*.h5') "
        "are read as one cache",
    )
    parser.add_argument("--out", required=True, help="run directory to write")
    add_flags(parser, TrainConfig.params(), TrainConfig.defaults())
    _add_run_arguments(parser)
    parser.set_defaults(func=cmd_train_sequence)


def cmd_finetune(args) -> int:
    from vidseq.sequence.config import FinetuneConfig, scratch_config_from_flags
    from vidseq.sequence.train.finetune import finetune
    from vidseq.sequence.train.scratch import train_from_scratch

    source, out, options = args.source_path, args.out, _run_options(args)
    if args.from_scratch:
        config = scratch_config_from_flags(vars(args))
        return _report_training(train_from_scratch(source, out, config, **options))
    config = FinetuneConfig.from_dict(_settings(args, FinetuneConfig))
    return _report_training(finetune(source, out, config, cache=args.cache, **options))


def _add_finetune_parser(commands) -> None:
    from vidseq.extract.options import FACE_PARAMS, SAMPLING_PARAMS
    from vidseq.sequence.config import FinetuneConfig, ScratchConfig

    parser = commands.add_parser(
        "finetune",
        help="run directory + raw videos → end-to-end fine-tuned run directory",
        description="Fine-tune a train-sequence run end to end: TimeDistributed(backbone) + "
        "its trained head, on exactly the frames its cache lists; the top backbone layers are "
        "unfrozen, BatchNormalization stays frozen (inference mode). With --from-scratch, "
        "train a random-init CNN (optionally grey, e.g. --backbone vgg16 --input-size 48 "
        "--grayscale) and a fresh head on a dataset or a cache's videos.",
    )
    parser.add_argument(
        "source_path",
        metavar="RUN",
        help="run directory of train-sequence (with --from-scratch: a dataset or a cache)",
    )
    parser.add_argument("--out", required=True, help="run directory to write")
    add_flags(parser, FinetuneConfig.params(), FinetuneConfig.defaults())
    parser.add_argument(
        "--cache", default=None, help="cache listing the videos (default: the run's)"
    )
    _add_run_arguments(parser)
    scratch = parser.add_argument_group("from scratch (--from-scratch DATA_OR_CACHE)")
    scratch.add_argument(
        "--from-scratch",
        action="store_true",
        help="RUN is a dataset or cache: random-init CNN and a fresh head, all layers trained",
    )
    shared = FinetuneConfig.setting_names() | {"normalize"}  # scratch features are not scaled
    own = [p for p in ScratchConfig.params() if p.name not in shared]
    frame_flags = [*SAMPLING_PARAMS, *FACE_PARAMS]  # read into ScratchConfig's sampling, face_crop
    defaults = {
        k: v for k, v in ScratchConfig.defaults().items() if k not in ("sampling", "face_crop")
    }
    add_flags(scratch, [*own, *frame_flags], defaults)
    parser.set_defaults(func=cmd_finetune)


def _add_extract_parser(commands) -> None:
    from vidseq.extract.options import EXTRACT_PARAMS

    parser = commands.add_parser(
        "extract-features",
        help="dataset → sampled frames → frozen CNN → features.h5",
        description="Run a frozen CNN once over sampled frames of every video and cache the "
        "features in HDF5. Resumable: rerun the same command after a crash.",
    )
    parser.add_argument("data", help="dataset folder, CSV manifest or fer2013.csv")
    parser.add_argument(
        "--out",
        required=True,
        help="cache file to write (features.h5); {shard} and {num_shards} are filled in, "
        "e.g. feats-{shard}.h5",
    )
    add_flags(parser, EXTRACT_PARAMS)
    parser.set_defaults(func=cmd_extract_features)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command that exists."""
    from vidseq.extract.options import MAKE_SAMPLE_PARAMS

    parser = OneLineParser(
        prog="vidseq",
        description="CNN-RNN video classification on cached frozen-CNN features.",
    )
    parser.add_argument("--version", action="version", version=f"vidseq {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    help_text = "write an offline sample dataset (UCF-101 layout)"
    _add_command(commands, "make-sample", MAKE_SAMPLE_PARAMS, cmd_make_sample, help=help_text)
    _add_extract_parser(commands)
    _add_train_parser(commands)
    _add_compare_parser(commands)
    _add_finetune_parser(commands)
    _add_run_parsers(commands)
    _add_cache_parsers(commands)
    for command in commands.choices.values():
        command.add_argument(
            "--verbose",
            action="store_true",
            help="keep TensorFlow's own log lines (as VIDSEQ_DEBUG=1 does)",
        )
        command.set_defaults(flags=command_flags(command))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command line.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` if None.

    Returns:
        The exit code.
    """
    args = build_parser().parse_args(argv)
    quiet_decoders(verbose=args.verbose)
    if args.command not in WITHOUT_TENSORFLOW:
        quiet_tensorflow(verbose=args.verbose)
    try:
        code = args.func(args)
        sys.stdout.flush()
        return code
    except (UsageError, SourceReadError) as error:
        print(f"vidseq: error: {as_flags(str(error), args.flags)}", file=sys.stderr)
        return EXIT_USAGE
    except VidseqError as error:
        print(f"vidseq: error: {as_flags(str(error), args.flags)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"vidseq: {resume_hint(args.command)}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``| head -1``): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as error:  # OSError, MemoryError, ResourceExhaustedError: one line
        where = next(filter(None, (getattr(args, k, None) for k in OUTPUT_DESTS)), None)
        line = describe_failure(error, where=where, command=args.command)
        if line is None or debug_requested(args.verbose):
            raise
        print(f"vidseq: error: {line}", file=sys.stderr)
        return EXIT_FAILURE
