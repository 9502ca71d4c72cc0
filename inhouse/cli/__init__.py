"""The ``inhouse`` command: a thin door over the Python API.

Each command group lives in its own module (``cli/data.py``, ``cli/models.py``,
...) and registers itself on :data:`cli`. This module owns what every command
shares: the workspace option, the progress bar, ``--json`` output and the
translation of every failure into one line (or one JSON object under ``--json``)
and an exit code; see :class:`InhouseGroup`.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import sqlite3
import sys
import traceback
from typing import Any

import click

from ..errors import Conflict, InhouseError, InputError, IntegrityError
from ..netguard import offline
from ..progress import TerminalSink, use
from ..version import __version__
from ..workspace.store import Workspace, default_home


class Context:
    """What every command gets: the workspace folder, opened on first use."""

    def __init__(self, home: str | None):
        self.home = home
        self._ws: Workspace | None = None

    @property
    def ws(self) -> Workspace:
        if self._ws is None:
            self._ws = _open_workspace(self.home)
        return self._ws


def _open_workspace(home: str | None) -> Workspace:
    """``Workspace.open`` with the two ways a workspace folder can be unusable said in words."""
    try:
        return Workspace.open(home)
    except OSError as e:
        where = home if home is not None else str(default_home())
        raise InputError(f"cannot open the workspace folder {where}: {e.strerror or e} ({e.filename or where}).",
                         fix="Point --home (or $INHOUSE_HOME) at a folder you can write to; it is created if missing.") from e
    except sqlite3.DatabaseError as e:
        db = Workspace(home if home is not None else default_home()).db_path
        if _db_damaged(e):
            raise IntegrityError(f"the workspace database {db} is damaged or not a SQLite file ({e}).",
                                 fix="Restore it from a backup, or use another folder with --home.") from e
        raise


pass_ctx = click.make_pass_decorator(Context)


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")(f)


# ------------------------------------------------------------------ errors ----
#
# Every way a command can fail ends here, in InhouseGroup.main, as one line on
# stderr (or, with --json anywhere on the line, one JSON object on stdout) and an
# exit code; never as a traceback unless INHOUSE_DEBUG=1. See inhouse/errors.py
# for the kinds and codes.

INTERRUPTED_EXIT = 130
INTERNAL_EXIT = 1


class LiveChoice(click.Choice):
    """The choices of a registry (training methods, model kinds), read when asked: one registered after
    the command was defined is offered too."""

    def __init__(self, names) -> None:
        self.names = names
        super().__init__([])

    @property
    def choices(self):
        return tuple(self.names())

    @choices.setter
    def choices(self, value) -> None:
        pass


def _db_damaged(e: BaseException) -> bool:
    text = str(e).lower()
    return isinstance(e, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text)


def _debug() -> bool:
    return os.environ.get("INHOUSE_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def _wants_json(argv: list[str]) -> bool:
    """``--json`` anywhere before a ``--``."""
    for a in argv:
        if a == "--":
            return False
        if a == "--json":
            return True
    return False


class Failure:
    """One failure as the user sees it: kind, message, fix and exit code."""

    def __init__(self, kind: str, message: str, fix: str | None, exit_code: int, *, line: str | None = None,
                 show: Any = None):
        self.kind, self.message, self.fix, self.exit_code = kind, message, fix, exit_code
        self.line = line  # the plain-text form, when it is not "error: MESSAGE FIX"
        self.show = show  # or a callable that prints it (click's own usage message)

    def to_dict(self) -> dict:
        return {"error": self.kind, "message": self.message, "fix": self.fix, "exit_code": self.exit_code}

    def report(self, as_json: bool) -> None:
        if as_json:
            emit_json(self.to_dict())
        elif self.show is not None:
            self.show()
        else:
            click.echo(self.line or f"error: {self.message}" + (f" {self.fix}" if self.fix else ""), err=True)


def os_error(e: OSError) -> InputError:
    """An operating-system error on a user's path, said as an InputError naming the path."""
    path = e.filename if e.filename is not None else "a file"
    if e.filename2 is not None:
        path = f"{e.filename} -> {e.filename2}"
    what = e.strerror or str(e) or type(e).__name__
    if isinstance(e, FileNotFoundError):
        fix = "Check the path (relative paths start at the current folder)."
    elif isinstance(e, PermissionError):
        fix = "Check the permissions of the path, or choose a path you can read and write."
    elif isinstance(e, NotADirectoryError):
        fix = "A part of the path is a file, not a folder; choose another path."
    elif isinstance(e, IsADirectoryError):
        fix = "Give a file, not a folder."
    elif isinstance(e, FileExistsError):
        fix = "A file or folder of that name is in the way; remove it or choose another path."
    elif e.errno == errno.ENOSPC:
        fix = "Free some disk space, or write somewhere else."
    else:
        fix = "Check the path and the disk."
    return InputError(f"{path}: {what}.", fix=fix)


