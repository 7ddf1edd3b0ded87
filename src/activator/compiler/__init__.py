"""Definitions → Ibis expressions. Knows nothing of engines: it is handed table expressions."""

from __future__ import annotations

__all__ = [
    "CompileContext",
    "ConditionResult",
    "check_segment",
    "explain_customer",
    "segment_members",
]

from activator.compiler.segment import (
    CompileContext,
    ConditionResult,
    check_segment,
    explain_customer,
    segment_members,
)
