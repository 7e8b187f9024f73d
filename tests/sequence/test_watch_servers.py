"""Rules 6 and 7 of docs/reliability.md: watch against real stream servers, honestly.

FFmpeg's own HTTP server (the ``ffmpeg`` program, ``-listen 1``) sending
MPEG-TS in real time; the same server killed mid-stream; a live HLS playlist
written by ``ffmpeg``; and a server that sends bytes from which no frame decodes
(see ffmpeg_streams.py). Every server is on 127.0.0.1 and is killed when its
test ends, whatever the outcome.
"""

import json
import threading

import pytest

from vidseq.cli import main
from vidseq.extract.sources.sample_data import sample_video
from vidseq.sequence.infer.watch import DEFAULT_MAX_RECONNECTS, watch

from .ffmpeg_streams import (
    FFmpegServer,
    FolderServer,
    GarbageServer,
    RTSPServer,
    start_hls,
    write_clip,
)

LABELS = {"Grow", "Shrink"}


@pytest.fixture(scope="module")
def frames():
    return sample_video("Grow", 1, 1)[0]


@pytest.fixture(scope="module")
def clip(frames, tmp_path_factory):
    """89 frames (3.6 s at 25 fps) encoded by ffmpeg as MPEG-2 in MPEG-TS."""
    return write_clip(frames, tmp_path_factory.mktemp("clip") / "grow.ts")


@pytest.fixture
def ffmpeg_server(clip):
    with FFmpegServer(clip) as server:
        yield server


def watch_two_decisions(run, url, capsys):
    """Runs ``vidseq watch URL`` for 1.4 s; asserts exit 0 and two decisions naming the labels.

    Ticks at 0.6 and 1.2 s (the first decision may take 0.6 s on a loaded machine),
    the next one after the end; opening the stream reads about 0.8 s of it, so
    even the first window holds more than 10 frames.
    """
    argv = ["watch", str(run), url, "--window", "1", "--stride", "0.6"]
    code = main([*argv, "--max-seconds", "1.4", "--json", "--top-k", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    decisions = [json.loads(line) for line in captured.out.splitlines()]
    assert len(decisions) == 2
    for decision in decisions:
        assert {t["label"] for t in decision["top"]} == LABELS and decision["frames"] > 10


@pytest.mark.slow
def test_watch_labels_the_stream_of_ffmpegs_http_server(run, ffmpeg_server, capsys):
    watch_two_decisions(run, ffmpeg_server.url, capsys)
    assert ffmpeg_server.frames > 25


@pytest.mark.slow
def test_watch_labels_the_stream_of_an_rtsp_server(run, clip, capsys):
    with RTSPServer(clip) as server:
        watch_two_decisions(run, server.url, capsys)


@pytest.mark.slow
def test_an_ffmpeg_server_killed_mid_stream_exits_1_after_the_reconnections(
    run, ffmpeg_server, capsys
):
    def kill_after_36_frames():  # opening reads about 20; watch decides on the rest
        ffmpeg_server.wait_frames(36)
        ffmpeg_server.kill()

    killer = threading.Thread(target=kill_after_36_frames, daemon=True)
    killer.start()
    argv = ["watch", str(run), ffmpeg_server.url, "--window", "1", "--stride", "0.25"]
    code = main([*argv, "--max-reconnects", "2", "--json"])
    killer.join(timeout=10)
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == 1, captured.err
    assert ffmpeg_server.process.returncode == -9  # it was killed, not ended
    assert len(captured.out.splitlines()) >= 1  # decisions while it lived
    attempts = [line for line in err if "reconnecting in" in line]
    assert [line.rsplit(" ", 1)[1] for line in attempts] == ["1/2)", "2/2)"]
    assert err[-2].endswith("gave up after 2 attempts without a frame")
    assert err[-1].startswith("vidseq watch: lost: "), err


@pytest.mark.slow
def test_watch_labels_a_live_hls_playlist_written_by_ffmpeg(run, clip, tmp_path):
    writer = start_hls(clip, tmp_path, seconds=10)
    decisions = []
    try:
        with FolderServer(tmp_path) as server:
            summary = watch(
                run,
                server.url + "index.m3u8",
                window=1.0,
                stride=0.5,
                max_seconds=1.5,
                on_decision=decisions.append,
            )
    finally:
        writer.kill()
        writer.wait(timeout=10)
    # More than the first segment's 24 frames, from a playlist read again as it grew.
    assert summary.status == "stopped" and not summary.failed and summary.frames > 25
    assert server.requests.count("/index.m3u8") >= 2, server.requests
    assert decisions and all({label for label, _ in d.top} == LABELS for d in decisions)


def test_bytes_that_decode_to_no_frame_are_given_up_on_with_exit_1(run, frames, capsys):
    with GarbageServer(frames, seconds=1.0) as server:
        code = main(["watch", str(run), server.url, "--window", "1", "--max-reconnects", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1].startswith("vidseq watch: lost: no frame received from " + server.url)
    assert DEFAULT_MAX_RECONNECTS == 3  # the documented default (docs/cli.md, docs/streams.md)


def test_a_watch_that_received_no_frame_exits_1_even_when_its_time_is_up(run, frames, capsys):
    with GarbageServer(frames, seconds=30) as server:
        code = main(["watch", str(run), server.url, "--window", "1", "--max-seconds", "0.5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and "no frame received" in err[-1]


def test_a_missing_file_is_reported_as_missing(run, tmp_path, capsys):
    missing = tmp_path / "camera-recording.mp4"
    assert main(["watch", str(run), str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"vidseq: error: {missing}: no such file or directory (a local file, not a stream URL)"
    ]
