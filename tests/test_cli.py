"""The command line surface: entry points, the command list, exit codes of bad input.

After a change to a flag, regenerate the tables of docs/cli.md with::

    python -c "from vidseq.cli import build_parser; from vidseq.extract.params import \
    with_tables as w; p = 'docs/cli.md'; t = w(open(p).read(), build_parser()); \
    open(p, 'w').write(t)"
"""

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import vidseq
from vidseq.cli import OUTPUT_FLAGS, build_parser, main
from vidseq.extract.options import FRAME_PARAMS
from vidseq.extract.params import command_parsers, with_tables
from vidseq.sequence.config import FinetuneConfig, ScratchConfig, TrainConfig

PARSERS = command_parsers(build_parser())
COMMANDS = sorted({name.split()[0] for name in PARSERS})
DOCS = Path(__file__).parents[1] / "docs" / "cli.md"


SCRIPT = str(Path(sys.executable).parent / "vidseq")


@pytest.mark.parametrize("entry", [[SCRIPT], [sys.executable, "-m", "vidseq"]])
def test_help_lists_every_command(entry):
    result = subprocess.run([*entry, "--help"], capture_output=True, text=True, check=True)
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["train-sequence", "{bad}", "--out", "{tmp}/run"],
        ["evaluate", "{tmp}", "{bad}"],
        ["inspect", "{bad}"],
        ["predict", "{tmp}", "video.avi"],
        ["cache", "merge", "{tmp}/out.h5", "{bad}"],
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(argv, tmp_path, capsys):
    bad = tmp_path / "not-a-cache.h5"
    bad.write_text("hello")
    code = main([arg.format(bad=bad, tmp=tmp_path) for arg in argv])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("vidseq: error:") and "\n" not in error
    assert not (tmp_path / "run").exists() and not (tmp_path / "out.h5").exists()


@pytest.mark.slow
def test_the_default_network_is_resnet50_with_imagenet_weights(
    tmp_path, monkeypatch, capsys, video_factory
):
    # No --weights: resnet50 must not fall back to random init; offline, the download fails
    # and the error says how to supply the file.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    data = tmp_path / "data" / "a"
    data.mkdir(parents=True)
    Path(video_factory("v.avi", 8)).rename(data / "v.avi")
    out = tmp_path / "f.h5"
    code = main(["extract-features", str(tmp_path / "data"), "--out", str(out)])  # the defaults
    error = capsys.readouterr().err
    if code == 0:
        pytest.skip("ImageNet weights could be downloaded here")
    assert code == 2 and len(error.strip().splitlines()) == 1
    assert "--weights=PATH" in error and "--backbone=tiny" in error and "resnet50" in error
    assert {p.name for p in tmp_path.iterdir()} - {"keras"} == {"data"}  # nothing written


def test_docs_cli_mentions_every_flag():
    import argparse

    from vidseq.cli import build_parser

    doc = (Path(__file__).parents[1] / "docs" / "cli.md").read_text()
    missing = []

    def visit(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    visit(sub)
            for flag in action.option_strings:
                documented = flag in doc or flag in ("--help", "--version")
                if flag.startswith("--") and not documented:
                    missing.append(f"{parser.prog} {flag}")

    visit(build_parser())
    assert missing == []


def test_a_library_error_names_the_flag_the_user_typed(tmp_path, capsys):
    code = main(["train-sequence", str(tmp_path / "f.h5"), "--out", str(tmp_path / "run"),
                 "--batch-size", "0"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("vidseq: error: --batch-size must be an integer >= 1.")
    assert "Received: --batch-size=0" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_normalize_takes_a_mode_and_no_normalize_still_turns_it_off():
    parser = build_parser()
    for command in (["train-sequence", "f.h5", "--out", "run"], ["compare", "f.h5", "--out", "c"]):
        args = parser.parse_args(command)
        assert args.normalize == "rms" and args.lr is None  # None: the head's learning rate
        assert parser.parse_args([*command, "--no-normalize"]).normalize == "none"
        standardized = parser.parse_args([*command, "--normalize", "standardize"])
        assert standardized.normalize == "standardize"


def test_the_command_list_comes_from_the_parser():
    assert len(COMMANDS) == 14 and {"watch", "export", "compare", "finetune"} <= set(COMMANDS)


def test_docs_cli_tables_are_generated_from_the_declarations():
    text = DOCS.read_text()
    missing = [name for name in PARSERS if f"<!-- flags: {name} -->" not in text]
    assert not missing, f"docs/cli.md has no table for {missing}"
    assert with_tables(text, build_parser()) == text, "docs/cli.md is stale: see this module"


CONFIGS = {"train-sequence": TrainConfig, "compare": TrainConfig, "finetune": FinetuneConfig}
# Flags whose values the command composes into one API argument.
COMPOSED = {
    "extract-features": {
        "frames": {p.name for p in FRAME_PARAMS},
        "shard": {"num_shards", "shard_index"},
        "progress": {"quiet"},
        "agreement_probe": {"check_against"},
    },
    "finetune": {"config": set(ScratchConfig.setting_names()) | {p.name for p in FRAME_PARAMS}},
}
# Positionals and flags named before the API's keyword: flag dest -> API name.
RENAMED = {"out": "out_dir", "cache": "cache_path", "source_path": "run_dir", "no_report": "report"}
RUN_OPTIONS = {"resume", "overwrite", "from_scratch"}  # how a training run goes


def _covered(command, dest, parameters):
    names = {dest, RENAMED.get(dest)}
    if names & set(parameters) or dest in OUTPUT_FLAGS:
        return True
    config = CONFIGS.get(command)
    if config is not None and dest in config.setting_names() | RUN_OPTIONS:
        return True
    if command in ("compare", "tune") and dest in ("heads", "seeds"):
        return True
    return any(dest in flags for flags in COMPOSED.get(command, {}).values())


def test_every_command_and_every_flag_has_its_api_counterpart():
    assert set(vidseq.COMMANDS) == set(PARSERS)
    orphans = []
    for command, parser in PARSERS.items():
        function = getattr(vidseq, vidseq.COMMANDS[command])
        parameters = inspect.signature(function).parameters
        for action in parser._actions:
            dest = action.dest
            if dest in ("help", "verbose") or not (action.option_strings or dest):
                continue
            if not _covered(command, dest, parameters):
                orphans.append(f"{command} {'/'.join(action.option_strings) or dest}")
    assert orphans == []


def test_every_result_prints_itself_and_is_json_ready():
    from vidseq.cache.inspection import CacheReport
    from vidseq.cache.merge import MergeResult
    from vidseq.extract.pipeline import ExtractionSummary
    from vidseq.extract.sources.sample_dataset import SampleDataset
    from vidseq.sequence.export.build import ExportResult
    from vidseq.sequence.export.predict_any import Predictions
    from vidseq.sequence.infer.watch import Decision, WatchSummary
    from vidseq.sequence.runs.results import EvaluationResult, TrainResult
    from vidseq.sequence.studies.compare import ComparisonResult
    from vidseq.sequence.studies.demo import DemoResult

    kinds = [CacheReport, MergeResult, ExtractionSummary, ExportResult, Predictions, Decision]
    kinds += [WatchSummary, EvaluationResult, TrainResult, ComparisonResult, DemoResult]
    kinds += [SampleDataset]
    for kind in kinds:
        assert callable(getattr(kind, "summary", None)), kind
        assert callable(getattr(kind, "to_dict", None)), kind
