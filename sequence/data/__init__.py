"""What the heads read: batches of cached features or decoded frames, and the splits.

:mod:`.batches` (in-memory or streamed batches from the cache), :mod:`.frame_clips`
(raw-frame clips for end-to-end models), :mod:`.temporal` (TSN sampling and
temporal shift on cached sequences), :mod:`.split_indices` (train / validation /
test indices from the cache's split and group columns). May import
:mod:`vidseq.sequence.config`, :mod:`vidseq.extract` and :mod:`vidseq.cache`;
never a training, inference or export module.
"""
