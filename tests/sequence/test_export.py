"""export: every format from real runs, run in its own runtime, equal to the run's predictions.

Two tiny runs on real encoded sample videos (the tiny CNN at 32x32; the cache
holds 6 frames per video and the other heads read 4 or 3, so the export's frame
sampling must take the centre sample as the run does): the demo's head (one LSTM layer)
and a non-default one (two bidirectional GRU layers). Each format is exported
once per run (module-scoped) and its probabilities compared with
``predict_videos`` on the run to 1e-4.
"""

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from vidseq.cli import main
from vidseq.errors import UsageError
from vidseq.sequence.export.build import (
    build_export_model,
    check_format_available,
    export_run,
    write_model_files,
)
from vidseq.sequence.export.manifest import FORMATS, MANIFEST_FILE, read_manifest
from vidseq.sequence.export.runtime import ExportedModel, predict_export, read_export_clip
from vidseq.sequence.infer.predict import predict_videos
from vidseq.sequence.runs.saved_run import load_run

ROOT = Path(__file__).resolve().parents[2]
HEADS = {
    "lstm": {"rnn": "lstm"},  # the demo's head (no feature standardisation)
    "transformer": {"head": "transformer"},  # a non-default head, standardised features
    # Unrolled, go_backwards; 3 frames: its 2 x 2 GRU layers unroll into a cell per frame.
    "bigru2": {"rnn": "gru", "layers": 2, "bidirectional": True, "frames": 3},
    "tcn": {"head": "tcn"},
    "attention": {"head": "attention"},
}
"""The head of each run."""
AGREEMENT = [
    *(("lstm", fmt) for fmt in FORMATS),
    # Every other head through the strictest converter (no Erfc, no captured tensors).
    # Attention (MultiHeadAttention, LayerNormalization) through every converter is the
    # attentive-head run on a keras-hub encoder in test_hub_runs.py.
    *((head, "onnx") for head in ("transformer", "bigru2", "tcn", "attention")),
]
"""(run, format) pairs whose exports must predict what the run predicts."""


@pytest.fixture(scope="module")
def runs(tmp_path_factory, feature_run_files, eagerly):
    """``{"sample": dir, "videos": [6 videos], HEAD: run_dir for every HEADS name}``.

    The demo-like run (the shared feature run) reads all 6 cached frames; the
    others, trained here on the same cache, read 4 of them (bigru2 3).
    """
    from vidseq.sequence.config import TrainConfig
    from vidseq.sequence.train.training import train_sequence

    root = tmp_path_factory.mktemp("export")
    sample, cache, run = feature_run_files
    out = {"sample": sample, "videos": sorted(str(p) for p in sample.glob("*/*.avi"))[:6]}
    out["lstm"] = run
    flat = {"units": 8, "epochs": 1, "batch_size": 4, "patience": 0, "frames": 4}
    with eagerly():
        for name in ("transformer", "bigru2", "tcn", "attention"):
            config = TrainConfig.from_dict({**flat, **HEADS[name]})
            out[name] = train_sequence(cache, root / name, config, verbose=0).run_dir
    return out


@pytest.fixture(scope="module")
def exports(runs, tmp_path_factory):
    """Returns ``get(run_name, format) -> export dir``, exporting each pair once.

    The demo-like run's ONNX export is written by ``vidseq export`` (what the command
    printed is ``get.printed``), every other one by ``export_run``.
    """
    root = tmp_path_factory.mktemp("exports")
    made = {}

    def get(name, fmt):
        for module in FORMATS[fmt].modules:  # the format's extra (all in vidseq[test])
            pytest.importorskip(module)
        if (name, fmt) not in made:
            out = root / f"{name}-{fmt}"
            if (name, fmt) == ("lstm", "onnx"):
                printed = io.StringIO()
                with contextlib.redirect_stdout(printed):
                    code = main(["export", str(runs[name]), "--format", fmt, "--out", str(out)])
                assert code == 0
                get.printed = printed.getvalue()
                made[name, fmt] = out
            else:
                made[name, fmt] = export_run(runs[name], out, format=fmt).directory
        return made[name, fmt]

    return get


