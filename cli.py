"""The ``vidseq`` command line: parse, call the Python API, print, return an exit code.

Exit codes: 0 success; 1 runtime failure; 2 usage or bad input; 3 finished, but
some inputs failed and were recorded in the cache.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from vidseq.errors import SourceReadError, UsageError, VidseqError
from vidseq.quiet import quiet_decoders, quiet_tensorflow
from vidseq.version import __version__

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
# Commands that never import TensorFlow (inspecting a cache must stay fast).
WITHOUT_TENSORFLOW = ("make-sample", "inspect", "cache")
PRECISION_HELP = "fp32; bf16 (CPUs with AVX512_BF16 or AMX); int8 (--engine openvino)"
LR_HELP = "Adam's learning rate (default: 3e-3 for lstm and gru, 1e-3 for the other heads)"


def _size(text: str) -> tuple[int, int]:
    """Parses ``224`` or ``240x320`` (height x width) into ``(height, width)``."""
    parts = text.lower().split("x")
    try:
        values = [int(part) for part in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected SIZE or HEIGHTxWIDTH, e.g. 224 or 240x320. Received: {text!r}"
        ) from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected SIZE or HEIGHTxWIDTH. Received: {text!r}")
    return values[0], values[1]


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def cmd_make_sample(args) -> int:
    from vidseq.extract.sources.sample_data import make_sample

    kwargs = {"seed": args.seed, "classes": args.classes}
    if args.videos_per_class is not None:
        kwargs["videos_per_class"] = args.videos_per_class
    if args.event_fraction is not None:
        kwargs["event_fraction"] = args.event_fraction
    root = make_sample(args.out, **kwargs)
    print(f"sample dataset written to {root}")
    return EXIT_OK


def _sampling_config(args, num_frames):
    """The SamplingConfig that the sampling flags of a command describe."""
    from vidseq.extract.decode.sampling import SamplingConfig

    return SamplingConfig(
        mode=args.sampling,
        num_frames=num_frames,
        frame_rate=args.frame_rate,
        motion_floor=args.motion_floor,
        motion_signal=args.motion_signal,
        cut_threshold=args.cut_threshold,
        cut_ratio=args.cut_ratio,
    )


def _add_sampling_arguments(parser) -> None:
    from vidseq.extract.decode.sampling import SAMPLING_MODES, SamplingConfig

    defaults = SamplingConfig()
    parser.add_argument(
        "--sampling",
        default="uniform",
        choices=SAMPLING_MODES,
        help="uniform: K equal segments; fps: --frame-rate from the start; motion: equal "
        "steps of cumulative motion; keyframes: frames per shot in proportion to its length",
    )
    parser.add_argument("--frame-rate", type=float, default=5.0, help="fps mode: frames/s")
    parser.add_argument(
        "--motion-floor",
        type=float,
        default=defaults.motion_floor,
        help="motion mode: least weight of a frame, in grey levels of mean frame difference",
    )
    parser.add_argument(
        "--motion-signal",
        choices=("auto", "full"),
        default=defaults.motion_signal,
        help="motion mode: auto reads packet sizes (H.264, HEVC, VP9, MPEG-4) or reduced JPEG "
        "decodes (MJPEG) where it can; full decodes every frame",
    )
    parser.add_argument(
        "--cut-threshold",
        type=float,
        default=defaults.cut_threshold,
        help="keyframes mode: least HSV-histogram change (0-1) of a shot cut",
    )
    parser.add_argument(
        "--cut-ratio",
        type=float,
        default=defaults.cut_ratio,
        help="keyframes mode: least ratio of a cut's change to its neighbours' (adaptive)",
    )


def cmd_extract_features(args) -> int:
    from vidseq.extract.decode.framespec import FrameSpec
    from vidseq.extract.pipeline import extract_features
    from vidseq.extract.sharding import Shard

    shard = Shard.resolve(args.num_shards, args.shard_index)
    if shard.num_shards > 1:
        print(
            f"shard {shard.index} of {shard.num_shards} → {shard.output_path(args.out)}",
            file=sys.stderr,
        )
    frames = FrameSpec.from_options(
        sampling=args.sampling,
        num_frames=args.frames,
        frame_rate=args.frame_rate,
        crop=args.crop,
        face_crop=args.face_crop,
        face_gray=args.face_gray,
        face_margin=args.face_margin,
        clip_length=args.clip_length,
        motion_floor=args.motion_floor,
        motion_signal=args.motion_signal,
        cut_threshold=args.cut_threshold,
        cut_ratio=args.cut_ratio,
    )
    summary = extract_features(
        args.data,
        args.out,
        source=args.source,
        split=args.split,
        backbone=args.backbone,
        weights=args.weights,
        input_size=args.input_size,
        frames=frames,
        engine=args.engine,
        batch_size=args.batch_size,
        decode_workers=args.decode_workers,
        dtype=args.dtype,
        commit_every=args.commit_every,
        overwrite=args.overwrite,
        shard=shard,
        strict=args.strict,
        seed=args.seed,
        progress=not args.quiet,
        precision=args.precision,
        calibration_videos=args.calibration_videos,
        agreement_probe=_top1_probe(args.check_against),
    )
    for warning in summary.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for failure in summary.failures:
        print(f"failed: {failure.path}: {failure.error}", file=sys.stderr)
    print(summary.summary())
    return EXIT_PARTIAL if summary.failures else EXIT_OK


def _top1_probe(run_dir):
    """``--check-against RUN``: the probe that counts top-1 changes under RUN (None: no run)."""
    if run_dir is None:
        return None
    from vidseq.sequence.infer.precision_agreement import top1_probe

    return top1_probe(run_dir)


def _cache_arg(values):
    """One cache argument as given (a file or a glob), or the list of several files."""
    if not values or isinstance(values, str):
        return values or None
    return values[0] if len(values) == 1 else list(values)


def cmd_inspect(args) -> int:
    from vidseq.cache import inspection

    cache = _cache_arg(args.cache)
    if args.video is not None:
        info = inspection.describe_video(cache, args.video)
        text = inspection.format_video(info)
    else:
        info = inspection.summarize(cache)
        text = inspection.format_summary(info)
    if args.json:
        _print_json(info)
    else:
        print(text)
    return EXIT_OK


def cmd_cache_merge(args) -> int:
    from vidseq.cache.merge import merge_caches

    out = merge_caches(args.out, args.inputs, overwrite=args.overwrite)
    print(f"merged {len(args.inputs)} caches into {out}")
    return EXIT_OK


def _report_training(result) -> int:
    """Prints a training result's warnings, replica digest and summary line."""
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    _print_replica_digest(result)
    print(result.summary())
    return EXIT_OK


