"""The schema of ``plan.json``, checked when a plan is read: every field's type and range.

A plan comes from an output folder that may have been received, edited or damaged. Rebuilding trusts its
numbers (it allocates tensors of the recorded shapes and indexes channels by the kept indices), so a negative
dimension, an index past a group's width or a string where a list belongs is refused here, in one
:class:`~edgeprune.errors.InputError` line naming the file and the field, never an internal error later.
"""

from __future__ import annotations

from typing import Any

from edgeprune.errors import InputError

#: the most elements one recorded tensor may have (8 GiB of float32): more is not a model edgeprune wrote
MAX_TENSOR_ELEMENTS = 2**31
#: width attributes that may be zero (a padding); every other one must be positive
_ZERO_ALLOWED_ATTRS = frozenset({"pad_front"})


class PlanFieldError(InputError):
    """A plan's field has the wrong type or range; ``field`` names it (``groups[3].kept[7]``)."""

    def __init__(self, origin: str, field: str, problem: str) -> None:
        super().__init__(f"{origin}: invalid plan field '{field}': {problem}; rewrite the plan with "
                         "edgeprune fit or restore the output folder")
        self.field = field


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _int_at_least(origin: str, field: str, value: Any, low: int) -> int:
    if not _is_int(value) or value < low:
        kind = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise PlanFieldError(origin, field, f"expected {kind}, got {_describe(value)}")
    return int(value)


def _object(origin: str, field: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PlanFieldError(origin, field, f"expected an object, got {type(value).__name__}")
    return value


def _list(origin: str, field: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise PlanFieldError(origin, field, f"expected a list, got {type(value).__name__}")
    return value


def _text(origin: str, field: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise PlanFieldError(origin, field, f"expected a non-empty string, got {_describe(value)}")
    return value


def _check_group(origin: str, field: str, group: Any) -> None:
    group = _object(origin, field, group)
    _text(origin, f"{field}.name", group.get("name"))
    before = _int_at_least(origin, f"{field}.width_before", group.get("width_before"), 1)
    after = _int_at_least(origin, f"{field}.width_after", group.get("width_after"), 1)
    if after > before:
        raise PlanFieldError(origin, f"{field}.width_after", f"{after} is more than width_before {before}")
    kept = _list(origin, f"{field}.kept", group.get("kept"))
    if len(kept) != after:
        raise PlanFieldError(origin, f"{field}.kept", f"{len(kept)} indices for width_after {after}")
    seen: set[int] = set()
    for i, index in enumerate(kept):
        if not _is_int(index) or not 0 <= index < before:
            raise PlanFieldError(origin, f"{field}.kept[{i}]",
                                 f"expected a channel index in [0, {before}), got {_describe(index)}")
        if index in seen:
            raise PlanFieldError(origin, f"{field}.kept[{i}]", f"channel {index} is kept twice")
        seen.add(index)


def _check_module(origin: str, field: str, entry: Any) -> None:
    entry = _object(origin, field, entry)
    _text(origin, f"{field}.type", entry.get("type"))
    for attr, value in _object(origin, f"{field}.attrs", entry.get("attrs")).items():
        _int_at_least(origin, f"{field}.attrs.{attr}", value, 0 if attr in _ZERO_ALLOWED_ATTRS else 1)
    for name, shape in _object(origin, f"{field}.tensors", entry.get("tensors")).items():
        elements = 1
        for i, dim in enumerate(_list(origin, f"{field}.tensors.{name}", shape)):
            elements *= _int_at_least(origin, f"{field}.tensors.{name}[{i}]", dim, 1)
        if elements > MAX_TENSOR_ELEMENTS:
            raise PlanFieldError(origin, f"{field}.tensors.{name}",
                                 f"{elements} elements, more than any model edgeprune writes ({MAX_TENSOR_ELEMENTS})")


def validate_plan(data: Any, origin: str) -> None:
    """Check a plan's JSON ``data`` (read from ``origin``, e.g. ``OUT/plan.json``) against the schema that
    :meth:`~edgeprune.prune.plan.SlimPlan.to_dict` writes; raise :class:`PlanFieldError` at the first bad
    field. The format and version are checked by the caller."""
    data = _object(origin, "(top level)", data)
    model = _object(origin, "model", data.get("model"))
    _text(origin, "model.spec", model.get("spec"))
    _object(origin, "model.build_kwargs", model.get("build_kwargs", {}))
    shape = _list(origin, "input_shape", data.get("input_shape"))
    if not shape:
        raise PlanFieldError(origin, "input_shape", "empty")
    for i, dim in enumerate(shape):
        _int_at_least(origin, f"input_shape[{i}]", dim, 1)
    if data.get("preprocessing") is not None:
        _object(origin, "preprocessing", data["preprocessing"])
    _object(origin, "method", data.get("method", {}))
    for i, name in enumerate(_list(origin, "removed_blocks", data.get("removed_blocks", []))):
        _text(origin, f"removed_blocks[{i}]", name)
    for i, group in enumerate(_list(origin, "groups", data.get("groups"))):
        _check_group(origin, f"groups[{i}]", group)
    for name, entry in _object(origin, "modules", data.get("modules")).items():
        _check_module(origin, f"modules.{name}", entry)
