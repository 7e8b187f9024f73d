"""Inference with a trained run: whole videos, windows over long footage, live streams.

:mod:`.run_classifier` (backbone plus head, rebuilt from the run), :mod:`.predict`,
:mod:`.window_plan` (which windows to score), :mod:`.windowed` (windowed
prediction over a file), :mod:`.watch` (a live stream), :mod:`.timeline` (tables,
CSV and plots of a timeline). May import :mod:`vidseq.sequence.runs` and below;
never training (except the end-to-end model builder's data), export or studies.
"""
