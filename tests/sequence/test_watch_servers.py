"""Rule 6 and 7 of docs/reliability.md: watch against streams muxed by FFmpeg, honestly.

An MPEG-TS stream over HTTP, a live HLS playlist written by FFmpeg's HLS
muxer, a server killed mid-stream, and one that sends bytes from which no frame
decodes (see ffmpeg_streams.py). Every server is on 127.0.0.1 and stops by
itself.
"""

import json
import threading

import pytest

from vidseq.cli import main
from vidseq.extract.sources.sample_data import sample_video
from vidseq.sequence.infer.watch import DEFAULT_MAX_RECONNECTS, watch

from .ffmpeg_streams import FolderServer, TSServer, write_live_hls

LABELS = {"Grow", "Shrink"}


@pytest.fixture(scope="module")
def frames():
    return sample_video("Grow", 1, 1)[0]


def test_watch_labels_an_mpegts_stream_over_http(run, frames, capsys):
    server = TSServer(frames, seconds=8)
    try:
        argv = ["watch", str(run), server.url, "--window", "1", "--stride", "1"]
        code = main([*argv, "--max-seconds", "2.5", "--json", "--top-k", "2"])
    finally:
        server.kill()
    captured = capsys.readouterr()
    assert code == 0, captured.err
    decisions = [json.loads(line) for line in captured.out.splitlines()]
    assert len(decisions) == 2
    for decision in decisions:
        assert {t["label"] for t in decision["top"]} == LABELS and decision["frames"] > 10


@pytest.mark.slow
def test_watch_labels_a_live_hls_playlist_written_by_ffmpeg(run, frames, tmp_path):
    writer = write_live_hls(frames, tmp_path, seconds=5)
    server = FolderServer(tmp_path)
    decisions = []
    try:
        summary = watch(
            run,
            f"http://127.0.0.1:{server.port}/index.m3u8",
            window=1.0,
            stride=1.0,
            max_seconds=3,
            on_decision=decisions.append,
        )
    finally:
        server.kill()
        writer.join(timeout=10)
    assert summary.status == "stopped" and not summary.failed and summary.frames > 25
    assert decisions and all({label for label, _ in d.top} == LABELS for d in decisions)


def test_a_server_killed_mid_stream_is_lost_after_the_reconnections(run, frames):
    server = TSServer(frames, seconds=8)
    log = []

    def on_decision(decision):
        threading.Thread(target=server.kill, daemon=True).start()

    summary = watch(
        run,
        server.url,
        window=1.0,
        stride=0.5,
        max_reconnects=2,
        on_decision=on_decision,
        log=log.append,
    )
    assert summary.status == "lost" and summary.failed and summary.decisions >= 1
    assert "attempt 2/2" in log[-2] and "gave up after 2 attempts without a frame" in log[-1]


def test_bytes_that_decode_to_no_frame_are_given_up_on_with_exit_1(run, frames, capsys):
    server = TSServer(frames, seconds=1.0, garbage=True)
    try:
        code = main(["watch", str(run), server.url, "--window", "1", "--max-reconnects", "1"])
    finally:
        server.kill()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1].startswith("vidseq watch: lost: no frame received from " + server.url)
    assert DEFAULT_MAX_RECONNECTS == 3  # the documented default (docs/cli.md, docs/streams.md)


def test_a_watch_that_received_no_frame_exits_1_even_when_its_time_is_up(run, frames, capsys):
    server = TSServer(frames, seconds=30, garbage=True)
    try:
        code = main(["watch", str(run), server.url, "--window", "1", "--max-seconds", "1"])
    finally:
        server.kill()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and "no frame received" in err[-1]


def test_a_missing_file_is_reported_as_missing(run, tmp_path, capsys):
    missing = tmp_path / "camera-recording.mp4"
    assert main(["watch", str(run), str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"vidseq: error: {missing}: no such file or directory (a local file, not a stream URL)"
    ]
