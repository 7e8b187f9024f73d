"""Extraction: datasets, frame reading, backbones and the feature pipeline.

Importing this package registers every built-in dataset source and its clip
loaders (:mod:`vidseq.extract.sources.dataset`), so any reader of a cache's
``videos/path`` (finetune, predict) reads FER-2013 rows as extraction did.
"""

from vidseq.extract.sources import dataset  # noqa: F401  (registers the built-in sources)
