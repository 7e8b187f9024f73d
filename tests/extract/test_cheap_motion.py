"""Motion signals without a full decode: packet sizes (H.264), reduced JPEG decodes (MJPEG)."""

import shutil

import av
import cv2
import numpy as np
import pytest

from vidseq.cache.store import FeatureStore
from vidseq.extract.decode.cheap_motion import (
    JPEG_STRIDE,
    PACKET_SIZE,
    REDUCED_JPEG,
    SIGNAL_NAMES,
    packet_activity,
    reduced_jpeg_motion,
    size_changes,
)
from vidseq.extract.decode.frames import FrameGeometry, read_frames
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.decode.packet_index import read_packet_index
from vidseq.extract.decode.sampling import SamplingConfig
from vidseq.extract.pipeline import extract_features

GEOMETRY = FrameGeometry(size=(16, 16))
LENGTH = 150
EVENT = (90, 105)  # frames [90, 105): a square crosses the picture


def event_frames(event=EVENT, length=LENGTH):
    """A still textured picture (RGB) with a bright square crossing it during ``event``."""
    still = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    still = np.repeat(np.repeat(still, 8, 0), 8, 1)  # 96x128, blocky
    frames = [still.copy() for _ in range(length)]
    for t in range(*event):
        x = (t - event[0]) * 7
        frames[t][20:60, x : x + 24] = 255
    return frames


def write_h264(path, frames, gop=250):
    """Encodes RGB frames as H.264 with PyAV (libx264, B-frames, keyframe every ``gop``)."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": str(gop), "preset": "veryfast"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return str(path)


@pytest.fixture(scope="module")
def h264_event(tmp_path_factory):
    return write_h264(tmp_path_factory.mktemp("h264") / "event.mp4", event_frames(), gop=60)


def in_event(indices, event=EVENT):
    """Chosen frames on the event, its last change (back to the still) included."""
    return int(((indices >= event[0]) & (indices <= event[1])).sum())


def test_packet_size_signal_peaks_at_the_event_without_decoding(h264_event):
    index = read_packet_index(h264_event)
    assert index.sizes.shape == (LENGTH,) and len(index.keyframes) >= 3  # several GOPs
    activity = packet_activity(index)
    assert EVENT[0] <= int(np.argmax(activity)) < EVENT[1]
    inside = activity[EVENT[0] : EVENT[1]].mean()
    outside = np.delete(activity, np.arange(*EVENT)).mean()
    assert inside > 10 * outside

    sampling = SamplingConfig(mode="motion", num_frames=8)
    read = read_frames(h264_event, sampling, GEOMETRY)
    assert read.motion_signal == PACKET_SIZE
    assert in_event(read.frame_indices) >= 4  # uniform puts 1 of 8 there
    # Reading the recorded indices again gives the same pixels (finetune, predict).
    again = read_frames(h264_event, sampling, GEOMETRY, frame_indices=read.frame_indices)
    assert np.array_equal(read.frames, again.frames) and again.motion_signal is None


def test_full_policy_and_intra_only_h264_keep_the_full_scan(h264_event, tmp_path):
    full = SamplingConfig(mode="motion", num_frames=8, motion_signal="full")
    read = read_frames(h264_event, full, GEOMETRY)
    assert read.motion_signal == "full_scan" and in_event(read.frame_indices) >= 3

    intra = write_h264(tmp_path / "intra.mp4", event_frames(), gop=1)
    assert packet_activity(read_packet_index(intra)) is None  # every frame a keyframe
    read = read_frames(intra, SamplingConfig(mode="motion", num_frames=8), GEOMETRY)
    assert read.motion_signal == "full_scan" and in_event(read.frame_indices) >= 3


def test_mjpeg_uses_reduced_jpeg_decodes(video_writer, tmp_path):
    path = video_writer(tmp_path / "event.avi", event_frames())
    sampling = SamplingConfig(mode="motion", num_frames=8)
    read = read_frames(path, sampling, GEOMETRY)
    assert read.motion_signal == REDUCED_JPEG
    assert in_event(read.frame_indices) >= 4  # uniform puts 1 of 8 there
    assert read.num_source_frames == LENGTH and np.all(np.diff(read.frame_indices) > 0)


def write_mjpeg(path, frames):
    """Encodes RGB frames as Motion-JPEG with PyAV, in the container ``path``'s suffix names."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
        for frame in frames:
            image = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuvj420p")
            container.mux(stream.encode(image))
        container.mux(stream.encode())
    return str(path)


@pytest.mark.parametrize("suffix", ["avi", "mkv"])  # Matroska: positions at block headers
def test_mjpeg_signal_decodes_strided_frames_and_bisects_to_the_changes(
    suffix, tmp_path, monkeypatch
):
    frames = event_frames()
    flash = 20 + JPEG_STRIDE // 2  # one frame between two strided ones
    frames[flash] = frames[flash] // 2
    path = write_mjpeg(tmp_path / f"event.{suffix}", frames)
    index = read_packet_index(path)
    assert index.positions.shape == (LENGTH,) and (index.positions >= 0).all()
    assert {flash - 1, flash, flash + 1} <= set(size_changes(index.sizes).tolist())
    decoded, imdecode = [], cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *a: decoded.append(1) or imdecode(*a))
    motion = reduced_jpeg_motion(path, index)
    assert motion.shape == (LENGTH,) and len(decoded) < LENGTH / 2
    # Every frame of the event and the flash is decoded: its motion is a frame's own.
    still = np.delete(motion, [*range(EVENT[0], EVENT[1] + 1), flash, flash + 1])
    assert motion[EVENT[0] : EVENT[1] + 1].min() > 2.0 and motion[flash] > 20.0
    assert still.max() < 0.5


def test_old_motion_caches_read_as_full_scan_and_uniform_records_no_signal():
    assert SamplingConfig.from_dict({"mode": "motion"}).motion_signal == "full"
    recorded = SamplingConfig(mode="motion").to_dict()
    assert recorded["motion_signal"] == "auto"
    assert SamplingConfig.from_dict(recorded).motion_signal == "auto"
    assert "motion_signal" not in SamplingConfig().to_dict()


def test_cache_records_the_signal_of_each_video(h264_event, video_writer, tmp_path):
    root = tmp_path / "data"
    for name, write in (("h264", None), ("mjpeg", video_writer)):
        (root / name).mkdir(parents=True)
        target = root / name / ("a.mp4" if write is None else "a.avi")
        if write is None:
            shutil.copyfile(h264_event, target)
        else:
            write(target, event_frames())
    out = tmp_path / "f.h5"
    frames = FrameSpec(SamplingConfig(mode="motion", num_frames=6))
    extract_features(
        root,
        out,
        source="folder",
        backbone="tiny",
        frames=frames,
        input_size=(16, 16),
        progress=False,
    )
    with FeatureStore(out) as store:
        assert store.meta.sampling["motion_signal"] == "auto"
        signals = {}
        for i in range(len(store)):
            codes = set(store.rows("motion_signal", i).tolist())
            assert len(codes) == 1
            signals[store.paths[i].rsplit(".", 1)[1]] = SIGNAL_NAMES[codes.pop()]
    assert signals == {"mp4": PACKET_SIZE, "avi": REDUCED_JPEG}
