"""One error shape for every failure: ``{"error": kind, "message": ..., "fix": ...}``.

Library errors (:class:`inhouse.errors.InhouseError`) keep their kind and take
the HTTP status from the exception tree (``http_status``); request validation
becomes 422 with the fields that were wrong; an unknown route 404, a wrong
method 405; anything unexpected is logged with its traceback and answered
with a 500 body that holds no stack trace.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import InhouseError

log = logging.getLogger("inhouse.server")

KINDS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         409: "conflict", 413: "too_large", 415: "unsupported_media_type", 422: "invalid_input",
         429: "too_many_requests", 500: "internal", 501: "not_implemented", 503: "unavailable"}


class ErrorBody(BaseModel):
    """What every error response holds."""

    error: str
    message: str
    fix: str | None = None


ERROR_RESPONSES = {code: {"model": ErrorBody, "description": KINDS[code].replace("_", " ")}
                   for code in (400, 401, 403, 404, 409, 413, 422)}


class ApiError(Exception):
    """An error raised by the server layer itself (auth, limits, ...)."""

    def __init__(self, status: int, message: str, *, fix: str | None = None, kind: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.fix = status, message, fix
        self.kind = kind or KINDS.get(status, "error")
        self.headers = headers


def error_kind(e: InhouseError) -> str:
    """``NotFound`` -> ``not_found``, ``ColumnNotFound`` -> ``column_not_found``."""
    name = type(e).__name__
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def body(kind: str, message: str, fix: str | None = None) -> dict:
    return {"error": kind, "message": message, "fix": fix}


def respond(status: int, kind: str, message: str, fix: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(body(kind, message, fix), status_code=status, headers=headers)


def from_exception(e: BaseException) -> tuple[int, dict]:
    """(status, body) for any exception, the same way the handlers answer."""
    if isinstance(e, ApiError):
        return e.status, body(e.kind, e.message, e.fix)
    if isinstance(e, InhouseError):
        return e.http_status, body(error_kind(e), e.message, e.fix)
    log.error("unexpected error", exc_info=e)
    return 500, body("internal", "the server failed to handle this request; the error is in the server log.",
                     "Retry; if it persists, send the server log to your administrator.")


def _where(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def validation_message(errors: list[dict]) -> str:
    out = []
    for e in errors[:5]:
        if e.get("type") == "json_invalid":
            out.append(f"the body is not valid JSON ({e.get('ctx', {}).get('error', 'parse error')})")
        else:
            out.append(f"{_where(e.get('loc', ()))}: {e.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(out) + more


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError):
        return respond(e.status, e.kind, e.message, e.fix, e.headers)

    @app.exception_handler(InhouseError)
    async def inhouse_error(request: Request, e: InhouseError):
        status, b = from_exception(e)
        return JSONResponse(b, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        return respond(422, "invalid_input", validation_message(e.errors()),
                       "See the request schema at /docs or /openapi.json.")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        if e.status_code == 404:
            msg, fix = f"no route {request.method} {request.url.path}.", "See the routes at /docs or /openapi.json."
        elif e.status_code == 405:
            msg, fix = f"{request.url.path} does not accept {request.method}.", "See the allowed methods at /docs."
        else:
            msg, fix = str(e.detail), None
        return respond(e.status_code, KINDS.get(e.status_code, "error"), msg, fix, getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception):
        status, b = from_exception(e)
        return JSONResponse(b, status_code=status)
