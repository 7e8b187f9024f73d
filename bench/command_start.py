"""Benchmark: a command's TensorFlow start, with and without frozen imports, or per interpreter.

Every command that uses TensorFlow imports it through ``quiet_tensorflow``, under
:func:`vidseq.frozen_imports.frozen_imports`. This bench starts fresh interpreters
that import TensorFlow (and, unless ``--import-only``, then train a tiny Keras LSTM
for one epoch, as a command would go on to do) in two ways, alternated so that
both see the same machine:

* ``plain``: ``import tensorflow``;
* ``frozen``: the same import inside ``frozen_imports()``.

With ``--python`` given twice or more, the variants are those interpreters instead
(the ``python`` of venvs where vidseq is installed), each starting as a command
does (``frozen``): how much the interpreter's build (PGO, LTO, a shared or static
libpython) moves a command's start.

It prints the median CPU seconds (user + sys of the child) and wall seconds of
each, and each one's ratio to the first. Figures are printed, never asserted. Usage::

    python bench/command_start.py [--repeats 5] [--import-only]
    python bench/command_start.py --python VENV1/bin/python --python VENV2/bin/python
    python bench/command_start.py --smoke   # one start each: the bench runs, figures mean nothing
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decode_planner import children_cpu

SMOKE_HELP = "one start of each, import only: proves the bench runs (its figures mean nothing)"

IMPORTS = {
    "plain": "import tensorflow",
    "frozen": (
        "from vidseq.frozen_imports import frozen_imports\n"
        "with frozen_imports():\n"
        "    import tensorflow"
    ),
}

WORK = textwrap.dedent(
    """
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 64)), keras.layers.LSTM(32), keras.layers.Dense(5)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).standard_normal((256, 16, 64)).astype("float32")
    model.fit(x, np.arange(256) % 5, batch_size=32, epochs=1, verbose=0)
    """
)


def start_once(python: str, code: str) -> tuple[float, float]:
    """``(cpu_seconds, wall_seconds)`` of one fresh ``python`` running ``code``."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cpu, wall = children_cpu(), time.perf_counter()
    subprocess.run([python, "-c", code], check=True, env=env, stderr=subprocess.DEVNULL)
    return children_cpu() - cpu, time.perf_counter() - wall


def variants(pythons: list[str] | None) -> dict[str, tuple[str, str]]:
    """``{name: (interpreter, imports)}``: plain and frozen here, or each of ``pythons``."""
    if not pythons:
        return {name: (sys.executable, imports) for name, imports in IMPORTS.items()}
    if len(set(pythons)) < 2:
        raise SystemExit(f"--python must name two interpreters or more. Received: {pythons}")
    return {python: (python, IMPORTS["frozen"]) for python in pythons}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="starts of each variant")
    parser.add_argument("--import-only", action="store_true", help="no training after import")
    parser.add_argument(
        "--python",
        action="append",
        metavar="PATH",
        help="compare these interpreters (twice or more), each starting frozen",
    )
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args(argv)
    repeats, import_only = (1, True) if args.smoke else (args.repeats, args.import_only)
    starts = variants(args.python)
    times = {name: [] for name in starts}
    for _ in range(repeats):
        for name, (python, imports) in starts.items():  # alternated: all see the same machine
            code = imports if import_only else f"{imports}\n{WORK}"
            times[name].append(start_once(python, code))
    what = "import tensorflow" if import_only else "import tensorflow, then a 1-epoch LSTM fit"
    print(f"{what}: median of {repeats} fresh interpreter(s) each")
    medians = {
        name: [statistics.median(column) for column in zip(*runs, strict=True)]
        for name, runs in times.items()
    }
    first = next(iter(medians.values()))
    width = max(map(len, medians))
    for name, (cpu, wall) in medians.items():
        print(
            f"  {name:<{width}} {cpu:6.2f} s CPU  {wall:6.2f} s wall  "
            f"({cpu / first[0]:.2f}x CPU, {wall / first[1]:.2f}x wall of the first)"
        )


if __name__ == "__main__":
    main()
