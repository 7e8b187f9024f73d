"""Extraction: datasets, frame reading, backbones and the feature pipeline.

Subpackages: ``sources/`` (datasets), ``decode/`` (frames), ``models/`` (the
networks); beside them :mod:`.pipeline` (``extract_features``), :mod:`.sharding`,
:mod:`.options` (the declared parameters of ``extract-features`` and
``make-sample``) and :mod:`.params` (the :class:`~vidseq.extract.params.Param`
declaration every package uses; it imports only :mod:`vidseq.errors`). Layers,
top to bottom: pipeline, options, sharding, decode and models, sources, params.

Importing this package registers every built-in dataset source and its clip
loaders (:mod:`vidseq.extract.sources.dataset`), so any reader of a cache's
``videos/path`` (finetune, predict) reads FER-2013 rows as extraction did.
"""

from vidseq.extract.sources import dataset  # noqa: F401  (registers the built-in sources)
