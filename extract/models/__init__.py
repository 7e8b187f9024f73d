"""The frozen networks: backbones, their preprocessing and the engines that run them.

:mod:`.backbones` is the backbone registry (input size, preprocessing, weights,
the weights hash); :mod:`.preprocessing` each network's own input scaling,
built into the model; :mod:`.engines` runs a backbone with TensorFlow or
OpenVINO. May import :mod:`vidseq.cache.schema` (the engine names a cache
records) and :mod:`vidseq.errors`; knows nothing of datasets or decoding.
"""