def _run_options(args) -> dict:
    """resume, overwrite and verbose of a training command."""
    return {"resume": args.resume, "overwrite": args.overwrite, "verbose": 0 if args.quiet else 2}


def cmd_train_sequence(args) -> int:
    from vidseq.sequence.config import TrainConfig
    from vidseq.sequence.train.training import train_sequence

    config = TrainConfig.from_dict(vars(args))  # head and fit fields are read from the flags
    result = train_sequence(_cache_arg(args.cache), args.out, config, **_run_options(args))
    return _report_training(result)


def _names(text):
    return [name.strip() for name in text.split(",") if name.strip()]


def _seeds(text):
    try:
        return [int(s) for s in _names(text)]
    except ValueError:
        raise UsageError(f"seeds must be integers. Received: --seeds {text}") from None


def cmd_compare(args) -> int:
    from vidseq.sequence.config import TrainConfig
    from vidseq.sequence.studies.compare import compare

    config = TrainConfig.from_dict({**vars(args), "head": "lstm"})
    result = compare(
        _cache_arg(args.cache),
        args.out,
        heads=_names(args.heads),
        seeds=_seeds(args.seeds),
        config=config,
        verbose=0,
        log=(lambda line: None) if args.json or args.quiet else print,
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
    from vidseq.sequence.config import (
        COMPARE_HEADS,
        COMPARE_SEEDS,
        LR_SCHEDULES,
        STREAMING_MODES,
        TrainConfig,
    )

    defaults = TrainConfig()
    parser = commands.add_parser(
        "compare",
        help="features.h5 → every head trained on the same splits and seeds, vs bag-of-frames",
        description="Train each head with each seed (one run after another), evaluate each on "
        "the test split, fit the bag-of-frames baseline, and write comparison.json, "
        "comparison.md and comparison.png. Exit 3 when a head failed (the others still ran).",
    )
    parser.add_argument("cache", nargs="+", help="feature cache (as for train-sequence)")
    parser.add_argument("--out", required=True, help="folder for the runs and the comparison")
    parser.add_argument(
        "--heads", default=",".join(COMPARE_HEADS), help="comma-separated head names"
    )
    parser.add_argument(
        "--seeds", default=",".join(map(str, COMPARE_SEEDS)), help="comma-separated seeds"
    )
    parser.add_argument("--units", type=int, default=None, help="width of every head")
    _add_normalize_arguments(parser, defaults.head.normalize)
    parser.add_argument("--lr", type=float, default=defaults.fit.lr, help=LR_HELP)
    parser.add_argument("--epochs", type=int, default=None, help="default: scaled to the data")
    parser.add_argument("--batch-size", type=int, default=defaults.fit.batch_size)
    parser.add_argument("--patience", type=int, default=defaults.fit.patience)
    parser.add_argument("--lr-schedule", default=defaults.fit.lr_schedule, choices=LR_SCHEDULES)
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--streaming", default=defaults.streaming, choices=STREAMING_MODES)
    parser.add_argument("--json", action="store_true", help="print per-seed accuracies as JSON")
    parser.add_argument("--quiet", action="store_true", help="no per-run lines")
    parser.set_defaults(func=cmd_compare)


def cmd_evaluate(args) -> int:
    from vidseq.sequence.runs.evaluation import evaluate_run

    result = evaluate_run(
        args.run, _cache_arg(args.cache), split=args.split, out_dir=args.out, num_clips=args.clips
    )
    if args.json:
        _print_json(result.to_dict())
    else:
        print(result.summary())
    return EXIT_OK


def cmd_predict(args) -> int:
    from vidseq.sequence.export.manifest import is_export_dir
    from vidseq.sequence.infer.predict import predict_videos

    if args.window is not None:
        return cmd_predict_windows(args)
    for flag, value in (("--stride", args.stride), ("--plot", args.plot), ("--csv", args.csv)):
        if value is not None:
            raise UsageError(f"{flag} needs --window. Received: {flag} {value}")
    if is_export_dir(args.run):
        return cmd_predict_export(args)
    predictions = predict_videos(
        args.run, args.videos, top_k=args.top_k, engine=args.engine, precision=args.precision
    )
    return _report_predictions(predictions, args.json)


def _report_predictions(predictions, as_json) -> int:
    if as_json:
        _print_json([prediction.to_dict() for prediction in predictions])
    for prediction in predictions:
        if prediction.error:
            print(f"failed: {prediction.video}: {prediction.error}", file=sys.stderr)
        elif not as_json:
            print(prediction.summary())
    return EXIT_PARTIAL if any(p.error for p in predictions) else EXIT_OK


# ------------------------------------------------------- long videos and live streams


def cmd_predict_windows(args) -> int:
    """``predict --window``: sliding windows, segments, table/JSON/CSV/PNG."""
    from vidseq.sequence.infer.timeline import format_table, plot_timeline, write_csv
    from vidseq.sequence.infer.windowed import predict_windows

    result = predict_windows(
        args.run,
        args.videos,
        window=args.window,
        stride=args.stride if args.stride is not None else args.window,
        top_k=args.top_k,
        engine=args.engine,
        progress=sys.stderr.isatty() and not args.json,
        precision=args.precision,
    )
    if args.json:
        _print_json(result.to_dict())
    else:
        print(format_table(result))
    for path, write in ((args.csv, write_csv), (args.plot, plot_timeline)):
        if path is not None:
            print(f"wrote {write(result, path)}", file=sys.stderr)
    for video in result.videos:
        if video.error:
            print(f"failed: {video.path}: {video.error}", file=sys.stderr)
    print(f"predict: {result.summary()}", file=sys.stderr)
    return EXIT_PARTIAL if any(v.error for v in result.videos) else EXIT_OK


def cmd_watch(args) -> int:
    """``watch``: one decision per stride on a live stream."""
    from vidseq.sequence.infer.watch import watch

    def emit(decision):
        text = json.dumps(decision.to_dict()) if args.json else decision.format()
        print(text, flush=True)

    summary = watch(
        args.run,
        args.source,
        window=args.window,
        stride=args.stride,
        max_seconds=args.max_seconds,
        reconnect=args.reconnect,
        top_k=args.top_k,
        engine=args.engine,
        on_decision=emit,
        precision=args.precision,
        log=lambda line: print(f"vidseq watch: {line}", file=sys.stderr, flush=True),
    )
    print(f"vidseq watch: {summary.summary()}", file=sys.stderr)
    return EXIT_FAILURE if summary.status == "lost" else EXIT_OK


def _add_watch_parser(commands) -> None:
    watch = commands.add_parser("watch", help="run directory + live stream → a label every stride")
    watch.add_argument("run", help="run directory (trained on cached features)")
    watch.add_argument(
        "source", help="camera index (0), video file, rtsp:// or http(s):// (MJPEG, HLS) URL"
    )
    watch.add_argument(
        "--window", type=float, default=None, help="seconds per decision (default: training clips)"
    )
    watch.add_argument("--stride", type=float, default=1.0, help="seconds between decisions")
    watch.add_argument("--max-seconds", type=float, default=None, help="stop after this long")
    watch.add_argument("--reconnect", type=int, default=3, help="reconnection attempts in a row")
    watch.add_argument("--top-k", type=int, default=3)
    watch.add_argument("--engine", choices=["tf", "openvino"], default="tf")
    watch.add_argument(
        "--precision", choices=["fp32", "bf16", "int8"], default="fp32", help=PRECISION_HELP
    )
    watch.add_argument("--json", action="store_true", help="one JSON object per decision")
    watch.set_defaults(func=cmd_watch)


def _add_window_arguments(predict) -> None:
    predict.add_argument(
        "--window", type=float, default=None, help="seconds per window: classify sliding windows"
    )
    predict.add_argument(
        "--stride", type=float, default=None, help="seconds between windows (default: --window)"
    )
    predict.add_argument("--plot", default=None, help="PNG timeline of the windows (--window)")
    predict.add_argument("--csv", default=None, help="CSV of the windows (--window)")


# ------------------------------------------------------------------------ export


def cmd_export(args) -> int:
    from vidseq.sequence.export.build import export_run

    result = export_run(args.run, args.out, format=args.format, part=args.part, batch=args.batch)
    print(result.summary())
    return EXIT_OK


def cmd_predict_export(args) -> int:
    from vidseq.sequence.export.runtime import predict_export

    if args.engine != "tf":
        raise UsageError(
            f"{args.run}: an export runs in its own format's runtime; --engine applies to "
            f"run directories. Received: --engine {args.engine}"
        )
    predictions = predict_export(args.run, args.videos, top_k=args.top_k)
    return _report_predictions(predictions, args.json)


def _add_export_parser(commands) -> None:
    from vidseq.sequence.export.manifest import FORMATS, PARTS

    parser = commands.add_parser(
        "export",
        help="run directory → SavedModel, OpenVINO IR, ONNX or LiteRT for serving",
        description="Export a trained run with its manifest vidseq-export.json. end-to-end: "
        "uint8 frames (batch, T, H, W, 3) → probabilities, the CNN and its preprocessing "
        "inside; head: features (batch, T, D) and a valid-frame mask → probabilities.",
    )
    parser.add_argument("run", help="run directory")
    parser.add_argument("--format", required=True, choices=list(FORMATS))
    parser.add_argument("--out", required=True, help="export directory to create (or empty)")
    parser.add_argument("--part", default="end-to-end", choices=list(PARTS))
    parser.add_argument(
        "--batch", type=int, default=None, help="fixed batch size (default: dynamic)"
    )
    parser.set_defaults(func=cmd_export)


def cmd_demo(args) -> int:
    from vidseq.sequence.studies.demo import DEMO_BACKBONE, run_demo

    result = run_demo(args.workdir, seed=args.seed)
    print(
        f"\ndone: sample data {result.sample}, cache {result.cache}, run {result.run}.\n"
        f"The demo's CNN is {DEMO_BACKBONE!r} with random-init weights (offline). With real "
        "data and ImageNet weights:\n"
        "  vidseq extract-features DATA --out features.h5 --backbone resnet50 "
        "--weights imagenet\n"
        "(Keras downloads the weights to $KERAS_HOME/models; offline, pass "
        "--weights PATH to a local file)."
    )
    return EXIT_OK


def _add_strategy_argument(parser, default) -> None:
    from vidseq.sequence.config import STRATEGIES

    parser.add_argument(
        "--strategy",
        default=default,
        choices=STRATEGIES,
        help="tf.distribute strategy: default (one device), mirrored (this machine's GPUs), "
        "multiworker (the machines of TF_CONFIG; every worker runs the same command, the "
        "chief writes --out)",
    )


def _add_head_arguments(parser, defaults, centering_help=None, *, normalize=True) -> None:
    """--head (alias --rnn), its options, --centering and --normalize, defaults from a HeadConfig.

    An option left out takes the head's own default; one the head does not
    take is refused when the settings are validated.
    """
    from vidseq.sequence.config import CENTERING_MODES, HEAD_TYPES, RNN_TYPES

    parser.add_argument(
        "--head",
        default=defaults.head,
        choices=HEAD_TYPES,
        help="temporal head (docs/results.md compares them; pool is the order-blind baseline)",
    )
    parser.add_argument(
        "--rnn", dest="head", choices=RNN_TYPES, default=argparse.SUPPRESS, help="alias of --head"
    )
    parser.add_argument("--units", type=int, default=None, help="head width (default: 128)")
    parser.add_argument(
        "--layers", type=int, default=None, help="lstm/gru layers or transformer blocks"
    )
    parser.add_argument(
        "--bidirectional", action="store_const", const=True, default=None, help="lstm/gru"
    )
    parser.add_argument(
        "--dropout",
        type=float,
        default=None,
        help="the head's own dropout (lstm/gru inputs 0.5, tcn and transformer 0.1)",
    )
    parser.add_argument("--kernel-size", type=int, default=None, help="tcn taps (3)")
    parser.add_argument("--num-heads", type=int, default=None, help="transformer heads (4)")
    parser.add_argument(
        "--clip-dropout",
        type=float,
        default=None,
        help="dropout before the softmax (default: 0 for lstm/gru, 0.5 for the others)",
    )
    parser.add_argument(
        "--centering",
        default=defaults.centering,
        choices=CENTERING_MODES,
        help=centering_help,
    )
    if normalize:
        _add_normalize_arguments(parser, defaults.normalize)


def _add_normalize_arguments(parser, default) -> None:
    """--normalize MODE and --no-normalize (its older spelling of ``none``)."""
    from vidseq.sequence.config import NORMALIZE_MODES

    parser.add_argument(
        "--normalize",
        default=default,
        choices=NORMALIZE_MODES,
        help="feature scaling from the training frames: rms (every feature divided by "
        "the features' root mean square, the default), standardize (each feature to "
        "mean 0, variance 1) or none",
    )
    parser.add_argument(
        "--no-normalize",
        dest="normalize",
        action="store_const",
        const="none",
        help="as --normalize none",
    )


def _add_fit_arguments(parser, defaults) -> None:
    """--lr, --epochs, --batch-size, --strategy, --patience, --lr-schedule, --label-smoothing,
    --class-weight and --seed, defaults from a FitConfig."""
    from vidseq.sequence.config import LR_SCHEDULES

    parser.add_argument(
        "--lr", type=float, default=defaults.lr, help=LR_HELP if defaults.lr is None else None
    )
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        help="videos per batch and replica (a step reads batch-size x replicas)",
    )
    _add_strategy_argument(parser, defaults.strategy)
    parser.add_argument(
        "--patience", type=int, default=defaults.patience, help="early stopping; 0: off"
    )
    parser.add_argument("--lr-schedule", default=defaults.lr_schedule, choices=LR_SCHEDULES)
    parser.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing)
    parser.add_argument("--class-weight", default=None, choices=["balanced"])
    parser.add_argument("--seed", type=int, default=defaults.seed)


