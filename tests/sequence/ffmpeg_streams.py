"""Stream servers for the watch tests: the real ``ffmpeg`` program, and a garbage server.

* :func:`write_clip`: frames encoded by ``ffmpeg`` as MPEG-2 in MPEG-TS.
* :class:`FFmpegServer`: FFmpeg's own HTTP server (``-listen 1``) sending a clip
  as MPEG-TS in real time (``-re``), looped until the client goes away, one
  client. The port is chosen by the kernel (a socket bound to port 0 and
  closed); the server is ready when ``/proc`` shows a listening socket on that
  port held by this very process, so another process on the machine can never
  be taken for it (when the port was taken in between, FFmpeg exits and the
  next port is tried). :meth:`FFmpegServer.wait_frames` waits until FFmpeg
  reports (``-progress``) that it has sent so many frames; :meth:`kill` is
  ``SIGKILL``: a server that dies.
* :func:`start_hls`: ``ffmpeg`` writing a live EVENT playlist in real time;
  :class:`FolderServer` serves that folder over HTTP.
* :class:`RTSPServer`: GStreamer's RTSP server (``rtsp_server.py``, run by
  Debian's python3) sending an MJPEG copy of the clip over RTP in real time. The
  ``ffmpeg`` program has no RTSP server: its ``rtsp`` muxer only publishes to
  one, and ``-rtsp_flags listen`` only receives.
* :class:`GarbageServer`: MPEG-TS whose PAT/PMT announce a video stream but
  whose video payloads are random bytes: bytes arrive, no frame decodes. The
  ``ffmpeg`` program cannot send that, so the bytes are PyAV's mpegts muxer's,
  damaged, and the HTTP server is Python's.

Every server binds 127.0.0.1 only. Use them as context managers (or call
``kill``), so that no process outlives its test.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

FPS = 25
"""MPEG-2's frame rates are fixed; 25 is one of them."""
GOP = 12
"""Frames between key frames: a client that joins or reconnects decodes within half a second."""
READY_TIMEOUT_S = 10.0


def ffmpeg_program() -> str:
    """The ``ffmpeg`` program; fails under CI (``.ci/run`` installs it), else skips."""
    program = shutil.which("ffmpeg")
    if program is None:
        if os.environ.get("CI"):
            pytest.fail("ffmpeg is missing on CI: .ci/run installs it (apt-get install ffmpeg)")
        pytest.skip("the ffmpeg program is not installed (apt-get install ffmpeg); CI runs this")
    return program