@pytest.fixture(scope="module")
def expected(runs):
    """Returns ``get(run_name) -> (N, C)`` probabilities of ``predict_videos`` on the run."""
    from vidseq.sequence.runs.run_dir import read_run_config

    made = {}

    def get(name):
        if name not in made:
            names = read_run_config(runs[name])["class_names"]
            predictions = predict_videos(runs[name], runs["videos"], top_k=len(names))
            made[name] = _probabilities(predictions, names)
        return made[name]

    return get


def _probabilities(predictions, class_names):
    assert all(p.error is None for p in predictions)
    return np.array([[dict(p.top)[c] for c in class_names] for p in predictions])


@pytest.mark.parametrize(("head", "fmt"), AGREEMENT)
@pytest.mark.slow
def test_export_predicts_what_the_run_predicts(runs, exports, expected, head, fmt):
    directory = exports(head, fmt)
    names = read_manifest(directory).class_names
    got = predict_export(directory, runs["videos"], top_k=len(names))
    np.testing.assert_allclose(_probabilities(got, names), expected(head), rtol=0, atol=1e-4)


@pytest.mark.slow
def test_manifest_describes_the_run_and_its_inputs(runs, exports):
    from vidseq.sequence.runs.run_dir import read_run_config

    manifest = json.loads((exports("lstm", "onnx") / MANIFEST_FILE).read_text())
    config = read_run_config(runs["lstm"])
    assert manifest["kind"] == "vidseq-export" and manifest["manifest_version"] == 1
    assert manifest["format"] == "onnx" and manifest["part"] == "end-to-end"
    assert manifest["class_names"] == ["Grow", "Shrink"]
    assert manifest["frame_spec"] == {**config["sampling"], "crop": "resize"}
    assert manifest["frames"] == 6 and manifest["input_size"] == [32, 32]
    assert manifest["inputs"] == [
        {"name": "frames", "shape": [None, 6, 32, 32, 3], "dtype": "uint8"}
    ]
    assert manifest["outputs"] == [
        {"name": "probabilities", "shape": [None, 2], "dtype": "float32"}
    ]
    assert manifest["backbone"]["name"] == "tiny"
    assert manifest["backbone"]["weights_sha256"] == config["weights_sha256"]
    assert manifest["source_run"] == str(Path(runs["lstm"]).resolve())