def _internal(e: BaseException, argv: list[str]) -> Failure:
    what = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    command = " ".join(["inhouse", *(shlex.quote(a) for a in argv)])
    fix = f"Please report it with the command line ({command}); INHOUSE_DEBUG=1 shows the traceback."
    return Failure("internal", f"internal error: {what}", fix, INTERNAL_EXIT,
                   line=f"internal error: {what}; please report it with the command line: {command} "
                        f"(run it again with INHOUSE_DEBUG=1 for the traceback)")


def failure(e: BaseException, argv: list[str]) -> Failure:
    """What the user is told about ``e``, an exception that ended a command."""
    if isinstance(e, click.exceptions.Abort):
        # click turns Ctrl-C and EOFError into Abort: `from e` when the command raised them,
        # `from None` (the context kept) when a confirmation prompt did
        if e.__cause__ is not None:
            e = e.__cause__
        elif isinstance(e.__context__, KeyboardInterrupt):
            e = e.__context__
    if isinstance(e, InhouseError):
        return Failure(e.kind, e.message, e.fix, e.exit_code)
    if isinstance(e, click.UsageError):
        path = e.ctx.command_path if e.ctx is not None else "inhouse"
        return Failure("usage", e.format_message(), f"Try '{path} --help' for help.", e.exit_code, show=e.show)
    if isinstance(e, click.ClickException):
        return Failure("error", e.format_message(), None, e.exit_code, show=e.show)
    if isinstance(e, EOFError):  # e.g. a .gz file cut off while copying
        return failure(InputError(f"a file ended early ({e or 'end of file'}).",
                                  fix="Check that the file is complete; copy or export it again."), argv)
    if isinstance(e, KeyboardInterrupt):
        return Failure("interrupted", "interrupted: nothing half-written was kept.", None, INTERRUPTED_EXIT,
                       line="interrupted: nothing half-written was kept.")
    if isinstance(e, click.exceptions.Abort):
        return Failure("aborted", "aborted: nothing was changed.", None, 1, line="Aborted!")
    if isinstance(e, UnicodeDecodeError):
        return failure(InputError(f"a file is not valid {e.encoding} text ({e.reason} at byte {e.start}).",
                                  fix="Convert it to UTF-8, or give its encoding (ingest: --encoding)."), argv)
    if isinstance(e, OSError) and (e.filename is not None or e.errno == errno.ENOSPC):
        return failure(os_error(e), argv)
    if _db_damaged(e):
        return Failure("integrity", f"the workspace database is damaged ({e}).",
                       "Restore it from a backup, or use another folder with --home.", IntegrityError.exit_code)
    if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
        return Failure("conflict", f"the workspace database is busy: {e}.",
                       "Another inhouse process is writing to it; try again when it has finished.", Conflict.exit_code)
    return _internal(e, argv)


class InhouseGroup(click.Group):
    """The group every command hangs from: the one place where failures are said.

    Domain errors (:class:`inhouse.errors.InhouseError`) become one line on stderr
    and the error's exit code; with ``--json`` anywhere on the command line, every
    failure, click's own usage errors included, is one JSON object on stdout
    (``{"error": kind, "message", "fix", "exit_code"}``). Errors of the operating
    system on a path become ``input`` errors naming the path; anything else is an
    ``internal error`` line (exit 1), with the traceback only when INHOUSE_DEBUG=1.
    """

    def invoke(self, ctx: click.Context) -> Any:
        with use(TerminalSink()):
            return super().invoke(ctx)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra) -> Any:
        if not standalone_mode:  # a Python caller wants the exceptions themselves
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        as_json = _wants_json(argv)
        try:
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except SystemExit:
            raise
        except BrokenPipeError:  # `inhouse ... | head`: the reader left; nothing to say
            sys.stderr = open(os.devnull, "w")
            sys.exit(1)
        except BaseException as e:  # noqa: BLE001 - this is the edge: everything ends here
            f = failure(e, argv)
            if f.kind == "internal" and _debug():
                traceback.print_exception(e, file=sys.stderr)
            try:
                f.report(as_json)
            except BrokenPipeError:
                pass
            sys.exit(f.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)  # `rv` is the code of ctx.exit(n), e.g. 0 after --help


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
    with offline():  # the command's door: telemetry off, nothing but loopback leaves (inhouse/netguard.py)
        cli.main(args=args, prog_name="inhouse")


def _register() -> None:
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


_register()
