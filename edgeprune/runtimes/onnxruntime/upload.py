"""The agent's structural check of an uploaded ONNX file: protobuf parse, no tensor anywhere naming external data
(:func:`external_data_places`), then ``onnx.checker``. It runs in the agent's measurement worker, under its memory
and CPU limits, just before the runtime loads the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeprune.errors import InputError, first_line


def check_onnx(path: Path) -> None:
    """Parse + ``onnx.checker``; refuse external data (it would make the runtime read other files)."""
    import onnx

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception:
        raise InputError("not an ONNX model: the payload does not parse as an ONNX protobuf") from None
    places = external_data_places(model)
    if places:
        raise InputError(f"ONNX models with external data are not accepted ({len(places)} tensor(s), first at "
                           f"{first_line(places[0], 120)}); export with the weights embedded")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise InputError(f"not a valid ONNX model: {first_line(str(exc), 200)}") from None
    if not model.graph.node:
        raise InputError("not a valid ONNX model: the graph has no nodes")


def external_data_places(model: Any) -> list[str]:
    """Where ``model`` (an ``onnx.ModelProto``) names external data: a description of each such tensor.

    Every ``TensorProto`` reachable from the model is visited, by walking the protobuf message tree rather than
    a list of known fields: initializers, sparse initializers' values and indices, node attributes (``value``,
    ``sparse_value``, tensor lists), the graphs of control-flow nodes at any depth, function bodies and training
    graphs, and any place a later ONNX version adds.
    """
    from onnx import TensorProto

    places: list[str] = []
    stack: list[tuple[Any, str]] = [(model, "model")]
    while stack:
        message, where = stack.pop()
        if isinstance(message, TensorProto):
            if message.data_location == TensorProto.EXTERNAL or len(message.external_data):
                places.append(where)
            continue
        for descriptor, value in message.ListFields():
            if descriptor.message_type is None:
                continue
            name = f"{where}.{descriptor.name}"
            repeated = descriptor.is_repeated if hasattr(descriptor, "is_repeated") else \
                descriptor.label == descriptor.LABEL_REPEATED  # protobuf before 5.x has only the label
            if repeated:
                items = list(value.values()) if hasattr(value, "keys") else list(value)  # a map's values
                stack.extend((item, f"{name}[{i}]") for i, item in enumerate(items))
            else:
                stack.append((value, name))
    return places
