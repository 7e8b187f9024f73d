"""Quiet start-up of TensorFlow for the commands.

Importing TensorFlow writes C++ log lines straight to file descriptor 2, before
its logging is set up, so no environment variable silences all of them
(``TF_CPP_MIN_LOG_LEVEL`` stops only some). On a CPU machine they include
``Could not find cuda drivers`` and an ``E0000 ... failed call to cuInit`` line
that reads like a failure. :func:`quiet_tensorflow` imports TensorFlow and looks
for devices with descriptor 2 captured, drops the known start-up chatter,
passes every other line through, and reports a real GPU problem (a driver is
present but TensorFlow sees no GPU) in one line of vidseq's own. It also sets
TensorFlow's and absl's Python loggers to errors only, which hides retracing
warnings.

:func:`quiet_decoders` does the same for FFmpeg's and OpenCV's own log lines
(``connection refused``, ``ac-tex damaged``, ...): vidseq reports each
unreadable video or lost stream in a line of its own, which they would double.

``--verbose`` on any command, or ``VIDSEQ_DEBUG=1``, keeps everything.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import sys
import tempfile

from vidseq.frozen_imports import frozen_imports

DEBUG_ENV = "VIDSEQ_DEBUG"
NVIDIA_DRIVER = "/proc/driver/nvidia/version"

# Lines TensorFlow, XLA and absl print at every start-up: information, not problems.
_CHATTER = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} "  # absl/glog INFO and WARNING lines
    r"|To enable the following instructions:"
    r"|E\d{4} .*(cuInit|cuda_dnn|cuda_fft|cuda_blas|Unable to register cu\w+ factory)"
    r"|.*TF-TRT Warning: Could not find TensorRT"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.)"  # LiteRT, per interpreter
)
_CUINIT = re.compile(r"failed call to cuInit: (.*)$")


def debug_requested(verbose: bool = False) -> bool:
    """Whether the user asked for TensorFlow's own logs (``verbose`` or ``VIDSEQ_DEBUG=1``)."""
    return bool(verbose) or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def quiet_tensorflow(verbose: bool = False, stream=None) -> None:
    """Imports TensorFlow without its start-up chatter; idempotent.

    The import runs under :func:`~vidseq.frozen_imports.frozen_imports`, which
    spares the garbage collector from walking TensorFlow's objects.

    Args:
        verbose: Keep every log line (as ``VIDSEQ_DEBUG=1`` does).
        stream: Where kept lines and vidseq's own device line go; ``sys.stderr``
            if None.
    """
    debug = debug_requested(verbose)
    if not debug:
        # 3: TensorFlow's C++ errors too. Those that come after start-up are notices such
        # as "oneDNN supports DT_BOOL only on platforms with AVX-512. Falling back ...";
        # real failures surface as Python exceptions, and a GPU problem as our own line.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules:
        with frozen_imports():
            _start_tensorflow(stream or sys.stderr, keep_logs=debug)
    if not debug:
        for name in ("tensorflow", "absl", "h5py"):
            logging.getLogger(name).setLevel(logging.ERROR)


def _start_tensorflow(stream, keep_logs: bool) -> None:
    """Imports TensorFlow; unless ``keep_logs``, drops its chatter and reports a GPU problem."""
    if keep_logs:
        importlib.import_module("tensorflow")
        return
    with native_chatter_dropped(stream) as captured:
        tf = importlib.import_module("tensorflow")
        gpus = tf.config.list_physical_devices("GPU")
    problem = device_problem(captured, gpus, os.path.exists(NVIDIA_DRIVER))
    if problem:
        print(f"vidseq: warning: {problem}", file=stream)


@contextlib.contextmanager
def native_chatter_dropped(stream=None):
    """Drops the known start-up chatter that native code writes to descriptor 2 in the block.

    Every other line is passed on to ``stream`` (``sys.stderr`` if None) when the
    block ends, also when it raises. With ``VIDSEQ_DEBUG=1`` nothing is captured.

    Yields:
        A list that holds every captured line once the block has ended.
    """
    if debug_requested():
        yield []
        return
    captured = []
    try:
        with _captured_fd2() as captured:
            yield captured
    finally:
        for line in captured:
            if line.strip() and not _CHATTER.match(line):
                print(line, file=stream or sys.stderr)


def quiet_decoders(verbose: bool = False) -> None:
    """Silences FFmpeg's and OpenCV's log lines unless debugging (before videos are opened).

    OpenCV reads ``OPENCV_LOG_LEVEL`` when it is imported; when it already is
    (building the parser imports it), its level is set directly, so that no
    ``[ WARN:0@...]`` line reaches stderr.
    """
    if debug_requested(verbose):
        return
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and os.environ["OPENCV_LOG_LEVEL"] == "ERROR":
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def device_problem(lines, gpus, driver_present: bool) -> str | None:
    """One line on a GPU that should work and does not, else None.

    Args:
        lines: What TensorFlow printed while starting.
        gpus: The GPUs TensorFlow found.
        driver_present: An NVIDIA kernel driver is loaded on this machine.
    """
    if gpus or not driver_present:
        return None
    reasons = [m.group(1) for m in map(_CUINIT.search, lines) if m]
    why = f" ({reasons[0].strip()})" if reasons else ""
    return f"an NVIDIA driver is present but TensorFlow sees no GPU{why}; running on the CPU"


@contextlib.contextmanager
def _captured_fd2():
    """Sends file descriptor 2 (C++ and Python stderr alike) to a temporary file.

    Yields a list that holds the captured lines once the block has ended.
    """
    lines = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as file:
        os.dup2(file.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            file.seek(0)
            lines.extend(file.read().decode("utf-8", "replace").splitlines())
