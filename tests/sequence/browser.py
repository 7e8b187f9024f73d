"""A headless Chromium driven over the DevTools protocol (``--remote-debugging-pipe``), for tests.

One browser process per :class:`Browser`; :meth:`Browser.load` opens a page
from disk in a fresh tab and records every request the tab makes (Network
domain), every console error and uncaught exception (Runtime and Log domains),
so a test can assert that a page needs no network and logs no error.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

EXECUTABLES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium():
    """The path of a Chromium executable, or None."""
    return next((shutil.which(name) for name in EXECUTABLES if shutil.which(name)), None)


@dataclass
class PageLog:
    """What a tab did while a page loaded."""

    requests: list = field(default_factory=list)
    errors: list = field(default_factory=list)


class Browser:
    """Headless Chromium; the DevTools messages travel on fds 3 (in) and 4 (out) of the child."""

    def __init__(self, executable, timeout=30.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="vidseq-chromium-")
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()

        def wire():  # in the child: the browser reads commands on 3 and writes on 4
            a = fcntl.fcntl(to_browser, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_browser, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.process = subprocess.Popen(
            [
                executable,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-pipe",
                f"--user-data-dir={self.profile}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire,
            pass_fds=(3, 4),
        )
        os.close(to_browser)
        os.close(from_browser)
        self._next_id = 0
        self._messages = queue.Queue()
        self._events = []
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        buffer = b""
        while True:
            chunk = os.read(self._read, 1 << 16)
            if not chunk:
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for message in messages:
                self._messages.put(json.loads(message))

    def send(self, method, params=None, session=None):
        """Sends a command and returns its result; events seen meanwhile are kept."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._messages.get(timeout=max(0.1, deadline - time.monotonic()))
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)

    def wait_for(self, method, session):
        """Waits for the event ``method`` of ``session``."""
        deadline = time.monotonic() + self.timeout
        while True:
            for event in self._events:
                if event.get("method") == method and event.get("sessionId") == session:
                    self._events.remove(event)
                    return event
            self._events.append(self._messages.get(timeout=max(0.1, deadline - time.monotonic())))

    def load(self, url, width=1280, height=800):
        """Opens ``url`` in a new tab at ``width`` x ``height``; returns ``(tab, PageLog)``."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        tab = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        tab = tab["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=tab)
        self.resize(tab, width, height)
        self._events.clear()
        self.send("Page.navigate", {"url": url}, session=tab)
        self.wait_for("Page.loadEventFired", tab)
        self.evaluate(tab, "new Promise(r => setTimeout(r, 100))")  # late console messages
        return tab, self._page_log(tab)

    def _page_log(self, tab):
        log = PageLog()
        for event in [e for e in self._events if e.get("sessionId") == tab]:
            method, params = event.get("method"), event.get("params", {})
            if method == "Network.requestWillBeSent":
                log.requests.append(params["request"]["url"])
            elif method == "Runtime.exceptionThrown":
                log.errors.append(params["exceptionDetails"].get("text", "exception"))
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                log.errors.append(str(params.get("args")))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                log.errors.append(params["entry"].get("text"))
        return log

    def resize(self, tab, width, height):
        """Sets the tab's viewport (device pixel ratio 1)."""
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
            session=tab,
        )

    def evaluate(self, tab, expression):
        """The value of a JavaScript expression in the tab (promises awaited)."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=tab,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def screenshot(self, tab, path):
        """Saves the tab's viewport as a PNG."""
        data = self.send("Page.captureScreenshot", {"format": "png"}, session=tab)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def close(self):
        """Ends the browser process and removes its profile."""
        with contextlib.suppress(RuntimeError, queue.Empty, OSError):
            self.send("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._write, self._read):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)
