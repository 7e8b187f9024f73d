"""Imports that the garbage collector neither runs during nor walks afterwards.

Importing TensorFlow creates about a million Python objects that live as long as
the process: modules, functions, op definitions. CPython's cyclic collector runs
many times while they are created, and every later full collection walks all of
them again, including the one at interpreter shutdown. :func:`frozen_imports`
pauses the collector for the block and then moves what the block created to the
permanent generation with :func:`gc.freeze`, where collections no longer look.
For a command that imports TensorFlow this is about 2 s of CPU less per start
(docs/performance.md has the figures); objects that die later are still freed by
reference counting, and the collector runs as before for everything created after.
The price is the cyclic garbage the block leaves, which stays frozen: for
TensorFlow's import, about 3,900 objects against the 680,000 it keeps.
"""

import contextlib
import gc


@contextlib.contextmanager
def frozen_imports():
    """Pauses the cyclic garbage collector in the block, then freezes what it created.

    Meant for the imports at a process's start, whose objects live until it ends.
    The collector's former state (enabled or not) is restored, also when the block
    raises.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
