"""The workspace: one folder that holds all state.

Metadata lives in SQLite (``inhouse.db``, WAL mode, numbered append-only
migrations); bulk data (documents, embeddings, predictions) in Parquet files
under the folder, queried with DuckDB. Every file is written to a temporary
name and renamed into place, so a crash never leaves half an artifact.

The folder is ``--home DIR``, else ``$INHOUSE_HOME``, else
``$XDG_DATA_HOME/inhouse`` (``~/.local/share/inhouse``).

    >>> ws = Workspace.open("/tmp/ws-example")
    >>> ws.home.name
    'ws-example'
"""

from __future__ import annotations

import contextlib
import contextvars
import getpass
import json
import os
import random
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import NotFound
from .files import json_dumps
from .migrations import SCHEMA_MIGRATIONS


def default_home() -> Path:
    env = os.environ.get("INHOUSE_HOME")
    if env:
        return Path(env).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(data) / "inhouse"


_acting_user: contextvars.ContextVar[str | None] = contextvars.ContextVar("inhouse_acting_user", default=None)
_recorded_runs: contextvars.ContextVar[list | None] = contextvars.ContextVar("inhouse_recorded_runs", default=None)


@contextlib.contextmanager
def recording_runs() -> Iterator[list[tuple[str, int]]]:
    """Collect ``(kind, run id)`` of every run recorded inside the block, in this thread / task only.

    So a caller learns the id of the run its own call recorded, never another
    process's or thread's (cost metering attaches cost to it).

    >>> with recording_runs() as runs:
    ...     pass
    >>> runs
    []
    """
    runs: list[tuple[str, int]] = []
    token = _recorded_runs.set(runs)
    try:
        yield runs
    finally:
        _recorded_runs.reset(token)


def current_user() -> str:
    """Who is acting: the user set by :func:`acting_as` (a server's token name), else the OS user."""
    acting = _acting_user.get()
    if acting:
        return acting
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


@contextlib.contextmanager
def acting_as(user: str | None) -> Iterator[None]:
    """Record everything done inside the block (audit, labels, aliases, runs) as ``user``.

    A server runs each request as the token's name; ``None`` keeps the OS user.

    >>> with acting_as("ana"):
    ...     current_user()
    'ana'
    """
    token = _acting_user.set(user)
    try:
        yield
    finally:
        _acting_user.reset(token)

# -------------------------------------------------------------- workspace ----

@dataclass
class DatasetInfo:
    id: int
    name: str
    created_at: float
    next_doc_id: int
    columns: dict


