"""A run directory: its files, loading a finished run, and evaluating it.

:mod:`.run_dir` (the directory's lifecycle and ``config.json``), :mod:`.saved_run`
(a finished run loaded for use, backbone hash checked), :mod:`.report_files`
(JSON, CSV and text reports), :mod:`.plots` (figures), :mod:`.results` (result
objects) and :mod:`.evaluation` (the one multi-clip evaluator and the
bag-of-frames baseline). May import :mod:`vidseq.sequence.data`,
:mod:`vidseq.sequence.heads`, :mod:`vidseq.sequence.config`, ``extract`` and
``cache``; never training, inference, export or studies.
"""
