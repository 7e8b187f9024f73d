"""The ``vidseq`` command line: parse, call the Python API, print, return an exit code.

Exit codes: 0 success; 1 runtime failure; 2 usage or bad input; 3 finished, but
some inputs failed and were recorded in the cache.
"""

from __future__ import annotations

import argparse
import json
import sys

from vidseq import __version__
from vidseq.errors import SourceReadError, UsageError, VidseqError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3


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
    from vidseq.extract.sample_data import make_sample

    kwargs = {"seed": args.seed, "classes": args.classes}
    if args.videos_per_class is not None:
        kwargs["videos_per_class"] = args.videos_per_class
    root = make_sample(args.out, **kwargs)
    print(f"sample dataset written to {root}")
    return EXIT_OK


def cmd_extract_features(args) -> int:
    from vidseq.extract.pipeline import extract_features
    from vidseq.extract.sampling import SamplingConfig

    summary = extract_features(
        args.data,
        args.out,
        source=args.source,
        split=args.split,
        backbone=args.backbone,
        weights=args.weights,
        input_size=args.input_size,
        sampling=SamplingConfig(
            mode=args.sampling, num_frames=args.frames, frame_rate=args.frame_rate
        ),
        crop=args.crop,
        batch_size=args.batch_size,
        dtype=args.dtype,
        num_shards=args.num_shards,
        shard_index=args.shard_index,
        strict=args.strict,
        overwrite=args.overwrite,
        decode_workers=args.decode_workers,
        commit_every=args.commit_every,
        seed=args.seed,
        progress=not args.quiet,
    )
    for warning in summary.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for failure in summary.failures:
        print(f"failed: {failure.path}: {failure.error}", file=sys.stderr)
    print(summary.format())
    return EXIT_PARTIAL if summary.failures else EXIT_OK


def cmd_inspect(args) -> int:
    from vidseq.cache import inspection

    if args.video is not None:
        info = inspection.describe_video(args.cache, args.video)
        text = inspection.format_video(info)
    else:
        info = inspection.summarize(args.cache)
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


def _add_extract_parser(commands) -> None:
    from vidseq.extract.backbones import backbone_names

    parser = commands.add_parser(
        "extract-features",
        help="dataset → sampled frames → frozen CNN → features.h5",
        description="Run a frozen CNN once over sampled frames of every video and cache the "
        "features in HDF5. Resumable: rerun the same command after a crash.",
    )
    parser.add_argument("data", help="dataset folder or CSV manifest")
    parser.add_argument("--out", required=True, help="cache file to write (features.h5)")
    parser.add_argument(
        "--source", default="auto", choices=["auto", "folder", "ucf101", "manifest"]
    )
    parser.add_argument("--split", type=int, default=1, choices=[1, 2, 3], help="UCF-101 split")
    parser.add_argument("--backbone", default="tiny", choices=backbone_names())
    parser.add_argument(
        "--weights",
        default=None,
        help="imagenet | none | PATH of a weights file (default: imagenet, none for tiny)",
    )
    parser.add_argument("--input-size", type=_size, default=None, help="SIZE or HEIGHTxWIDTH")
    parser.add_argument("--frames", type=int, default=16, help="frames per video (K)")
    parser.add_argument("--sampling", default="uniform", choices=["uniform", "fps"])
    parser.add_argument("--frame-rate", type=float, default=5.0, help="fps mode: frames/s")
    crop = parser.add_mutually_exclusive_group()
    crop.add_argument("--resize", dest="crop", action="store_const", const="resize")
    crop.add_argument("--center-crop", dest="crop", action="store_const", const="center")
    parser.set_defaults(crop="resize")
    parser.add_argument("--batch-size", type=int, default=32, help="frames per CNN batch")
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    parser.add_argument("--num-shards", type=int, default=1)
    parser.add_argument("--shard-index", type=int, default=0)
    parser.add_argument("--decode-workers", type=int, default=None, help="decoder threads")
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
    sample.set_defaults(func=cmd_make_sample)

    _add_extract_parser(commands)

    inspect = commands.add_parser("inspect", help="summary of a cache or of one video in it")
    inspect.add_argument("cache")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command line.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` if None.

    Returns:
        The exit code.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, SourceReadError) as error:
        print(f"vidseq: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except VidseqError as error:
        print(f"vidseq: error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("vidseq: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
