"""FitConfig: how every training command fits its model, declared field by field."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from vidseq.extract.params import setting
from vidseq.sequence.config.base import Config

LR_SCHEDULES = ("constant", "step", "cosine", "plateau")
STRATEGIES = ("default", "mirrored", "multiworker")
DEFAULT_LR = 1e-3
"""Adam's learning rate when ``FitConfig.lr`` is None, for heads not in :data:`HEAD_LR`."""
HEAD_LR = {"lstm": 3e-3, "gru": 3e-3}
"""The recurrent heads' default rate (docs/results.md, the default recipe)."""
STEP_BUDGET = 800
"""Optimisation steps ``epochs=None`` aims at (docs/results.md, the default recipe)."""
AUTO_EPOCHS = (20, 200)
"""Fewest and most epochs ``epochs=None`` gives."""


@dataclass
class FitConfig(Config):
    """How every training command fits its model (see ``loop.fit``).

    ``lr`` and ``epochs`` left None are set by :meth:`resolved`. Each field's
    meaning is its declaration's ``help``.
    """

    lr: float | None = setting(
        None,
        kind=float,
        low=0.0,
        low_open=True,
        optional=True,
        help="Adam's learning rate (default: 3e-3 for lstm and gru, 1e-3 for the other heads)",
    )
    epochs: int | None = setting(
        None,
        kind=int,
        low=1,
        optional=True,
        help="most epochs (default: scaled to the data, about 800 steps within 20..200)",
    )
    batch_size: int = setting(
        16,
        kind=int,
        low=1,
        help="videos per batch and replica (a step reads batch-size x replicas)",
    )
    patience: int = setting(
        0,
        kind=int,
        low=0,
        help="early stopping on validation loss, best weights restored; 0: off",
    )
    lr_schedule: str = setting(
        "constant",
        choices=LR_SCHEDULES,
        help="step (halve every epoch after 10), cosine (to 0 over the epochs), plateau "
        "(halve after patience // 2 epochs without improvement)",
    )
    label_smoothing: float = setting(
        0.0,
        kind=float,
        low=0.0,
        high=1.0,
        high_open=True,
        help="label smoothing of the cross-entropy",
    )
    class_weight: str | None = setting(
        None,
        choices=("balanced",),
        optional=True,
        expected="None or 'balanced'",
        help="balanced: inverse class frequency",
    )
    seed: int = setting(
        0, kind=int, low=0, help="seed of weights, shuffling, sampling, dropout and augmentation"
    )
    strategy: str = setting(
        "default",
        choices=STRATEGIES,
        help="tf.distribute strategy: default (one device), mirrored (this machine's GPUs), "
        "multiworker (the machines of TF_CONFIG; every worker runs the same command, the "
        "chief writes --out)",
    )
    tensorboard: str | None = setting(
        None,
        kind=str,
        optional=True,
        expected="None or a directory path",
        metavar="DIR",
        help="folder of TensorBoard logs, one subfolder per run: DIR/RUN_NAME (needs the "
        "tensorboard package)",
    )

    def resolved(self, num_train, replicas=1, *, head=None):
        """These settings with ``epochs`` and ``lr`` set: as given, or defaulted when None.

        ``epochs``: ``ceil(STEP_BUDGET / steps per epoch)``, clipped to
        :data:`AUTO_EPOCHS`: small data trains for more epochs, large data for
        fewer, each for about the same number of steps. ``lr``: the head's
        from :data:`HEAD_LR`, else :data:`DEFAULT_LR`.

        Args:
            num_train: Training videos.
            replicas: Replicas a step spreads its batch over.
            head: The head trained (a registered head name), or None.
        """
        lr = HEAD_LR.get(head, DEFAULT_LR) if self.lr is None else self.lr
        if self.epochs is not None:
            return dataclasses.replace(self, lr=lr)
        steps = max(1, math.ceil(int(num_train) / (self.batch_size * max(1, int(replicas)))))
        low, high = AUTO_EPOCHS
        epochs = min(max(math.ceil(STEP_BUDGET / steps), low), high)
        return dataclasses.replace(self, lr=lr, epochs=int(epochs))
