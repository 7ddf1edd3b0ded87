"""Definitions → Ibis expressions. Knows nothing of engines: it is handed table expressions."""
