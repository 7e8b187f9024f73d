"""vidseq compare: heads on the same splits and seeds, the baseline, the files, a failing head."""

import json

import pytest

from vidseq.cli import main
from vidseq.errors import UsageError
from vidseq.sequence.config import TrainConfig
from vidseq.sequence.studies.compare import compare

TINY = ("--epochs", "1", "--units", "8", "--batch-size", "16", "--quiet")


@pytest.mark.slow
def test_cli_compares_heads_and_a_failing_head_exits_3(cache_factory, tmp_path, capsys):
    cache = cache_factory(per_class={"train": 6, "val": 2, "test": 3})
    out = tmp_path / "cmp"
    # A file where pool's first run directory must go: that head fails, tcn still runs.
    (out / "runs").mkdir(parents=True)
    (out / "runs" / "pool-seed0").write_text("in the way")
    argv = ["compare", str(cache), "--out", str(out), "--heads", "tcn,pool", "--seeds", "0,1"]
    assert main([*argv, *TINY, "--json"]) == 2  # a non-empty --out: refused, nothing touched
    assert (out / "runs" / "pool-seed0").read_text() == "in the way"
    capsys.readouterr()
    assert main([*argv, *TINY, "--json", "--overwrite"]) == 3
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert printed["seeds"] == [0, 1]
    assert len(printed["accuracies"]["tcn"]) == 2 and printed["accuracies"]["pool"] == []
    assert len(printed["accuracies"]["bag-of-frames"]) == 2
    assert "failed: pool: seed 0" in captured.err

    saved = json.loads((out / "comparison.json").read_text())
    tcn = saved["heads"]["tcn"]
    for seed, accuracy in zip((0, 1), tcn["accuracies"], strict=True):
        metrics = json.loads((out / "runs" / f"tcn-seed{seed}" / "metrics.json").read_text())
        assert metrics["accuracy"] == accuracy
        run_config = json.loads((out / "runs" / f"tcn-seed{seed}" / "config.json").read_text())
        assert run_config["train"]["fit"]["seed"] == seed
        assert run_config["head"]["head"] == "tcn" and run_config["head"]["units"] == 8
    assert tcn["params"] > 0 and len(tcn["seconds"]) == 2 and tcn["error"] is None
    assert saved["heads"]["pool"]["error"].startswith("seed 0")
    table = (out / "comparison.md").read_text()
    assert "| tcn |" in table and "failed" in table and "bag-of-frames baseline" in table
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_python_api_result_and_refusals(cache_factory, tmp_path, capsys):
    cache = cache_factory(per_class={"train": 6, "val": 2, "test": 3})
    config = TrainConfig.from_dict({"epochs": 1, "units": 8}, strict=True)
    result = compare(cache, tmp_path / "api", heads=["pool"], seeds=[3], config=config)
    assert not result.failed and result.seeds == [3]
    assert "pool" in result.summary() and "bag-of-frames" in result.summary()
    as_dict = json.loads(json.dumps(result.to_dict()))
    assert as_dict["heads"]["pool"]["accuracies"] == result.accuracies()["pool"]
    assert as_dict["baseline"]["accuracies"] == result.baseline

    with pytest.raises(UsageError, match=r"Received: head='cnn'"):
        compare(cache, tmp_path / "bad", heads=["lstm", "cnn"])
    assert main(["compare", str(cache), "--out", str(tmp_path / "x"), "--seeds", "0,a"]) == 2
    assert "seeds must be integers" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists() and not (tmp_path / "x").exists()
