"""Developer helper: write the next migration by comparing the models with the schema.

Usage (from a source checkout)::

    python -m activator.store.revision "add schedules"
    python -m activator.store.revision --empty "backfill run counts"

It migrates a scratch SQLite database to the current head, lets Alembic autogenerate the
difference to :mod:`activator.store.models`, and writes
``src/activator/store/migrations/versions/NNNN_<slug>.py`` with the next sequential id. Review the
file (autogenerate misses renames and data changes), then run ``pytest tests/store``: it checks
the models and the migrations agree on SQLite and PostgreSQL.
"""

from __future__ import annotations

__all__ = ["main", "make_revision", "next_revision_id"]

import argparse
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from alembic import command

from activator.store.migrate import MIGRATIONS, alembic_config
from activator.store.store import MetadataStore


def next_revision_id() -> str:
    """The next sequential revision id: ``0002`` after ``0001_initial.py``."""
    numbers = [
        int(match.group(1))
        for path in (MIGRATIONS / "versions").glob("*.py")
        if (match := re.match(r"(\d{4})_", path.name))
    ]
    return f"{max(numbers, default=0) + 1:04d}"


def make_revision(message: str, *, empty: bool = False) -> Path:
    """Write the next migration file and return its path.

    Args:
        message: what the migration does; also the file name's slug.
        empty: write an empty migration (for data changes) instead of autogenerating one.
    """
    with tempfile.TemporaryDirectory(prefix="activator-revision-") as scratch:
        root = Path(scratch)
        with (
            MetadataStore.open("sqlite:///scratch.db", workspace_root=root) as store,
            store.engine.begin() as connection,
        ):
            config = alembic_config(connection)
            # Format the new file like the rest of the code base.
            config.set_section_option("post_write_hooks", "hooks", "ruff")
            config.set_section_option("post_write_hooks", "ruff.type", "module")
            config.set_section_option("post_write_hooks", "ruff.module", "ruff")
            config.set_section_option(
                "post_write_hooks", "ruff.options", "format REVISION_SCRIPT_FILENAME"
            )
            script = command.revision(
                config,
                message,
                autogenerate=not empty,
                rev_id=next_revision_id(),
            )
    scripts = script if isinstance(script, list) else [script]
    written = [s for s in scripts if s is not None]
    if not written:  # pragma: no cover - Alembic always writes one script here
        raise RuntimeError("alembic wrote no migration")
    return Path(written[0].path)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints the path of the new migration."""
    parser = argparse.ArgumentParser(
        prog="python -m activator.store.revision", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("message", help="what the migration does, e.g. 'add schedules'")
    parser.add_argument("--empty", action="store_true", help="do not autogenerate operations")
    args = parser.parse_args(argv)
    path = make_revision(args.message, empty=args.empty)
    sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
