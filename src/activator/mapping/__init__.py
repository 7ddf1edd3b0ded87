"""Attribute mapping: source columns → destination fields, transformed over Arrow arrays."""
