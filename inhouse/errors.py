"""One exception tree for the whole package.

Library code raises these; the CLI turns them into a one-line message and an
exit code, the server (later) into a 4xx JSON body. Every message says what was
expected, what was found, and how to fix it::

    class                     what                                 kind                exit
    InhouseError              (base; not raised directly)          error               1
    ├── UsageError            bad arguments or options             usage               2
    ├── InputError            a user's file, row, column or value  input               3
    │   ├── ColumnNotFound                                         input               3
    │   └── UntrustedCode     a model folder names code to run     input               3
    ├── NotFound              a dataset, model, version or alias   not_found           4
    ├── IntegrityError        a hash that does not match           integrity           5
    ├── NetworkBlocked        an outbound connection was refused   network             6
    ├── MissingDependency     an optional extra is not installed   missing_dependency  7
    └── Conflict              a state that forbids the action      conflict            8
        └── NotClassified     a dataset's predictions not stored   not_classified      8

``kind`` is the stable word the CLI prints under ``--json`` as
``{"error": kind, "message": ..., "fix": ..., "exit_code": ...}``. The CLI adds
four kinds of its own that are not exceptions of this tree: ``usage`` for
click's own parse errors (exit 2), ``interrupted`` (Ctrl-C, exit 130),
``aborted`` (a confirmation answered no, exit 1) and ``internal`` (a bug: an
exception nobody expected, exit 1). Operating-system errors on a user's path
(no such file, not a folder, permission denied, disk full) become ``input``.

Example:

    >>> raise ColumnNotFound("banking.csv", "text", ["query", "intent"], "--text-col")
    Traceback (most recent call last):
    ...
    inhouse.errors.ColumnNotFound: banking.csv: column 'text' not found; columns are ['query', 'intent']. Use --text-col with one of them.
"""

from __future__ import annotations


class InhouseError(Exception):
    """Base of every error the package raises on purpose."""

    exit_code = 1
    http_status = 500
    kind = "error"

    def __init__(self, message: str, *, fix: str | None = None):
        self.message = message
        self.fix = fix
        super().__init__(message if not fix else f"{message} {fix}")


class UsageError(InhouseError):
    exit_code = 2
    http_status = 400
    kind = "usage"


class InputError(InhouseError):
    exit_code = 3
    http_status = 422
    kind = "input"


class ColumnNotFound(InputError):
    def __init__(self, source: str, column: str, columns: list[str], flag: str):
        self.column = column
        self.columns = list(columns)
        super().__init__(
            f"{source}: column {column!r} not found; columns are {self.columns}.",
            fix=f"Use {flag} with one of them.",
        )


class UntrustedCode(InputError):
    """A model folder asks a library to run code that is not the library's own (use --trust-code)."""


class NotFound(InhouseError):
    exit_code = 4
    http_status = 404
    kind = "not_found"


class IntegrityError(InhouseError):
    exit_code = 5
    http_status = 500
    kind = "integrity"


class NetworkBlocked(InhouseError):
    exit_code = 6
    http_status = 500
    kind = "network"


class MissingDependency(InhouseError):
    exit_code = 7
    http_status = 501
    kind = "missing_dependency"

    def __init__(self, module: str, extra: str, what: str):
        self.module = module
        self.extra = extra  # a key of [project.optional-dependencies] in pyproject.toml
        super().__init__(
            f"{what} needs the Python package {module!r}, which is not installed.",
            fix=f"Install it with: pip install 'inhouse[{extra}]' (in a source checkout: make install, which installs every extra).",
        )


class Conflict(InhouseError):
    exit_code = 8
    http_status = 409
    kind = "conflict"


class NotClassified(Conflict):
    """A request reads stored predictions (Explore's filter, a diff) and the dataset has none by that version:
    its fix is the classify job that stores them (requests never classify a whole dataset themselves)."""

    kind = "not_classified"
