"""Who is calling, and may they: bearer tokens, roles per route, the acting user for the audit log.

:class:`AuthMiddleware` runs before any body is read: no or a bad token is a
401, a role below the route's is a 403, so a viewer's upload is refused
before a byte of it is stored. Each route declares its role with
:func:`role` (shown in the OpenAPI document as ``x-inhouse-role``); routes
that declare none are public (``GET /health`` and the docs). Everything a
request does runs :func:`inhouse.workspace.store.acting_as` the token's name,
so the audit log, labels and alias moves say who.
"""

from __future__ import annotations

import json
import posixpath
import threading
import time
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from ..workspace.store import Workspace, acting_as
from . import tokens
from .errors import ApiError, respond

ROLE_KEY = "x-inhouse-role"
BODY_KEY = "x-inhouse-max-body"
NO_PATHS_KEY = "x-inhouse-no-paths"  # the route's answers never hold a server path: nothing to hide
COOKIE = "inhouse_session"  # the web UI's sign-in: a session secret (not the token), HttpOnly, SameSite=Strict
CSRF_HEADER = b"x-inhouse-client"  # a cookie-signed change must carry it: a page on another site cannot set it
SAFE = {"GET", "HEAD", "OPTIONS"}


def cookie_token(headers: dict) -> str | None:
    """The session cookie's secret from a raw ``cookie`` header, or None."""
    raw = headers.get(b"cookie", b"").decode("latin-1")
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == COOKIE and value.strip():
            return value.strip()
    return None


@dataclass(frozen=True)
class Principal:
    name: str
    role: str

    def can(self, role: str) -> bool:
        return tokens.RANK[self.role] >= tokens.RANK[role]


def role(name: str, *, upload: bool = False, no_paths: bool = False) -> dict:
    """``openapi_extra`` for a route that needs at least role ``name`` (``upload``: takes the upload-size body;
    ``no_paths``: its answers name no server file, so they are sent as they are, not parsed for paths)."""
    extra: dict = {ROLE_KEY: name}
    if upload:
        extra[BODY_KEY] = "upload"
    if no_paths:
        extra[NO_PATHS_KEY] = True
    return {"openapi_extra": extra}


class RouteTable:
    """Which role each route needs, read from the routes' ``openapi_extra`` (matched like the router does).

    Paths under ``public`` (health, docs) need no token; a path no route knows
    needs one (so probing for routes tells nothing without a token).
    """

    def __init__(self, routers, public: tuple[str, ...]):
        self.routes = [(r.path_regex, set(r.methods or ()), getattr(r, "openapi_extra", None) or {})
                       for router in routers for r in router.routes if hasattr(r, "path_regex")]
        self.public = public
        self._seen: dict[tuple[str, str], dict | None] = {}  # (method, path) -> extra: one scan per path

    def extra(self, method: str, path: str) -> dict | None:
        key = (method, path)
        try:
            return self._seen[key]
        except KeyError:
            pass
        found = self._scan(method, path)
        if len(self._seen) >= 4096:  # paths with ids in them (/jobs/17) are many: keep the memo small
            self._seen.clear()
        self._seen[key] = found
        return found

    def _scan(self, method: str, path: str) -> dict | None:
        # "/x/" is a prefix, anything else (and "/" itself) an exact path: "/" as a prefix would open every route
        if path in self.public or any(path.startswith(p) for p in self.public if p.endswith("/") and p != "/"):
            return {}
        partial = None
        for regex, methods, extra in self.routes:
            if regex.match(path):
                if method in methods or (method == "HEAD" and "GET" in methods):
                    return extra
                partial = partial or extra
        return partial


_MISS = object()


