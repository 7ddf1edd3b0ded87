"""Destination connectors: files, tables, webhooks, and the HTTP kit for marketing APIs.

Each connector implements :class:`activator.destinations.base.Connector`; the registry maps a
destination definition's ``type`` to its connector. Cloud clients are imported lazily.
"""
