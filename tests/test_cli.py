"""The command line surface: entry points, the command list, exit codes of bad input."""

import subprocess
import sys
from pathlib import Path

import pytest

from vidseq.cli import build_parser, main

COMMANDS = [
    "make-sample",
    "extract-features",
    "train-sequence",
    "evaluate",
    "predict",
    "inspect",
    "cache",
    "demo",
]


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


def test_default_weights_of_a_pretrained_backbone_are_imagenet(
    tmp_path, monkeypatch, capsys, video_factory
):
    # No --weights: resnet50 must not fall back to random init; offline, the download fails
    # and the error says how to supply the file.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    data = tmp_path / "data" / "a"
    data.mkdir(parents=True)
    Path(video_factory("v.avi", 8)).rename(data / "v.avi")
    out = tmp_path / "f.h5"
    code = main(
        ["extract-features", str(tmp_path / "data"), "--out", str(out), "--backbone", "resnet50"]
    )
    error = capsys.readouterr().err
    if code == 0:
        pytest.skip("ImageNet weights could be downloaded here")
    assert code == 2
    assert "--weights=PATH" in error and "resnet50" in error
    assert not out.exists()


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
