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
import getpass
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .errors import NotFound

SCHEMA_MIGRATIONS: list[str] = [
    # 1: the foundation
    """
    CREATE TABLE datasets (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        next_doc_id INTEGER NOT NULL DEFAULT 0,
        columns TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE ingests (
        id INTEGER PRIMARY KEY,
        dataset_id INTEGER NOT NULL REFERENCES datasets(id),
        source_path TEXT NOT NULL,
        source_sha256 TEXT NOT NULL,
        source_size INTEGER NOT NULL,
        options TEXT NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL,
        status TEXT NOT NULL,
        stats TEXT NOT NULL DEFAULT '{}',
        quarantine_path TEXT,
        first_doc_id INTEGER,
        end_doc_id INTEGER,
        user TEXT
    );
    CREATE UNIQUE INDEX ingests_once ON ingests(dataset_id, source_sha256) WHERE status = 'done';
    CREATE TABLE parts (
        id INTEGER PRIMARY KEY,
        dataset_id INTEGER NOT NULL REFERENCES datasets(id),
        ingest_id INTEGER NOT NULL REFERENCES ingests(id),
        path TEXT NOT NULL,
        rows INTEGER NOT NULL,
        first_doc_id INTEGER NOT NULL
    );
    CREATE TABLE labels (
        id INTEGER PRIMARY KEY,
        dataset_id INTEGER NOT NULL REFERENCES datasets(id),
        doc_id INTEGER NOT NULL,
        label TEXT NOT NULL,
        source TEXT NOT NULL,
        batch TEXT NOT NULL,
        user TEXT NOT NULL,
        created_at REAL NOT NULL,
        undone_at REAL
    );
    CREATE INDEX labels_doc ON labels(dataset_id, doc_id);
    CREATE TABLE base_models (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        license TEXT,
        source TEXT NOT NULL,
        added_at REAL NOT NULL,
        meta TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE hash_cache (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        sha256 TEXT NOT NULL
    );
    CREATE TABLE model_versions (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        path TEXT NOT NULL,
        manifest TEXT NOT NULL,
        created_at REAL NOT NULL,
        removed_at REAL,
        UNIQUE(name, version)
    );
    CREATE TABLE aliases (
        name TEXT NOT NULL,
        alias TEXT NOT NULL,
        version INTEGER NOT NULL,
        set_at REAL NOT NULL,
        set_by TEXT NOT NULL,
        PRIMARY KEY (name, alias)
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL,
        status TEXT NOT NULL,
        params TEXT NOT NULL DEFAULT '{}',
        result TEXT NOT NULL DEFAULT '{}',
        model TEXT,
        model_sha256 TEXT,
        user TEXT
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        progress TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        error TEXT
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        user TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        details TEXT NOT NULL DEFAULT '{}'
    );
    """,
    # 2: evaluation metrics of model versions (registry, issue 4); keyed by the
    # version's sha256, so a version's immutable files never change
    """
    CREATE TABLE evaluations (
        id INTEGER PRIMARY KEY,
        sha256 TEXT NOT NULL,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        dataset TEXT NOT NULL,
        split TEXT NOT NULL DEFAULT '',
        metrics TEXT NOT NULL,
        data_sha256 TEXT,
        created_at REAL NOT NULL,
        user TEXT NOT NULL,
        UNIQUE(sha256, dataset, split)
    );
    CREATE INDEX evaluations_name ON evaluations(name, version);
    """,
    # topics (issue 5): discovery runs, their topics, and category summaries
    """
    CREATE TABLE discoveries (
        run_id INTEGER PRIMARY KEY REFERENCES runs(id),
        dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        created_at REAL NOT NULL,
        model TEXT NOT NULL,
        model_sha256 TEXT NOT NULL,
        within TEXT,
        split TEXT,
        n_documents INTEGER NOT NULL,
        n_topics INTEGER NOT NULL,
        n_outliers INTEGER NOT NULL,
        assignments_path TEXT NOT NULL,
        options TEXT NOT NULL DEFAULT '{}',
        llm TEXT,
        llm_sha256 TEXT,
        user TEXT
    );
    CREATE INDEX discoveries_dataset ON discoveries(dataset_id, run_id);
    CREATE TABLE topics (
        run_id INTEGER NOT NULL REFERENCES discoveries(run_id) ON DELETE CASCADE,
        topic INTEGER NOT NULL,
        parent TEXT,
        size INTEGER NOT NULL,
        share REAL NOT NULL,
        share_of_all REAL NOT NULL,
        keywords TEXT NOT NULL,
        name TEXT NOT NULL,
        name_source TEXT NOT NULL,
        representative_docs TEXT NOT NULL,
        PRIMARY KEY (run_id, topic)
    );
    CREATE TABLE summaries (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        by_column TEXT NOT NULL,
        category TEXT NOT NULL,
        name TEXT,
        size INTEGER NOT NULL,
        share REAL NOT NULL,
        kind TEXT NOT NULL,
        summary TEXT NOT NULL,
        keywords TEXT NOT NULL,
        doc_ids TEXT NOT NULL,
        model TEXT,
        model_sha256 TEXT,
        discovery_run_id INTEGER,
        created_at REAL NOT NULL
    );
    CREATE INDEX summaries_dataset ON summaries(dataset_id, run_id)
    """,
]


def default_home() -> Path:
    env = os.environ.get("INHOUSE_HOME")
    if env:
        return Path(env).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(data) / "inhouse"


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


# ---------------------------------------------------------------- hashing ----

def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def text_hash(text: str) -> str:
    """The key that lets identical texts share embeddings and predictions."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def pid_alive(pid: Any) -> bool:
    """Whether a process with this id still runs on this host (stale-lock checks)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def json_dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)


