"""Every head through the engine: resume, multi-clip evaluation, predict, streaming, finetune.

One tiny-CNN cache of real sample videos (8 rows per video, read with
frames=6, so training samples TSN offsets and evaluation averages 2 clips);
per head, one straight 2-epoch run and one interrupted after its first epoch
and resumed, all shared through a module fixture.

These runs take one step per epoch, so tracing ``tf.function`` would be most
of their cost: they run eagerly. Graph mode trains heads through the whole
engine in test_compare.py and in the mirrored test of test_distribute.py.
"""

import json

import keras
import numpy as np
import pytest

from vidseq.cache.store import FeatureStore
from vidseq.sequence.config import FinetuneConfig, TrainConfig
from vidseq.sequence.data.frame_clips import read_clip, videos_from_cache
from vidseq.sequence.data.temporal import prepare_clip
from vidseq.sequence.heads import head_names
from vidseq.sequence.infer.predict import predict_videos
from vidseq.sequence.runs.saved_run import load_run, load_run_backbone
from vidseq.sequence.train.end_to_end import build_end_to_end
from vidseq.sequence.train.finetune import finetune
from vidseq.sequence.train.training import train_sequence

OPTIONS = {  # small heads; the rest of each head's options are its defaults
    "lstm": {"units": 8},
    "gru": {"units": 8, "bidirectional": True},
    "tcn": {"units": 8, "dilations": (1, 2)},
    "transformer": {"units": 8, "num_heads": 2},
    "attention": {"units": 8, "attention_units": 4},
    "attentive": {"units": 8, "num_heads": 2},
    "pool": {"units": 8},
}


def config_for(head, **overrides):
    settings = {
        "head": head,
        **OPTIONS[head],
        "epochs": 2,
        "batch_size": 4,
        "lr": 3e-3,
        "frames": 6,
        "eval_clips": 2,
        "streaming": "memory",
        "seed": 1,
    }
    return TrainConfig.from_dict({**settings, **overrides}, strict=True)


class _Interrupt(Exception):
    pass


class _StopAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise _Interrupt


@pytest.fixture(scope="module")
def cache(tmp_path_factory, make_sample_cache):
    """Two classes of 6 sample videos, 8 uniform frames, tiny CNN at 32x32, float32."""
    return make_sample_cache(tmp_path_factory.mktemp("head-runs"), 8)[1]


@pytest.fixture(scope="module")
def runs(cache, tmp_path_factory, eagerly):
    """Per head: ``(straight TrainResult, resumed TrainResult)``."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    with eagerly():
        for head in head_names():
            out[head] = _straight_and_resumed(cache, root, head)
    return out


def _straight_and_resumed(cache, root, head):
    config = config_for(head)
    straight = train_sequence(cache, root / head, config, verbose=0)
    interrupted = root / f"{head}-interrupted"
    with pytest.raises(_Interrupt):
        train_sequence(cache, interrupted, config, verbose=0, callbacks=[_StopAfterFirstEpoch()])
    resumed = train_sequence(cache, interrupted, config, resume=True, verbose=0)
    return straight, resumed


@pytest.mark.parametrize("head", head_names())
@pytest.mark.slow
def test_resume_after_an_interruption_gives_the_same_history(runs, head):
    straight, resumed = runs[head]
    assert resumed.resumed_from == 1 and resumed.epochs_completed == 2
    assert resumed.history == straight.history
    assert resumed.weights_sha256 == straight.weights_sha256


@pytest.mark.slow
@pytest.mark.parametrize("head", head_names())
def test_run_records_its_head_and_evaluates_several_clips(runs, head):
    straight, _ = runs[head]
    config = json.loads((straight.run_dir / "config.json").read_text())
    assert config["head"]["head"] == head and config["head"]["normalize"] == "rms"
    assert config["head"]["options"]["units"] == 8
    assert TrainConfig.from_dict(config["train"]).head.head == head
    metrics = json.loads((straight.run_dir / "metrics.json").read_text())
    assert metrics["clips"] == 2 and "single_clip_accuracy" in metrics
    model = load_run(straight.run_dir).model  # safe_mode=True
    assert model.get_layer("feature_normalization").built


@pytest.mark.slow
@pytest.mark.parametrize("head", head_names())
def test_predict_equals_the_head_on_the_cached_features(runs, cache, head):
    run_dir = runs[head][0].run_dir
    loaded = load_run(run_dir)
    with FeatureStore(cache) as store:
        i = 1
        clip = prepare_clip(store.features(i), int(store.num_valid[i]), loaded.frames)
        expected = loaded.model.predict(clip[None], verbose=0)[0]
        top = predict_videos(run_dir, [store.paths[i]], top_k=2)[0].top
    assert [label for label, _ in top] == [loaded.class_names[j] for j in np.argsort(-expected)]
    assert top[0][1] == pytest.approx(float(expected.max()), abs=2e-3)


@pytest.mark.slow
def test_streamed_training_equals_in_memory_for_a_convolutional_head(
    runs, cache, tmp_path, eagerly
):
    with eagerly():
        streamed = train_sequence(
            cache, tmp_path / "tcn-stream", config_for("tcn", streaming="stream"), verbose=0
        )
    assert streamed.streaming
    assert streamed.history == runs["tcn"][0].history


@pytest.mark.slow
def test_finetune_wraps_a_transformer_head_end_to_end(runs, cache, tmp_path, eagerly):
    run_dir = runs["transformer"][0].run_dir
    source = load_run(run_dir)
    model = build_end_to_end(load_run_backbone(source), source.model, frames=source.frames)
    with FeatureStore(cache) as store:
        videos = videos_from_cache(store, source.config["input_size"])
        clips = np.stack([read_clip(videos, i, source.frames) for i in range(3)])
        features = np.stack(
            [prepare_clip(store.features(i), store.num_valid[i], source.frames) for i in range(3)]
        )
    np.testing.assert_allclose(
        model.predict(clips, verbose=0), source.model.predict(features, verbose=0), atol=1e-5
    )
    config = FinetuneConfig.from_dict(
        {"epochs": 1, "batch_size": 4, "unfreeze": 1, "workers": 2}, strict=True
    )
    with eagerly():
        result = finetune(run_dir, tmp_path / "fine", config, verbose=0)
    fine = load_run(result.run_dir)
    assert fine.end_to_end and fine.config["head"]["head"] == "transformer"
    assert 0.0 <= result.metrics["accuracy"] <= 1.0
