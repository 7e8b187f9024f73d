"""The command line surface: entry points, the command list, exit codes of bad input."""

import subprocess
import sys
from pathlib import Path

import pytest

from vidseq.cli import main

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