class TokenCache:
    """Verified tokens and sessions for a few seconds, so a busy server does not hit SQLite per request.

    :meth:`cached` never touches the database (the event loop may call it); :meth:`lookup` reads (and notes
    the token's use) and belongs on a worker thread.
    """

    def __init__(self, ws: Workspace, ttl: float = 2.0):
        self.ws, self.ttl = ws, ttl
        self._items: dict[tuple[bool, str], tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def cached(self, secret: str, session: bool = False):
        """The principal for ``secret`` if verified less than ``ttl`` s ago (None: refused), else ``_MISS``."""
        with self._lock:
            hit = self._items.get((session, secret))
        if hit and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        return _MISS

    def lookup(self, secret: str, session: bool = False) -> Principal | None:
        now = time.monotonic()
        found = self.cached(secret, session)
        if found is not _MISS:
            return found
        t = tokens.verify_session(self.ws, secret) if session else tokens.verify_token(self.ws, secret)
        p = Principal(t.name, t.role) if t else None
        if t:
            tokens.touch(self.ws, t.name)
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[(session, secret)] = (now, p)
        return p

    def forget(self, secret: str) -> None:
        """Drop a secret at once (sign-out), instead of within ``ttl``."""
        with self._lock:
            self._items.pop((True, secret), None)
            self._items.pop((False, secret), None)


class AuthMiddleware:
    """Bearer auth, role checks and body-size limits, before routing reads anything."""

    def __init__(self, app: ASGIApp, *, table: RouteTable, ws: Workspace, max_body: int, max_upload: int,
                 cache: TokenCache | None = None):
        self.app, self.table, self.max_body, self.max_upload = app, table, max_body, max_upload
        self.cache = cache or TokenCache(ws)
        self.home = str(ws.home)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        extra = self.table.extra(scope["method"], scope["path"])
        need = (extra or {}).get(ROLE_KEY)
        public = extra is not None and need is None
        principal = None
        if not public:
            headers = dict(scope.get("headers") or [])
            header = headers.get(b"authorization", b"").decode("latin-1")
            scheme, _, secret = header.partition(" ")
            session = False
            if not header and (cookie := cookie_token(headers)):
                # the browser signs this request with the session cookie: a change must also carry the
                # client header, which a form or script on another site cannot add (no CORS is allowed)
                if scope["method"] not in SAFE and not headers.get(CSRF_HEADER):
                    return await respond(403, "forbidden", f"{scope['method']} {scope['path']} was signed by the "
                                         "session cookie without the 'X-Inhouse-Client' header.",
                                         "Send the header from the web UI's own scripts, or use "
                                         "'Authorization: Bearer TOKEN'.")(scope, receive, send)
                scheme, secret, session = "bearer", cookie, True
            if scheme.lower() != "bearer" or not secret.strip():
                return await respond(401, "unauthorized", "this route needs an API token: send 'Authorization: Bearer TOKEN'.",
                                     "Ask an admin for one (inhouse tokens create NAME --role viewer).",
                                     {"WWW-Authenticate": "Bearer"})(scope, receive, send)
            principal = self.cache.cached(secret.strip(), session)
            if principal is _MISS:  # SQLite (a read, and a note of the token's use) never runs on the event loop
                principal = await run_in_threadpool(self.cache.lookup, secret.strip(), session)
            if principal is None:
                if session:
                    return await respond(401, "unauthorized", "the session has expired or was signed out.",
                                         "Sign in again with your token.", {"WWW-Authenticate": "Bearer"})(
                                             scope, receive, send)
                return await respond(401, "unauthorized", "the API token is unknown or revoked.",
                                     "Check the token, or ask an admin for a new one (inhouse tokens list).",
                                     {"WWW-Authenticate": "Bearer"})(scope, receive, send)
            if need and not principal.can(need):
                return await respond(403, "forbidden", f"token {principal.name!r} has role {principal.role!r}; "
                                     f"{scope['method']} {scope['path']} needs {need!r} or above.",
                                     "Ask an admin for a token with that role.")(scope, receive, send)
        limit = self.max_upload if (extra or {}).get(BODY_KEY) == "upload" else self.max_body
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > limit
            except ValueError:
                too_big = False
            if too_big:
                return await respond(413, "too_large", f"the request body is {int(length):,} bytes; this route takes "
                                     f"at most {limit:,}.", "Send less per request (or stream NDJSON to "
                                     "/classify/stream).")(scope, receive, send)
        scope.setdefault("state", {})["principal"] = principal
        received = 0
        started = over = False
        if principal is not None and principal.role != "admin":  # server paths are an admin's business
            send = HidePaths(send, self.home, errors_only=bool((extra or {}).get(NO_PATHS_KEY)))

        async def limited_receive():
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message):
            nonlocal started
            if over:  # the app answered the limit with its own error (a form parser says 400): answer 413 instead
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _too_large(limit)(scope, receive, send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            with acting_as(principal.name if principal else None):
                await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as e:
            if not started:
                await _too_large(e.limit)(scope, receive, send)


def _too_large(limit: int):
    return respond(413, "too_large", f"the request body is over {limit:,} bytes, the most this route takes.",
                   "Send less per request (or stream NDJSON to /classify/stream); upload bigger files with "
                   "inhouse serve --max-upload-mb, or ingest them on the server: inhouse ingest")


PATH_KEYS = ("path", "file", "dir", "folder", "home", "output", "input", "source", "location")


class HidePaths:
    """A ``send`` that takes absolute server paths out of JSON answers (for everyone but admins).

    A path inside the workspace becomes relative to it (``datasets/b5/part-0.parquet``); another absolute
    path under a path-like key (``path``, ``*_file``, ``output``, ...) becomes its file name. Streamed
    answers (NDJSON, events) pass as they are, and so do the successful answers of routes that declare
    they name no file (``errors_only``: online classification, read on every request).
    """

    def __init__(self, send: Send, home: str, *, errors_only: bool = False):
        self.send, self.home, self.errors_only = send, home.rstrip("/"), errors_only
        self.start: dict | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message) -> None:
        if message["type"] == "http.response.start":
            headers = dict(message.get("headers") or [])
            if self.errors_only and message.get("status", 500) < 400:  # a route whose answers name no file
                self.start = None
            elif headers.get(b"content-type", b"").startswith(b"application/json") and b"content-length" in headers:
                self.start = message
                return
            self.start = None
        elif message["type"] == "http.response.body" and self.start is not None:
            self.chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(self.chunks)
            try:
                body = json.dumps(self.clean(json.loads(body)), ensure_ascii=False).encode()
            except ValueError:
                pass
            headers = [(k, v) for k, v in self.start.get("headers") or [] if k != b"content-length"]
            await self.send({**self.start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await self.send({"type": "http.response.body", "body": body})
            return
        await self.send(message)

    def clean(self, value, key: str = ""):
        if isinstance(value, dict):
            return {k: self.clean(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.clean(v, key) for v in value]
        if isinstance(value, str) and value.startswith("/") and len(value) < 4096 and not any(c.isspace() for c in value):
            if value == self.home or value.startswith(self.home + "/"):
                return value[len(self.home) + 1:] or "."
            k = key.lower()
            if any(k == p or k.endswith("_" + p) or k.startswith(p + "_") for p in PATH_KEYS):
                return posixpath.basename(value.rstrip("/"))
        return value


API_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store"),
               (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
               (b"referrer-policy", b"no-referrer")]


class ApiHeaders:
    """``nosniff``, ``no-store`` and a deny-all CSP on every API answer (errors and new tokens included).

    Paths in ``skip`` (the interactive docs, a UI's own files) keep what their routes set; a header the
    route already set is never doubled.
    """

    def __init__(self, app: ASGIApp, skip: tuple[str, ...] = ()):
        self.app, self.skip = app, skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip or any(
                scope["path"].startswith(p) for p in self.skip if p.endswith("/") and p != "/"):
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers") or []}
                extra = [(k, v) for k, v in API_HEADERS if k not in have]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


class BodyTooLarge(ApiError):
    def __init__(self, limit: int):
        super().__init__(413, f"the request body is over {limit:,} bytes, the most this route takes.",
                         fix="Send less per request (or stream NDJSON to /classify/stream).")
        self.limit = limit


def principal_of(request) -> Principal:
    return request.scope.get("state", {}).get("principal") or Principal("anonymous", "viewer")
