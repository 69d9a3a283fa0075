"""Which channel mappings Torch-Pruning may compute in edgeprune's graphs (reshapes, splits, concatenations ...).

Torch-Pruning maps channel indices through functional ops with heuristics that assume channels-first
tensors. For ops it cannot model they guess wrong (or raise, or multiply indices until group enumeration runs
for minutes). :func:`install_mapping_filters` wraps its mapping functions once: graphs built by
:class:`~edgeprune.prune.graph.ModelGraph` (which carry a :class:`~edgeprune.prune.reshapes.ReshapeRecorder`)
get no mapping through such ops, and the graph freezes the groups that pass through them; other graphs keep
Torch-Pruning's behaviour. With :mod:`edgeprune.prune.graph`, the only module that imports ``torch_pruning``.
"""

from __future__ import annotations

from typing import Any

import torch_pruning as tp


def install_mapping_filters() -> None:
    """Keep Torch-Pruning from mapping channels through ops it cannot model, in edgeprune's graphs.

    Torch-Pruning recomputes its index mappings on every group query, so the filters stay installed; a graph
    without edgeprune's recorder (``_edgeprune_reshapes``) keeps Torch-Pruning's own behaviour. In edgeprune's
    graphs, no mapping is made for a reshape that rearranges channels, for any split (Torch-Pruning's
    heuristics guess a flatten, divide by zero on a channel shuffle, or index past a chunk's offsets), or for
    a concatenation along another dimension than the channels' or one whose mapping fails (its input widths are
    taken from the traced forward pass, where Torch-Pruning's inference misreads slices), for an expand or an
    unbind (whose mappings multiply indices: they made Swin's group enumeration run for minutes); the recorder
    notes each, and :meth:`edgeprune.prune.graph.ModelGraph._record` freezes every group whose channels pass through one.
    """
    index_mapping = tp.dependency.index_mapping
    reshape = index_mapping.update_reshape_index_mapping
    split = index_mapping.update_split_index_mapping
    concat = index_mapping.update_concat_index_mapping
    others = {"update_expand_index_mapping": "an expand", "update_unbind_index_mapping": "an unbind"}
    if getattr(reshape, "edgeprune_filter", False):
        return

    def update_reshape(graph: Any, node: Any) -> None:
        recorder = getattr(graph, "_edgeprune_reshapes", None)
        if recorder is None:
            reshape(graph, node)
        elif (recorder.rearranging(node.grad_fn, [n.grad_fn for n in node.outputs], _in_channels(graph, node)) is None
              and node.grad_fn in recorder.shapes):  # a matmul's own views keep their features: no mapping
            try:
                reshape(graph, node)
            except Exception as exc:  # Torch-Pruning's shape inference gave up on this reshape
                recorder.unmapped[node.grad_fn] = f"a reshape Torch-Pruning cannot map ({type(exc).__name__})"

    def update_split(graph: Any, node: Any) -> None:
        if getattr(graph, "_edgeprune_reshapes", None) is None:
            split(graph, node)

    def update_concat(graph: Any, node: Any) -> None:
        recorder = getattr(graph, "_edgeprune_reshapes", None)
        if recorder is None:
            concat(graph, node)
            return
        if node.type != tp.ops.OPTYPE.CONCAT or node.grad_fn in recorder.unmapped:
            return
        dim = recorder.concat_dims.get(node.grad_fn)
        if dim != 1:
            recorder.unmapped[node.grad_fn] = f"a concatenation along dim {'?' if dim is None else dim}"
            return
        sizes = recorder.concat_sizes.get(node.grad_fn)
        if node.module.concat_sizes is None and sizes and len(sizes) == len(node.inputs):
            node.module.concat_sizes = list(sizes)  # seen, not inferred (inference misreads a slice's width)
        try:
            concat(graph, node)
        except Exception as exc:  # e.g. an input whose channel count its shape inference cannot find
            recorder.unmapped[node.grad_fn] = f"a concatenation Torch-Pruning cannot map ({type(exc).__name__})"
            return
        if getattr(node.module, "offsets", None) is None:  # it gave up: channels would pass as if element-wise
            recorder.unmapped[node.grad_fn] = "a concatenation whose input widths Torch-Pruning cannot tell"

    def skipping(name: str, what: str) -> Any:
        original = getattr(index_mapping, name)

        def update(graph: Any, node: Any) -> None:
            recorder = getattr(graph, "_edgeprune_reshapes", None)
            if recorder is None:
                original(graph, node)
            elif node.type in (tp.ops.OPTYPE.EXPAND, tp.ops.OPTYPE.UNBIND):
                recorder.unmapped[node.grad_fn] = what
        return update

    for name, what in others.items():
        setattr(index_mapping, name, skipping(name, what))
    update_reshape.edgeprune_filter = True  # type: ignore[attr-defined]
    index_mapping.update_reshape_index_mapping = update_reshape
    index_mapping.update_split_index_mapping = update_split
    index_mapping.update_concat_index_mapping = update_concat



def _in_channels(graph: Any, node: Any) -> int | None:
    """The channel count Torch-Pruning infers for a node's input (from the layer producing it), if any."""
    for source in node.inputs:
        channels = tp.dependency.shape_infer.infer_out_channels_recursively(graph, source, [0])
        if channels:
            return int(channels)
    return None


def split_description(grad_fn: Any) -> str:
    """``chunk/split along dim D into [a, b]`` from a split's autograd node."""
    dim = getattr(grad_fn, "_saved_dim", "?")
    sizes = getattr(grad_fn, "_saved_split_sizes", None)
    if sizes is None:
        sizes = f"pieces of {getattr(grad_fn, '_saved_split_size', '?')}"
    return f"a chunk or split along dim {dim} into {list(sizes) if not isinstance(sizes, str) else sizes}"