@pytest.mark.slow
def test_exported_graph_has_no_loop_and_no_cudnn_op(exports):
    """The RNN is unrolled and cuDNN-free: a graph any runtime (and a CPU) can run."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    pb = exports("bigru2", "savedmodel") / "saved_model" / "saved_model.pb"
    saved.ParseFromString(pb.read_bytes())
    graph = saved.meta_graphs[0].graph_def
    ops = {n.op for n in graph.node}
    ops |= {n.op for f in graph.library.function for n in f.node_def}
    assert not {op for op in ops if "While" in op or "TensorList" in op or "Cudnn" in op}
    assert "MatMul" in ops


@pytest.mark.slow
def test_a_savedmodel_stores_each_weight_once(runs, exports):
    """No more values than the end-to-end model has weights (Keras' ExportArchive, which
    vidseq no longer uses, stored each one twice)."""
    import tensorflow as tf

    path = exports("lstm", "savedmodel") / "saved_model" / "variables" / "variables"
    shapes = tf.train.load_checkpoint(str(path)).get_variable_to_shape_map()
    stored = sum(int(np.prod(shape)) for key, shape in shapes.items() if "VARIABLE_VALUE" in key)
    weights = build_export_model(load_run(runs["lstm"]), "end-to-end").count_params()
    assert weights * 0.9 < stored <= weights


@pytest.mark.slow
def test_head_export_reads_features_and_mask(runs, tmp_path, capsys):
    from vidseq.cache.store import FeatureStore
    from vidseq.sequence.data.temporal import prepare_clip

    run = load_run(runs["bigru2"])
    result = export_run(runs["bigru2"], tmp_path / "head", format="onnx", part="head", batch=3)
    assert [t.name for t in result.manifest.inputs] == ["features", "mask"]
    assert result.manifest.inputs[0].shape == (3, 3, run.config["feature_dim"])
    with FeatureStore(run.config["cache_path"]) as store:
        rows = [prepare_clip(store.features(i), int(store.num_valid[i]), 3) for i in range(5)]
    features = np.stack(rows)
    features[1, 2:] = 7.0  # garbage after a video's 2 real rows: the mask must hide it
    mask = np.ones((5, 3), np.float32)
    mask[1, 2:] = 0.0
    clean = features.copy()
    clean[1, 2:] = 0.0
    got = ExportedModel(result.directory).predict(features, mask)  # 5 rows: batches of 3
    np.testing.assert_allclose(got, run.model.predict(clean, verbose=0), rtol=0, atol=1e-5)
    assert main(["predict", str(result.directory), runs["videos"][0]]) == 2
    assert "reads features, not videos" in capsys.readouterr().err


@pytest.mark.slow
def test_fixed_batch_export_predicts_any_number_of_videos(runs, expected, tmp_path):
    directory = export_run(runs["lstm"], tmp_path / "b2", format="litert", batch=4).directory
    assert read_manifest(directory).inputs[0].shape[0] == 4
    got = predict_export(directory, runs["videos"], top_k=2)  # 6 videos: 4 + 2 padded
    np.testing.assert_allclose(_probabilities(got, ["Grow", "Shrink"]), expected("lstm"), atol=1e-4)


@pytest.mark.slow
def test_predict_on_an_export_prints_no_runtime_log_line(runs, exports, capfd):
    for fmt in ("litert", "openvino", "onnx"):  # LiteRT logs its CPU delegate per interpreter
        assert main(["predict", str(exports("lstm", fmt)), runs["videos"][0]]) == 0
        captured = capfd.readouterr()
        assert captured.err == "", (fmt, captured.err)
        assert len(captured.out.splitlines()) == 1, (fmt, captured.out)


@pytest.mark.slow
def test_cli_export_then_predict_on_the_export(runs, exports, capsys):
    out = exports("lstm", "onnx")  # written by `vidseq export`
    assert f"onnx export (end-to-end) written to {out}" in exports.printed
    assert main(["predict", str(out), *runs["videos"][:2], "--json", "--top-k", "1"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["video"] for r in rows] == runs["videos"][:2] and len(rows[0]["top"]) == 1


# ---------------------------------------------------------------------- refused with exit 2


def _fails_with_one_line(argv, capsys, *words):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err
    return err


@pytest.mark.slow
def test_export_refuses_a_run_without_a_model_and_an_occupied_out(runs, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(runs["lstm"] / "config.json", run)
    out = str(tmp_path / "x")
    _fails_with_one_line(
        ["export", str(run), "--format", "onnx", "--out", out], capsys, "model.keras"
    )
    assert not Path(out).exists()
    _fails_with_one_line(
        ["export", str(runs["lstm"]), "--format", "onnx", "--out", str(runs["sample"])],
        capsys,
        "not an empty directory",
    )
    with pytest.raises(SystemExit) as exit_info:  # argparse: unknown format
        main(["export", str(runs["lstm"]), "--format", "tensorrt", "--out", out])
    assert exit_info.value.code == 2


@pytest.mark.slow
def test_missing_extra_names_the_pip_install(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # as if it were not installed
    argv = ["export", str(runs["lstm"]), "--format", "onnx", "--out", str(tmp_path / "x")]
    _fails_with_one_line(argv, capsys, "tf2onnx", "pip install 'vidseq[onnx]'")
    with pytest.raises(Exception, match="vidseq"):
        check_format_available("onnx")


def _corrupt(directory, how):
    manifest = directory / MANIFEST_FILE
    data = json.loads(manifest.read_text())
    if how == "not json":
        manifest.write_text("{not json")
    elif how == "foreign":
        manifest.write_text(json.dumps({"kind": "something-else", "format": "onnx"}))
    elif how == "newer":
        manifest.write_text(json.dumps({**data, "manifest_version": 99}))
    elif how == "malformed":
        manifest.write_text(json.dumps({**data, "frame_spec": {"crop": "stretch"}}))
    elif how == "a billion frames":
        manifest.write_text(json.dumps({**data, "frames": 1_000_000_000}))
    elif how == "more class names":
        manifest.write_text(json.dumps({**data, "class_names": [*data["class_names"], "extra"]}))
    elif how == "more class names and outputs":
        outputs = [{**data["outputs"][0], "shape": [None, len(data["class_names"]) + 1]}]
        names = [*data["class_names"], "extra"]
        manifest.write_text(json.dumps({**data, "class_names": names, "outputs": outputs}))
    elif how == "missing model":
        (directory / "model.onnx").unlink()
    elif how == "truncated model":
        path = directory / "model.onnx"
        path.write_bytes(path.read_bytes()[:1000])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("how", "words"),
    [
        ("not json", ["corrupt export manifest"]),
        ("foreign", ["not a vidseq export manifest"]),
        ("newer", ["manifest version 99 is newer", "upgrade vidseq"]),
        ("malformed", ["crop"]),
        ("a billion frames", ["frames must be an integer between 1 and 4096"]),
        ("more class names", ["names 3 classes but its output has 2"]),
        ("more class names and outputs", ["output has shape", "names 3 classes"]),
        ("missing model", ["model.onnx is missing"]),
        ("truncated model", ["cannot load the onnx model"]),
    ],
)
def test_predict_refuses_a_corrupt_or_foreign_export(runs, exports, tmp_path, capsys, how, words):
    directory = tmp_path / "bad"
    shutil.copytree(exports("lstm", "onnx"), directory)
    _corrupt(directory, how)
    _fails_with_one_line(["predict", str(directory), runs["videos"][0]], capsys, *words)


# ---------------------------------------------------------------------- docs/export.md


def _recipes():
    """The python blocks of docs/export.md, by the format their first line exports."""
    text = (ROOT / "docs" / "export.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    return [(re.search(r"--format (\w+)", b.splitlines()[0]).group(1), b) for b in blocks]


RECIPES = _recipes()


def test_docs_have_a_recipe_per_format():
    assert sorted({fmt for fmt, _ in RECIPES}) == sorted(FORMATS)


RUN_RECIPES = """
import sys
import numpy as np
for i, code in enumerate(sys.argv[1:]):
    scope = {}
    exec(code, scope)
    if "probabilities" in scope:
        np.save(f"probabilities-{i}.npy", scope["probabilities"])
