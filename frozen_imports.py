"""Imports that the garbage collector neither runs during nor walks afterwards.

Importing TensorFlow creates about 680,000 Python objects that live as long as
the process: modules, functions, op definitions. CPython's cyclic collector runs
many times while they are created, and every later full collection walks all of
them again, including the one at interpreter shutdown. :func:`frozen_imports`
pauses the collector for the block and then moves every object alive at its end
to the permanent generation with :func:`gc.freeze`, where collections no longer
look. That is every object of the process, not only the block's, which is why it
belongs at a process's start (the command line's, a test worker's collection).
For a command that imports TensorFlow this is about 2 s of CPU less per start
(docs/performance.md has the figures); objects that die later are still freed by
reference counting, and the collector runs as before for everything created after.
The price is the cyclic garbage the block leaves, which stays frozen: for
TensorFlow's import, about 3,900 objects.
"""

import contextlib
import gc


@contextlib.contextmanager
def frozen_imports():
    """Pauses the cyclic garbage collector in the block, then freezes every live object.

    Meant for the imports at a process's start, whose objects live until it ends:
    what exists by then is frozen too. The collector's former state (enabled or
    not) is restored, also when the block raises.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
