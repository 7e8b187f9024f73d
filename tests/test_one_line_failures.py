"""Rule 4 of docs/reliability.md: one line, never a traceback, for what a user causes.

The OS errors come from real system calls (``/dev/full`` for ENOSPC, a
symlink loop, a file used as a folder, a read-only file system); the closed
pipe is a real pipe closed by its reader; argparse errors come from every
command of the real parser.
"""

import errno
import os
import subprocess
import sys

import pytest

from vidseq.cache.schema import CacheMeta, VideoRecord
from vidseq.cache.writer import CacheWriter
from vidseq.cli import build_parser, main
from vidseq.extract.params import command_parsers
from vidseq.failures import describe_failure, resume_hint

COMMANDS = list(command_parsers(build_parser()))  # every command, from the parser


def os_error(call):
    """The OSError a real system call raises."""
    with pytest.raises(OSError) as caught:
        call()
    return caught.value


def write_full(path):
    with open(path, "w") as file:
        file.write("x" * 10_000)
        file.flush()


def opened(path, mode="r"):
    with open(path, mode):
        pass


def test_each_os_error_a_user_causes_is_one_line_naming_the_path_and_what_to_do(tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "file").write_text("")
    cases = {
        "no space left on the device": os_error(lambda: write_full("/dev/full")),
        "symlink loop": os_error(lambda: opened(tmp_path / "loop")),
        "is a folder": os_error(lambda: opened(tmp_path, "w")),
        "not a folder": os_error(lambda: os.mkdir(tmp_path / "file" / "sub")),
        "no such file": os_error(lambda: opened(tmp_path / "missing")),
        "in the way": os_error(lambda: os.mkdir(tmp_path / "file")),
        # Root reads and writes whatever the modes say: EACCES is made, not provoked.
        "permission denied": PermissionError(errno.EACCES, "Permission denied", "/x"),
    }
    for words, error in cases.items():
        line = describe_failure(error)
        assert words in line, (words, line)
        assert "\n" not in line
    assert str(tmp_path / "loop") in describe_failure(cases["symlink loop"])
    assert "smaller --batch-size" in describe_failure(MemoryError())
    assert describe_failure(ValueError("a bug")) is None


def test_an_os_error_in_a_command_is_one_line_and_vidseq_debug_keeps_the_traceback(
    tmp_path, capsys, monkeypatch
):
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "sub" / "sample"
    assert main(["make-sample", str(out)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "a part of the path is not a folder; fix the path" in lines[0]
    assert lines[0].startswith(f"vidseq: error: {tmp_path / 'file'}")
    monkeypatch.setenv("VIDSEQ_DEBUG", "1")
    with pytest.raises(NotADirectoryError):
        main(["make-sample", str(out)])


def test_a_closed_pipe_ends_quietly_as_unix_tools_do(tmp_path):
    meta = CacheMeta("tiny", "none", "0" * 64, "tf", (32, 32), 4, {"num_frames": 2}, ["a", "b"])
    cache = tmp_path / "f.h5"
    with CacheWriter(cache, meta) as writer:
        for i in range(200):
            record = VideoRecord(f"video-{i:04d}", f"/d/{i}.avi", i % 2, "train", f"g{i}", 2, 25, 2)
            writer.add(record, [[0.0] * 4] * 2, [0, 1], [0.0, 40.0])
        writer.finalize()
    command = [sys.executable, "-m", "vidseq", "inspect", str(cache), "--json"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # `| head -0`: the reader is gone before vidseq writes
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141
    assert stderr == ""


def test_every_command_reports_a_bad_flag_in_one_line(capsys):
    for name in COMMANDS:
        for bad in (["--no-such-flag"], ["--top-k", "x"]):
            with pytest.raises(SystemExit) as caught:
                main([*name.split(), *bad])
            lines = capsys.readouterr().err.strip().splitlines()
            assert caught.value.code == 2
            assert len(lines) == 1 and lines[0].startswith("vidseq"), lines
            assert ": error: " in lines[0] and lines[0].endswith(" --help)"), lines


def test_after_ctrl_c_training_commands_say_resume():
    assert "--resume" in resume_hint("train-sequence") and "--resume" in resume_hint("finetune")
    assert "--resume" not in resume_hint("extract-features")
    assert "rerun the same command" in resume_hint("extract-features")


def test_messages_name_the_flags_not_the_library_parameters(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    cases = [
        (["extract-features", tmp_path, "--out", tmp_path / "f.h5", "--frames", "0"], "--frames"),
        (["train-sequence", tmp_path / "f.h5", "--out", tmp_path / "file"], "--out"),
        (["demo", "--workdir", tmp_path / "file"], "--workdir"),
    ]
    for argv, flag in cases:
        assert main([str(a) for a in argv]) == 2
        line = capsys.readouterr().err.strip()
        assert f"Received: {flag}=" in line, line
        for name in ("num_frames", "out_dir", "workdir="):
            assert f" {name}" not in line and f"({name}" not in line, line
