"""Benchmark: what a run's per-epoch checkpoint costs, as a .keras archive and as values.

For each head, a compiled model (the default options, built for ``--dim``
features over ``--frames`` rows, its Adam state built by one training step)
is checkpointed ``--repeats`` times each way, the ways in turn inside each
repeat:

* ``.keras`` archive: ``model.save`` (what runs wrote per epoch before);
* values: ``checkpoint.save_values`` with the optimizer (what runs write now);
* best weights as ``.weights.h5`` (``model.save_weights``, before) and as
  values without the optimizer (now).

The median milliseconds and the ratio archive/values are printed, never
asserted. Usage::

    python bench/checkpoint_cost.py [--dim 2048] [--frames 16] [--repeats 30]
        [--heads lstm,transformer]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def trained_head(head, dim, frames):
    """A compiled head with its optimizer state built by one step."""
    import numpy as np

    from vidseq.sequence.config import FitConfig, HeadConfig
    from vidseq.sequence.train.loop import compile_classifier
    from vidseq.sequence.train.model import build_head

    model = build_head(101, dim, HeadConfig(head=head), num_frames=frames)
    compile_classifier(model, FitConfig(lr=1e-3))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, frames, dim)).astype(np.float32)
    model.train_on_batch(x, np.eye(101, dtype=np.float32)[:4])
    return model


def writes(model, folder):
    """The four ways to checkpoint ``model`` into ``folder``, as calls."""
    from vidseq.sequence.train import checkpoint

    return [
        lambda: model.save(folder / "epoch.keras"),
        lambda: checkpoint.save_values(folder / "epoch.npz", model, optimizer=True),
        lambda: model.save_weights(folder / "best.weights.h5"),
        lambda: checkpoint.save_values(folder / "best.npz", model, optimizer=False),
    ]


def median_ms(writes, repeats):
    """Median milliseconds of each of ``writes``, called in turn inside every repeat.

    Interleaving keeps a load change on the (shared) machine from favouring one.
    """
    for write in writes:  # warm-up
        write()
    times = [[] for _ in writes]
    for _ in range(repeats):
        for write, spent in zip(writes, times, strict=True):
            start = time.perf_counter()
            write()
            spent.append(time.perf_counter() - start)
    return [1000 * statistics.median(spent) for spent in times]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=2048, help="feature size (ResNet50: 2048)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--heads", default="lstm,transformer")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the bench runs")
    args = parser.parse_args(argv)
    if args.smoke:  # a few seconds; its figures mean nothing
        args.dim, args.frames, args.repeats, args.heads = 16, 4, 2, "lstm"

    print(
        f"{'head':<12} {'params':>9} {'.keras':>8} {'values':>8} {'ratio':>6}"
        f" {'best .h5':>9} {'best values':>12} {'ratio':>6}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for head in args.heads.split(","):
            model = trained_head(head, args.dim, args.frames)
            archive, values, best_h5, best_values = median_ms(writes(model, tmp), args.repeats)
            print(
                f"{head:<12} {model.count_params():>9,} {archive:>7.1f}ms {values:>7.1f}ms "
                f"{archive / values:>5.1f}x {best_h5:>8.1f}ms {best_values:>11.1f}ms "
                f"{best_h5 / best_values:>5.1f}x"
            )


if __name__ == "__main__":
    main()
