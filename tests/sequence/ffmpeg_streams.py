"""Streams muxed by FFmpeg (through PyAV) and served on 127.0.0.1, for the watch tests.

* :class:`TSServer`: MPEG-TS over HTTP, muxed live by FFmpeg's ``mpegts`` muxer
  at the video's frame rate for each client. ``garbage=True`` keeps FFmpeg's
  own PAT/PMT packets (a video stream is announced) but replaces every video
  payload with random bytes: bytes arrive, no frame decodes. :meth:`kill`
  closes the listening socket and every open connection, as a crashed server.
* :func:`write_live_hls`: FFmpeg's ``hls`` muxer writing a playlist and its
  segments in real time (an EVENT playlist that grows), in a thread;
  :class:`FolderServer` serves that folder over HTTP.

FFmpeg's own HTTP server (``-listen 1``) is not reachable from PyAV: PyAV opens
an output with ``avio_open``, without options, so the ``listen`` option never
reaches the ``http`` protocol; the ``ffmpeg`` program is not a dependency. The
bytes on the wire are FFmpeg's muxers' all the same.

Every server binds 127.0.0.1 only, and every loop ends by itself after its
``seconds``.
"""

from __future__ import annotations

import functools
import http.server
import io
import threading
import time

import av
import numpy as np

FPS = 25
"""MPEG-2's frame rates are fixed; 25 is one of them."""


def _encode(frames, out, count, *, pace: bool, stop=None):
    """Muxes ``count`` frames (looping ``frames``) as MPEG-2 video into ``out``."""
    stream = out.add_stream("mpeg2video", rate=FPS)
    stream.height, stream.width = frames[0].shape[:2]
    stream.pix_fmt = "yuv420p"
    start = time.monotonic()
    for n in range(count):
        if stop is not None and stop.is_set():
            break
        frame = av.VideoFrame.from_ndarray(frames[n % len(frames)], format="rgb24")
        frame.pts = n
        for packet in stream.encode(frame):
            out.mux(packet)
        if pace:
            time.sleep(max(0.0, start + (n + 1) / FPS - time.monotonic()))
    for packet in stream.encode():
        out.mux(packet)


def garbage_ts(frames, seconds: float, seed: int = 0) -> bytes:
    """An MPEG-TS stream whose video payloads are random bytes (PAT and PMT intact)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mpegts") as out:
        _encode(frames, out, int(seconds * FPS), pace=False)
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
        self.stopped = threading.Event()
        threading.Thread(target=server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def kill(self) -> None:
        """Closes the listening socket and every open connection at once."""
        self.stopped.set()
        self._server.shutdown()
        self._server.server_close()
        for connection in self._server.connections:
            connection.close()


class TSServer(_Serving):
    """MPEG-TS over HTTP at ``http://127.0.0.1:<port>/``, ``seconds`` long per client."""

    def __init__(self, frames, seconds: float, *, garbage: bool = False):
        serving = self
        payload = garbage_ts(frames, 2.0) if garbage else None

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()
                try:
                    if payload is None:
                        with av.open(self.wfile, "w", format="mpegts") as out:
                            _encode(
                                frames, out, int(seconds * FPS), pace=True, stop=serving.stopped
                            )
                    else:
                        self.wfile.write(payload[: int(len(payload) * min(1.0, seconds / 2))])
                except (OSError, ValueError):  # killed, or the client went away
                    pass

            def log_message(self, *args):
                pass

        super().__init__(_Server(Handler))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


class FolderServer(_Serving):
    """Serves a folder at ``http://127.0.0.1:<port>/``."""

    def __init__(self, folder):
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *args: None
        super().__init__(_Server(handler))


def write_live_hls(frames, folder, seconds: float) -> threading.Thread:
    """Starts FFmpeg's HLS muxer writing ``folder/index.m3u8`` in real time; returns the thread.

    The playlist is an EVENT playlist of 1-second segments that grows as the
    frames are encoded; the thread ends after ``seconds`` of video.
    """
    options = {"hls_time": "1", "hls_list_size": "0", "hls_playlist_type": "event"}

    def write():
        with av.open(str(folder / "index.m3u8"), "w", format="hls", options=options) as out:
            _encode(frames, out, int(seconds * FPS), pace=True)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not (folder / "index.m3u8").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return thread