def _add_run_arguments(parser) -> None:
    """--tensorboard, --resume, --overwrite, --quiet: how a training run goes."""
    parser.add_argument("--tensorboard", default=None, metavar="DIR")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")


def _print_replica_digest(result) -> None:
    if result.replicas > 1 or not result.chief:
        print(f"final weights sha256 {result.weights_sha256}", file=sys.stderr)


def _add_train_parser(commands) -> None:
    from vidseq.sequence.config import STREAMING_MODES, TrainConfig

    defaults = TrainConfig()
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
    _add_head_arguments(
        parser,
        defaults.head,
        centering_help="head input: features and their deviation from the clip mean (concat), "
        "the deviation only (subtract), or the features as they are (none)",
    )
    _add_fit_arguments(parser, defaults.fit)
    parser.add_argument(
        "--frames", type=int, default=None, help="feature rows per video (default: all cached)"
    )
    parser.add_argument(
        "--temporal-shift", type=int, default=defaults.temporal_shift, help="max shift, frames"
    )
    parser.add_argument("--streaming", default=defaults.streaming, choices=STREAMING_MODES)
    parser.add_argument("--val-fraction", type=float, default=defaults.val_fraction)
    parser.add_argument("--eval-clips", type=int, default=defaults.eval_clips)
    _add_run_arguments(parser)
    parser.set_defaults(func=cmd_train_sequence)


