"""Bounds on the numbers vidseq reads from files and flags, checked before allocating.

Every count that sizes an array or a model (frames per clip, units, layers,
batch size, classes, pixels) is checked here against a limit far above any
real use and far below what would exhaust memory: a ``config.json`` with
``num_frames: 1e9``, or a manifest with ``frames: 1000000000``, is refused in
one line instead of allocating gigabytes. Every float read from a user
(learning rate, fractions, features) must be finite.

:func:`json_safe` turns NaN and infinities into ``null`` so that every JSON
vidseq prints or writes is valid JSON.

Imports nothing of vidseq but its errors, so that every layer may use it.
"""

from __future__ import annotations

import math
import numbers

from vidseq.errors import UsageError

MAX_FRAMES = 4096
"""Frames (or feature rows) per clip: about 2.3 minutes at 30 fps, every frame."""
MAX_UNITS = 4096
"""Width of a head (LSTM units, attention units): a 4096-unit LSTM on 2048 features
already holds 100 million weights."""
MAX_SEED = 2**32 - 1
"""Seeds: NumPy's generators take 32-bit seeds."""
MAX_LAYERS = 64
"""Stacked recurrent layers or transformer blocks; also heads of attention."""
MAX_BATCH = 65536
"""Videos (or frames) per batch."""
MAX_EPOCHS = 1_000_000
"""Training epochs."""
MAX_CLASSES = 1_000_000
"""Classes of a cache, a run or an export."""
MAX_SIDE = 8192
"""Height or width of a CNN input, in pixels."""
MAX_FEATURES = 1 << 20
"""Feature width D of a cache row."""
MAX_CLIPS = 1024
"""Temporal clips per video at evaluation."""


FIELD_BOUNDS = {
    "units": MAX_UNITS,
    "attention_units": MAX_UNITS,
    "layers": MAX_LAYERS,
    "num_heads": MAX_LAYERS,
    "ff_multiplier": MAX_LAYERS,
    "workers": MAX_LAYERS,
    "kernel_size": MAX_FRAMES,
    "dilations": MAX_FRAMES,
    "frames": MAX_FRAMES,
    "temporal_shift": MAX_FRAMES,
    "clip_length": MAX_FRAMES,
    "epochs": MAX_EPOCHS,
    "batch_size": MAX_BATCH,
    "eval_clips": MAX_CLIPS,
    "input_size": MAX_SIDE,
    "seed": MAX_SEED,
}
"""Upper bounds of the training settings (``sequence.config``), by field name; each
value of a tuple setting (``input_size``, ``dilations``) is bounded."""


def check_bound(name, value):
    """Raises UsageError when a training setting is above its :data:`FIELD_BOUNDS` entry.

    ``value`` has passed the setting's own check (its type and lower bound).
    """
    high = FIELD_BOUNDS.get(name)
    sizes = value if name in ("input_size", "dilations") and value else [value]
    for size in sizes:
        if high is not None and size is not None and size > high:
            raise UsageError(f"{name} must be at most {high}. Received: {name}={value!r}")


def check_count(name, value, *, high, low=1):
    """An integer in ``[low, high]``, or UsageError naming ``name`` and the value.

    Args:
        name: The setting, as the message names it (``num_frames``, ``--frames``).
        value: The value read: an int, or a float that is a whole number (JSON).
        high: Greatest value allowed.
        low: Least value allowed.

    Returns:
        The value as an ``int``.
    """
    whole = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and float(value).is_integer()
    )
    if not whole or not low <= int(value) <= high:
        raise UsageError(
            f"{name} must be an integer between {low} and {high}. Received: {name}={value!r}"
        )
    return int(value)


def check_finite(name, value, *, low=None, high=None):
    """A finite number in ``[low, high]`` (each end optional), or UsageError.

    Returns:
        The value as a ``float``.
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and math.isfinite(value)
    ok = ok and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        span = f" between {low} and {high}" if low is not None and high is not None else ""
        raise UsageError(f"{name} must be a finite number{span}. Received: {name}={value!r}")
    return float(value)


def is_finite_number(value) -> bool:
    """Whether ``value`` is a real number that is neither NaN nor infinite."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def json_safe(value):
    """``value`` with every NaN or infinite float replaced by None (JSON ``null``).

    Walks dicts, lists and tuples; NumPy arrays and scalars become lists and
    numbers (anything with ``tolist``).
    """
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return json_safe(value.tolist())
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
        return float(value) if math.isfinite(value) else None
    return value
