"""Alembic environment of the metadata store.

Activator runs migrations itself (``MetadataStore.open``), handing over an open connection in
``config.attributes["connection"]``; there is no ``alembic.ini`` at run time. The developer
helper ``python -m activator.store.revision`` does the same.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import JSON
from sqlalchemy.engine import Connection

from activator.store.models import Base, UTCDateTime

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "the metadata store's migrations run through activator (MetadataStore.open) or "
        "`python -m activator.store.revision`, which pass a connection; offline SQL generation "
        "and a bare `alembic` command are not supported"
    )


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Write our column types as plain SQLAlchemy ones, so migrations do not import models."""
    if type_ != "type":
        return False
    if isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if isinstance(obj, JSON) and "postgresql" in getattr(obj, "_variant_mapping", {}):
        # Alembic's own rendering of this variant forgets the ``sa.`` of ``Text()``.
        autogen_context.imports.add("from sqlalchemy.dialects import postgresql")
        return "sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')"
    return False


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # Autogenerate writes batch operations: SQLite cannot ALTER most things, so there they
    # recreate the table; on PostgreSQL they are plain ALTERs. One migration fits both.
    render_as_batch=True,
    compare_type=True,
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
