"""The garbage collector neither runs during nor walks afterwards what start-up imports.

Freezing is global to a process, so the check runs in a fresh interpreter: in a test
worker it would freeze the other tests' objects too. The command line's use of it
(``quiet_tensorflow``) is checked in test_quiet.py.
"""

import json
import subprocess
import sys
import textwrap

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


def test_the_block_pauses_the_collector_freezes_what_it_made_and_restores_the_state():
    done = subprocess.run([sys.executable, "-c", FROZEN_BLOCK], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["enabled_inside"] is False
    assert seen["frozen_new"] >= 5000
    assert seen["enabled_after"] is True
    assert seen["disabled_stays_disabled"] is True
    assert seen["enabled_after_raise"] is True
