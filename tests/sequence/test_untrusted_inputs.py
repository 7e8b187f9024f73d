"""Rule 8 of docs/reliability.md: Hypothesis over every input vidseq does not control.

A run's ``config.json``, an export manifest, a cache's root attributes and
tables, and the flag values of every command are generated; each generated
input must end in exit 0, 1, 2 or 3, with one line on stderr when it fails
(never a traceback), within a memory bound, leaving every input byte for byte.

Commands run in-process through ``cli.main`` (a subprocess would pay a
TensorFlow start-up per example). Profiles: ``ci`` (the default: derandomized,
a few examples per test, the whole file about 20 s of CPU) and ``thorough``
(``HYPOTHESIS_PROFILE=thorough``: hundreds of random examples).
"""

import contextlib
import hashlib
import io
import json
import os
import resource
import shutil
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vidseq.cli import build_parser, main
from vidseq.extract.params import command_parsers
from vidseq.sequence.export.manifest import ExportManifest, TensorInfo, write_manifest
from vidseq.sequence.runs.saved_run import load_run

COMMON = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
}
settings.register_profile("ci", derandomize=True, max_examples=5, **COMMON)
settings.register_profile("thorough", max_examples=300, **COMMON)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
EXAMPLES = PROFILE.max_examples
MEMORY_BOUND_KB = 2 * 1024 * 1024  # growth of the peak resident size, per example

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, -1, 1, 2, 10**9, 2**63, 1e9, 0.5, -0.0]),
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    st.text(max_size=8),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


def digest(*roots):
    """{path: sha256} of every file under the roots."""
    out = {}
    for root in map(Path, roots):
        for path in [root] if root.is_file() else sorted(root.rglob("*")):
            if path.is_file():
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def run_command(argv):
    """``(exit code, stderr lines)`` of the command line, in-process; checks the rule."""
    err = io.StringIO()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit_:  # argparse
            code = exit_.code
    lines = err.getvalue().strip().splitlines()
    assert code in (0, 1, 2, 3), (argv, code, lines)
    assert "Traceback" not in err.getvalue(), (argv, lines)
    if code in (1, 2):
        assert len(lines) == 1 and lines[0].startswith("vidseq"), (argv, lines)
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert growth < MEMORY_BOUND_KB, (argv, growth)
    return code, lines


@pytest.fixture(scope="module")
def files(feature_run_files, tmp_path_factory):
    """The shared run, cache and a video; a checked digest of them after the module."""
    sample, cache, run = map(Path, feature_run_files)
    video = sorted(sample.glob("*/*.avi"))[0]
    before = digest(sample, cache, run)
    yield {"sample": sample, "cache": cache, "run": run, "video": video}
    assert digest(sample, cache, run) == before


def mutate(data, path, value):
    """``data`` with the key at ``path`` (a tuple) set to ``value`` (deleted if value is ...)."""
    *parents, last = path
    node = data
    for key in parents:
        node = node[key]
    if value is ...:
        node.pop(last, None)
    else:
        node[last] = value
    return data


def paths_of(data, prefix=()):
    """Every key path of a JSON dict, nested dicts included."""
    out = []
    for key, value in data.items():
        out.append((*prefix, key))
        if isinstance(value, dict):
            out += paths_of(value, (*prefix, key))
    return out


def written(path, data):
    Path(path).write_text(json.dumps(data, allow_nan=True))
    return Path(path).read_bytes()


@pytest.mark.slow
@settings(PROFILE, max_examples=EXAMPLES)
@given(data=st.data())
def test_any_config_json_ends_in_an_exit_code_and_one_line(files, data):
    config = json.loads((files["run"] / "config.json").read_text())
    path = data.draw(st.sampled_from(paths_of(config)), label="key")
    value = data.draw(st.just(...) | JSON_VALUES, label="value")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(files["run"], run)
        text = written(run / "config.json", mutate(config, path, value))
        run_command(["predict", run, files["video"], "--top-k", "1"])
        assert (run / "config.json").read_bytes() == text


@pytest.fixture(scope="module")
def manifest(files):
    """The run's manifest as ``vidseq export`` fills it in (end-to-end, ONNX).

    No model is exported (seconds each): the model file beside it is not a model, so a
    manifest that passes every check ends in "cannot load the onnx model" (exit 2).
    """
    run = load_run(files["run"])
    config = run.config
    return ExportManifest(
        format="onnx",
        part="end-to-end",
        class_names=run.class_names,
        frame_spec=run.frame_spec,
        frames=run.frames,
        input_size=tuple(config["input_size"]),
        inputs=(TensorInfo("frames", (None, run.frames, *config["input_size"], 3), "uint8"),),
        outputs=(TensorInfo("probabilities", (None, len(run.class_names)), "float32"),),
        backbone={"name": config["backbone"], "weights": config["weights"]},
        source_run=str(files["run"]),
        vidseq_version="0",
    ).to_dict()


@settings(PROFILE, max_examples=EXAMPLES + 3)
@given(data=st.data())
def test_any_export_manifest_ends_in_an_exit_code_and_one_line(files, manifest, data):
    path = data.draw(st.sampled_from(paths_of(manifest)), label="key")
    value = data.draw(st.just(...) | JSON_VALUES, label="value")
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp)
        write_manifest(ExportManifest.from_dict(manifest), export)
        (export / "model.onnx").write_bytes(b"not an onnx model")
        text = written(
            export / "vidseq-export.json", mutate(json.loads(json.dumps(manifest)), path, value)
        )
        assert run_command(["predict", export, files["video"]])[0] == 2
        assert (export / "vidseq-export.json").read_bytes() == text


