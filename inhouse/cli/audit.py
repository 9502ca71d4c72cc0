"""``inhouse audit``: who changed what, when (CLI and server alike)."""

from __future__ import annotations

import time

import click

from . import cli, emit_json, json_option, pass_ctx


@cli.command("audit")
@click.option("--user", default=None, help="Only this user (a token name for server requests).")
@click.option("--action", default=None, help="Only actions starting with this, e.g. 'models.' or 'token.'.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@json_option
@pass_ctx
def audit_cmd(ctx, user: str | None, action: str | None, limit: int, as_json: bool) -> None:
    """Show the audit log, newest first: uploads, labels, training, alias moves, tokens, deletions.

    \b
    Example:
      $ inhouse audit --action models.alias
      2026-11-29 14:31:40  ana        models.alias     intents@production  version=2 previous=1
    """
    from ..server.auditlog import audit_rows

    rows = audit_rows(ctx.ws, user=user, action=action, limit=limit)
    if as_json:
        emit_json({"events": rows})
        return
    for r in rows:
        details = " ".join(f"{k}={v}" for k, v in r["details"].items() if not isinstance(v, (dict, list)))
        click.echo(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(r['at']))}  {r['user']:<10} "
                   f"{r['action']:<16} {r['target'] or '-':<24} {details}")
