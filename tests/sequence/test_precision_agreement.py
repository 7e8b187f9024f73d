"""INT8 extraction: calibrated once, agreement recorded and shown, used by windowed predict."""

from pathlib import Path

import pytest

from vidseq.cache.inspection import format_summary, summarize
from vidseq.cache.store import FeatureStore
from vidseq.errors import CacheError, UsageError
from vidseq.extract import calibration
from vidseq.extract.decode.framespec import FrameSpec
from vidseq.extract.decode.sampling import SamplingConfig
from vidseq.extract.pipeline import extract_features
from vidseq.sequence.infer.precision_agreement import top1_probe
from vidseq.sequence.infer.windowed import predict_windows

pytest.importorskip("nncf", reason='nncf is not installed (pip install "vidseq[openvino]")')

OPTIONS = {
    "backbone": "tiny",
    "frames": FrameSpec(SamplingConfig(num_frames=6)),
    "input_size": (32, 32),
    "dtype": "float32",
    "engine": "openvino",
    "precision": "int8",
    "calibration_videos": 4,
    "progress": False,
}


@pytest.fixture(autouse=True)
def converted_models_in_tmp(tmp_path, monkeypatch):
    """Converted OpenVINO models go to the test's own folder, never to ~/.cache."""
    monkeypatch.setenv("VIDSEQ_CACHE", str(tmp_path / "vidseq-cache"))


@pytest.fixture(scope="module")
def int8_cache(feature_run_files):
    """An INT8 cache of the shared run's sample, beside the run's FP32 cache, checked against it."""
    sample, cache, run = feature_run_files
    out = Path(cache).parent / "features-int8.h5"
    summary = extract_features(sample, out, agreement_probe=top1_probe(run), **OPTIONS)
    return sample, cache, run, summary


@pytest.mark.slow
def test_int8_cache_records_its_agreement_with_fp32(int8_cache):
    _, _, run, summary = int8_cache
    check = summary.precision_check
    assert check["precision"] == "int8" and check["reference"] == "tf fp32"
    assert check["videos"] >= 2 and check["frames"] == 6 * check["videos"]
    assert 0.95 < check["cosine_min"] <= check["cosine_mean"] <= 1.0 + 1e-6
    assert check["check_against"] == str(run) and check["top1_videos"] == check["videos"]
    assert 0.0 <= check["top1_changed"] <= 1.0
    with FeatureStore(summary.out) as store:
        assert store.meta.precision == "int8" and store.meta.precision_check == check
    text = format_summary(summarize(summary.out))
    assert "(openvino, int8)" in text and "agreement:      int8 vs tf fp32: cosine" in text
    assert "top-1 changed for" in summary.summary()


@pytest.mark.slow
def test_rerun_does_not_calibrate_again_and_fp32_cache_is_not_mixed(int8_cache):
    sample, cache, _, summary = int8_cache
    models = list((Path(summary.out).parent / ".vidseq-int8").glob("*.xml"))
    assert len(models) == 1
    stamp = models[0].stat().st_mtime_ns
    again = extract_features(sample, summary.out, overwrite=True, **OPTIONS)
    assert again.precision_check["cosine_mean"] == summary.precision_check["cosine_mean"]
    assert models[0].stat().st_mtime_ns == stamp  # the same quantised model, reused
    with pytest.raises(CacheError, match=r"precision: '(int8|fp32)' vs '(fp32|int8)'"):
        extract_features(sample, cache, **OPTIONS)


@pytest.mark.slow
def test_windowed_predict_runs_the_quantised_backbone(int8_cache, tmp_path):
    sample, _, run, _ = int8_cache
    video = sorted(Path(sample).glob("*/*.avi"))[0]
    fp32 = predict_windows(run, [video], window=1.0, stride=1.0, top_k=1)
    int8 = predict_windows(
        run, [video], window=1.0, stride=1.0, top_k=1, engine="openvino", precision="int8"
    )
    assert int8.videos[0].error is None
    assert len(int8.videos[0].windows) == len(fp32.videos[0].windows) >= 1
    with pytest.raises(UsageError, match="Received: engine='tf'"):
        predict_windows(run, [video], window=1.0, stride=1.0, precision="int8")


@pytest.mark.slow
def test_resuming_keeps_the_recorded_check_instead_of_running_it_again(int8_cache, monkeypatch):
    sample, _, _, summary = int8_cache

    def no_check(*args, **kwargs):
        raise AssertionError("the agreement check ran again on a resumed cache")

    with FeatureStore(summary.out) as store:
        recorded = store.meta.precision_check
    monkeypatch.setattr(calibration, "check_agreement", no_check)
    again = extract_features(sample, summary.out, **OPTIONS)  # every video done: a resume
    assert again.precision_check == recorded and recorded["precision"] == "int8"
    assert again.skipped > 0
    with FeatureStore(summary.out) as store:
        assert store.meta.precision_check == recorded
