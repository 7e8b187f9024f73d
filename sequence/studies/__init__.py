"""Studies over many runs: comparing heads, and the end-to-end demo.

:mod:`.compare` (every head on the same splits and seeds, against the
bag-of-frames baseline) and :mod:`.demo` (the whole pipeline on sample data).
The top of :mod:`vidseq.sequence`: may import any of its subpackages.
"""
