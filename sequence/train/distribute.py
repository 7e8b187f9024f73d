"""Training on several devices or machines with ``tf.distribute``.

Three strategies (``--strategy``):

* ``default``: TensorFlow's default strategy, one device (what vidseq always did).
* ``mirrored``: ``tf.distribute.MirroredStrategy`` over the GPUs of this machine
  (without a GPU, over its logical CPU devices, one unless configured).
* ``multiworker``: ``tf.distribute.MultiWorkerMirroredStrategy``, one process per
  machine, the cluster described by the ``TF_CONFIG`` environment variable.

``batch_size`` is per replica: a step consumes ``batch_size x replicas`` videos
(the global batch), split between the replicas; the gradients are summed across
them, so the update equals one step on the global batch.

The loop: Keras 3 ``Model.fit`` works under the default and mirrored strategies
and is used there; under ``MultiWorkerMirroredStrategy`` it fails
(keras-team/keras#20585), so the engine's ``loop.fit_custom`` runs a training
step with ``strategy.run`` (each replica's share of a batch comes from
:func:`replica_batch`). Both loops drive the same Keras callbacks, and so the
same run bookkeeping (``loop.RunStateCallback``).

Only the chief writes the run directory: other workers write their checkpoints
into a temporary directory (removed at the end), as Keras' multi-worker guide
does, and never touch ``--out``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from vidseq.errors import UsageError
from vidseq.sequence.config import STRATEGIES
from vidseq.sequence.runs import run_dir as rd


@dataclass
class Distribution:
    """A strategy and this process's place in it.

    Attributes:
        name: ``"default"``, ``"mirrored"`` or ``"multiworker"``.
        strategy: The ``tf.distribute.Strategy``.
        replicas: Replicas in sync (devices of all workers).
        num_workers: Worker processes (1 unless multiworker).
        worker_index: This process's index among the workers (0 for the chief).
        chief: This process writes the run directory.
    """

    name: str
    strategy: object
    replicas: int
    num_workers: int = 1
    worker_index: int = 0
    chief: bool = True

    @property
    def loop(self):
        """The training loop this strategy uses: ``"custom"`` for multiworker, else ``"fit"``."""
        return "custom" if self.name == "multiworker" else "fit"

    def scope(self):
        """``strategy.scope()``: create models and optimizers inside it."""
        return self.strategy.scope()

    def global_batch_size(self, per_replica):
        """Videos per step over all replicas."""
        return int(per_replica) * int(self.replicas)

    def to_dict(self):
        """What config.json records (``distribute``)."""
        return {
            "strategy": self.name,
            "replicas": int(self.replicas),
            "num_workers": int(self.num_workers),
            "loop": self.loop,
        }


def _tf_config():
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"TF_CONFIG is not JSON ({e}). Received: TF_CONFIG={text!r}") from None
    if not isinstance(value, dict) or "cluster" not in value or "task" not in value:
        raise UsageError(
            "TF_CONFIG must be a JSON object with 'cluster' and 'task' "
            f'(e.g. {{"cluster": {{"worker": ["host1:12345", "host2:12345"]}}, '
            f'"task": {{"type": "worker", "index": 0}}}}). Received: TF_CONFIG={text!r}'
        )
    return value


def make_distribution(name="default"):
    """Creates the strategy ``name`` (before any other TensorFlow op).

    ``MultiWorkerMirroredStrategy`` must be created before TensorFlow runs
    anything in the process; call this first.

    Args:
        name: ``"default"``, ``"mirrored"`` or ``"multiworker"``.

    Returns:
        A :class:`Distribution`.

    Raises:
        UsageError: an unknown name; ``multiworker`` without a valid ``TF_CONFIG``.
    """
    if name not in STRATEGIES:
        raise UsageError(f"strategy must be one of {STRATEGIES}. Received: strategy={name!r}")
    if name == "default":
        return Distribution(name, tf.distribute.get_strategy(), 1)
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        return Distribution(name, strategy, int(strategy.num_replicas_in_sync))
    tf_config = _tf_config()
    if tf_config is None:
        raise UsageError(
            "strategy 'multiworker' needs the TF_CONFIG environment variable (the cluster "
            'and this task), e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", '
            '"host2:12345"]}, "task": {"type": "worker", "index": 0}}\''
        )
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    cluster = tf_config["cluster"]
    roles = [role for role in ("chief", "worker") if role in cluster]
    num_workers = sum(len(cluster[role]) for role in roles)
    has_chief = "chief" in cluster
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief)
    index = task_id + (1 if has_chief and task_type == "worker" else 0)
    return Distribution(
        name,
        strategy,
        int(strategy.num_replicas_in_sync),
        num_workers=num_workers,
        worker_index=0 if chief else index,
        chief=chief,
    )


@contextlib.contextmanager
def write_dir(run_path, distribution):
    """The directory this process writes its run files into.

    The chief gets ``run_path``. Another worker gets a fresh temporary directory
    (holding a copy of the chief's ``checkpoints/`` when there is one, so a
    resumed worker finds the best weights), removed when the block ends.
    """
    run_path = Path(run_path)
    if distribution.chief:
        yield run_path
        return
    temp = Path(tempfile.mkdtemp(prefix=f"vidseq-worker{distribution.worker_index}-"))
    try:
        source = run_path / rd.CHECKPOINT_DIR
        if source.is_dir():
            shutil.copytree(source, temp / rd.CHECKPOINT_DIR)
        yield temp
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def replica_batch(batches, index, replica, replicas):
    """Replica ``replica``'s share of global batch ``index``, always with sample weights.

    The share is every ``replicas``-th video of the batch from ``replica`` on.
    A replica whose share is empty (a last batch smaller than the replicas) gets
    one video with weight 0, which changes neither the loss nor the gradients.

    Args:
        batches: A ``SequenceBatches`` or ``FrameBatches`` (``batch_positions``
            and ``batch_of_positions``).
        index: The global batch.
        replica: This replica's id in sync.
        replicas: Replicas in sync.

    Returns:
        ``(x, y, w)`` NumPy arrays.
    """
    positions = batches.batch_positions(index)
    share = positions[replica::replicas]
    empty = len(share) == 0
    if empty:
        share = positions[:1]
    out = batches.batch_of_positions(share)
    x, y = out[0], out[1]
    w = out[2] if len(out) > 2 else np.ones(len(y), dtype=np.float32)
    if empty:
        w = np.zeros_like(w)
    return x, y, np.asarray(w, dtype=np.float32)