CACHE_ATTRS = [
    "schema_version",
    "feature_dim",
    "input_size",
    "sampling",
    "class_names",
    "backbone",
    "vidseq_format",
]
CACHE_TABLES = ["videos/label", "videos/length", "videos/num_valid", "videos/offset", "videos/fps"]
ATTR_VALUES = st.one_of(
    st.sampled_from([0, -1, 10**9, 2**62, 1.5, float("nan"), ""]),
    st.sampled_from(["{}", "[]", '{"num_frames": 1e9}', '["a"]', "not json", '{"mode": 5}']),
    st.lists(st.integers(-(2**31), 2**31), min_size=0, max_size=3).map(np.array),
)
TABLE_VALUES = st.sampled_from([-1, 0, 2**30, 2**31 - 1, 7])


@settings(PROFILE, max_examples=2 * EXAMPLES)
@given(data=st.data())
def test_any_cache_attribute_or_table_ends_in_an_exit_code_and_one_line(files, data):
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "features.h5"
        shutil.copy(files["cache"], cache)
        with h5py.File(cache, "r+") as f:
            if data.draw(st.booleans(), label="attribute"):
                name = data.draw(st.sampled_from(CACHE_ATTRS), label="name")
                f.attrs[name] = data.draw(ATTR_VALUES, label="value")
            else:
                name = data.draw(st.sampled_from(CACHE_TABLES), label="table")
                table = f[name][...]
                table[data.draw(st.integers(0, len(table) - 1), label="row")] = data.draw(
                    TABLE_VALUES, label="value"
                )
                f[name][...] = table
        before = cache.read_bytes()
        run_command(["cache", "merge", Path(tmp) / "merged.h5", cache])
        if run_command(["inspect", cache, "--json"])[0] == 0:  # it opens: train on it too
            run_command(["evaluate", files["run"], cache, "--out", Path(tmp) / "report"])
        assert cache.read_bytes() == before


VALUES = ["-1", "0", "1", "2", "nan", "inf", "-inf", "1e9", "abc", "", "9" * 30, "0.5"]
PATH_FLAGS = {"--out", "--workdir", "--tensorboard", "--csv", "--plot", "--report"}
PATH_FLAGS |= {"--storage", "--space", "--check-against"}


def base_arguments(command, files, tmp):
    """Arguments that make ``command`` cheap: outputs in ``tmp``, occupied where it trains."""
    occupied = tmp / "occupied"
    occupied.mkdir(exist_ok=True)
    (occupied / "keep.txt").write_text("not the command's\n")
    cache, run, video = files["cache"], files["run"], files["video"]
    return {
        "make-sample": [tmp / "s", "--videos-per-class", "1", "--classes", "Grow"],
        "extract-features": [
            *(files["sample"], "--out", tmp / "f.h5", "--frames", "6"),
            *("--input-size", "32", "--dtype", "float32", "--quiet"),
        ],
        "inspect": [cache],
        "cache merge": [tmp / "m.h5", cache],
        "train-sequence": [cache, "--out", occupied, "--epochs", "1", "--units", "4"],
        "compare": [cache, "--out", occupied, "--heads", "pool", "--seeds", "0"],
        "finetune": [run, "--out", occupied, "--epochs", "1"],
        "evaluate": [run, "--out", tmp / "report"],
        "predict": [run, video, "--top-k", "1"],
        "watch": [run, video, *("--window", "0.5", "--stride", "0.5", "--max-seconds", "0.5")],
        "export": [run, "--format", "savedmodel", "--out", occupied],
        "demo": ["--workdir", occupied],
        "report": [run, "--out", tmp / "page.html", "--max-videos", "1"],
        "tune": [cache, "--out", occupied, "--trials", "1"],
    }[command]


@contextlib.contextmanager
def working_directory(path):
    """Runs the block in ``path`` (a flag value such as ``nan`` may name a file there)."""
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def flags_of(command):
    """The flags ``command`` takes (from the parser), but those that name output paths."""
    argv = {"cache merge": ["cache", "merge", "o", "i"], "demo": ["demo"]}.get(command)
    argv = argv or [*command.split(), "x", "--out", "o", "--format", "onnx"]
    known = build_parser().parse_known_args(argv)[0].flags.values()  # {name: flag}
    extra = ["--overwrite"] if command == "cache merge" else []
    return sorted(set(known) - PATH_FLAGS) + extra


COMMANDS = list(command_parsers(build_parser()))  # every command, from the parser


FLAG_CHOICES = [(command, flag) for command in COMMANDS for flag in flags_of(command)]


@pytest.mark.slow
@settings(PROFILE, max_examples=2 * EXAMPLES)
@given(choice=st.sampled_from(FLAG_CHOICES), value=st.sampled_from(VALUES))
def test_any_flag_value_of_every_command_ends_in_an_exit_code_and_one_line(
    files, tmp_path, choice, value
):
    command, flag = choice
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp, working_directory(tmp):
        argv = [*command.split(), *base_arguments(command, files, Path(tmp))]
        mutated = [f"{flag}={value}"] if value.startswith("-") else [flag, value]
        run_command([*argv, *mutated])
