"""``inhouse tokens create|list|revoke``: API tokens for the server, stored only as hashes."""

from __future__ import annotations

import time

import click

from . import cli, emit_json, json_option, pass_ctx


@cli.group("tokens")
def tokens_group() -> None:
    """API tokens for inhouse serve (roles: viewer, editor, admin)."""


@tokens_group.command("create")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["viewer", "editor", "admin"]),
              help="viewer reads; editor also uploads, labels, trains, moves aliases; admin also manages tokens.")
@json_option
@pass_ctx
def create_cmd(ctx, name: str, role: str, as_json: bool) -> None:
    """Create a token and print it once, on its own line; only its hash is kept.

    \b
    Example:
      $ inhouse tokens create ana --role editor
      ih_3q5r...  (the whole token)
      token 'ana' (editor) created; it is shown only now: store it in a secret manager.
    """
    from ..server.tokens import create_token

    t = create_token(ctx.ws, name, role)
    if as_json:
        emit_json(t.to_dict())
        return
    click.echo(t.token)
    click.echo(f"token {name!r} ({role}) created; it is shown only now: store it in a secret manager.", err=True)


@tokens_group.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Also revoked tokens.")
@json_option
@pass_ctx
def list_cmd(ctx, include_revoked: bool, as_json: bool) -> None:
    """List tokens (name, role, prefix, created, last used); never their secrets.

    \b
    Example:
      $ inhouse tokens list
      NAME      ROLE     PREFIX   CREATED           LAST USED         BY
      ana       editor   ih_3q5r  2026-11-29 14:28  2026-11-29 15:02  root
    """
    from ..server.tokens import list_tokens

    items = list_tokens(ctx.ws, include_revoked=include_revoked)
    if as_json:
        emit_json({"tokens": [t.to_dict() for t in items]})
        return
    if not items:
        click.echo("no tokens; create one with: inhouse tokens create NAME --role viewer|editor|admin")
        return

    def when(t):
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"

    click.echo(f"{'NAME':<20}{'ROLE':<8}{'PREFIX':<9}{'CREATED':<18}{'LAST USED':<18}{'BY':<12}" +
               ("REVOKED" if include_revoked else ""))
    for t in items:
        click.echo(f"{t.name:<20}{t.role:<8}{t.prefix:<9}{when(t.created_at):<18}{when(t.last_used_at):<18}"
                   f"{t.created_by:<12}" + (when(t.revoked_at) if include_revoked else ""))


@tokens_group.command("revoke")
@click.argument("name")
@json_option
@pass_ctx
def revoke_cmd(ctx, name: str, as_json: bool) -> None:
    """Revoke a token: requests with it get 401 within seconds.

    \b
    Example:
      $ inhouse tokens revoke ana
      revoked token 'ana' (editor)
    """
    from ..server.tokens import revoke_token

    t = revoke_token(ctx.ws, name)
    if as_json:
        emit_json(t.to_dict())
    else:
        click.echo(f"revoked token {t.name!r} ({t.role})")
