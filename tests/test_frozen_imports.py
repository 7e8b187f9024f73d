"""The garbage collector neither runs during nor walks afterwards what start-up imports.

Freezing is global to a process, so each check runs in a fresh interpreter: in a
test worker it would freeze the other tests' objects too.
"""

import json
import subprocess
import sys
import textwrap

import pytest

FROZEN_BLOCK = textwrap.dedent(
    """
    import gc, json
    from vidseq.frozen_imports import frozen_imports

    seen = {}
    with frozen_imports():
        seen["enabled_inside"] = gc.isenabled()
        before = gc.get_freeze_count()
        made = [[] for _ in range(5000)]  # tracked containers, alive after the block
    seen["frozen_new"] = gc.get_freeze_count() - before
    seen["enabled_after"] = gc.isenabled()

    gc.disable()
    try:
        with frozen_imports():
            raise KeyError("in the block")
    except KeyError:
        pass
    seen["disabled_stays_disabled"] = not gc.isenabled()
    gc.enable()
    try:
        with frozen_imports():
            raise KeyError("in the block")
    except KeyError:
        seen["enabled_after_raise"] = gc.isenabled()
    print(json.dumps(seen))
    """
)

QUIET_START = textwrap.dedent(
    """
    import gc, json, sys
    from vidseq.quiet import quiet_tensorflow

    quiet_tensorflow()
    frozen = gc.get_freeze_count()
    quiet_tensorflow()  # idempotent: no second freeze of what exists by now
    print(json.dumps({"frozen": frozen, "again": gc.get_freeze_count() - frozen,
                      "enabled": gc.isenabled(), "tracked": len(gc.get_objects())}))
    """
)


def _run(code):
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stderr, json.loads(done.stdout.strip().splitlines()[-1])


def test_the_block_pauses_the_collector_freezes_what_it_made_and_restores_the_state():
    _, seen = _run(FROZEN_BLOCK)
    assert seen["enabled_inside"] is False
    assert seen["frozen_new"] >= 5000
    assert seen["enabled_after"] is True
    assert seen["disabled_stays_disabled"] is True
    assert seen["enabled_after_raise"] is True


@pytest.mark.slow
def test_a_commands_tensorflow_start_is_frozen_once_and_quiet(monkeypatch):
    monkeypatch.delenv("VIDSEQ_DEBUG", raising=False)
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    stderr, seen = _run(QUIET_START)
    # TensorFlow's modules and op definitions: hundreds of thousands of objects that
    # the collector no longer walks; the few created since stay collectable.
    assert seen["frozen"] > 200_000 and seen["tracked"] < seen["frozen"] / 10
    assert seen["again"] == 0 and seen["enabled"] is True
    assert stderr == ""
