"""One exception tree for the whole package.

Library code raises these; the CLI turns them into a one-line message and an
exit code, the server (later) into a 4xx JSON body. Every message says what was
expected, what was found, and how to fix it::

    InhouseError
    ├── UsageError            bad arguments or options            (exit 2)
    ├── InputError            a user's file, row, column or value  (exit 3)
    │   └── ColumnNotFound
    ├── NotFound              a dataset, model, version or alias   (exit 4)
    ├── IntegrityError        a hash that does not match           (exit 5)
    ├── NetworkBlocked        an outbound connection was refused   (exit 6)
    ├── MissingDependency     an optional extra is not installed   (exit 7)
    └── Conflict              a state that forbids the action      (exit 8)

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

    def __init__(self, message: str, *, fix: str | None = None):
        self.message = message
        self.fix = fix
        super().__init__(message if not fix else f"{message} {fix}")


class UsageError(InhouseError):
    exit_code = 2
    http_status = 400


class InputError(InhouseError):
    exit_code = 3
    http_status = 422


class ColumnNotFound(InputError):
    def __init__(self, source: str, column: str, columns: list[str], flag: str):
        self.column = column
        self.columns = list(columns)
        super().__init__(
            f"{source}: column {column!r} not found; columns are {self.columns}.",
            fix=f"Use {flag} with one of them.",
        )


class NotFound(InhouseError):
    exit_code = 4
    http_status = 404


class IntegrityError(InhouseError):
    exit_code = 5
    http_status = 500


class NetworkBlocked(InhouseError):
    exit_code = 6
    http_status = 500


class MissingDependency(InhouseError):
    exit_code = 7
    http_status = 501

    def __init__(self, module: str, extra: str, what: str):
        super().__init__(
            f"{what} needs the Python package {module!r}, which is not installed.",
            fix=f"Install it with: pip install 'inhouse[{extra}]'",
        )


class Conflict(InhouseError):
    exit_code = 8
    http_status = 409
