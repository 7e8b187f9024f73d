"""Are two runs' test accuracies apart? A paired comparison on the videos both evaluated.

Two runs evaluated on the same test split (their ``metrics.json``, which lists
every video's top prediction) are compared video by video: the accuracy
difference with a paired bootstrap 95% interval, and McNemar's exact test on
the videos where exactly one run is right. Each run's own accuracy gets a
Wilson 95% interval. On 90 test videos one video is 0.011 of accuracy and an
accuracy near 0.8 has a standard error of about 0.04, which this makes explicit
(docs/tune.md)::

    python bench/paired_runs.py /tmp/tune-val/A/tune-cv3-seed0/best \\
        /tmp/tune-val/A/compare/runs/tcn-seed0 /tmp/tune-val/A/compare/runs/lstm-seed0

The first run is compared with each of the others. ``--smoke`` compares two
made-up runs (a check that the script runs).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

BOOTSTRAP_RESAMPLES = 10_000
Z_95 = 1.959964


def correct_by_video(run_dir):
    """``{video id: 1 if the run's top prediction is the label else 0}`` of ``metrics.json``."""
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    return {v["id"]: int(v["top"][0][0] == v["label"]) for v in metrics["videos"]}


def wilson(correct, total):
    """Wilson 95% interval of ``correct`` successes in ``total`` trials."""
    p = correct / total
    centre = (p + Z_95**2 / (2 * total)) / (1 + Z_95**2 / total)
    half = Z_95 * math.sqrt(p * (1 - p) / total + Z_95**2 / (4 * total**2)) / (1 + Z_95**2 / total)
    return centre - half, centre + half


def paired(a, b, seed=0):
    """Accuracy difference ``a - b`` on shared videos: bootstrap 95% interval, McNemar p."""
    shared = sorted(set(a) & set(b))
    if not shared:
        raise SystemExit("the two runs share no evaluated video")
    x = np.asarray([a[v] for v in shared])
    y = np.asarray([b[v] for v in shared])
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(shared), size=(BOOTSTRAP_RESAMPLES, len(shared)))
    diffs = x[draws].mean(axis=1) - y[draws].mean(axis=1)
    only_a, only_b = int(np.sum(x > y)), int(np.sum(y > x))
    p_value = binomtest(only_a, only_a + only_b).pvalue if only_a + only_b else 1.0
    return {
        "videos": len(shared),
        "difference": float(x.mean() - y.mean()),
        "interval": tuple(float(q) for q in np.percentile(diffs, [2.5, 97.5])),
        "only_first_right": only_a,
        "only_second_right": only_b,
        "mcnemar_p": float(p_value),
    }


def describe(name, scores):
    low, high = wilson(sum(scores.values()), len(scores))
    accuracy = sum(scores.values()) / len(scores)
    return f"{name}: {accuracy:.3f} on {len(scores)} videos (95% interval {low:.3f} to {high:.3f})"


def _smoke_runs(folder):
    """Two made-up runs of 90 videos, right on 72 and 66 of them."""
    rng = np.random.default_rng(1)
    paths = []
    for name, right in (("a", 72), ("b", 66)):
        hits = rng.permutation([1] * right + [0] * (90 - right))
        videos = [
            {"id": f"v{i}", "label": "x", "top": [["x" if hit else "y", 0.9]]}
            for i, hit in enumerate(hits)
        ]
        run = Path(folder) / name
        run.mkdir(parents=True, exist_ok=True)
        (run / "metrics.json").write_text(json.dumps({"videos": videos}))
        paths.append(run)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="*", help="run directories: the first, then the others")
    parser.add_argument("--workdir", default="/tmp/paired-runs", help="for --smoke")
    parser.add_argument("--smoke", action="store_true", help="two made-up runs")
    args = parser.parse_args(argv)
    runs = _smoke_runs(args.workdir) if args.smoke else [Path(r) for r in args.runs]
    if len(runs) < 2:
        parser.error("give at least two run directories")
    first = correct_by_video(runs[0])
    print(describe(str(runs[0]), first))
    for other in runs[1:]:
        scores = correct_by_video(other)
        result = paired(first, scores)
        low, high = result["interval"]
        print(describe(str(other), scores))
        print(
            f"  first - this: {result['difference']:+.3f} (paired bootstrap 95% interval "
            f"{low:+.3f} to {high:+.3f}); right only in the first {result['only_first_right']}, "
            f"only in this {result['only_second_right']}; McNemar exact p = "
            f"{result['mcnemar_p']:.3f}"
        )


if __name__ == "__main__":
    main()
