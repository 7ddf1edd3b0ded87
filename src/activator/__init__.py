"""Activator: turn a brand's customer data into marketing activations."""

__version__ = "0.1.0"
__all__ = ["__version__"]
