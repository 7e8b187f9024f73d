"""Windowed predict on real videos: plain-predict equivalence, aligned clips, outputs, memory."""

import csv
import itertools
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidseq.cli import main
from vidseq.extract.sources.sample_data import sample_video
from vidseq.sequence.infer.predict import predict_videos
from vidseq.sequence.infer.windowed import predict_windows

FPS = 20
CLIP_FRAMES = 40  # 2 s per clip at FPS


def write_video(path, frames, fps=FPS, size=None):
    """Writes RGB frames as a Motion-JPEG .avi (resized to ``size`` = (w, h) if given)."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size or (width, height)
    )
    for frame in frames:
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA) if size else frame
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return str(path)


def fixed_length_clip(name, group):
    """A sample clip of ``name`` resampled to CLIP_FRAMES frames."""
    frames, _ = sample_video(name, group, 1, seed=5)
    keep = np.linspace(0, len(frames) - 1, CLIP_FRAMES).round().astype(int)
    return [frames[i] for i in keep]


def test_a_window_the_length_of_a_clip_gives_plain_predict_probabilities(run, tmp_path):
    frames, fps = sample_video("Shrink", 2, 1, seed=3)
    video = write_video(tmp_path / "clip.avi", frames, fps=fps)
    plain = dict(predict_videos(run, [video], top_k=2)[0].top)
    result = predict_windows(run, [video], window=len(frames) / fps, stride=1.0, top_k=2)
    (window,) = result.videos[0].windows
    assert dict(window.top) == pytest.approx(plain, abs=1e-5)
    assert (window.start, window.end) == (0.0, pytest.approx(len(frames) / fps))


@pytest.mark.slow
def test_windows_aligned_with_joined_clips_get_whole_clip_labels(run, tmp_path):
    names = ["Grow", "Shrink", "Shrink", "Grow", "Shrink", "Grow"]
    clips = [fixed_length_clip(name, group) for group, name in enumerate(names, start=1)]
    paths = [write_video(tmp_path / f"c{i}.avi", c) for i, c in enumerate(clips)]
    joined = write_video(tmp_path / "joined.avi", [f for c in clips for f in c])
    whole = [p.top[0][0] for p in predict_videos(run, paths, top_k=1)]
    result = predict_windows(run, [joined], window=2.0, stride=1.0, top_k=1)
    timeline = result.videos[0]
    assert len(timeline.windows) == 2 * len(clips) - 1  # 2 s windows every second over 12 s
    aligned = {round(w.start, 6): w for w in timeline.windows}
    windowed = [aligned[2.0 * i].top[0][0] for i in range(len(clips))]
    truth = np.array(names)
    assert np.mean(np.array(windowed) == truth) == np.mean(np.array(whole) == truth)
    assert result.cnn_frames < sum(len(w.frame_indices) for w in timeline.windows)  # shared
    covered = [(s.start, s.end) for s in timeline.segments]
    assert covered[0][0] == 0.0 and covered[-1][1] == pytest.approx(12.0)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(covered))


def test_predict_window_cli_writes_json_csv_and_a_timeline_png(run, tmp_path, capsys):
    frames, _ = sample_video("Grow", 3, 1)
    video = write_video(tmp_path / "v.avi", frames)
    png, table = tmp_path / "t.png", tmp_path / "t.csv"
    args = ["predict", str(run), video, str(tmp_path / "none.avi"), "--window", "1.5"]
    code = main([*args, "--stride", "0.5", "--json", "--plot", str(png), "--csv", str(table)])
    assert code == 3  # one video failed
    out = json.loads(capsys.readouterr().out)
    first, missing = out["videos"]
    assert first["path"] == video and missing["error"]
    starts = [w["start"] for w in first["windows"]]
    assert starts[:2] == [0.0, 0.5] and first["windows"][-1]["end"] == len(frames) / FPS
    assert {"label", "probability"} <= set(first["windows"][0]["top"][0])
    assert len(first["windows"][0]["frame_indices"]) == 6
    assert first["segments"] and {"start", "end", "label", "probability"} <= set(
        first["segments"][0]
    )
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == len(first["windows"]) and set(rows[0]) >= {"Grow", "Shrink"}
    image = cv2.imread(str(png))
    assert image is not None and image.shape[0] > 100


def test_window_options_without_window_are_refused(run, capsys):
    assert main(["predict", str(run), "x.avi", "--plot", "t.png"]) == 2
    assert "--plot needs --window" in capsys.readouterr().err
    assert main(["predict", str(run), "x.avi", "--window", "0"]) == 2
    assert "window must be a positive number" in capsys.readouterr().err


PEAK_SCRIPT = """
import resource, sys
from vidseq.sequence.infer.windowed import predict_windows
for video in sys.argv[2:]:
    result = predict_windows(sys.argv[1], [video], window=2.0, stride=1.0)
    assert not result.videos[0].error and len(result.videos[0].windows) > 50
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_video_length(run, tmp_path):
    """1 and then 4 minutes at 320x240 in one child process: holding the longer video's
    decoded frames (1,200 of 230 KB) would raise the peak of about 730 MB the shorter one
    reached by about 280 MB, far over the bound."""
    size = (320, 240)
    frames = [
        cv2.resize(f, size, interpolation=cv2.INTER_AREA)
        for name in ("Grow", "Shrink")
        for f in fixed_length_clip(name, 1)
    ]
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[3]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    videos = []
    for minutes in (1, 4):
        count = minutes * 60 * 5  # 5 fps
        videos.append(
            write_video(
                tmp_path / f"{minutes}min.avi",
                [frames[i % len(frames)] for i in range(count)],
                fps=5,
            )
        )
    child = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(run), *videos],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        timeout=240,
    )
    assert child.returncode == 0
    one, four = (int(line) for line in child.stdout.split()[-2:])  # KiB, after each video
    assert four <= 1.15 * one, (one, four)
