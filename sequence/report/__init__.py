"""The HTML report of a run, a head comparison, a tuning study or a windowed prediction.

:mod:`.build` (``report``, ``timeline_report``, ``report_after_training``),
:mod:`.run_page` and :mod:`.run_videos` (a run's page and the videos it
shows), :mod:`.selection` (which videos), :mod:`.filmstrip` (the frames the
model saw, as JPEG data URIs), :mod:`.frame_weights` (per-frame attention
weights), :mod:`.study_pages` (compare and tune), :mod:`.timeline_page`,
:mod:`.charts` (inline SVG) and :mod:`.pages` (Jinja2 templates in
``templates/``). May import :mod:`vidseq.sequence.runs` and below; never
training, inference, export or studies (a windowed result comes in as its
``to_dict()``).
"""