def _scratch_config(args):
    """The ScratchConfig of ``finetune --from-scratch``: the flags, with the frames' settings."""
    from vidseq.extract.decode.framespec import FrameSpec
    from vidseq.sequence.config import ScratchConfig

    frames = FrameSpec.from_options(
        sampling=args.sampling,
        num_frames=args.frames or 16,
        frame_rate=args.frame_rate,
        crop=args.crop,
        face_crop=args.face_crop,
        face_gray=args.face_gray,
        face_margin=args.face_margin,
        motion_floor=args.motion_floor,
        motion_signal=args.motion_signal,
        cut_threshold=args.cut_threshold,
        cut_ratio=args.cut_ratio,
    )
    # The default sampling: --frames uniform frames, or a FER-2013 clip's images.
    sampling = frames.sampling if args.frames or args.sampling != "uniform" else None
    return ScratchConfig.from_dict(
        {**vars(args), "sampling": sampling, "face_crop": frames.face_crop}
    )


def cmd_finetune(args) -> int:
    from vidseq.sequence.config import FinetuneConfig
    from vidseq.sequence.train.finetune import finetune
    from vidseq.sequence.train.scratch import train_from_scratch

    if args.from_scratch:
        config = _scratch_config(args)
        result = train_from_scratch(args.source_path, args.out, config, **_run_options(args))
    else:
        config = FinetuneConfig.from_dict(vars(args))
        result = finetune(
            args.source_path, args.out, config, cache=args.cache, **_run_options(args)
        )
    return _report_training(result)


