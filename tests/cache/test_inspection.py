"""summarize / describe_video and their human text."""

import json
import os
import sys

import numpy as np
import pytest

from vidseq.cache import (
    FailedRecord,
    describe_video,
    format_summary,
    format_video,
    inspect_cache,
    summarize,
)
from vidseq.errors import CacheError

IDS = ["walk/a", "walk/b", "run/c", "jump/d", "odd/ü e"]


@pytest.fixture
def cache(tmp_path, write_cache):
    failures = [FailedRecord("broken.avi", "/data/broken.avi", "no frame decoded")]
    return write_cache(tmp_path / "c.h5", IDS, failures=failures)


def test_summarize(cache, make_video):
    d = summarize(cache)
    json.dumps(d)  # serialisable for --json
    records = [make_video(v)[0] for v in IDS]
    assert d["backbone"] == "tiny" and d["weights"] == "none" and d["engine"] == "tf"
    assert d["weights_sha256"] == "0" * 64 and d["dtype"] == "float16"
    assert d["feature_dim"] == 8 and d["input_size"] == [32, 32]
    assert d["sampling"] == {"frame_rate": 5.0, "mode": "uniform", "num_frames": 5}
    assert d["num_videos"] == 5 and d["schema_version"] == 1 and d["vidseq_version"]
    assert d["file_size"] == os.path.getsize(cache)
    splits = {}
    for r in records:
        splits[r.split or "(none)"] = splits.get(r.split or "(none)", 0) + 1
    assert d["videos_per_split"] == dict(sorted(splits.items()))
    names = ["walk", "run", "jump"]
    per_class = {}
    for r in records:
        per_class[names[r.label]] = per_class.get(names[r.label], 0) + 1
    assert d["videos_per_class"] == per_class
    valid = [r.num_valid for r in records]
    assert d["frames_per_video"] == {
        "min": min(valid),
        "mean": pytest.approx(np.mean(valid)),
        "max": max(valid),
    }
    assert d["failed"] == [
        {"video_id": "broken.avi", "path": "/data/broken.avi", "error": "no frame decoded"}
    ]
    text = format_summary(d)
    for needle in ("tiny", "0" * 64, "uniform", "float16", "per split", "walk", "broken.avi"):
        assert needle in text


def test_describe_video(cache, make_video):
    record, x, fi, ts, extras = make_video("odd/ü e")
    d = describe_video(cache, "odd/ü e")
    json.dumps(d)
    assert d["video_id"] == "odd/ü e" and d["shape"] == [len(x), 8]
    assert d["frame_indices"] == fi.tolist() and d["timestamps_ms"] == ts.tolist()
    assert d["num_valid"] == record.num_valid and d["label"] == record.label
    assert d["label_name"] == ["walk", "run", "jump"][record.label]
    assert d["split"] == record.split and d["group"] == record.group
    assert d["path"] == record.path
    stored = x.astype(np.float16).astype(np.float64)
    assert d["feature_stats"]["min"] == stored.min() and d["feature_stats"]["max"] == stored.max()
    assert d["feature_stats"]["mean"] == pytest.approx(stored.mean())
    assert d["feature_stats"]["std"] == pytest.approx(stored.std())
    assert d["extras"] == {"face_found": extras["face_found"].tolist()}
    text = format_video(d)
    assert "odd/ü e" in text and "frame indices" in text and "std" in text
    with pytest.raises(CacheError, match="no video with id 'nope/x'"):
        describe_video(cache, "nope/x")


def test_inspection_does_not_import_tensorflow(cache):
    import subprocess

    code = (
        "import sys; from vidseq.cache import summarize, format_summary; "
        f"format_summary(summarize({str(cache)!r})); "
        "m = sys.modules; print('tensorflow' in m, 'keras' in m, 'vidseq.extract' in m)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_inspect_cache_is_the_command_s_api_and_its_report_prints_itself(cache):
    whole = inspect_cache(cache)
    assert whole.to_dict() == summarize(cache) and whole.summary() == format_summary(whole.info)
    one = inspect_cache([cache], video="walk/b")
    assert one.to_dict() == describe_video(cache, "walk/b")
    assert one.summary() == format_video(one.info)
    json.dumps(one.to_dict())
