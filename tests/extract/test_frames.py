"""Reading frames from real encoded videos, frame directories and image clips.

The ``video_factory`` videos encode each frame's index in its brightness
(index * 4 % 256), so the frame that came back can be told from its pixels.
"""

from pathlib import Path

import cv2
import numpy as np
import pytest

from vidseq.errors import SourceReadError, UsageError
from vidseq.extract.decode.frames import FrameGeometry, SampledFrames, read_frames
from vidseq.extract.decode.sampling import SamplingConfig, uniform_indices

CODEC_TOLERANCE = 4  # grey levels an MJPG round trip may move a pixel of a flat frame


def brightness_index(frames):
    """The frame index each (flat, numbered) frame shows, from its mean brightness."""
    return np.rint(frames.reshape(len(frames), -1).mean(axis=1) / 4).astype(int)


def assert_numbered(result, expected_indices):
    """The rows are the numbered frames ``expected_indices``, within codec error.

    Neighbouring frames differ by 4 grey levels: a mean error under 2 names the
    frame exactly, and no pixel may be off by more than ``CODEC_TOLERANCE``.
    """
    expected = (np.asarray(expected_indices) * 4 % 256).astype(np.int16)
    error = result.frames.astype(np.int16) - expected[:, None, None, None]
    mean_error = np.abs(error.reshape(len(error), -1).mean(axis=1))
    worst = np.abs(error).max(axis=(1, 2, 3))
    assert (mean_error < 2).all(), f"not frames {list(expected_indices)}: {mean_error}"
    assert (worst <= CODEC_TOLERANCE).all(), f"pixels off by {worst}"


def header_count(path):
    capture = cv2.VideoCapture(str(path))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()


def decodable_count(path):
    """Counts frames with a plain ``read()`` loop, independently of the reader."""
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def write_png(path, image):
    assert cv2.imwrite(str(path), image)
    return str(path)


# ------------------------------------------------------------------ videos


def test_uniform_sampling_of_a_real_video(video_factory):
    path = video_factory("v.avi", 40, fps=20.0)
    result = read_frames(path, SamplingConfig(num_frames=8), FrameGeometry())
    assert isinstance(result, SampledFrames)
    assert result.frames.shape == (8, 48, 64, 3)
    assert result.frames.dtype == np.uint8
    assert result.frame_indices.dtype == np.int64
    assert result.frame_indices.tolist() == [2, 7, 12, 17, 22, 27, 32, 37]
    assert_numbered(result, result.frame_indices)
    assert result.num_valid == 8
    assert result.num_source_frames == 40
    assert result.fps == pytest.approx(20.0)
    assert result.timestamps_ms.dtype == np.float64
    np.testing.assert_allclose(result.timestamps_ms, result.frame_indices * 50.0, atol=1e-6)


def test_fps_sampling_of_a_real_video_is_padded(video_factory):
    path = video_factory("v.avi", 30, fps=25.0)
    result = read_frames(path, SamplingConfig("fps", num_frames=8, frame_rate=5.0), FrameGeometry())
    assert result.frame_indices.tolist() == [0, 5, 10, 15, 20, 25, 25, 25]
    assert result.num_valid == 6
    assert result.num_source_frames == 30
    assert_numbered(result, result.frame_indices)
    np.testing.assert_array_equal(result.frames[5], result.frames[7])
    np.testing.assert_allclose(result.timestamps_ms, result.frame_indices * 40.0, atol=1e-6)


def test_short_video_is_padded(video_factory):
    path = video_factory("short.avi", 5)
    result = read_frames(path, SamplingConfig(num_frames=8), FrameGeometry())
    assert result.frame_indices.tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    assert result.num_valid == 5
    assert result.num_source_frames == 5
    assert_numbered(result, result.frame_indices)