def _add_finetune_parser(commands) -> None:
    from vidseq.sequence.config import (
        DEFAULT_UNFREEZE,
        MIXED_PRECISION_MODES,
        FinetuneConfig,
        ScratchConfig,
    )

    defaults, scratch_defaults = FinetuneConfig(), ScratchConfig()
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
    unfreeze = parser.add_mutually_exclusive_group()
    unfreeze.add_argument(
        "--unfreeze",
        type=int,
        default=DEFAULT_UNFREEZE,
        metavar="N",
        help=f"unfreeze the last N backbone layers (default {DEFAULT_UNFREEZE}; 0: head only)",
    )
    unfreeze.add_argument(
        "--unfreeze-from", default=None, metavar="LAYER", help="unfreeze from this layer on"
    )
    _add_fit_arguments(parser, defaults.fit)
    parser.add_argument(
        "--augment", action="store_true", help="random TSN segment offsets and horizontal flips"
    )
    parser.add_argument(
        "--mixed-precision",
        default=defaults.mixed_precision,
        choices=MIXED_PRECISION_MODES,
        help="mixed_float16 backbone (auto: when a GPU is present)",
    )
    parser.add_argument("--workers", type=int, default=None, help="decoder threads")
    parser.add_argument(
        "--cache", default=None, help="cache listing the videos (default: the run's)"
    )
    _add_run_arguments(parser)
    _add_scratch_arguments(parser, scratch_defaults)
    parser.set_defaults(func=cmd_finetune)


