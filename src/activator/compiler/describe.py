"""Rule-tree nodes in words, for ``segment why`` and explanations."""

from __future__ import annotations

__all__ = ["describe"]

from typing import Any

from activator.definitions.common import (
    AllGroup,
    AnyGroup,
    AttributeCondition,
    BehaviorCondition,
    CampaignActivityCondition,
    Comparison,
    JourneyActivityCondition,
    NotGroup,
    Rules,
    ScoreCondition,
    SegmentCondition,
    Window,
)
from activator.definitions.config import DataModel

_WORDS = {
    "is_null": "is null",
    "is_not_null": "is not null",
    "is_true": "is true",
    "is_false": "is false",
    "not_equals": "not equals",
    "not_contains": "does not contain",
    "contains": "contains",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "empty": "is empty",
    "not_empty": "is not empty",
    "on_or_before": "on or before",
    "on_or_after": "on or after",
    "not_between": "not between",
    "not_in": "not in",
}
_NO_VALUE = {"is_null", "is_not_null", "is_true", "is_false", "empty", "not_empty"}


def _value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    return str(value)


def _op(op: str, value: Any) -> str:
    word = _WORDS.get(op, op)
    if op in _NO_VALUE:
        return word
    if op in ("between", "not_between") and isinstance(value, list | tuple) and len(value) == 2:
        return f"{word} {_value(value[0])} and {_value(value[1])}"
    return f"{word} {_value(value)}"


def _window(window: Window | None) -> str:
    if window is None:
        return ""
    if window.last is not None:
        amount, unit = window.last[:-1], window.last[-1]
        units = {"h": "hours", "d": "days", "w": "weeks", "m": "months", "y": "years"}[unit]
        return f" in the last {amount} {units}"
    assert window.between is not None
    return f" between {window.between[0]} and {window.between[1]}"


def _comparison(label: str, comparison: Comparison | None) -> str:
    if comparison is None:
        return ""
    return f" {label} {_op(comparison.op, comparison.value)}"


_TIMES = {
    "=": "exactly",
    "!=": "not exactly",
    ">": "more than",
    ">=": "at least",
    "<": "fewer than",
    "<=": "at most",
}


def _times(comparison: Comparison | None) -> str:
    if comparison is None:
        return ""
    op, value = comparison.op, comparison.value
    if op in ("between", "not_between") and isinstance(value, list | tuple) and len(value) == 2:
        return f" {_op(op, value)} times"
    if op in _TIMES:
        return f" {_TIMES[op]} {_value(value)} " + ("time" if str(value) == "1" else "times")
    return f" {_op(op, value)} times"


def _campaign(node: CampaignActivityCondition) -> str:
    filters = [
        f"{label} {value}"
        for label, value in (
            ("sub-audience", node.sub_audience),
            ("group", node.group),
            ("destination", node.destination),
        )
        if value is not None
    ]
    if node.include_control:
        filters.append("control included")
    text = f"in campaign {node.campaign}"
    if filters:
        text += f" ({', '.join(filters)})"
    text += _times(node.times) + _window(node.window)
    if node.first is not None:
        text += f", first sent {_op(node.first.op, node.first.value)}"
    if node.last is not None:
        text += f", last sent {_op(node.last.op, node.last.value)}"
    return text


def _journey(node: JourneyActivityCondition) -> str:
    journey = f"journey {node.journey}"
    if node.status == "in":
        text = f"at node {node.node} of {journey}" if node.node else f"in {journey}"
        verb = "arrived"
    elif node.status == "entered":
        text = f"reached node {node.node} of {journey}" if node.node else f"entered {journey}"
        verb = "reached" if node.node else "entered"
    elif node.status == "goal":
        text = (
            f"reached goal {node.goal} of {journey}"
            if node.goal
            else f"reached a goal of {journey}"
        )
        verb = "reached"
    else:
        text = f"exited {journey}" + (f" ({node.reason})" if node.reason else "")
        verb = "exited"
    if node.status == "in":
        text += f", arrived{_window(node.window)}" if node.window else ""
    else:
        text += _times(node.times) + _window(node.window)
    # Status in: first and last are both the arrival at the node where the customer is.
    labels = (verb, verb) if node.status == "in" else (f"first {verb}", f"last {verb}")
    for label, when in zip(labels, (node.first, node.last), strict=True):
        if when is not None:
            text += f", {label} {_op(when.op, when.value)}"
    return text


def describe(node: Rules, data_model: DataModel | None = None) -> str:
    """A short human description: ``orders: has_purchased count >= 3 in the last 365 days``."""
    if isinstance(node, AllGroup):
        return "all of"
    if isinstance(node, AnyGroup):
        return "any of"
    if isinstance(node, NotGroup):
        return "not"
    if isinstance(node, AttributeCondition):
        text = f"{node.attribute} {_op(node.op, node.value)}"
        if not node.case_sensitive:
            text += " (case-insensitive)"
        return text
    if isinstance(node, BehaviorCondition):
        text = f"{node.table}: {node.behavior}"
        if node.behavior == "most_frequent":
            text += f" {node.column}"
            value = node.value
            if isinstance(value, Comparison):
                text += f" {_op(value.op, value.value)}"
            elif isinstance(value, list | tuple):
                text += f" in {_value(value)}"
            else:
                text += f" = {value}"
        elif node.behavior == "total_value":
            value = node.value if isinstance(node.value, Comparison) else None
            text += _comparison("", value).replace("  ", " ")
        elif node.behavior == "has_purchased":
            text += _comparison("count", node.count or Comparison(op=">=", value=1))
        text += _window(node.window)
        for where in node.where:
            text += f", where {describe(where)}"
        return text
    if isinstance(node, ScoreCondition):
        table = f" ({node.table})" if node.table else ""
        return f"{node.score} {_op(node.op, node.value)}{table}"
    if isinstance(node, SegmentCondition):
        return f"in segment {node.segment}"
    if isinstance(node, CampaignActivityCondition):
        return _campaign(node)
    if isinstance(node, JourneyActivityCondition):
        return _journey(node)
    return type(node).__name__
