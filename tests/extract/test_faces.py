"""Face crops with OpenCV's Haar cascade on a real photograph (scikit-image's astronaut)."""

import threading

import cv2
import numpy as np
import pytest
from skimage import data

from vidseq.cache.store import FeatureStore
from vidseq.cli import main
from vidseq.errors import UsageError
from vidseq.extract.decode.faces import (
    FaceCrop,
    FaceTracker,
    center_box,
    detect_faces,
    face_crop_from_sampling,
    square_box,
)
from vidseq.extract.decode.frames import FrameGeometry, read_frames
from vidseq.extract.decode.sampling import SamplingConfig

# Eileen Collins' face in the 512x512 astronaut photograph, forehead to chin,
# found by eye: (left, top, right, bottom).
FACE_REGION = (185, 80, 262, 165)


@pytest.fixture(scope="module")
def astronaut_bgr():
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def flat(shape=(512, 512, 3), value=128):
    return np.full(shape, value, dtype=np.uint8)


def noise(shape=(512, 512, 3), seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def contains(box, region):
    x, y, w, h = box
    left, top, right, bottom = region
    return x <= left and y <= top and x + w >= right and y + h >= bottom


def test_the_astronaut_face_is_found_and_cropped_with_a_margin(astronaut_bgr):
    faces = detect_faces(astronaut_bgr)
    assert len(faces) >= 1
    x, y, w, h = faces[0]
    assert x < 262 and x + w > 185 and y < 165 and y + h > 80  # overlaps the face
    tracker = FaceTracker(FaceCrop(margin=0.2))
    crop, found = tracker.crop(astronaut_bgr)
    assert found
    bx, by, side, side_h = tracker.box
    assert side == side_h == round(max(w, h) * 1.4)
    assert contains(tracker.box, FACE_REGION)
    assert side < 256  # a face crop, not half the picture
    np.testing.assert_array_equal(crop, astronaut_bgr[by : by + side, bx : bx + side])


def test_gray_crop_and_a_downscaled_detection_find_the_same_face(astronaut_bgr):
    big = cv2.resize(astronaut_bgr, (1024, 1024), interpolation=cv2.INTER_LINEAR)
    tracker = FaceTracker(FaceCrop(gray=True, detect_size=256))  # detection at 1/4 scale
    crop, found = tracker.crop(big)
    assert found and crop.ndim == 2
    doubled = tuple(2 * v for v in FACE_REGION)
    assert contains(tracker.box, doubled)


@pytest.mark.parametrize("frame", [noise(), flat()], ids=["noise", "flat"])
def test_a_frame_without_a_face_gives_the_centre_crop_at_the_start(frame):
    tracker = FaceTracker(FaceCrop())
    crop, found = tracker.crop(frame[:300, :])
    assert not found
    assert tracker.box == center_box((300, 512)) == (106, 0, 300, 300)
    assert crop.shape == (300, 300, 3)


def test_a_later_faceless_frame_reuses_the_previous_face_box(astronaut_bgr):
    tracker = FaceTracker(FaceCrop())
    _, found = tracker.crop(astronaut_bgr)
    face_box = tracker.box
    assert found
    other = noise(seed=1)
    crop, found = tracker.crop(other)
    assert not found
    assert tracker.box == face_box
    x, y, w, h = face_box
    np.testing.assert_array_equal(crop, other[y : y + h, x : x + w])


def test_square_box_stays_inside_the_frame():
    assert square_box((0, 0, 50, 40), (100, 200), 0.2) == (0, 0, 70, 70)
    assert square_box((180, 60, 30, 30), (100, 200), 0.5) == (140, 40, 60, 60)
    assert square_box((20, 10, 150, 150), (100, 200), 0.2) == (45, 0, 100, 100)


def test_face_crop_settings_are_checked_and_round_trip():
    crop = FaceCrop(margin=0.3, gray=True)
    assert FaceCrop.from_dict(crop.to_dict()) == crop
    assert face_crop_from_sampling({"mode": "uniform", "face_crop": crop.to_dict()}) == crop
    assert face_crop_from_sampling({"mode": "uniform"}) is None
    for bad in ({"margin": -0.1}, {"detect_size": 10}, {"scale_factor": 1.0}, {"gray": "yes"}):
        with pytest.raises(UsageError):
            FaceCrop(**bad)
    with pytest.raises(UsageError, match="FaceCrop"):
        FrameGeometry(size=(64, 64), face={"margin": 0.2})


def test_one_cascade_per_thread(astronaut_bgr):
    results = []

    def work():
        results.append(len(detect_faces(astronaut_bgr)))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [1, 1, 1]


@pytest.fixture
def face_video(tmp_path, astronaut_bgr, video_writer):
    """A real 4-frame video: flat grey, astronaut, flat grey, astronaut (RGB frames)."""
    astronaut = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2RGB)
    frames = [flat(), astronaut, flat(value=90), astronaut]
    return video_writer(tmp_path / "faces.avi", frames, fps=10.0)


@pytest.mark.slow
def test_read_frames_crops_faces_of_a_real_video(face_video):
    sampling = SamplingConfig(num_frames=4)
    geometry = FrameGeometry(size=(64, 64), face=FaceCrop())
    frames = read_frames(face_video, sampling, geometry)
    np.testing.assert_array_equal(frames.face_found, [False, True, False, True])
    assert frames.frames.shape == (4, 64, 64, 3)
    whole = read_frames(face_video, sampling, FrameGeometry(size=(64, 64)))
    assert whole.face_found is None
    assert np.abs(frames.frames[1].astype(int) - whole.frames[1]).mean() > 10
    # The faceless third frame is cut with the second frame's box: a flat patch.
    assert frames.frames[2].std() < 2
    gray = read_frames(face_video, sampling, FrameGeometry(size=(64, 64), face=FaceCrop(gray=True)))
    np.testing.assert_array_equal(gray.face_found, frames.face_found)
    assert np.all(gray.frames[..., 0] == gray.frames[..., 1])
    assert np.all(gray.frames[..., 1] == gray.frames[..., 2])
    # Reading again the indices a cache lists gives the same crops.
    again = read_frames(face_video, sampling, geometry, frame_indices=frames.frame_indices)
    np.testing.assert_array_equal(again.frames, frames.frames)
    np.testing.assert_array_equal(again.face_found, frames.face_found)


def test_extract_features_stores_face_found_per_frame(tmp_path, face_video):
    manifest = tmp_path / "videos.csv"
    manifest.write_text("path,label,split\nfaces.avi,emotion,test\n")
    out = tmp_path / "features.h5"
    argv = [
        "extract-features",
        "--backbone",
        "tiny",
        str(manifest),
        "--out",
        str(out),
        "--frames",
        "5",
    ]
    assert main([*argv, "--face-gray", "--face-margin", "0.25", "--quiet"]) == 0
    with FeatureStore(out) as store:
        found = store.rows("face_found", 0)
        # 4 real frames, then padding repeating the last one.
        np.testing.assert_array_equal(found, [False, True, False, True, True])
        assert store.num_valid[0] == 4
        assert face_crop_from_sampling(store.meta.sampling) == FaceCrop(margin=0.25, gray=True)
