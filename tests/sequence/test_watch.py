"""vidseq watch on real streams: an MJPEG-over-HTTP server on 127.0.0.1, and files."""

import json
import signal
import subprocess
import sys
import time

import cv2
import pytest

from vidseq.cli import main
from vidseq.extract.sources.sample_data import sample_video
from vidseq.sequence.infer.watch import watch

from .mjpeg_server import MJPEGServer, free_port


@pytest.fixture
def server():
    """A live MJPEG stream of a Grow sample clip, looped in real time."""
    frames, fps = sample_video("Grow", 1, 1)
    live = MJPEGServer(frames, fps, port=free_port()).start()
    yield live
    live.stop()


@pytest.mark.slow
def test_watch_labels_a_live_stream_every_stride(run, server, capsys):
    code = main(
        [
            *("watch", str(run), server.url, "--window", "1.5", "--stride", "0.5"),
            *("--max-seconds", "1", "--json", "--top-k", "2"),
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    decisions = [json.loads(line) for line in captured.out.splitlines()]
    # Ticks at 0.5 and 1 s, a decision at each: a skipped tick would be a decision that took
    # longer than the stride, which the latency check below rules out too.
    assert len(decisions) == 2
    times = [decision["stream_time"] for decision in decisions]
    assert times == sorted(set(times))  # each decision reads newer frames than the last
    for decision in decisions:
        assert {t["label"] for t in decision["top"]} == {"Grow", "Shrink"}
        # Keeping pace: each decision is made before the next tick (the stride, 0.5 s).
        assert decision["frames"] > 0 and decision["latency_s"] < 0.5
        assert {"time", "stream_time", "dropped"} <= set(decision)
    assert "0 dropped" in captured.err


@pytest.mark.slow
def test_watch_survives_a_server_restart_mid_stream(run, server):
    decisions, log, reconnected = [], [], []

    def on_decision(decision):
        decisions.append(time.monotonic())
        if len(decisions) == 1:  # a restart: every connection closes, the port listens again
            server.stop()
            server.start()

    def on_log(line):
        log.append(line)
        if "reconnected" in line:
            reconnected.append(time.monotonic())

    summary = watch(
        run,
        server.url,
        window=1.0,
        stride=0.25,
        max_seconds=1.75,
        max_reconnects=5,
        on_decision=on_decision,
        log=on_log,
    )
    assert summary.status == "stopped" and summary.reconnects == 1
    assert any("reconnecting" in line for line in log) and reconnected, log
    # It went on labelling after the restart: reconnected 0.8 s in, then 4 ticks up to 1.75 s.
    assert sum(t > reconnected[0] for t in decisions) >= 2


@pytest.mark.slow
def test_watch_gives_up_after_its_reconnections_with_exit_1(run, server):
    log = []

    def on_decision(decision):
        server.stop()  # for good: the reconnection is refused

    summary = watch(
        run,
        server.url,
        window=1.0,
        stride=0.25,
        max_reconnects=1,
        on_decision=on_decision,
        log=log.append,
    )
    assert summary.status == "lost" and summary.decisions >= 1
    assert log[-1].endswith("gave up after 1 attempts without a frame"), log


@pytest.mark.slow
def test_a_server_slower_than_real_time_does_not_make_watch_lag(run):
    frames, fps = sample_video("Shrink", 1, 1)
    slow = MJPEGServer(frames, fps, speed=0.4).start()
    try:
        latencies = []
        summary = watch(
            run,
            slow.url,
            window=1.5,
            stride=0.5,
            max_seconds=2,
            on_decision=lambda d: latencies.append(d.latency),
        )
    finally:
        slow.stop()
    # Every tick of the 2 s gives a decision, or is counted as skipped when classifying
    # overran it (a loaded machine); a reader that queued the slow stream's frames would
    # fall further behind with each decision instead.
    assert summary.decisions >= 2 and summary.decisions + summary.skipped >= 3
    assert max(latencies) < 1.0  # twice the stride: the newest frame is the one just received


def test_an_unreachable_source_is_one_line_and_exit_2(run, capsys):
    assert main(["watch", str(run), f"http://127.0.0.1:{free_port()}/"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("vidseq: error: http://127.0.0.1:") and "cannot open" in err[-1]


@pytest.mark.slow
def test_watch_plays_a_file_to_its_end_and_exits_0(run, tmp_path):
    frames, fps = sample_video("Grow", 2, 1)
    frames = frames[:40]  # 1.5 s: three ticks
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (128, 96))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    decisions = []
    summary = watch(run, str(path), window=1.0, stride=0.5, on_decision=decisions.append)
    assert summary.status == "ended" and summary.frames == len(frames)
    assert "latency" in decisions[0].summary() and decisions[0].to_dict()["top"]
    assert summary.seconds >= 0.9 * len(frames) / fps  # played in real time, from its opening
    assert json.loads(json.dumps(summary.to_dict()))["decisions"] == summary.decisions
    assert summary.summary().startswith(f"ended: {summary.decisions} decisions")
    assert summary.decisions >= int(len(frames) / fps / 0.5) - 1


@pytest.mark.slow
def test_sigterm_ends_watch_cleanly(run, server):
    """``kill PID`` on a running ``vidseq watch`` process: it stops, reports, exits 0."""
    command = [sys.executable, "-m", "vidseq", "watch", str(run), server.url, "--stride", "0.25"]
    command += ["--window", "1", "--json"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline()  # the first decision: watch is running
        assert json.loads(first)["top"], process.stderr.read()
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert time.monotonic() - began < 15  # not killed: it stopped on the signal
    assert "stopped" in err and "Traceback" not in err
