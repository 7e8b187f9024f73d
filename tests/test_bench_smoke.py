"""Every benchmark under bench/ runs at its ``--smoke`` size, so that none can rot unnoticed.

The benches run in this process, one after another (TensorFlow is imported once);
their figures are not looked at, only that each runs to its end. Together they take
4 to 5 minutes (some measure peak memory or start-up in child processes), more than
the suite's budget, so the test runs when ``VIDSEQ_BENCH_SMOKE=1``::

    VIDSEQ_BENCH_SMOKE=1 python -m pytest -q -n 0 tests/test_bench_smoke.py
"""

import contextlib
import importlib.util
import io
import os
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "bench"
BENCHES = sorted(BENCH.glob("*.py"))


def _bench_main(path):
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("VIDSEQ_BENCH_SMOKE") != "1", reason="set VIDSEQ_BENCH_SMOKE=1 to run"
)
def test_every_bench_runs_at_its_smoke_size(tmp_path):
    assert len(BENCHES) >= 14
    failed = {}
    for path in BENCHES:
        argv = ["--smoke"]
        if "--workdir" in path.read_text():  # keep what it writes under tmp_path
            argv += ["--workdir", str(tmp_path / path.stem)]
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                _bench_main(path)(argv)
        except (Exception, SystemExit) as error:  # a bench's SystemExit counts too
            failed[path.name] = f"{type(error).__name__}: {error}"
        else:
            assert out.getvalue().strip(), f"{path.name} printed nothing"
    assert failed == {}
