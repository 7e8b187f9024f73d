"""Rules 1 and 5 of docs/reliability.md: outputs never clobber inputs or files they did not make.

Every command that writes is run in-process through ``cli.main`` against real
files (sample videos, a tiny-CNN run, its cache, a CSV manifest), including
paths that reach an input through a symlink or a hard link. A refused command
exits 2 with one line on stderr and leaves every input byte for byte.
"""

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vidseq.cache.store import FeatureStore
from vidseq.cache.writer import CacheWriter
from vidseq.cli import main
from vidseq.errors import CacheError
from vidseq.outputs import atomic_output


def tree(*roots):
    """{path: bytes, or 'link -> target'} of every file and symlink under the roots."""
    out = {}
    for root in map(Path, roots):
        paths = [root] if not root.is_dir() or root.is_symlink() else sorted(root.rglob("*"))
        for path in paths:
            if path.is_symlink():
                out[str(path)] = f"link -> {os.readlink(path)}"
            elif path.is_file():
                out[str(path)] = path.read_bytes()
    return out


def refused(argv, capsys):
    """Runs the command line; asserts exit 2 and one line; returns that line."""
    code = main([str(a) for a in argv])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("vidseq: error: "), lines
    return lines[0]


@pytest.fixture(scope="module")
def world(feature_run_files, tmp_path_factory):
    """A private copy of the shared run, a video, a manifest, and links to them."""
    sample, cache, shared_run = feature_run_files
    root = tmp_path_factory.mktemp("outputs")
    run = root / "run"
    shutil.copytree(shared_run, run)
    video = root / "clip.avi"
    shutil.copy(next(Path(sample).glob("Grow/*.avi")), video)
    manifest = root / "list.csv"
    rows = [f"{p},{p.parent.name}" for p in sorted(Path(sample).glob("*/*.avi"))]
    manifest.write_text("path,label\n" + "\n".join(rows) + "\n")
    os.symlink(video, root / "clip-link.avi")
    os.link(video, root / "clip-hard.avi")
    os.symlink(manifest, root / "list-link.csv")
    os.symlink(run, root / "run-link")
    return {"root": root, "run": run, "video": video, "manifest": manifest, "cache": cache}


WINDOW = ("--window", "1")


@pytest.mark.parametrize("name", ["clip.avi", "clip-link.avi", "clip-hard.avi"])
def test_predict_never_writes_its_csv_or_plot_over_an_input_video(world, name, capsys):
    before = tree(world["root"])
    out = world["root"] / name
    for flag in ("--csv", "--plot"):
        line = refused(["predict", world["run"], world["video"], *WINDOW, flag, out], capsys)
        assert f"{flag} must not be one of the command's own inputs" in line
        line = refused(
            ["predict", world["run"], world["video"], *WINDOW, flag, out, "--overwrite"], capsys
        )
    assert tree(world["root"]) == before


def test_predict_never_writes_into_the_run_it_reads(world, capsys):
    before = tree(world["root"])
    for target in (world["run"] / "confusion_matrix.png", world["root"] / "run-link/config.json"):
        for extra in ([], ["--overwrite"]):
            line = refused(
                ["predict", world["run"], world["video"], *WINDOW, "--plot", target, *extra],
                capsys,
            )
            assert "must not be a file of the input" in line
    assert tree(world["root"]) == before


def test_predict_csv_needs_overwrite_to_replace_a_file_and_refuses_a_folder(world, capsys):
    other = world["root"] / "notes.csv"
    other.write_text("keep me\n")
    line = refused(["predict", world["run"], world["video"], *WINDOW, "--csv", other], capsys)
    assert "--csv must be a new path, and it exists" in line and "--overwrite" in line
    assert other.read_text() == "keep me\n"
    folder = world["root"] / "folder"
    folder.mkdir()
    line = refused(["predict", world["run"], world["video"], *WINDOW, "--csv", folder], capsys)
    assert "--csv must name a file, not a folder" in line
    argv = ["predict", world["run"], world["video"], *WINDOW, "--csv", other, "--overwrite"]
    assert main([str(a) for a in argv]) == 0
    assert other.read_text().startswith("path,start,end,label")
    assert not [p for p in world["root"].iterdir() if p.name.startswith(".notes.csv.")]


@pytest.mark.parametrize("name", ["list.csv", "list-link.csv"])
def test_extract_features_never_writes_over_its_manifest(world, name, capsys):
    before = tree(world["root"])
    out = world["root"] / name
    line = refused(["extract-features", world["manifest"], "--out", out, "--overwrite"], capsys)
    assert "--out must not be one of the command's own inputs" in line
    assert tree(world["root"]) == before