# ---------------------------------------------------------- atomic writes ----

@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success.

    >>> with atomic_path("/tmp/example.txt") as tmp:
    ...     _ = tmp.write_text("done")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; rename it to ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


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
    timeout, writers take ``BEGIN IMMEDIATE``, and files are renamed into place.
    """

    DB_NAME = "inhouse.db"

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
        self.home.mkdir(parents=True, exist_ok=True)
        for sub in ("datasets", "embeddings", "models", "quarantine", "runs", "tmp"):
            (self.home / sub).mkdir(exist_ok=True)
        self.migrate()
        return self

    # -- database
    @property
    def db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, timeout=60, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=60000")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that other processes wait for, not trample."""
        conn = self.db
        conn.execute("BEGIN IMMEDIATE")
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
        with self.tx():
            have = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
            for number, sql in enumerate(SCHEMA_MIGRATIONS, start=1):
                if number <= have:
                    continue
                for statement in sql.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (number, time.time()))
        return len(SCHEMA_MIGRATIONS)

    def schema_version(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]

    def audit(self, action: str, target: str | None = None, **details: Any) -> None:
        self.db.execute(
            "INSERT INTO audit (at, user, action, target, details) VALUES (?, ?, ?, ?, ?)",
            (time.time(), current_user(), action, target, json_dumps(details)),
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


# -------------------------------------------------------------- documents ----

DOC_COLUMNS = ["doc_id", "text", "text_hash", "labels", "time", "split", "source_id", "source_row", "ingest_id", "meta"]


def doc_schema():
    """The Arrow schema of every document part, column for column :data:`DOC_COLUMNS`.

    >>> doc_schema().names == DOC_COLUMNS
    True
    """
    import pyarrow as pa

    return pa.schema([
        ("doc_id", pa.int64()), ("text", pa.string()), ("text_hash", pa.string()),
        ("labels", pa.list_(pa.string())), ("time", pa.timestamp("us", tz="UTC")),
        ("split", pa.string()), ("source_id", pa.string()), ("source_row", pa.int64()),
        ("ingest_id", pa.int64()), ("meta", pa.string()),
    ])


def read_documents(ws: Workspace, dataset: str, *, columns: list[str] | None = None,
                   split: str | None = None, labelled_only: bool = False):
    """The documents of a dataset as a pandas DataFrame, in document order.

    Labels set by people (``inhouse label``) replace the labels from the file;
    ``label`` is the first effective label (or None), ``labels`` all of them.

    >>> df = read_documents(ws, "banking77", columns=["doc_id", "text", "label"], split="test")
    """
    import duckdb
    import pandas as pd

    info = ws.dataset(dataset)
    parts = ws.dataset_parts(dataset)
    want = list(columns) if columns else DOC_COLUMNS + ["label"]
    need_labels = any(c in want for c in ("label", "labels")) or labelled_only
    base_cols = [c for c in DOC_COLUMNS if c in want or c == "doc_id" or (c == "split" and split)]
    if need_labels and "labels" not in base_cols:
        base_cols.append("labels")
    if not parts:
        df = pd.DataFrame({c: [] for c in base_cols})
    else:
        con = duckdb.connect()
        files = [str(p) for p in parts]
        where = "WHERE split = ?" if split is not None else ""
        params = [split] if split is not None else []
        df = con.execute(
            f"SELECT {', '.join(base_cols)} FROM read_parquet(?) {where} ORDER BY doc_id",
            [files, *params],
        ).fetchdf()
        con.close()
    if need_labels:
        overrides = user_labels(ws, info.id)
        labels = [list(v) if v is not None else [] for v in df["labels"]]
        if overrides:
            labels = [[overrides[d]] if d in overrides else l for d, l in zip(df["doc_id"].tolist(), labels)]
        df["labels"] = labels
        df["label"] = [l[0] if l else None for l in labels]
        if labelled_only:
            df = df[df["label"].notna()].reset_index(drop=True)
    return df[[c for c in want if c in df.columns]]


def user_labels(ws: Workspace, dataset_id: int) -> dict[int, str]:
    """doc_id -> the label a person set last (undone labels are skipped)."""
    rows = ws.db.execute(
        "SELECT doc_id, label FROM labels WHERE dataset_id = ? AND undone_at IS NULL ORDER BY id",
        (dataset_id,),
    )
    return {r[0]: r[1] for r in rows}


# ------------------------------------------------------------ user tables ----

TABLE_SUFFIXES = (".csv", ".parquet", ".jsonl")


def write_table(df, path: str | os.PathLike, *, what: str = "results") -> Path:
    """Write a DataFrame atomically as CSV, Parquet or JSON Lines, by the file's extension.

    In CSV, list-valued columns (top labels, keywords) are written as JSON.

    >>> write_table(pd.DataFrame({"id": [1], "topic": [3]}), "topics.csv")
    PosixPath('topics.csv')
    """
    from .errors import UsageError

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise UsageError(f"{path}: the output must end in .csv, .parquet or .jsonl, found {suffix or 'no extension'}.",
                         fix=f"Choose a file name such as {what}.parquet.")
    with atomic_path(path) as tmp:
        if suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        elif suffix == ".jsonl":
            df.to_json(tmp, orient="records", lines=True, force_ascii=False)
        else:
            flat = df.copy()
            for col in flat.columns:
                if flat[col].dtype == object and any(isinstance(v, (list, tuple, dict)) for v in flat[col].head(100)):
                    flat[col] = [json.dumps(v, ensure_ascii=False, default=str) for v in flat[col]]
            flat.to_csv(tmp, index=False)
    return path
