"""Who may use the API, and what was changed by whom: API tokens and the audit log.

Mixed into :class:`activator.store.store.MetadataStore`. Only the SHA-256 of a token is
stored: a leaked database does not leak usable tokens, and a token is found by hashing what
the client sent and looking the hash up (no comparison of secrets character by character).
"""

from __future__ import annotations

__all__ = ["ROLES", "AccessMixin", "AuditEntry", "TokenRecord"]

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from activator.errors import StoreError
from activator.store.models import ApiTokenRow, AuditEntryRow

ROLES = ("viewer", "editor", "admin")
"""API roles, each allowed what the one before it is: read; change definitions and run;
manage tokens."""

TOKEN_PREFIX = "act_"
"""Every plain token starts with this, so a leaked one is recognisable (secret scanners)."""

_LAST_USED_RESOLUTION = timedelta(minutes=1)
# Most requests then read only: last_used_at is written at most once a minute per token.

_AUDIT_LIMIT_MAX = 1000


@dataclass(frozen=True)
class TokenRecord:
    """An API token as stored: never its value, nor its hash.

    Attributes:
        token_id: short public id (``revoke`` takes it).
        name: what it is for.
        role: one of :data:`ROLES`.
        created_at: when it was created (UTC).
        created_by: who created it (``cli``, or a token's name).
        last_used_at: when it last authenticated a request, to the minute.
        revoked_at: when it was revoked; it authenticates nothing since.
    """

    token_id: str
    name: str
    role: str
    created_at: datetime
    created_by: str | None
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log.

    Attributes:
        entry_id: increasing id; the cursor of :meth:`AccessMixin.audit_log`.
        at: when (UTC).
        actor: who: ``cli``, ``scheduler`` or the name of the API token used.
        action: what: ``create``, ``update``, ``revoke``, ``export``, ``run``...
        kind: the kind of the thing changed (``segment``, ``token``...), if any.
        name: its name, if any.
        detail: anything else worth keeping (versions, the run id...).
    """

    entry_id: int
    at: datetime
    actor: str
    action: str
    kind: str | None
    name: str | None
    detail: dict[str, Any]


def token_hash(token: str) -> str:
    """SHA-256 (hex) of a plain token: what the store keeps."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class AccessMixin:
    """API tokens and the audit log (see the module doc)."""

    _clock: Callable[[], datetime]
    _reads: sessionmaker[Session]
    _writes: sessionmaker[Session]

    def _guard(self, action: str) -> AbstractContextManager[None]:
        raise NotImplementedError

    # -- tokens ------------------------------------------------------------------------------

    def create_token(
        self, *, name: str, role: str, created_by: str | None = None
    ) -> tuple[TokenRecord, str]:
        """Create an API token.

        Args:
            name: what it is for (shown in listings and as the audit log's actor); empty:
                ``token-<id>``.
            role: one of :data:`ROLES`.
            created_by: who creates it.

        Returns:
            The stored record and the plain token, which is not kept: show it once.

        Raises:
            StoreError: an unknown role.
        """
        if role not in ROLES:
            raise StoreError(
                f"unknown role {role!r}: a token's role is one of {', '.join(ROLES)}",
                hint="viewer reads, editor also changes definitions and runs, admin also "
                "manages tokens",
            )
        plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = secrets.token_hex(6)
        row = ApiTokenRow(
            token_id=token_id,
            name=name or f"token-{token_id}",
            role=role,
            token_hash=token_hash(plain),
            created_at=self._clock(),
            created_by=created_by,
        )
        with self._guard("creating a token"), self._writes() as session, session.begin():
            session.add(row)
            session.flush()
            record = _token(row)
        return record, plain

    def authenticate(self, token: str) -> TokenRecord | None:
        """The live (not revoked) token with this plain value, or ``None``.

        The token is hashed and the hash looked up, so the time taken does not depend on how
        much of a guess matched. ``last_used_at`` is written at most once a minute.
        """
        digest = token_hash(token)
        query = select(ApiTokenRow).where(ApiTokenRow.token_hash == digest)
        with self._guard("checking a token"), self._reads() as session:
            row = session.scalars(query).one_or_none()
            if row is None or row.revoked_at is not None:
                return None
            # Belt and braces: the database compared the hashes; compare them in constant time.
            if not hmac.compare_digest(row.token_hash, digest):
                return None
            record = _token(row)
        now = self._clock()
        last = record.last_used_at
        if last is not None and now - last < _LAST_USED_RESOLUTION:
            return record
        stale = now - _LAST_USED_RESOLUTION
        with self._guard("recording a token's use"), self._writes() as session, session.begin():
            session.execute(
                update(ApiTokenRow)
                .where(
                    ApiTokenRow.token_id == record.token_id,
                    or_(ApiTokenRow.last_used_at.is_(None), ApiTokenRow.last_used_at <= stale),
                )
                .values(last_used_at=now)
            )
        return TokenRecord(
            token_id=record.token_id,
            name=record.name,
            role=record.role,
            created_at=record.created_at,
            created_by=record.created_by,
            last_used_at=now,
            revoked_at=None,
        )

    def list_tokens(self) -> list[TokenRecord]:
        """Every token, oldest first, revoked ones included."""
        query = select(ApiTokenRow).order_by(ApiTokenRow.created_at, ApiTokenRow.token_id)
        with self._guard("listing tokens"), self._reads() as session:
            return [_token(row) for row in session.scalars(query)]

    def revoke_token(self, token_id: str) -> TokenRecord:
        """Revoke a token now; revoking it again changes nothing.

        Raises:
            StoreError: no such token.
        """
        with self._guard("revoking a token"), self._writes() as session, session.begin():
            row = session.get(ApiTokenRow, token_id, with_for_update=True)
            if row is None:
                raise StoreError(
                    f"no API token {token_id!r} in the metadata store",
                    hint="`activator token list` shows the tokens and their ids",
                )
            if row.revoked_at is None:
                row.revoked_at = self._clock()
            session.flush()
            return _token(row)

    # -- audit log ---------------------------------------------------------------------------

    def audit(
        self,
        *,
        actor: str,
        action: str,
        kind: str | None = None,
        name: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Record who did what (JSON-compatible ``detail``), now."""
        row = AuditEntryRow(
            at=self._clock(),
            actor=actor,
            action=action,
            kind=kind,
            name=name,
            detail=dict(detail or {}),
        )
        with self._guard("writing the audit log"), self._writes() as session, session.begin():
            session.add(row)

    def audit_log(
        self,
        *,
        limit: int = 100,
        before: int | None = None,
        kind: str | None = None,
        name: str | None = None,
        actor: str | None = None,
    ) -> list[AuditEntry]:
        """Audit entries, newest first.

        Args:
            limit: at most this many (capped at 1,000).
            before: only entries older than this ``entry_id`` (the last one of the previous
                page).
            kind: only entries about this kind.
            name: only entries about this name.
            actor: only entries by this actor.
        """
        query = select(AuditEntryRow)
        if before is not None:
            query = query.where(AuditEntryRow.entry_id < before)
        if kind is not None:
            query = query.where(AuditEntryRow.kind == kind)
        if name is not None:
            query = query.where(AuditEntryRow.name == name)
        if actor is not None:
            query = query.where(AuditEntryRow.actor == actor)
        limit = max(0, min(limit, _AUDIT_LIMIT_MAX))
        query = query.order_by(AuditEntryRow.entry_id.desc()).limit(limit)
        with self._guard("reading the audit log"), self._reads() as session:
            return [_entry(row) for row in session.scalars(query)]


def _token(row: ApiTokenRow) -> TokenRecord:
    return TokenRecord(
        token_id=row.token_id,
        name=row.name,
        role=row.role,
        created_at=row.created_at,
        created_by=row.created_by,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def _entry(row: AuditEntryRow) -> AuditEntry:
    return AuditEntry(
        entry_id=row.entry_id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        kind=row.kind,
        name=row.name,
        detail=dict(row.detail),
    )
