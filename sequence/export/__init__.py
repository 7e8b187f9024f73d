"""Exports for serving: SavedModel, LiteRT, ONNX and OpenVINO, with a versioned manifest.

:mod:`.build` writes an export, :mod:`.manifest` reads and checks its manifest,
:mod:`.runtime` runs an export in its own runtime, :mod:`.predict_any` is
``vidseq.predict``: a run or an export directory, whole videos or windows. May import inference,
training's model builders and everything below them; never studies.
"""
