"""One JSON error shape for every failure, and the handlers that produce it.

Every error response is ``{"error": {"type", "message", "field", "hint", "errors"}}``: ``type``
is a stable machine word, ``message`` a sentence for people, ``field`` the path of the field
concerned (``audience.include[1]``) when there is one, ``errors`` every problem of a
validation. No stack trace and no secret ever reaches a response: unexpected errors are logged
on the server with a request id, and the response carries only that id.
"""

from __future__ import annotations

__all__ = ["ApiError", "ErrorBody", "ErrorResponse", "install_error_handlers"]

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from activator.errors import (
    ActivatorError,
    ConfigError,
    DefinitionError,
    EngineError,
    EngineLockedError,
    StoreError,
)
from activator.store import DefinitionConflictError, RunClaimedError, RunSlotTakenError
from activator.workspace.yaml import format_loc

log = logging.getLogger("activator.api")


class ErrorItem(BaseModel):
    """One problem of a request."""

    field: str | None = Field(default=None, examples=["audience.include[0]"])
    """The path of the field concerned, when there is one."""

    message: str = Field(examples=["unknown segment 'vips' (known: vip, lapsed)"])


class ErrorBody(BaseModel):
    """What went wrong."""

    type: str = Field(examples=["validation"])
    """``unauthenticated``, ``forbidden``, ``not_found``, ``conflict``, ``validation``,
    ``bad_request``, ``engine_busy``, ``engine_error``, ``store_error`` or ``internal``."""

    message: str = Field(examples=["the segment is invalid: 1 problem"])
    field: str | None = None
    """The path of the field concerned, when the error is about one field."""

    hint: str | None = None
    """What to do about it, when known."""

    errors: list[ErrorItem] = []
    """Every problem found (validation errors)."""


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorBody


class ApiError(Exception):
    """An error with its HTTP status and type, raised by the routes."""

    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        *,
        field: str | None = None,
        hint: str | None = None,
        errors: list[ErrorItem] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(
            type=type, message=message, field=field, hint=hint, errors=errors or []
        )
        self.headers = headers


def not_found(what: str) -> ApiError:
    """A 404 naming what was not found."""
    return ApiError(404, "not_found", f"no {what}")


def _response(error: ApiError) -> JSONResponse:
    return JSONResponse(
        ErrorResponse(error=error.body).model_dump(mode="json"),
        status_code=error.status,
        headers=error.headers,
    )


def _from_activator(exc: ActivatorError) -> ApiError:
    """Map the services' errors onto HTTP."""
    hint = exc.hint
    if isinstance(exc, DefinitionError):
        items = [ErrorItem(field=issue.path or None, message=issue.message) for issue in exc.issues]
        first = items[0] if items else None
        count = len(items)
        message = (
            f"{first.field}: {first.message}"
            if count == 1 and first is not None and first.field
            else first.message
            if count == 1 and first is not None
            else f"the definition has {count} problems"
        )
        return ApiError(
            422,
            "validation",
            message,
            field=first.field if count == 1 and first is not None else None,
            errors=items,
        )
    if isinstance(exc, DefinitionConflictError | RunSlotTakenError | RunClaimedError):
        return ApiError(409, "conflict", exc.message, hint=hint)
    if isinstance(exc, EngineLockedError):
        return ApiError(
            503,
            "engine_busy",
            exc.message,
            hint=hint or "a run is writing to the embedded engine; try again shortly",
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, EngineError):
        return ApiError(502, "engine_error", exc.message, hint=hint)
    if isinstance(exc, StoreError) and not getattr(exc, "bad_input", True):
        return ApiError(503, "store_error", exc.message, hint=hint)
    if isinstance(exc, ConfigError) and (
        exc.message.startswith("no ") or " not found in " in exc.message
    ):
        return ApiError(404, "not_found", exc.message, hint=hint)
    return ApiError(400, "bad_request", exc.message, hint=hint)


def install_error_handlers(app: FastAPI) -> None:
    """Give every error the one JSON shape."""

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _response(exc)

    @app.exception_handler(ActivatorError)
    async def activator_error(_request: Request, exc: ActivatorError) -> JSONResponse:
        return _response(_from_activator(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        items = []
        for err in exc.errors():
            loc: list[Any] = list(err.get("loc", ()))
            where = loc[0] if loc else ""
            path = [p for p in loc[1:] if isinstance(p, str | int)]
            field = format_loc(path) or None
            if where in ("query", "path", "header"):
                field = f"{where}:{field}" if field else where
            message = str(err.get("msg", "invalid"))
            if err.get("type") == "extra_forbidden":
                message = "unknown key (check the spelling; see docs/workspace.md for the keys)"
            elif err.get("type") == "missing":
                message = "required key is missing"
            elif message.startswith("Value error, "):
                message = message.removeprefix("Value error, ")
            items.append(ErrorItem(field=field, message=message))
        first = items[0] if items else ErrorItem(message="invalid request")
        message = f"{first.field}: {first.message}" if first.field else first.message
        if len(items) > 1:
            message += f" (and {len(items) - 1} more)"
        return _response(
            ApiError(
                422,
                "validation",
                message,
                field=first.field if len(items) == 1 else None,
                errors=items,
            )
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "bad_request"}
        message = str(exc.detail) if exc.detail else "error"
        return _response(
            ApiError(
                exc.status_code,
                kinds.get(exc.status_code, "bad_request"),
                message,
                headers=dict(exc.headers or {}),
            )
        )

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        request_id = uuid.uuid4().hex[:12]
        log.error(
            "request %s failed: %s", request_id, type(exc).__name__, exc_info=(type(exc), exc, None)
        )
        return _response(
            ApiError(
                500,
                "internal",
                f"internal error (request {request_id}); the server log has the details",
            )
        )