def test_random_offsets_are_reproducible_and_inside_segments(video_factory):
    path = video_factory("v.avi", 48)
    config = SamplingConfig(num_frames=4)
    first = read_frames(path, config, FrameGeometry(), rng=np.random.default_rng(5))
    again = read_frames(path, config, FrameGeometry(), rng=np.random.default_rng(5))
    np.testing.assert_array_equal(first.frame_indices, again.frame_indices)
    np.testing.assert_array_equal(first.frames, again.frames)
    expected = uniform_indices(48, 4, rng=np.random.default_rng(5)).indices
    assert first.frame_indices.tolist() == expected.tolist()
    assert [i // 12 for i in first.frame_indices] == [0, 1, 2, 3]
    assert_numbered(first, first.frame_indices)


def test_explicit_frame_indices_are_read_in_order(video_factory):
    path = video_factory("v.avi", 40)
    result = read_frames(
        path, SamplingConfig(num_frames=99), FrameGeometry(), frame_indices=[30, 2, 39, 39]
    )
    assert result.frame_indices.tolist() == [30, 2, 39, 39]
    assert result.num_valid == 3  # trailing repeats are padding
    assert result.num_source_frames == 40
    assert_numbered(result, [30, 2, 39, 39])


def test_explicit_frame_index_past_the_end_is_a_read_error(video_factory):
    path = video_factory("v.avi", 10)
    with pytest.raises(SourceReadError, match="frame index 10 requested") as info:
        read_frames(path, SamplingConfig(), FrameGeometry(), frame_indices=[0, 10])
    assert info.value.path == path


@pytest.mark.parametrize("bad", [[], [[1, 2]], [-1], [0.5]])
def test_bad_frame_indices_are_a_usage_error(video_factory, bad):
    path = video_factory("v.avi", 10)
    with pytest.raises(UsageError, match="frame_indices"):
        read_frames(path, SamplingConfig(), FrameGeometry(), frame_indices=bad)


def test_colours_come_back_as_rgb(video_writer, tmp_path):
    red = np.zeros((6, 32, 32, 3), np.uint8)
    red[..., 0] = 220  # RGB red
    path = video_writer(tmp_path / "red.avi", red)
    frames = read_frames(path, SamplingConfig(num_frames=2), FrameGeometry()).frames
    assert frames[..., 0].min() > 180
    assert frames[..., 2].max() < 40


@pytest.mark.parametrize("claim", [100, 10, 0])
def test_header_that_lies_about_the_frame_count(video_factory, claim, patch_avi_frame_count):
    path = video_factory("liar.avi", 30)
    patch_avi_frame_count(path, claim)
    assert header_count(path) != 30  # the header really lies
    result = read_frames(path, SamplingConfig(num_frames=8), FrameGeometry())
    assert result.num_source_frames == 30
    assert result.frame_indices.tolist() == uniform_indices(30, 8).indices.tolist()
    assert_numbered(result, result.frame_indices)

    fps_mode = read_frames(path, SamplingConfig("fps", num_frames=8), FrameGeometry())
    assert fps_mode.num_source_frames == 30
    assert fps_mode.frame_indices.tolist() == [0, 5, 10, 15, 20, 25, 25, 25]
    assert fps_mode.num_valid == 6
    assert_numbered(fps_mode, fps_mode.frame_indices)


def test_truncated_video_records_the_real_count(video_factory):
    path = video_factory("cut.avi", 40)
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) * 6 // 10])
    real = decodable_count(path)
    assert header_count(path) == 40
    assert 5 < real < 40
    result = read_frames(path, SamplingConfig(num_frames=8), FrameGeometry())
    assert result.num_source_frames == real
    assert result.frame_indices.tolist() == uniform_indices(real, 8).indices.tolist()
    assert result.frame_indices.max() < real
    assert_numbered(result, result.frame_indices)


def test_video_geometry(video_factory):
    path = video_factory("v.avi", 12)  # 48x64
    plain = read_frames(path, SamplingConfig(num_frames=3), FrameGeometry((24, 40)))
    assert plain.frames.shape == (3, 24, 40, 3)
    centre = read_frames(path, SamplingConfig(num_frames=3), FrameGeometry((32, 32), "center"))
    assert centre.frames.shape == (3, 32, 32, 3)
    larger = read_frames(path, SamplingConfig(num_frames=3), FrameGeometry((96, 100)))
    assert larger.frames.shape == (3, 96, 100, 3)
    for result in (plain, centre, larger):
        assert_numbered(result, result.frame_indices)


