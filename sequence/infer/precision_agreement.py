"""How often a lower-precision backbone changes a trained run's top-1 prediction.

``extract-features --precision int8 --check-against RUN`` (or bf16): the
agreement check of the extraction (:mod:`vidseq.extract.calibration`) has the
FP32 and the lower-precision features of its held-out videos; :func:`top1_probe`
runs the head of ``RUN`` (trained on features of the same backbone and weights)
on both and records the fraction of videos whose top-1 label differs, beside
the cosine figures in the cache's ``precision_check`` attribute.
"""

from __future__ import annotations

import numpy as np

from vidseq.errors import UsageError
from vidseq.sequence.data.temporal import prepare_clip
from vidseq.sequence.runs.saved_run import load_run


def top1_probe(run_dir):
    """A probe for ``extract_features(agreement_probe=...)``: top-1 changes under ``run_dir``.

    Args:
        run_dir: A run trained on cached features of the backbone being extracted.

    Returns:
        ``probe(check) -> dict`` with ``check_against`` (the run), ``top1_videos``
        and ``top1_changed`` (fraction of held-out videos whose top-1 differs
        between FP32 and lower-precision features).

    Raises:
        UsageError: An incomplete or end-to-end run (now), or a run trained on
            another network's features (when the probe runs).
    """
    run = load_run(run_dir)
    if run.end_to_end:
        raise UsageError(
            f"{run_dir}: an end-to-end (fine-tuned) run reads raw clips; "
            "--check-against needs a run trained on cached features"
        )

    def probe(check) -> dict:
        if run.config["weights_sha256"] != check.weights_sha256:
            raise UsageError(
                f"{run_dir}: trained on features of {run.config['backbone']} with weights "
                f"{run.config['weights_sha256'][:12]}…, not of the backbone being extracted "
                f"({check.weights_sha256[:12]}…); --check-against needs a run of the same network"
            )
        top = []
        for features in (check.reference, check.lowered):
            clips = [
                prepare_clip(f, n, run.frames)
                for f, n in zip(features, check.num_valid, strict=True)
            ]
            top.append(run.model.predict(np.stack(clips), verbose=0).argmax(axis=1))
        return {
            "check_against": str(run_dir),
            "top1_videos": len(top[0]),
            "top1_changed": round(float(np.mean(top[0] != top[1])), 6),
        }

    return probe