class Workspace:
    """A workspace folder: SQLite metadata plus Parquet bulk data.

    Safe for several processes at once: SQLite runs in WAL mode with a busy
    timeout, writers take ``BEGIN IMMEDIATE`` (retried with backoff when SQLite
    answers "database is locked" without waiting), files are renamed into place,
    and creating or migrating the database happens under a file lock
    (``.init.lock``), so processes racing on a fresh folder take turns.
    """

    DB_NAME = "inhouse.db"
    LOCK_NAME = ".init.lock"
    BUSY_RETRIES = 8  # attempts after the first, backing off 0.05 s .. ~3 s

    def __init__(self, home: str | os.PathLike):
        self.home = Path(home).expanduser().resolve()
        self._local = threading.local()

    @classmethod
    def open(cls, home: str | os.PathLike | None = None) -> "Workspace":
        """Open (and create if needed) the workspace at ``home`` or the default."""
        ws = cls(home if home is not None else default_home())
        ws.init()
        return ws

    # -- layout
    @property
    def db_path(self) -> Path:
        return self.home / self.DB_NAME

    def dir(self, *parts: str) -> Path:
        p = self.home.joinpath(*parts)
        p.mkdir(parents=True, exist_ok=True)
        return p

    def init(self) -> "Workspace":
        new = not self.home.exists()
        self.home.mkdir(parents=True, exist_ok=True)
        if new:  # owner-only: raw uploads, quarantined rows and tokens' hashes are nobody else's business
            os.chmod(self.home, 0o700)
        for sub in ("datasets", "embeddings", "models", "quarantine", "runs", "tmp"):
            (self.home / sub).mkdir(mode=0o700, exist_ok=True)
        fresh_db = not self.db_path.exists()
        with self.init_lock():
            self.migrate()
        if fresh_db:
            for name in (self.DB_NAME, self.DB_NAME + "-wal", self.DB_NAME + "-shm", self.LOCK_NAME):
                with contextlib.suppress(OSError):
                    os.chmod(self.home / name, 0o600)
        return self

    @contextlib.contextmanager
    def init_lock(self) -> Iterator[None]:
        """Hold ``home/.init.lock`` (an exclusive ``flock``) while the database is created or migrated.

        Switching a new database to WAL and creating its tables need exclusive
        access that SQLite's busy timeout does not always wait for; with the
        lock, processes opening a fresh workspace at once simply take turns.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: rely on the retries alone
            yield
            return
        fd = os.open(self.home / self.LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    # -- database
    @property
    def db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, timeout=60, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=60000")
            # a fresh file's switch to WAL can answer "locked" at once, whatever the busy timeout
            self._retry_busy(lambda: conn.execute("PRAGMA journal_mode=WAL"))
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def _retry_busy(self, action):
        """Run ``action``; when SQLite says the database is locked/busy, retry with jittered backoff."""
        for attempt in range(self.BUSY_RETRIES + 1):
            try:
                return action()
            except sqlite3.OperationalError as e:
                msg = str(e).lower()
                if attempt == self.BUSY_RETRIES or not ("locked" in msg or "busy" in msg):
                    raise
                time.sleep(min(3.0, 0.05 * 2 ** attempt) * (0.5 + random.random()))

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that other processes wait for, not trample.

        ``BEGIN IMMEDIATE`` takes the write lock up front (waiting up to the busy
        timeout); the rare "database is locked" SQLite returns without waiting is
        retried a bounded number of times before it is raised.
        """
        conn = self.db
        self._retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"))
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def migrate(self) -> int:
        """Apply the migrations this workspace lacks; return the schema version."""
        conn = self.db
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
        conn.execute("PRAGMA foreign_keys=OFF")  # a table rebuild must not cascade into what references it
        try:
            self._apply_migrations(conn)
        finally:
            conn.execute("PRAGMA foreign_keys=ON")
        return len(SCHEMA_MIGRATIONS)

    def _apply_migrations(self, conn: sqlite3.Connection) -> None:
        with self.tx():
            have = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
            for number, sql in enumerate(SCHEMA_MIGRATIONS, start=1):
                if number <= have:
                    continue
                if callable(sql):  # a migration SQL alone cannot write (a table rebuild that keeps what it finds)
                    sql(conn)
                else:
                    for statement in sql.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (number, time.time()))

    def schema_version(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]

    def audit(self, action: str, target: str | None = None, *, user: str | None = None, **details: Any) -> None:
        """Append to the audit log: who (``user``, else :func:`current_user`), what, when."""
        self.db.execute(
            "INSERT INTO audit (at, user, action, target, details) VALUES (?, ?, ?, ?, ?)",
            (time.time(), user or current_user(), action, target, json_dumps(details)),
        )

    def record_run(self, kind: str, params: dict, result: dict, *, model: str | None = None,
                   model_sha256: str | None = None, started_at: float | None = None) -> int:
        """Record a finished run with the exact model version it used."""
        cur = self.db.execute(
            "INSERT INTO runs (kind, started_at, finished_at, status, params, result, model, model_sha256, user)"
            " VALUES (?, ?, ?, 'done', ?, ?, ?, ?, ?)",
            (kind, started_at or time.time(), time.time(), json_dumps(params), json_dumps(result),
             model, model_sha256, current_user()),
        )
        collecting = _recorded_runs.get()
        if collecting is not None:
            collecting.append((kind, int(cur.lastrowid)))
        return int(cur.lastrowid)

    # -- datasets
    def dataset(self, name: str) -> DatasetInfo:
        row = self.db.execute("SELECT * FROM datasets WHERE name = ?", (name,)).fetchone()
        if row is None:
            names = [r[0] for r in self.db.execute("SELECT name FROM datasets ORDER BY name")]
            raise NotFound(
                f"dataset {name!r} not found in {self.home}; datasets are {names}.",
                fix="Create it with: inhouse ingest FILE --dataset NAME",
            )
        return DatasetInfo(row["id"], row["name"], row["created_at"], row["next_doc_id"], json.loads(row["columns"]))

    def dataset_names(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM datasets ORDER BY name")]

    def dataset_parts(self, name: str) -> list[Path]:
        info = self.dataset(name)
        rows = self.db.execute("SELECT path FROM parts WHERE dataset_id = ? ORDER BY first_doc_id", (info.id,))
        return [self.home / r[0] for r in rows]