def _add_scratch_arguments(parser, defaults) -> None:
    """The --from-scratch group of finetune, defaults from a ScratchConfig."""
    from vidseq.extract.models.backbones import backbone_names

    scratch = parser.add_argument_group("from scratch (--from-scratch DATA_OR_CACHE)")
    scratch.add_argument(
        "--from-scratch",
        action="store_true",
        help="RUN is a dataset or cache: random-init CNN and a fresh head, all layers trained",
    )
    scratch.add_argument("--backbone", default=defaults.backbone, choices=backbone_names())
    scratch.add_argument("--input-size", type=_size, default=None, help="SIZE or HEIGHTxWIDTH")
    scratch.add_argument("--grayscale", action="store_true", help="the CNN reads one grey channel")
    scratch.add_argument("--frames", type=int, default=None, help="frames per clip (T)")
    _add_head_arguments(scratch, defaults.head, normalize=False)
    scratch.add_argument("--val-fraction", type=float, default=defaults.val_fraction)
    scratch.add_argument("--eval-clips", type=int, default=defaults.eval_clips)
    scratch.add_argument(
        "--source",
        default=defaults.source,
        choices=["auto", "folder", "ucf101", "manifest", "fer2013"],
    )
    scratch.add_argument(
        "--split", type=int, default=defaults.split, choices=[1, 2, 3], help="UCF-101 split"
    )
    scratch.add_argument(
        "--clip-length", type=int, default=defaults.clip_length, help="fer2013: faces per clip"
    )
    _add_sampling_arguments(scratch)
    scratch.add_argument(
        "--center-crop", dest="crop", action="store_const", const="center", default="resize"
    )
    scratch.add_argument("--face-crop", action="store_true", help="cut frames around faces")
    scratch.add_argument("--face-gray", action="store_true", help="grey face crops")
    scratch.add_argument("--face-margin", type=float, default=0.2)