def test_extract_features_refuses_a_folder_out_before_extracting(world, capsys):
    folder = world["root"] / "out-folder"
    folder.mkdir(exist_ok=True)
    line = refused(["extract-features", world["manifest"], "--out", folder, "--overwrite"], capsys)
    assert "--out must name a cache file, not a folder" in line
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("out", ["run", "run-link"])
def test_finetune_never_replaces_its_source_run(world, out, capsys):
    before = tree(world["root"])
    line = refused(
        ["finetune", world["run"], "--out", world["root"] / out, "--overwrite", "--epochs", "1"],
        capsys,
    )
    assert "--out must not be one of the command's own inputs" in line
    assert tree(world["root"]) == before


def test_cache_merge_refuses_an_output_that_is_a_hard_link_to_an_input(world, capsys):
    cache = world["root"] / "features.h5"
    shutil.copy(world["cache"], cache)
    os.link(cache, world["root"] / "features-hard.h5")
    before = tree(world["root"])
    line = refused(
        ["cache", "merge", world["root"] / "features-hard.h5", cache, "--overwrite"], capsys
    )
    assert "is also an input" in line
    assert tree(world["root"]) == before


def test_evaluate_of_another_split_goes_to_its_own_folder(world, capsys):
    run = world["run"]
    own = tree(
        run / "metrics.json", run / "classification_report.txt", run / "confusion_matrix.png"
    )
    assert main(["evaluate", str(run), "--split", "train"]) == 0
    assert tree(*map(Path, own)) == own  # the run's test report is untouched
    report = run / "eval-train"
    assert (report / "metrics.json").is_file() and (report / "confusion_matrix.png").is_file()
    assert '"split": "train"' in (report / "metrics.json").read_text()
    line = refused(["evaluate", run, "--split", "val", "--out", world["root"] / "run-link"], capsys)
    assert "--out must not be the run directory" in line
    assert tree(*map(Path, own)) == own


@pytest.mark.slow
def test_evaluate_out_never_replaces_a_report_file_without_overwrite(world, capsys):
    folder = world["root"] / "reports"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep\n")
    (folder / "metrics.json").write_text('{"mine": 1}\n')
    before = tree(folder, world["cache"])
    line = refused(["evaluate", world["run"], "--out", folder], capsys)
    assert "--out must not hold metrics.json already" in line and "--overwrite" in line
    line = refused(["evaluate", world["run"], "--out", world["cache"], "--overwrite"], capsys)
    assert "--out must be a folder; it is a file" in line
    assert tree(folder, world["cache"]) == before
    assert main(["evaluate", str(world["run"]), "--out", str(folder), "--overwrite"]) == 0
    assert (folder / "notes.txt").read_text() == "keep\n"  # not a report file: untouched
    assert '"accuracy"' in (folder / "metrics.json").read_text()
    assert (folder / "confusion_matrix.png").is_file()


def need_tensorboard():
    """Fails under CI without the tensorboard package (the test extra has it), else skips."""
    if importlib.util.find_spec("tensorboard") is None:
        if os.environ.get("CI"):
            pytest.fail("tensorboard is missing on CI: the test extra installs it")
        pytest.skip("the tensorboard package is not installed (pip install tensorboard)")


def test_tensorboard_never_mixes_two_runs_logs_nor_writes_inside_an_input(
    world, cache_factory, tmp_path, capsys
):
    """The layout, one DIR/RUN_NAME per run, is test_training's (a real training)."""
    need_tensorboard()
    cache = cache_factory(per_class={"train": 4, "val": 1, "test": 1})
    logs = tmp_path / "logs"
    (logs / "run" / "train").mkdir(parents=True)
    (logs / "run" / "train" / "events.out.tfevents.1.host.1.v2").write_bytes(b"earlier run's")
    before = tree(logs, world["run"], cache)
    train = ["train-sequence", cache, "--units", "8", "--epochs", "1", "--quiet"]
    for overwrite in ([], ["--overwrite"]):
        argv = [*train, "--out", tmp_path / "run", *overwrite, "--tensorboard", logs]
        line = refused(argv, capsys)
        assert "--tensorboard must not hold the logs of an earlier run named run" in line
    line = refused([*train, "--out", tmp_path / "other", "--tensorboard", cache], capsys)
    assert "--tensorboard must be a folder" in line
    finetune = ["finetune", world["run"], "--out", tmp_path / "tuned"]
    line = refused([*finetune, "--tensorboard", world["run"]], capsys)
    assert f"--tensorboard must not write inside the input {world['run']}" in line
    assert tree(logs, world["run"], cache) == before
    assert not {"run", "other", "tuned"} & {p.name for p in tmp_path.iterdir()}


