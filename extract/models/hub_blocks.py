"""The transformer blocks of a keras-hub encoder: which ones ``finetune --unfreeze N`` trains.

``--unfreeze N`` counts transformer blocks for a keras-hub encoder (not Keras
layers, as for the registry's CNNs): the last N blocks train, with every layer
holding weights after the first of them (final norms, SigLIP's pooling head,
VideoPrism's temporal embedding); the patch embedding and earlier blocks stay
frozen. ``--unfreeze-from`` names the first block (:func:`block_names`). No
TensorFlow import at module level.
"""

from __future__ import annotations

import re

from vidseq.errors import UsageError

BLOCK_CLASSES = re.compile(r"^(DINOV\dLayer|\w+EncoderLayer|\w+EncoderBlock)$")
"""Class names of the transformer blocks ``finetune --unfreeze N`` counts."""


def transformer_blocks(encoder) -> list:
    """The encoder's transformer blocks in order, input side first (empty for a CNN)."""
    return [layer for _, layer in _walk(encoder) if BLOCK_CLASSES.match(type(layer).__name__)]


def block_names(encoder) -> list[str]:
    """The names ``unfreeze_from`` takes, one per transformer block, in order.

    A block's own name (``layers_1``), or where two blocks share it (VideoPrism's
    spatial and temporal encoders each have a ``transformer_block_0``) the
    path from the encoder (``temporal_encoder/transformer_block_0``).
    """
    paths = [path for path, layer in _walk(encoder) if BLOCK_CLASSES.match(type(layer).__name__)]
    plain = [path[-1] for path in paths]
    return [
        name if plain.count(name) == 1 else "/".join(path)
        for name, path in zip(plain, paths, strict=True)
    ]


def _walk(layer, path=()):
    """``(path, sublayer)`` of every sublayer, depth first, each level in tracking order."""
    for child in layer._flatten_layers(include_self=False, recursive=False):
        yield (*path, child.name), child
        yield from _walk(child, (*path, child.name))


def unfreeze_blocks(backbone, count=0, *, start_at=None) -> list[str]:
    """Unfreezes the last ``count`` transformer blocks of a keras-hub encoder and what follows.

    Every other layer of the backbone model is frozen (the embeddings, the
    earlier blocks, the input scaling, the pooling); the layers with weights
    that come after the first unfrozen block (the final norm, SigLIP's pooling
    head, VideoPrism's temporal embedding and its encoders' norms) train with
    the unfrozen blocks.

    Args:
        backbone: A :class:`~vidseq.extract.models.network.Backbone` of :func:`assemble`.
        count: How many of the last blocks to unfreeze (0: none).
        start_at: Name of the first block to unfreeze (overrides ``count``),
            as :func:`block_names` gives it.

    Returns:
        The names of the layers that hold trainable weights now, in order.

    Raises:
        UsageError: ``start_at`` names no block.
    """
    blocks = list(backbone.blocks)
    if start_at is not None:
        names = block_names(backbone.encoder)
        if start_at not in names:
            raise UsageError(
                f"backbone {backbone.name} has no transformer block {start_at!r} "
                f"(its blocks: {', '.join(names)}). Received: unfreeze_from={start_at!r}"
            )
        count = len(blocks) - names.index(start_at)
    chosen = _layers_from(backbone, blocks[len(blocks) - int(count)]) if count else []
    backbone.model.trainable = True
    _freeze_all_but(backbone.model, {id(layer) for layer in chosen}, chosen)
    return [layer.name for layer in chosen if layer.trainable_weights]


def _layers_from(backbone, first) -> list:
    """``first`` and every later layer with weights of the backbone model, outermost.

    The walk is over the backbone model (what runs), so the layers of the
    encoder it does not run (VideoPrism's auxiliary layers) are left out and a
    layer after the encoder (MetaCLIP 2's post norm) is in.
    """
    blocks = backbone.blocks
    chosen = []
    started = False
    for _, layer in _walk(backbone.model):
        started = started or layer is first
        if not started or not layer.weights or any(_holds(taken, layer) for taken in chosen):
            continue  # before the first block, no weights, or inside a layer already chosen
        if layer not in blocks and any(_holds(layer, block) for block in blocks):
            continue  # holds blocks (an encoder stack): its parts are chosen one by one
        chosen.append(layer)
    return chosen


def _holds(layer, inner) -> bool:
    """Whether ``inner`` is ``layer`` or one of its sublayers."""
    return any(sub is inner for sub in layer._flatten_layers(include_self=True))


def _freeze_all_but(layer, unfrozen: set, chosen: list) -> None:
    """Freezes every sublayer of ``layer`` except the chosen ones and those that hold them."""
    for child in layer._flatten_layers(include_self=False, recursive=False):
        if id(child) in unfrozen:
            child.trainable = True
        elif any(_holds(child, inner) for inner in chosen):
            child.trainable = True
            _freeze_all_but(child, unfrozen, chosen)
        else:
            child.trainable = False
