"""Studies over many runs: comparing heads, tuning them, and the end-to-end demo.

:mod:`.compare` (every head on the same splits and seeds, against the
bag-of-frames baseline), :mod:`.tune` (Optuna search of heads and settings on
the validation split, with :mod:`.tune_space`, :mod:`.tune_study` and
:mod:`.tune_report`) and :mod:`.demo` (the whole pipeline on sample data).
The top of :mod:`vidseq.sequence`: may import any of its subpackages.
"""