def _add_frame_arguments(parser) -> None:
    """--frames ... --face-margin: which frames extraction takes and how it frames them."""
    parser.add_argument("--frames", type=int, default=16, help="frames per video (K)")
    _add_sampling_arguments(parser)
    crop = parser.add_mutually_exclusive_group()
    crop.add_argument("--resize", dest="crop", action="store_const", const="resize")
    crop.add_argument("--center-crop", dest="crop", action="store_const", const="center")
    parser.set_defaults(crop="resize")
    parser.add_argument(
        "--clip-length",
        type=int,
        default=10,
        help="fer2013: faces per pseudo-clip (the remainder of each split and class is left out)",
    )
    parser.add_argument(
        "--face-crop",
        action="store_true",
        help="cut each frame around its largest face (OpenCV Haar cascade); "
        "records per-frame face_found",
    )
    parser.add_argument(
        "--face-gray",
        action="store_true",
        help="face crops in grey, replicated to 3 channels (implies --face-crop)",
    )
    parser.add_argument(
        "--face-margin",
        type=float,
        default=0.2,
        help="room around the face on each side, as a fraction of its size (default 0.2)",
    )


def _add_extract_parser(commands) -> None:
    from vidseq.extract.models.backbones import backbone_names
    from vidseq.extract.sources.dataset import source_names

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
    parser.add_argument("--source", default="auto", choices=["auto", *source_names()])
    parser.add_argument("--split", type=int, default=1, choices=[1, 2, 3], help="UCF-101 split")
    parser.add_argument("--backbone", default="tiny", choices=backbone_names())
    parser.add_argument(
        "--weights",
        default=None,
        help="imagenet | none | PATH of a weights file (default: imagenet, none for tiny)",
    )
    parser.add_argument("--input-size", type=_size, default=None, help="SIZE or HEIGHTxWIDTH")
    _add_frame_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=32, help="frames per CNN batch")
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    parser.add_argument(
        "--num-shards",
        type=int,
        default=None,
        help="split the dataset into N disjoint shards (default: $VIDSEQ_NUM_SHARDS, "
        "$SLURM_ARRAY_TASK_COUNT, else 1)",
    )
    parser.add_argument(
        "--shard-index",
        type=int,
        default=None,
        help="the shard to extract (default: $VIDSEQ_SHARD_INDEX, $SLURM_ARRAY_TASK_ID - "
        "$SLURM_ARRAY_TASK_MIN, $JOB_COMPLETION_INDEX, else 0)",
    )
    parser.add_argument("--decode-workers", type=int, default=None, help="decoder threads")
    parser.add_argument(
        "--engine",
        choices=["tf", "openvino"],
        default="tf",
        help="what runs the CNN: tf, or openvino (faster on CPUs; pip install 'vidseq[openvino]')",
    )
    parser.add_argument(
        "--precision", choices=["fp32", "bf16", "int8"], default="fp32", help=PRECISION_HELP
    )
    parser.add_argument(
        "--calibration-videos",
        type=int,
        default=16,
        help="int8: videos whose frames calibrate the quantisation",
    )
    parser.add_argument(
        "--check-against",
        default=None,
        metavar="RUN",
        help="bf16/int8: also record how often RUN's top-1 label changes on held-out videos",
    )
    parser.add_argument(
        "--commit-every", type=int, default=32, help="videos per commit (work lost on a crash)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of random-init weights")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad video")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a cache made with other settings"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=cmd_extract_features)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command that exists."""
    parser = argparse.ArgumentParser(
        prog="vidseq",
        description="CNN-RNN video classification on cached frozen-CNN features.",
    )
    parser.add_argument("--version", action="version", version=f"vidseq {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sample = commands.add_parser(
        "make-sample", help="write an offline sample dataset (UCF-101 layout)"
    )
    sample.add_argument("out", help="folder to create")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--classes", nargs="+", default=None, help="subset of class names")
    sample.add_argument("--videos-per-class", type=int, default=None)
    sample.add_argument(
        "--event-fraction",
        type=float,
        default=None,
        help="sparse-event variant: each video is a short event (this share of its frames, "
        "0 < F <= 1) inside a long still shot",
    )
    sample.set_defaults(func=cmd_make_sample)

    _add_extract_parser(commands)
    _add_train_parser(commands)
    _add_compare_parser(commands)
    _add_finetune_parser(commands)

    evaluate = commands.add_parser(
        "evaluate", help="run directory + cache → metrics, report, confusion matrix"
    )
    evaluate.add_argument("run", help="run directory")
    evaluate.add_argument(
        "cache",
        nargs="*",
        default=None,
        help="default: the run's cache; several files or a quoted glob are read as one cache",
    )
    evaluate.add_argument("--split", default="test", choices=["test", "val", "train"])
    evaluate.add_argument("--clips", type=int, default=None, help="temporal samples per video")
    evaluate.add_argument("--out", default=None, help="report folder (default: the run)")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(func=cmd_evaluate)

    predict = commands.add_parser(
        "predict", help="run directory (or export directory) + videos → labels"
    )
    predict.add_argument("run", help="run directory, or export directory of vidseq export")
    predict.add_argument("videos", nargs="+", metavar="VIDEO")
    predict.add_argument("--top-k", type=int, default=5)
    predict.add_argument(
        "--engine",
        choices=["tf", "openvino"],
        default="tf",
        help="what runs the CNN: tf, or openvino (faster on CPUs; pip install 'vidseq[openvino]')",
    )
    predict.add_argument("--json", action="store_true")
    predict.add_argument(
        "--precision", choices=["fp32", "bf16", "int8"], default="fp32", help=PRECISION_HELP
    )
    _add_window_arguments(predict)
    predict.set_defaults(func=cmd_predict)
    _add_watch_parser(commands)

    _add_export_parser(commands)

    demo = commands.add_parser("demo", help="the whole pipeline on offline sample data")
    demo.add_argument("--workdir", default="vidseq-demo")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo)

    inspect = commands.add_parser("inspect", help="summary of a cache or of one video in it")
    inspect.add_argument(
        "cache", nargs="+", help="cache file; several files or a quoted glob are read as one"
    )
    inspect.add_argument("--video", default=None, help="a video id")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.set_defaults(func=cmd_inspect)

    cache = commands.add_parser("cache", help="cache maintenance")
    cache_commands = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    merge = cache_commands.add_parser("merge", help="combine shard files into one cache")
    merge.add_argument("out")
    merge.add_argument("inputs", nargs="+")
    merge.add_argument("--overwrite", action="store_true")
    merge.set_defaults(func=cmd_cache_merge)
    for command in commands.choices.values():
        command.add_argument(
            "--verbose",
            action="store_true",
            help="keep TensorFlow's own log lines (as VIDSEQ_DEBUG=1 does)",
        )
        command.set_defaults(flags=tuple(re.findall(r"--[a-z][\w-]*", command.format_usage())))
    return parser


def as_flags(message: str, flags) -> str:
    """A library error in the words of the command line.

    The API names parameters (``batch_size must be >= 1. Received:
    batch_size=0``); each parameter that is one of the command's ``flags`` is
    named by its flag instead (``--batch-size must be >= 1. Received:
    --batch-size=0``).
    """
    for flag in flags:
        name = re.escape(flag[2:].replace("-", "_"))
        message = re.sub(rf"(?<![\w.-]){name}(?= must\b| should\b|=)", flag, message)
    return message


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
        return args.func(args)
    except (UsageError, SourceReadError) as error:
        print(f"vidseq: error: {as_flags(str(error), args.flags)}", file=sys.stderr)
        return EXIT_USAGE
    except VidseqError as error:
        print(f"vidseq: error: {as_flags(str(error), args.flags)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("vidseq: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