assert not [m for m in sys.modules if m.startswith("vidseq")], "a recipe imported vidseq"
"""


@pytest.mark.slow
def test_docs_recipes_run_without_vidseq(runs, exports, tmp_path):
    """Every recipe, in one fresh process (one TensorFlow import) that never imports vidseq."""
    clips = {}
    for i, (fmt, _) in enumerate(RECIPES):
        work = tmp_path / str(i)
        work.mkdir()
        directory = exports("lstm", fmt)
        (work / "my-export").symlink_to(directory)
        manifest = read_manifest(directory)
        clips[i] = np.stack([read_export_clip(manifest, v) for v in runs["videos"][i : i + 3]])
        np.save(work / "clips.npy", clips[i])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    codes = [
        f"import os\nos.chdir({str(tmp_path / str(i))!r})\n{code}"
        for i, (_, code) in enumerate(RECIPES)
    ]
    done = subprocess.run(
        [sys.executable, "-c", RUN_RECIPES, *codes],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for i, (fmt, _) in enumerate(RECIPES):
        work = tmp_path / str(i)
        expected = ExportedModel(exports("lstm", fmt)).predict(clips[i])
        if (work / "request.json").exists():  # the TF Serving body, fed as TF Serving does
            got = _serve_rest_body(exports("lstm", fmt), work / "request.json")
        else:
            got = np.load(work / f"probabilities-{i}.npy")
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def _serve_rest_body(directory, request):
    import tensorflow as tf

    body = json.loads(request.read_text())
    loaded = tf.saved_model.load(str(directory / "saved_model"))
    signature = loaded.signatures[body["signature_name"]]
    inputs = {k: tf.constant(v, dtype=tf.uint8) for k, v in body["inputs"].items()}
    return signature(**inputs)["probabilities"].numpy()


@pytest.mark.slow
@pytest.mark.parametrize(
    "fmt", ["litert", "openvino", pytest.param("onnx", marks=pytest.mark.slow)]
)
def test_an_op_the_converter_lacks_is_one_line_naming_op_and_format(fmt, tmp_path):
    """A head computing TensorFlow's Igamma, which neither LiteRT's builtins, OpenVINO's
    TensorFlow frontend nor tf2onnx convert."""
    pytest.importorskip({"onnx": "tf2onnx", "openvino": "openvino"}.get(fmt, "tensorflow"))
    import keras
    import tensorflow as tf

    class Igamma(keras.layers.Layer):
        def call(self, x):
            return tf.math.igamma(tf.abs(x) + 1.0, tf.abs(x) + 1.0)

    features, mask = keras.Input((4, 8)), keras.Input((4,))
    scores = keras.layers.Flatten()(Igamma()(features))
    model = keras.Model([features, mask], keras.layers.Softmax()(scores))
    with pytest.raises(UsageError) as refused:
        write_model_files(model, tmp_path, fmt)
    message = str(refused.value)
    assert message.startswith(f"the {fmt} format cannot take op Igamma") and "\n" not in message


class _PassThatFailsInPlace:
    """A tf2onnx optimizer pass that raises when tf2onnx applies passes in place."""

    settings: ClassVar[list] = []
    graph_been_opt = False

    def optimize(self, graph, iteration):
        setting = os.environ.get("TF2ONNX_CATCH_ERRORS")
        self.settings.append(setting)
        if setting == "FALSE":
            raise RuntimeError("an optimizer pass that fails")
        return graph


@pytest.mark.slow
def test_an_onnx_optimizer_pass_that_fails_in_place_is_retried_as_tf2onnx_does(
    tmp_path, monkeypatch
):
    """Passes run in place first; a pass that raises there gets tf2onnx's default run,
    which skips it, and the export still predicts what the model does."""
    optimizer = pytest.importorskip("tf2onnx.optimizer")
    onnxruntime = pytest.importorskip("onnxruntime")
    import keras

    monkeypatch.delenv("TF2ONNX_CATCH_ERRORS", raising=False)
    monkeypatch.setitem(optimizer._optimizers, "fails_in_place", _PassThatFailsInPlace)
    monkeypatch.setattr(_PassThatFailsInPlace, "settings", [])
    features, mask = keras.Input((4, 8), name="features"), keras.Input((4,), name="mask")
    pooled = keras.layers.GlobalAveragePooling1D()(features)
    model = keras.Model([features, mask], keras.layers.Dense(3, activation="softmax")(pooled))
    write_model_files(model, tmp_path, "onnx")
    settings = _PassThatFailsInPlace.settings
    assert settings[0] == "FALSE" and set(settings[1:]) == {None}
    assert "TF2ONNX_CATCH_ERRORS" not in os.environ
    x = np.random.default_rng(0).normal(size=(2, 4, 8)).astype(np.float32)
    m = np.ones((2, 4), np.float32)
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    feeds = dict(zip([i.name for i in session.get_inputs()], (x, m), strict=True))
    got = session.run(None, feeds)[0]
    np.testing.assert_allclose(got, model.predict([x, m], verbose=0), rtol=0, atol=1e-6)
