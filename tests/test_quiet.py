"""Quiet by default: no TensorFlow C++ start-up lines in a command's output, unless asked for."""

import json
import os
import re
import subprocess
import sys

import pytest

from vidseq.extract.sources.sample_data import make_sample
from vidseq.quiet import device_problem, native_chatter_dropped

# absl/glog line heads (I0000 00:00:..., E0000 ...) and TensorFlow's start-up phrases.
TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|cuda drivers|cuInit|oneDNN", re.M)
IMPORT_TF = "from vidseq.quiet import quiet_tensorflow; quiet_tensorflow(); import keras"


def _start(args, **env):
    """Starts ``python ARGS`` in the environment a user has (no log-level variable set)."""
    unset = ("VIDSEQ_DEBUG", "TF_CPP_MIN_LOG_LEVEL")
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    environment.update(env)
    return subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def _finish(process):
    """``(returncode, stdout, stderr)`` of a started process (killed after 300 s)."""
    try:
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, stdout, stderr


def _run(args, **env):
    return _finish(_start(args, **env))


@pytest.mark.slow
def test_an_extraction_prints_no_tensorflow_log_line(tmp_path):
    data, cache = tmp_path / "data", tmp_path / "f.h5"
    make_sample(data, videos_per_class=2)  # no TensorFlow: in this process
    code, stdout, stderr = _run(
        [
            "-m",
            "vidseq",
            "extract-features",
            "--backbone",
            "tiny",
            str(data),
            "--out",
            str(cache),
            "--frames",
            "4",
        ]
    )
    assert code == 0, stderr
    assert cache.is_file()
    assert not TF_LOG_LINE.search(stderr + stdout), stderr


@pytest.mark.slow
def test_vidseq_debug_brings_tensorflow_logs_back():
    """The same start-up as the extraction's above, which printed none of these lines."""
    script = f"{IMPORT_TF}; import gc; print(gc.get_freeze_count())"
    code, stdout, stderr = _run(["-c", script], VIDSEQ_DEBUG="1", TF_CPP_MIN_LOG_LEVEL="0")
    assert code == 0
    assert TF_LOG_LINE.search(stderr), stderr
    assert int(stdout) > 200_000  # frozen as without the logs (the test below)


QUIET_START = """
import gc, json
from vidseq.quiet import quiet_tensorflow

quiet_tensorflow()
frozen = gc.get_freeze_count()
quiet_tensorflow()  # idempotent: no second freeze of what exists by now
print(json.dumps({"frozen": frozen, "again": gc.get_freeze_count() - frozen,
                  "enabled": gc.isenabled(), "tracked": len(gc.get_objects())}))
"""


@pytest.mark.slow
def test_a_commands_tensorflow_start_is_frozen_once_and_quiet():
    code, stdout, stderr = _run(["-c", QUIET_START])
    assert code == 0, stderr
    seen = json.loads(stdout.strip().splitlines()[-1])
    # TensorFlow's modules and op definitions: hundreds of thousands of objects that
    # the collector no longer walks (frozen_imports.py); the few created since stay
    # collectable.
    assert seen["frozen"] > 200_000 and seen["tracked"] < seen["frozen"] / 10
    assert seen["again"] == 0 and seen["enabled"] is True
    assert stderr == ""


def test_a_gpu_problem_is_one_line_of_vidseqs_own():
    lines = ["E0000 00:00:1.2 7 cuda_platform.cc:52] failed call to cuInit: CUDA error 303"]
    assert device_problem(lines, gpus=[], driver_present=False) is None  # a CPU machine
    assert device_problem(lines, gpus=["gpu:0"], driver_present=True) is None
    problem = device_problem(lines, gpus=[], driver_present=True)
    assert "TensorFlow sees no GPU (CUDA error 303)" in problem and "\n" not in problem


def test_native_chatter_is_dropped_and_other_lines_pass_even_when_the_block_fails(
    capfd, monkeypatch
):
    monkeypatch.delenv("VIDSEQ_DEBUG", raising=False)
    chatter = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
    with pytest.raises(RuntimeError), native_chatter_dropped() as captured:
        os.write(2, chatter + b"E0000 00:00 7 x.cc:1] a real problem\n")
        raise RuntimeError
    assert capfd.readouterr().err == "E0000 00:00 7 x.cc:1] a real problem\n"
    assert len(captured) == 2

    monkeypatch.setenv("VIDSEQ_DEBUG", "1")
    with native_chatter_dropped():
        os.write(2, chatter)
    assert capfd.readouterr().err == chatter.decode()


def test_the_command_line_imports_no_tensorflow_until_a_command_needs_it():
    script = (
        "import sys; from vidseq.cli import build_parser; build_parser(); "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    code, stdout, stderr = _run(["-c", script])
    assert code == 0, stderr
    assert stdout.split() == ["False", "False"]
