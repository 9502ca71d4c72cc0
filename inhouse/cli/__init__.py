"""The ``inhouse`` command: a thin door over the Python API.

Each command group lives in its own module (``cli/data.py``, ``cli/models.py``,
...) and registers itself on :data:`cli`. This module owns what every command
shares: the workspace option, the progress bar, ``--json`` output and the
translation of :class:`inhouse.errors.InhouseError` into one line and an exit code.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..errors import InhouseError
from ..progress import TerminalSink, use
from ..version import __version__
from ..workspace.store import Workspace


class Context:
    """What every command gets: the workspace folder, opened on first use."""

    def __init__(self, home: str | None):
        self.home = home
        self._ws: Workspace | None = None

    @property
    def ws(self) -> Workspace:
        if self._ws is None:
            self._ws = Workspace.open(self.home)
        return self._ws


pass_ctx = click.make_pass_decorator(Context)


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")(f)


class InhouseGroup(click.Group):
    """Turns domain errors into one line on stderr and the error's exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with use(TerminalSink()):
                return super().invoke(ctx)
        except InhouseError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: nothing half-written was kept.", err=True)
            sys.exit(130)


@click.group(cls=InhouseGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False), envvar="INHOUSE_HOME",
              help="Workspace folder (default: $INHOUSE_HOME, else ~/.local/share/inhouse).")
@click.version_option(__version__, prog_name="inhouse")
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """inhouse: own your language models, offline.

    \b
    Example:
      inhouse ingest data.csv --dataset tickets --label-col intent
      inhouse embed --dataset tickets
    """
    ctx.obj = Context(home)


def hoist_home(argv: list[str]) -> list[str]:
    """Let ``--home DIR`` stand anywhere on the line, not only before the command.

    >>> hoist_home(["ingest", "f.csv", "--home", "/w"])
    ['--home', '/w', 'ingest', 'f.csv']
    """
    out, home, i = [], [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            out.extend(argv[i:])
            break
        if a == "--home" and i + 1 < len(argv):
            home = ["--home", argv[i + 1]]
            i += 2
            continue
        if a.startswith("--home="):
            home = ["--home", a.split("=", 1)[1]]
        else:
            out.append(a)
        i += 1
    return home + out


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``inhouse`` console script."""
    args = hoist_home(list(sys.argv[1:] if argv is None else argv))
    cli.main(args=args, prog_name="inhouse")


def _register() -> None:
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


_register()
