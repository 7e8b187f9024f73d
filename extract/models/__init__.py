"""The frozen networks: backbones, their preprocessing and the engines that run them.

:mod:`.backbones` is the backbone registry (input size, preprocessing, weights)
and :func:`~.backbones.load_backbone`, the one loader; :mod:`.network` the
:class:`~.network.Backbone` it returns and the weights hash;
:mod:`.keras_weights` the ImageNet download and local weights files;
:mod:`.hub` keras-hub presets (``hub:PRESET``) with :mod:`.hub_layers`, their
scaling and pooling layers; :mod:`.preprocessing` each registry network's own
input scaling, built into the model; :mod:`.engines` runs a backbone with
TensorFlow or OpenVINO. May import :mod:`vidseq.cache.schema` (the engine names a cache
records) and :mod:`vidseq.errors`; knows nothing of datasets or decoding.
"""
