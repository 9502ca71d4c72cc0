"""Reading the audit log (the workspace writes it: ``Workspace.audit``); shared by ``GET /audit`` and ``inhouse audit``."""

from __future__ import annotations

import json

from ..workspace.store import Workspace


def audit_rows(ws: Workspace, *, user: str | None = None, action: str | None = None, since: float | None = None,
               limit: int = 100, offset: int = 0) -> list[dict]:
    """Audit events, newest first; ``action`` is a prefix (``models.`` matches ``models.alias``)."""
    where, args = [], []
    if user is not None:
        where.append("user = ?")
        args.append(user)
    if action is not None:
        where.append("substr(action, 1, ?) = ?")
        args += [len(action), action]
    if since is not None:
        where.append("at >= ?")
        args.append(since)
    q = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ? OFFSET ?"
    return [{"id": r["id"], "at": r["at"], "user": r["user"], "action": r["action"], "target": r["target"],
             "details": json.loads(r["details"] or "{}")} for r in ws.db.execute(q, (*args, limit, offset))]
