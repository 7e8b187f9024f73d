"""A small MJPEG-over-HTTP server on 127.0.0.1 for the watch tests (standard library only).

It serves ``multipart/x-mixed-replace`` JPEG frames, as IP cameras do, playing
a list of frames in a loop at ``fps * speed`` frames per second of real time
(``speed < 1``: a server slower than real time). :meth:`stop` closes every open
connection at once, as a crashed camera would: the client reads the end of its
stream, and no frame goes out on an old connection after ``stop`` returns, so
:meth:`start` may serve again on the same port right away.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import socket
import threading
import time

import cv2

BOUNDARY = b"vidseqframe"


class MJPEGServer:
    """Plays RGB frames as an MJPEG stream at ``http://127.0.0.1:<port>/``.

    Args:
        frames: (H, W, 3) uint8 RGB frames, played in a loop.
        fps: The video's frame rate.
        speed: Playback speed relative to real time.
        port: A fixed port, or 0 for a free one (kept across restarts).
    """

    def __init__(self, frames, fps: float, *, speed: float = 1.0, port: int = 0):
        self.jpegs = [
            cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes() for f in frames
        ]
        self.interval = 1.0 / (fps * speed)
        self.port = port
        self.sent = 0
        self._server = None
        self._life = 0  # bumped by stop(): a playing thread of an older life returns
        self._lock = threading.Lock()
        self._connections = {}  # open connection -> the life it was accepted in

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> MJPEGServer:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header(
                    "Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}"
                )
                self.end_headers()
                server._play(self.connection, self.wfile)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

            def get_request(self):  # before stop() returns, every accepted one is known
                connection, address = super().get_request()
                with server._lock:
                    server._connections[connection] = server._life
                return connection, address

        self._server = Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        serve = functools.partial(self._server.serve_forever, poll_interval=0.05)  # a quick stop()
        threading.Thread(target=serve, daemon=True).start()
        return self

    def _play(self, connection, out) -> None:
        life = self._connections.get(connection)
        next_time = time.monotonic()
        i = 0
        try:
            while life == self._life:
                jpeg = self.jpegs[i % len(self.jpegs)]
                head = b"--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % (
                    BOUNDARY,
                    len(jpeg),
                )
                out.write(head + jpeg + b"\r\n")
                out.flush()
                self.sent += 1
                i += 1
                next_time += self.interval
                time.sleep(max(0.0, next_time - time.monotonic()))
        except OSError:  # the client went away
            pass

    def stop(self) -> None:
        """Stops serving and closes every open connection: the client reads the end at once."""
        if self._server is not None:
            self._server.shutdown()  # accepts no more connections
            self._server.server_close()
            self._server = None
        with self._lock:
            self._life += 1
            for connection in self._connections:  # a write after this fails: no frame goes out
                with contextlib.suppress(OSError):  # the client went away already
                    connection.shutdown(socket.SHUT_RDWR)
            self._connections.clear()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
