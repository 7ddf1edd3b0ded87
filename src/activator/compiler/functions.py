"""Engine-portable functions that Ibis does not spell the same way everywhere.

``stable_bucket`` assigns campaign groups and holdouts, so it must give the same number for
the same customer on every engine: a customer in the control group on DuckDB during a trial
stays in it after the move to Spark or PostgreSQL.
"""

from __future__ import annotations

__all__ = ["BUCKETS", "HEX_DIGITS", "md5_hex", "stable_bucket"]

from typing import Any

import ibis
import ibis.expr.types as ir

BUCKETS = 10_000
"""Number of buckets; groups own contiguous ranges of them (10% = 1,000 buckets)."""

HEX_DIGITS = 8
"""Leading hex digits of the MD5 digest used: 32 bits, so the modulo bias is under 1e-5."""


@ibis.udf.scalar.builtin(name="md5")  # type: ignore[untyped-decorator]
def md5_hex(value: str) -> str:  # type: ignore[empty-body]
    """The engine's own ``md5``: lowercase hex digest of a string.

    DuckDB, Spark and PostgreSQL all have ``md5(text) -> hex text``. (Ibis 12's
    ``hexdigest`` has no PostgreSQL rule, hence this builtin UDF.) Engines where MD5 returns
    bytes (BigQuery) or takes bytes (Trino) need their own spelling here.
    """


def stable_bucket(expr: ir.Value, salt: str) -> ir.IntegerValue:
    """The bucket (0 to 9,999) of an activation ID, the same on every engine.

    ``bucket = int(md5_hex(salt || ':' || id)[:8], 16) % 10000``. The hex digits are turned
    into a number with portable string and integer operations (position of each digit in
    ``0123456789abcdef``) rather than each engine's own hex parser, so the expression is the
    same Ibis tree everywhere and only ``md5`` is engine SQL.

    Args:
        expr: the activation ID column (string or integer; integers are hashed as their
            decimal text, so ``42`` and ``'42'`` land in the same bucket).
        salt: the activation's salt; a shared salt gives a shared (global) holdout.

    Returns:
        An int64 expression; NULL where the ID is NULL.
    """
    digest = md5_hex(ibis.literal(f"{salt}:") + expr.cast("string"))
    alphabet = ibis.literal("0123456789abcdef")
    value: Any = ibis.literal(0, type="int64")
    for position in range(HEX_DIGITS):
        digit = alphabet.find(digest.substr(position, 1))
        # Horner's rule modulo BUCKETS: the same result as the full 32-bit number modulo
        # BUCKETS, but every intermediate fits a 32-bit integer, which PostgreSQL's
        # ``position()`` arithmetic uses (the full number would overflow it).
        value = (value * 16 + digit) % BUCKETS
    return value.cast("int64")
