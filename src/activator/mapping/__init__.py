"""Attribute mapping: source columns → destination fields, transformed over Arrow arrays."""

from __future__ import annotations

__all__ = ["MappedBatch", "Mapper", "MappingTotals"]

from activator.mapping.mapper import MappedBatch, Mapper, MappingTotals
