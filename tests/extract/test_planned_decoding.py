"""Planned (keyframe-aware) decoding gives what sequential OpenCV decoding gives.

Every video is encoded for real (PyAV or cv2.VideoWriter, in tmp_path) with
short GOPs, so that the plans really seek; each one is read twice, with
``VIDSEQ_DECODER=opencv`` (the sequential reader) and with the planner, and the
results must be identical: frames, indices, timestamps, counts and frame rate.
"""

import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vidseq.errors import UsageError
from vidseq.extract.decode import frames as frames_module
from vidseq.extract.decode import video_reader
from vidseq.extract.decode.decode_plan import plan_cost, plan_decode
from vidseq.extract.decode.frames import FrameGeometry, read_frames
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.decode.packet_index import IndexUnavailable, read_packet_index
from vidseq.extract.decode.sampling import SamplingConfig
from vidseq.extract.decode.signal_scan import scan_video
from vidseq.extract.decode.video_reader import IndexedVideo, iter_thumbnails
from vidseq.extract.pipeline import extract_features

SAMPLE_VIDEOS_VARIABLE = "VIDSEQ_SAMPLE_VIDEOS"


def textured_frames(count, height=48, width=64):
    """A moving texture with the frame number in a corner: every frame differs."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    frames = np.stack([np.roll(base, 2 * i, axis=1) for i in range(count)])
    frames[:, :8, :8] = (np.arange(count) * 4 % 256)[:, None, None, None]
    return frames


def encode(path, codec, count=90, *, gop=10, b_frames=2, pix_fmt="yuv420p", vfr=False, **options):
    """Encodes ``textured_frames`` with a PyAV encoder; returns the path as a string."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
        stream.codec_context.gop_size = gop
        if b_frames:
            stream.codec_context.max_b_frames = b_frames
        stream.codec_context.options = options
        if vfr:
            stream.codec_context.time_base = Fraction(1, 1000)
        time_ms = 0
        for number, image in enumerate(textured_frames(count)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if vfr:  # 30 ms, 30 ms, 70 ms, ...
                frame.pts, frame.time_base = time_ms, Fraction(1, 1000)
                time_ms += 70 if number % 3 == 2 else 30
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


VIDEOS = {
    "h264_bframes.mp4": dict(codec="libx264", bf="2", preset="ultrafast", tune="film"),
    "mpeg4_bframes.mp4": dict(codec="mpeg4"),
    "mpeg4_ip.avi": dict(codec="mpeg4", b_frames=0),
    "mjpeg.avi": dict(codec="mjpeg", pix_fmt="yuvj420p", b_frames=0),
    "vp9.webm": dict(codec="libvpx-vp9", b_frames=0, deadline="realtime", **{"cpu-used": "8"}),
    "h264_vfr.mp4": dict(codec="libx264", vfr=True, bf="2", preset="ultrafast"),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("encoded")
    return {name: encode(folder / name, **spec) for name, spec in VIDEOS.items()}


def read_both(monkeypatch, path, sampling, geometry=None, **kwargs):
    """(sequential OpenCV result, planned result) of the same read; ``seed``: random offsets."""
    geometry = geometry or FrameGeometry()
    seed = kwargs.pop("seed", None)
    results = []
    for decoder in ("opencv", "planned"):
        monkeypatch.setenv("VIDSEQ_DECODER", decoder)
        rng = None if seed is None else np.random.default_rng(seed)
        results.append(read_frames(path, sampling, geometry, rng=rng, **kwargs))
    return tuple(results)


def assert_identical(sequential, planned):
    for field in ("frames", "frame_indices", "timestamps_ms"):
        np.testing.assert_array_equal(
            getattr(planned, field), getattr(sequential, field), err_msg=field
        )
    assert planned.num_valid == sequential.num_valid
    assert planned.num_source_frames == sequential.num_source_frames
    assert planned.fps == sequential.fps


def assert_no_fallback(caplog):
    assert not [r for r in caplog.records if r.name == video_reader.__name__]


@pytest.mark.parametrize("name", sorted(VIDEOS))
def test_planned_frames_equal_sequential_ones(videos, name, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG, logger=video_reader.__name__)
    path = videos[name]
    index = read_packet_index(path)
    assert index.num_frames == 90
    for sampling, kwargs in [
        (SamplingConfig(num_frames=6), {}),
        (SamplingConfig(num_frames=6), {"seed": 1}),
        (SamplingConfig("fps", num_frames=8, frame_rate=5.0), {}),
        (SamplingConfig(num_frames=3), {"frame_indices": [77, 3, 3, 50, 89, 89]}),
    ]:
        sequential, planned = read_both(monkeypatch, path, sampling, **kwargs)
        assert_identical(sequential, planned)
    resized = read_both(monkeypatch, path, SamplingConfig(num_frames=4), FrameGeometry((24, 24)))
    assert_identical(*resized)
    assert_no_fallback(caplog)  # the planner really ran on every one


def test_plans_seek_and_decode_less(videos):
    path = videos["h264_bframes.mp4"]
    with IndexedVideo(path) as video:
        assert len(video.index.keyframes) >= 5  # gop 10 over 90 frames
        runs = plan_decode(video.index, [0, 44, 88])
        assert len(runs) == 3
        planned = video.decode(runs, [44, 88], lambda i, image: image)
    assert planned.frames_decoded < 40  # against 89 for sequential decoding
    assert planned.frames_decoded >= plan_cost(runs)
    assert sorted(planned.kept) == [44, 88]
    assert sorted(planned.stamps_ms) == [0, 44, 88]


def test_every_frame_by_plan_equals_a_sequential_pass(videos):
    """All frames, reached by many seeks, equal one sequential PyAV pass, pixel for pixel."""
    path = videos["h264_bframes.mp4"]
    with av.open(path) as container:
        sequential = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    with IndexedVideo(path) as video:
        runs = [
            run  # a seek every 7 frames, each to the keyframe before
            for start in range(0, 90, 7)
            for run in plan_decode(video.index, range(start, min(start + 7, 90)))
        ]
        planned = video.decode(runs, range(90), lambda i, image: image)
    assert len(runs) == 13
    for number, image in enumerate(sequential):
        np.testing.assert_array_equal(planned.kept[number], image, err_msg=f"frame {number}")


def test_variable_frame_rate_keeps_the_decoder_timestamps(videos, monkeypatch):
    sampling = SamplingConfig(num_frames=8)
    sequential, planned = read_both(monkeypatch, videos["h264_vfr.mp4"], sampling)
    assert_identical(sequential, planned)
    gaps = np.diff(planned.timestamps_ms)
    assert gaps.max() - gaps.min() > 30  # really variable, not index / fps


@pytest.mark.parametrize("claim", [100, 10])
def test_avi_that_lies_about_its_frame_count(
    tmp_path, claim, monkeypatch, caplog, patch_avi_frame_count
):
    path = encode(tmp_path / "liar.avi", "mjpeg", 30, pix_fmt="yuvj420p", b_frames=0)
    patch_avi_frame_count(path, claim)
    with av.open(path) as container:
        assert container.streams.video[0].frames == claim  # the header really lies
    caplog.set_level(logging.DEBUG, logger=video_reader.__name__)
    sequential, planned = read_both(monkeypatch, path, SamplingConfig(num_frames=8))
    assert planned.num_source_frames == 30
    assert_identical(sequential, planned)
    assert_no_fallback(caplog)


def test_broken_index_falls_back_to_sequential_and_says_so_once(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(video_reader, "_fallback_reported", False)
    paths = []
    for name in ("cut1.avi", "cut2.avi"):
        path = encode(tmp_path / name, "mjpeg", 40, pix_fmt="yuvj420p", b_frames=0)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) * 6 // 10])  # no index, a truncated packet
        with pytest.raises(IndexUnavailable, match="truncated") as error:
            read_packet_index(path)
        assert error.value.broken
        paths.append(path)
    caplog.set_level(logging.WARNING, logger=video_reader.__name__)
    for path in paths:
        sequential, planned = read_both(monkeypatch, path, SamplingConfig(num_frames=4))
        assert_identical(sequential, planned)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "cut1.avi" in warnings[0].getMessage()
    assert "decoding sequentially with OpenCV" in warnings[0].getMessage()


def test_avi_with_b_frames_is_read_sequentially(tmp_path, monkeypatch):
    path = encode(tmp_path / "b.avi", "mpeg4", 40)  # AVI keeps decode order only
    with pytest.raises(IndexUnavailable, match="AVI with reordered") as error:
        read_packet_index(path)
    assert not error.value.broken
    assert_identical(*read_both(monkeypatch, path, SamplingConfig(num_frames=5)))


def test_unknown_decoder_setting_is_refused(videos, monkeypatch):
    monkeypatch.setenv("VIDSEQ_DECODER", "gpu")
    with pytest.raises(UsageError, match="VIDSEQ_DECODER must be one of"):
        read_frames(videos["mjpeg.avi"], SamplingConfig(num_frames=2), FrameGeometry())


def sample_videos():
    """The real sample videos: $VIDSEQ_SAMPLE_VIDEOS, else the workspace's shared/videos folder
    beside the clone (CI has one; a user's clone does not, and these tests then skip)."""
    default = Path(__file__).resolve().parents[3] / "shared" / "videos"
    folder = Path(os.environ.get(SAMPLE_VIDEOS_VARIABLE, default))
    return sorted(p for p in folder.glob("*") if p.suffix in {".avi", ".mp4", ".mkv", ".webm"})


@pytest.mark.slow
@pytest.mark.skipif(not sample_videos(), reason="no real sample videos (set VIDSEQ_SAMPLE_VIDEOS)")
@pytest.mark.parametrize("path", sample_videos(), ids=lambda p: p.name)
def test_real_sample_videos(path, monkeypatch):
    sampling = SamplingConfig(num_frames=8)
    assert_identical(*read_both(monkeypatch, str(path), sampling, FrameGeometry((64, 64))))


def test_a_cache_is_the_same_before_and_after_planning(
    videos, tmp_path, monkeypatch, assert_same_cache
):
    root = tmp_path / "data"
    for label, names in {"a": ["h264_bframes.mp4", "vp9.webm"], "b": ["mjpeg.avi"]}.items():
        (root / label).mkdir(parents=True)
        for name in names:
            (root / label / name).symlink_to(videos[name])
    caches = {}
    for decoder in ("opencv", "planned"):
        monkeypatch.setenv("VIDSEQ_DECODER", decoder)
        caches[decoder] = tmp_path / f"{decoder}.h5"
        summary = extract_features(
            root,
            caches[decoder],
            frames=FrameSpec(sampling=SamplingConfig(num_frames=4)),
            backbone="tiny",
            progress=False,
        )
        assert summary.failures == []
    assert_same_cache(caches["opencv"], caches["planned"])


def test_thumbnails_of_every_frame(videos):
    path = videos["h264_bframes.mp4"]
    exact = list(iter_thumbnails(path, (12, 16), fast=False))
    fast = list(iter_thumbnails(path, (12, 16)))
    colour = list(iter_thumbnails(path, (12, 16), fast=False, colour=True))
    assert [t.index for t in exact] == list(range(90)) == [t.index for t in fast]
    assert exact[0].image.shape == (12, 16) and exact[0].image.dtype == np.uint8
    assert colour[0].image.shape == (12, 16, 3)
    assert exact[1].time_s == pytest.approx(0.04)
    with av.open(path) as container:
        frames = list(container.decode(video=0))
    for thumb, painted, frame in zip(exact, colour, frames, strict=True):
        plane = frame.planes[0]  # the luma plane, 48x64: every 4th row and column
        luma = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        assert np.array_equal(thumb.image, luma[:, : plane.width][::4, ::4])
        # An average of the frame's colours, in BGR order.
        colours = frame.to_ndarray(format="bgr24").mean(axis=(0, 1))
        assert np.abs(painted.image.mean(axis=(0, 1)) - colours).max() < 4
    pairs = zip(exact, fast, strict=True)
    difference = [np.abs(a.image.astype(int) - b.image).mean() for a, b in pairs]
    assert max(difference) < 8  # no deblocking: close, not equal


@pytest.mark.parametrize("size", [(0, 4), "big", (4,)])
def test_thumbnail_size_is_checked(videos, size):
    with pytest.raises(UsageError, match="size must be"):
        next(iter_thumbnails(videos["mjpeg.avi"], size))


@pytest.mark.parametrize("name", ["h264_bframes.mp4", "mpeg4_bframes.mp4", "vp9.webm"])
def test_motion_frames_by_plan_equal_sequential_ones(videos, name, monkeypatch):
    path = videos[name]
    sampling = SamplingConfig(mode="motion", num_frames=8, motion_signal="full")
    scan = scan_video(path, sampling, index=read_packet_index(path))  # reference frames only
    assert scan.count == 90 and scan.held is None
    decoded = sum(1 for _ in iter_thumbnails(path, references_only=True))
    assert decoded < 90 if name == "h264_bframes.mp4" else decoded <= 90
    geometry = FrameGeometry(size=(24, 32))
    for budget in (frames_module.MAX_HELD_BYTES, 0):  # held by the scan, then by plan
        monkeypatch.setattr(frames_module, "MAX_HELD_BYTES", budget)
        monkeypatch.setenv("VIDSEQ_DECODER", "planned")
        chosen = read_frames(path, sampling, geometry)
        monkeypatch.setenv("VIDSEQ_DECODER", "opencv")
        again = read_frames(path, sampling, geometry, frame_indices=chosen.frame_indices)
        assert_identical(again, chosen)
