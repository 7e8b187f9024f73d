"""FrameSpec: the typed sampling/crop/face/clip-length value stored as the cache's ``sampling``."""

import pytest

from vidseq.errors import UsageError
from vidseq.extract.decode.faces import FaceCrop
from vidseq.extract.decode.frames import FrameGeometry
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.decode.sampling import SamplingConfig


def test_round_trip_keeps_the_flat_schema_v1_layout():
    spec = FrameSpec(
        sampling=SamplingConfig(mode="fps", num_frames=8, frame_rate=2.5),
        crop="center",
        face_crop=FaceCrop(margin=0.3, gray=True),
        clip_length=10,
    )
    recorded = spec.to_dict()
    assert recorded["mode"] == "fps" and recorded["num_frames"] == 8
    assert recorded["frame_rate"] == 2.5 and recorded["crop"] == "center"
    assert recorded["face_crop"]["gray"] is True and recorded["clip_length"] == 10
    assert FrameSpec.from_dict(recorded) == spec


def test_a_cache_written_before_framespec_reads_back():
    old = {"mode": "uniform", "num_frames": 16, "frame_rate": 5.0}  # no crop key
    spec = FrameSpec.from_dict(old)
    assert spec.crop == "resize" and spec.face_crop is None and spec.clip_length is None
    assert spec.to_dict() == {**old, "crop": "resize"}


def test_geometry_and_num_frames():
    spec = FrameSpec(crop="center").with_num_frames(4)
    assert spec.num_frames == 4
    assert spec.geometry([32, 48]) == FrameGeometry(size=(32, 48), crop="center")


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"crop": "stretch"}, "crop"),
        ({"clip_length": 0}, "clip_length"),
        ({"sampling": {}}, "sampling"),
    ],
)
def test_bad_fields_are_named(kwargs, name):
    with pytest.raises(UsageError, match=name):
        FrameSpec(**kwargs)
