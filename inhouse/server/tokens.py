"""API tokens: created once, stored only as a sha256 hash, with a role.

Roles, each including the one before: ``viewer`` reads; ``editor`` also
uploads, labels, trains, classifies datasets and moves aliases; ``admin``
also manages tokens and reads the audit log. The CLI (``inhouse tokens``)
and the server's ``/tokens`` routes use these functions.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> t = create_token(ws, "ci-bot", "viewer")
    >>> verify_token(ws, t.token).role
    'viewer'
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass

from ..errors import Conflict, NotFound, UsageError
from ..workspace.store import Workspace, current_user

ROLES = ("viewer", "editor", "admin")
RANK = {r: i for i, r in enumerate(ROLES)}
PREFIX = "ih_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


@dataclass
class Token:
    name: str
    role: str
    prefix: str
    created_at: float
    created_by: str
    last_used_at: float | None = None
    revoked_at: float | None = None
    token: str | None = None  # the secret: only right after create_token

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "token"}
        if self.token is not None:
            d["token"] = self.token
        return d


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _row(r) -> Token:
    return Token(r["name"], r["role"], r["prefix"], r["created_at"], r["created_by"], r["last_used_at"], r["revoked_at"])


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UsageError(f"role {role!r} is not one of {list(ROLES)}.", fix="Use --role viewer, editor or admin.")
    return role


def create_token(ws: Workspace, name: str, role: str) -> Token:
    """A new token for ``name``; the secret is in ``.token`` and is never stored or shown again."""
    check_role(role)
    if not _NAME.match(name or ""):
        raise UsageError(f"token name {name!r} is not valid.",
                         fix="Use up to 64 letters, digits, '.', '_', '-' or '@', starting with a letter or digit.")
    secret = PREFIX + secrets.token_urlsafe(32)
    now, who = time.time(), current_user()
    with ws.tx() as db:
        if db.execute("SELECT 1 FROM tokens WHERE name = ? AND revoked_at IS NULL", (name,)).fetchone():
            raise Conflict(f"a token named {name!r} already exists.",
                           fix=f"Revoke it first (inhouse tokens revoke {name}) or choose another name.")
        db.execute("INSERT INTO tokens (name, role, token_sha256, prefix, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)",
                   (name, role, token_hash(secret), secret[:7], now, who))
        ws.audit("token.create", name, role=role)
    return Token(name, role, secret[:7], now, who, token=secret)


def list_tokens(ws: Workspace, *, include_revoked: bool = False) -> list[Token]:
    q = "SELECT * FROM tokens" + ("" if include_revoked else " WHERE revoked_at IS NULL") + " ORDER BY name, id"
    return [_row(r) for r in ws.db.execute(q)]


def revoke_token(ws: Workspace, name: str) -> Token:
    with ws.tx() as db:
        r = db.execute("SELECT * FROM tokens WHERE name = ? AND revoked_at IS NULL", (name,)).fetchone()
        if r is None:
            live = [x[0] for x in db.execute("SELECT name FROM tokens WHERE revoked_at IS NULL ORDER BY name")]
            raise NotFound(f"no live token named {name!r}; tokens are {live}.", fix="See them with: inhouse tokens list")
        now = time.time()
        db.execute("UPDATE tokens SET revoked_at = ? WHERE id = ?", (now, r["id"]))
        ws.audit("token.revoke", name, role=r["role"])
    t = _row(r)
    t.revoked_at = now
    return t


def verify_token(ws: Workspace, secret: str) -> Token | None:
    """The live token with this secret, or None. Compares hashes in constant time."""
    if not secret or len(secret) > 256:
        return None
    digest = token_hash(secret)
    r = ws.db.execute("SELECT * FROM tokens WHERE token_sha256 = ? AND revoked_at IS NULL", (digest,)).fetchone()
    if r is None or not hmac.compare_digest(r["token_sha256"], digest):
        return None
    return _row(r)


def touch(ws: Workspace, name: str) -> None:
    """Note when a token was last used (at most about once a minute per token).

    Best effort and never waits: while another process holds the write lock the note is skipped (a
    request must not wait up to the busy timeout for a bookkeeping write).
    """
    now = time.time()
    db = ws.db
    db.execute("PRAGMA busy_timeout=0")
    try:
        db.execute("UPDATE tokens SET last_used_at = ? WHERE name = ? AND revoked_at IS NULL "
                   "AND (last_used_at IS NULL OR last_used_at < ?)", (now, name, now - 60))
    except sqlite3.OperationalError as e:
        if "locked" not in str(e).lower() and "busy" not in str(e).lower():
            raise
    finally:
        db.execute("PRAGMA busy_timeout=60000")


# --------------------------------------------------------------- sessions ----

SESSION_PREFIX = "ihs_"
SESSION_SECONDS = 12 * 3600


def create_session(ws: Workspace, token: Token, seconds: float = SESSION_SECONDS) -> tuple[str, float]:
    """A browser session for a verified token: (secret for the cookie, expiry time). Only its hash is stored."""
    secret = SESSION_PREFIX + secrets.token_urlsafe(32)
    now = time.time()
    with ws.tx() as db:
        r = db.execute("SELECT id FROM tokens WHERE name = ? AND revoked_at IS NULL", (token.name,)).fetchone()
        if r is None:
            raise NotFound(f"no live token named {token.name!r}.", fix="Sign in with a live token.")
        db.execute("DELETE FROM sessions WHERE expires_at < ? OR revoked_at < ?", (now, now - 86400))  # stays small
        db.execute("INSERT INTO sessions (secret_sha256, token_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                   (token_hash(secret), r["id"], now, now + seconds))
        ws.audit("session.create", token.name, role=token.role)
    return secret, now + seconds


def verify_session(ws: Workspace, secret: str) -> Token | None:
    """The live token behind a live, unexpired session, or None (revoking the token ends its sessions)."""
    if not secret or len(secret) > 256 or not secret.startswith(SESSION_PREFIX):
        return None
    digest = token_hash(secret)
    r = ws.db.execute("SELECT t.*, s.secret_sha256 AS session_sha256 FROM sessions s JOIN tokens t ON t.id = s.token_id "
                      "WHERE s.secret_sha256 = ? AND s.revoked_at IS NULL AND s.expires_at > ? "
                      "AND t.revoked_at IS NULL", (digest, time.time())).fetchone()
    if r is None or not hmac.compare_digest(r["session_sha256"], digest):
        return None
    return _row(r)


def revoke_session(ws: Workspace, secret: str) -> bool:
    """End a session (sign-out); True if it was live."""
    with ws.tx() as db:
        cur = db.execute("UPDATE sessions SET revoked_at = ? WHERE secret_sha256 = ? AND revoked_at IS NULL",
                         (time.time(), token_hash(secret or "")))
    return cur.rowcount > 0


def any_token(ws: Workspace) -> bool:
    return ws.db.execute("SELECT 1 FROM tokens WHERE revoked_at IS NULL LIMIT 1").fetchone() is not None