def test_report_out_is_an_html_file_never_the_cache_its_page_reads(world, tmp_path, capsys):
    cache, run = tmp_path / "features.h5", tmp_path / "run"
    shutil.copy(world["cache"], cache)
    shutil.copytree(world["run"], run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "cache_path": str(cache)}))
    before = tree(tmp_path)
    for out in (cache, world["video"]):
        line = refused(["report", run, "--out", out, "--overwrite"], capsys)
        assert f"--out must name an .html file. Received: --out={out}" in line
    assert tree(tmp_path) == before


def test_demo_refuses_a_folder_holding_a_previous_demo(tmp_path, capsys):
    (tmp_path / "features.h5").write_bytes(b"an earlier demo's cache")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.keras").write_bytes(b"a trained model")
    before = tree(tmp_path)
    line = refused(["demo", "--workdir", tmp_path], capsys)
    assert (
        "--workdir must not hold a previous demo, and it holds features.h5, run" in line
        and "--overwrite" in line
    )
    assert tree(tmp_path) == before


def test_compare_refuses_a_non_empty_out(world, capsys):
    folder = world["root"] / "comparison"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep\n")
    line = refused(["compare", world["cache"], "--out", folder, "--heads", "pool"], capsys)
    assert "--out must be a new path, and it exists" in line
    assert (folder / "mine.txt").read_text() == "keep\n"


def test_a_cache_reached_through_a_symlink_is_locked_and_replaced_at_its_target(
    cache_factory, tmp_path
):
    real = tmp_path / "real.h5"
    link = tmp_path / "link.h5"
    os.symlink(real, link)
    source = cache_factory("source.h5", per_class={"train": 2, "test": 1})
    with FeatureStore(source) as store:
        meta = store.meta
    with CacheWriter(real, meta), pytest.raises(CacheError, match="another vidseq process"):
        CacheWriter(link, meta)  # the same file by another name: the lock sees it
    with CacheWriter(link, meta) as writer:
        writer.finalize()
    assert link.is_symlink() and os.readlink(link) == str(real) and real.is_file()


def test_a_failed_write_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "report.txt"
    path.write_text("old report\n")
    with pytest.raises(RuntimeError), atomic_output(path, "w") as file:
        file.write("half a new rep")
        raise RuntimeError("the disk went away")
    assert path.read_text() == "old report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.txt"]


def mount_tmpfs(path, options):
    """Mounts a tmpfs at ``path`` (root with CAP_SYS_ADMIN only); skips the test elsewhere."""
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    return path


@pytest.fixture
def small_disk(tmp_path):
    """A 100 KiB file system."""
    yield mount_tmpfs(tmp_path / "small", "size=100k")
    subprocess.run(["umount", str(tmp_path / "small")], check=True)


@pytest.fixture
def read_only(tmp_path):
    """A read-only file system (root cannot write there either)."""
    yield mount_tmpfs(tmp_path / "read-only", "ro,size=100k")
    subprocess.run(["umount", str(tmp_path / "read-only")], check=True)


def test_an_out_on_a_read_only_disk_is_refused_before_any_work(world, read_only, capsys):
    cases = [
        ["extract-features", world["manifest"], "--out", read_only / "f.h5"],
        ["predict", world["run"], world["video"], *WINDOW, "--csv", read_only / "w.csv"],
        ["compare", world["cache"], "--out", read_only / "cmp", "--heads", "pool"],
    ]
    for argv in cases:
        line = refused(argv, capsys)
        assert "must be in a writable folder; cannot write in" in line, line
    assert list(read_only.iterdir()) == []


def test_a_full_disk_during_training_is_one_line_that_says_resume(
    cache_factory, small_disk, capsys, eagerly
):
    cache = cache_factory(per_class={"train": 4, "val": 1, "test": 1})
    run = small_disk / "run"
    with eagerly():
        code = main(["train-sequence", str(cache), "--out", str(run), "--units", "64", "--quiet"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1, lines
    assert (
        lines[0].startswith(f"vidseq: error: {run}") and "no space left on the device" in lines[0]
    )
    assert "rerun the same command with --resume" in lines[0]


def test_a_symlink_loop_among_predicts_videos_fails_that_video_only(world, capsys):
    loop = world["root"] / "loop.avi"
    if not loop.is_symlink():
        loop.symlink_to(loop)
    code = main(["predict", str(world["run"]), str(loop), str(world["video"]), "--top-k", "1"])
    captured = capsys.readouterr()
    assert code == 3
    assert f"{world['video']}:" in captured.out  # the good video got its labels
    failed = [line for line in captured.err.splitlines() if line.startswith("failed: ")]
    assert failed == [f"failed: {loop}: cannot access it (Too many levels of symbolic links)"]


def test_no_opencv_warn_line_reaches_stderr(world, capfd):
    garbage = world["root"] / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(20_000))
    assert main(["predict", str(world["run"]), str(garbage)]) == 3
    err = capfd.readouterr().err
    assert "[ WARN" not in err and "failed: " in err
