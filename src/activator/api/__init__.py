"""The REST API: the same services as the CLI over HTTP, with tokens and roles.

``create_app`` builds the FastAPI application; ``activator serve`` runs it with uvicorn (and the
scheduler in the same process). See docs/api.md.
"""

from activator.api.app import create_app

__all__ = ["create_app"]
