"""Training: the classifier model, the training engine and the three ways to train.

:mod:`.model` (``build_head``: masking, feature scaling, centering, a temporal
head, softmax), :mod:`.normalization`, :mod:`.loop` (the engine), :mod:`.checkpoint`,
:mod:`.distribute`, and the commands :mod:`.training` (``train_sequence``),
:mod:`.end_to_end` with :mod:`.finetune` and :mod:`.scratch`. May import
:mod:`vidseq.sequence.runs` and everything below it; never inference, export or
studies.
"""