# ------------------------------------------------------------------ images


def numbered_image(index, height=20, width=30):
    return np.full((height, width, 3), index * 4 % 256, np.uint8)


def test_frame_directory_is_read_in_name_order(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in reversed(range(12)):  # written out of order: order comes from the names
        image = numbered_image(index)
        if index == 4:
            image = image[:, :, 0]  # a grayscale PNG
        write_png(folder / f"img_{index:04d}.png", image)
    (folder / "notes.txt").write_text("not a frame")
    result = read_frames(folder, SamplingConfig(num_frames=4), FrameGeometry(), image_fps=10.0)
    assert result.frame_indices.tolist() == [1, 4, 7, 10]
    assert result.frames.shape == (4, 20, 30, 3)
    np.testing.assert_array_equal(brightness_index(result.frames), [1, 4, 7, 10])
    assert np.array_equal(result.frames[1][..., 0], result.frames[1][..., 2])
    assert result.num_source_frames == 12
    assert result.fps == 10.0
    np.testing.assert_allclose(result.timestamps_ms, [100.0, 400.0, 700.0, 1000.0])

    fps_mode = read_frames(folder, SamplingConfig("fps", 4, 2.5), FrameGeometry(), image_fps=10.0)
    assert fps_mode.frame_indices.tolist() == [0, 4, 8, 8]
    assert fps_mode.num_valid == 3
    np.testing.assert_array_equal(brightness_index(fps_mode.frames), [0, 4, 8, 8])


def test_clip_of_images_is_padded(tmp_path):
    paths = [write_png(tmp_path / f"{c}.png", numbered_image(i)) for i, c in enumerate("cab")]
    result = read_frames(tuple(paths), SamplingConfig(num_frames=5), FrameGeometry((8, 8)))
    assert result.frame_indices.tolist() == [0, 1, 2, 2, 2]
    assert result.num_valid == 3
    assert result.num_source_frames == 3
    assert result.frames.shape == (5, 8, 8, 3)
    np.testing.assert_array_equal(brightness_index(result.frames), [0, 1, 2, 2, 2])  # list order


def test_single_grayscale_image_clip(tmp_path):
    face = np.arange(48 * 48, dtype=np.uint32).reshape(48, 48) % 251
    path = write_png(tmp_path / "face.png", face.astype(np.uint8))
    result = read_frames([path], SamplingConfig(num_frames=4), FrameGeometry())
    assert result.frames.shape == (4, 48, 48, 3)
    assert result.num_valid == 1
    for channel in range(3):
        np.testing.assert_array_equal(result.frames[0][..., channel], face)
    np.testing.assert_array_equal(result.frames[3], result.frames[0])


def test_image_colours_come_back_as_rgb(tmp_path):
    bgr_red = np.zeros((4, 4, 3), np.uint8)
    bgr_red[..., 2] = 255
    path = write_png(tmp_path / "red.png", bgr_red)
    frame = read_frames([path], SamplingConfig(num_frames=1), FrameGeometry()).frames[0]
    assert frame[0, 0].tolist() == [255, 0, 0]


def banded(height, width, axis, inner):
    """Red image with a green centred band ``inner`` pixels wide along ``axis``."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 2] = 255  # BGR red
    length = image.shape[axis]
    lo, hi = (length - inner) // 2, (length + inner) // 2
    band = image[:, lo:hi] if axis == 1 else image[lo:hi]
    band[...] = (0, 255, 0)
    return image


def test_centre_crop_of_a_wide_image_keeps_the_centre(tmp_path):
    path = write_png(tmp_path / "wide.png", banded(40, 80, axis=1, inner=40))
    crop = read_frames([path], SamplingConfig(num_frames=1), FrameGeometry((20, 20), "center"))
    assert crop.frames.shape == (1, 20, 20, 3)
    assert crop.frames[0, ..., 1].min() == 255  # all green: the red sides were cut
    assert crop.frames[0, ..., 0].max() == 0
    plain = read_frames([path], SamplingConfig(num_frames=1), FrameGeometry((20, 40)))
    assert plain.frames[0, :, :8, 0].min() == 255  # plain resize keeps the red sides
    assert plain.frames[0, :, 12:28, 1].min() == 255


def test_centre_crop_of_a_tall_image_keeps_the_centre(tmp_path):
    path = write_png(tmp_path / "tall.png", banded(80, 40, axis=0, inner=20))
    crop = read_frames([path], SamplingConfig(num_frames=1), FrameGeometry((10, 20), "center"))
    assert crop.frames.shape == (1, 10, 20, 3)
    assert crop.frames[0, ..., 1].min() == 255
    assert crop.frames[0, ..., 0].max() == 0


def test_images_of_different_sizes_need_a_size(tmp_path):
    paths = [
        write_png(tmp_path / "a.png", numbered_image(1, 10, 10)),
        write_png(tmp_path / "b.png", numbered_image(2, 12, 10)),
    ]
    with pytest.raises(SourceReadError, match="different sizes"):
        read_frames(paths, SamplingConfig(num_frames=2), FrameGeometry())
    result = read_frames(paths, SamplingConfig(num_frames=2), FrameGeometry((6, 6)))
    assert result.frames.shape == (2, 6, 6, 3)


def test_geometry_validation():
    assert FrameGeometry((224, 224)).size == (224, 224)
    with pytest.raises(UsageError, match="crop='middle'"):
        FrameGeometry(crop="middle")
    for bad in [(0, 10), (10,), "224", (10.5, 10)]:
        with pytest.raises(UsageError, match="size"):
            FrameGeometry(size=bad)


# ------------------------------------------------------------------ failures


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.mp4")
    with pytest.raises(SourceReadError, match="no such file") as info:
        read_frames(path, SamplingConfig(), FrameGeometry())
    assert info.value.path == path


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(SourceReadError, match=r"empty file \(0 bytes\)"):
        read_frames(path, SamplingConfig(), FrameGeometry())


def test_random_bytes_named_mp4(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises(SourceReadError, match=r"cannot open it as a video|no decodable"):
        read_frames(path, SamplingConfig(), FrameGeometry())


def test_text_file_named_avi(tmp_path):
    path = tmp_path / "notes.avi"
    path.write_text("this is not a video\n" * 50)
    with pytest.raises(SourceReadError, match=r"cannot open it as a video|no decodable") as info:
        read_frames(path, SamplingConfig(), FrameGeometry())
    assert info.value.path == str(path)


def test_video_with_a_header_and_no_frames(video_factory):
    path = video_factory("hollow.avi", 10)
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: data.find(b"movi") + 4])
    with pytest.raises(SourceReadError, match="no decodable video frame"):
        read_frames(path, SamplingConfig(), FrameGeometry())


def test_unreadable_image_in_a_clip(tmp_path):
    good = write_png(tmp_path / "good.png", numbered_image(1))
    bad = tmp_path / "bad.png"
    bad.write_text("not a png")
    with pytest.raises(SourceReadError, match="cannot decode it as an image") as info:
        read_frames([good, str(bad)], SamplingConfig(num_frames=2), FrameGeometry())
    assert info.value.path == str(bad)
    with pytest.raises(SourceReadError, match="no such file"):
        read_frames([good, str(tmp_path / "gone.png")], SamplingConfig(), FrameGeometry())


def test_empty_clip_and_empty_directory(tmp_path):
    with pytest.raises(SourceReadError, match="no image file"):
        read_frames([], SamplingConfig(), FrameGeometry())
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "readme.txt").write_text("x")
    with pytest.raises(SourceReadError, match="no image files"):
        read_frames(tmp_path / "frames", SamplingConfig(), FrameGeometry())