def write_clip(frames, path) -> Path:
    """Encodes RGB ``frames`` with ``ffmpeg`` (MPEG-2 in MPEG-TS, :data:`FPS`); returns ``path``."""
    height, width = frames[0].shape[:2]
    command = [ffmpeg_program(), "-hide_banner", "-loglevel", "error", "-f", "rawvideo"]
    command += ["-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(FPS), "-i", "-"]
    command += ["-c:v", "mpeg2video", "-q:v", "3", "-g", str(GOP), "-y", str(path)]
    subprocess.run(command, input=np.stack(frames).tobytes(), check=True, timeout=60)
    return Path(path)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a TCP socket listening on ``port`` (Linux ``/proc``)."""
    try:
        inodes = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    except OSError:
        return False
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        listening = state == "0A" and int(local.split(":")[1], 16) == port
        if listening and f"socket:[{inode}]" in inodes:
            return True
    return False


class _ServerProcess:
    """A server run as a child process (``self.process``), killed when its block ends."""

    def kill(self) -> None:
        """``SIGKILL``: the server dies at once, its port closes."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


class FFmpegServer(_ServerProcess):
    """``ffmpeg -re -stream_loop -1 -i CLIP -c copy -f mpegts -listen 1 http://127.0.0.1:PORT/``."""

    def __init__(self, clip):
        self.frames = 0
        self._progress = threading.Condition()
        for _ in range(5):
            self.port = _free_port()
            self.process = subprocess.Popen(
                self._command(clip),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            if self._wait_listening():
                threading.Thread(target=self._read_progress, daemon=True).start()
                return
            self.kill()  # the port was taken meanwhile: try another
        raise RuntimeError(f"ffmpeg did not listen: {self.process.stderr.read()}")

    def _command(self, clip) -> list[str]:
        command = [ffmpeg_program(), "-hide_banner", "-loglevel", "error", "-nostats"]
        command += ["-re", "-stream_loop", "-1", "-i", str(clip), "-c", "copy"]
        command += ["-progress", "pipe:1", "-stats_period", "0.1", "-flush_packets", "1"]
        return [*command, "-f", "mpegts", "-listen", "1", self.url]

    def _wait_listening(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while self.process.poll() is None and time.monotonic() < deadline:
            if _listens(self.process.pid, self.port):
                return True
            time.sleep(0.02)
        return False

    def _read_progress(self) -> None:
        for line in self.process.stdout:
            if line.startswith("frame="):
                with self._progress:
                    self.frames = int(line.split("=", 1)[1])
                    self._progress.notify_all()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def wait_frames(self, count: int, timeout: float = 30.0) -> None:
        """Blocks until FFmpeg has sent ``count`` frames (its ``-progress`` report)."""
        with self._progress:
            if not self._progress.wait_for(lambda: self.frames >= count, timeout):
                raise TimeoutError(f"ffmpeg sent {self.frames} frames, not {count}")


def start_hls(clip, folder, seconds: float) -> subprocess.Popen:
    """Starts ``ffmpeg`` writing ``folder/index.m3u8`` in real time.

    The playlist is an EVENT playlist that grows for ``seconds``; returns once
    it exists, a segment later. Segments end at the first key frame half a
    second in: 0.96 s (24 frames) each, the shortest whose target duration
    (a whole number of seconds) is not 0. The caller kills the process.
    """
    command = [ffmpeg_program(), "-hide_banner", "-loglevel", "error", "-nostats", "-re"]
    command += ["-stream_loop", "-1", "-i", str(clip), "-t", str(seconds), "-c", "copy"]
    command += ["-f", "hls", "-hls_time", "0.5", "-hls_list_size", "0"]
    command += ["-hls_playlist_type", "event", str(Path(folder) / "index.m3u8")]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not (Path(folder) / "index.m3u8").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return process


def garbage_ts(frames, seconds: float, seed: int = 0) -> bytes:
    """An MPEG-TS stream whose video payloads are random bytes (PAT and PMT intact)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mpegts") as out:
        stream = out.add_stream("mpeg2video", rate=FPS)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for n in range(int(seconds * FPS)):
            frame = av.VideoFrame.from_ndarray(frames[n % len(frames)], format="rgb24")
            frame.pts = n
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    packets = np.frombuffer(buffer.getvalue(), dtype=np.uint8).reshape(-1, 188).copy()
    pid = ((packets[:, 1].astype(int) & 0x1F) << 8) | packets[:, 2]
    video = pid == 0x100  # FFmpeg's first elementary stream
    packets[video, 3] = (packets[video, 3] & 0x0F) | 0x10  # payload only, no adaptation field
    rng = np.random.default_rng(seed)
    packets[video, 4:] = rng.integers(0, 256, size=(int(video.sum()), 184), dtype=np.uint8)
    return packets.tobytes()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, handler):
        super().__init__(("127.0.0.1", 0), handler)
        self.connections = []

    def get_request(self):
        connection, address = super().get_request()
        self.connections.append(connection)
        return connection, address


class _Serving:
    """Starts ``server`` in a thread; :meth:`kill` drops it and its connections."""

    def __init__(self, server):
        self._server = server
        serve = functools.partial(server.serve_forever, poll_interval=0.05)  # a quick kill()
        threading.Thread(target=serve, daemon=True).start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def kill(self) -> None:
        """Closes the listening socket and every open connection at once."""
        self._server.shutdown()
        self._server.server_close()
        for connection in self._server.connections:
            connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


class GarbageServer(_Serving):
    """Sends :func:`garbage_ts` (``seconds`` of it, at most 2) to every client, at once."""

    def __init__(self, frames, seconds: float):
        payload = garbage_ts(frames, 2.0)
        payload = payload[: int(len(payload) * min(1.0, seconds / 2))]

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()
                with contextlib.suppress(OSError):  # killed, or the client went away
                    self.wfile.write(payload)

            def log_message(self, *args):
                pass

        super().__init__(_Server(Handler))


class FolderServer(_Serving):
    """Serves a folder at ``http://127.0.0.1:<port>/``; ``requests`` lists the paths asked for."""

    def __init__(self, folder):
        self.requests = []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                requests.append(self.path)

        super().__init__(_Server(functools.partial(Handler, directory=str(folder))))


SYSTEM_PYTHON = "/usr/bin/python3"
"""Debian's Python, which has GStreamer's bindings (``python3-gi``)."""
RTSP_PACKAGES = "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good"


def require_rtsp_server() -> None:
    """Fails under CI when gst-rtsp-server cannot run (``.ci/run`` installs it), else skips."""
    probe = (
        "import gi; gi.require_version('GstRtspServer', '1.0'); gi.require_version('Gst', '1.0')"
    )
    command = [SYSTEM_PYTHON, "-c", probe + "; from gi.repository import GstRtspServer"]
    if (
        os.path.exists(SYSTEM_PYTHON)
        and subprocess.run(command, capture_output=True).returncode == 0
    ):
        return
    if os.environ.get("CI"):
        pytest.fail(f"gst-rtsp-server is missing on CI: .ci/run installs it ({RTSP_PACKAGES})")
    pytest.skip(f"gst-rtsp-server is not installed (apt-get install {RTSP_PACKAGES})")


class RTSPServer(_ServerProcess):
    """GStreamer's RTSP server (``rtsp_server.py``) sending an MJPEG copy of a clip, 3 times."""

    def __init__(self, clip):
        require_rtsp_server()
        mjpeg = Path(clip).with_suffix(".avi")
        if not mjpeg.exists():  # RTP/JPEG (RFC 2435) carries only the standard Huffman tables
            command = [ffmpeg_program(), "-hide_banner", "-loglevel", "error", "-stream_loop", "2"]
            command += ["-i", str(clip), "-c:v", "mjpeg", "-huffman", "default", "-q:v", "3"]
            subprocess.run([*command, "-pix_fmt", "yuvj420p", "-y", str(mjpeg)], check=True)
        script = Path(__file__).with_name("rtsp_server.py")
        self.process = subprocess.Popen(
            [SYSTEM_PYTHON, str(script), str(mjpeg)], stdout=subprocess.PIPE, text=True
        )
        line = self.process.stdout.readline()
        if not line.strip().isdigit():  # it failed to start, and said why on stderr
            self.kill()
            raise RuntimeError(f"{script} did not start")
        self.port = int(line)

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/clip"
