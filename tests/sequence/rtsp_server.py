"""A real RTSP server for the watch tests: GStreamer's gst-rtsp-server, run by Debian's python3.

``/usr/bin/python3 rtsp_server.py CLIP.avi`` serves the MJPEG AVI ``CLIP`` at
``rtsp://127.0.0.1:PORT/clip`` in real time (RTP/JPEG), from its start for each
client, and prints ``PORT`` (chosen by the kernel) on one line once it listens.
It runs until killed. It needs Debian's ``python3-gi``,
``gir1.2-gst-rtsp-server-1.0`` and ``gstreamer1.0-plugins-good`` (``.ci/run``
installs them); the project's virtual environment never imports it.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main(clip: str) -> None:
    """Serves ``clip`` until the process is killed."""
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service("0")
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f'( filesrc location="{clip}" ! avidemux ! rtpjpegpay name=pay0 )')
    server.get_mount_points().add_factory("/clip", factory)
    server.attach(None)
    print(server.get_bound_port(), flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main(sys.argv[1])
