"""The workspace's SQLite schema: numbered, append-only migrations."""

from __future__ import annotations

SCHEMA_MIGRATIONS: list = [  # SQL (statements split on ';'), or a function of the connection
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
    # server (issue: REST API): jobs run by worker processes survive a restart;
    # API tokens are stored only as sha256 hashes
    """
    ALTER TABLE jobs ADD COLUMN params TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE jobs ADD COLUMN result TEXT;
    ALTER TABLE jobs ADD COLUMN user TEXT;
    ALTER TABLE jobs ADD COLUMN started_at REAL;
    ALTER TABLE jobs ADD COLUMN finished_at REAL;
    ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN worker_pid INTEGER;
    ALTER TABLE jobs ADD COLUMN server_pid INTEGER;
    ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN notes TEXT NOT NULL DEFAULT '[]';
    CREATE INDEX jobs_status ON jobs(status, id);
    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        token_sha256 TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL,
        last_used_at REAL,
        revoked_at REAL
    );
    CREATE UNIQUE INDEX tokens_live_name ON tokens(name) WHERE revoked_at IS NULL;
    CREATE INDEX audit_at ON audit(at)
    """,
    # pipelines (issue 9): stored prediction sets keyed by (dataset, model sha256), the cost of each run,
    # and the user's table of hosted-API prices
    """
    CREATE TABLE prediction_sets (
        id INTEGER PRIMARY KEY,
        dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        model TEXT NOT NULL,
        model_sha256 TEXT NOT NULL,
        path TEXT NOT NULL,
        rows INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE(dataset_id, model_sha256)
    );
    CREATE TABLE costs (
        run_id INTEGER PRIMARY KEY REFERENCES runs(id),
        kind TEXT NOT NULL,
        cost TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE prices (
        model TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        input_per_1m REAL NOT NULL,
        output_per_1m REAL NOT NULL,
        currency TEXT NOT NULL,
        read_on TEXT NOT NULL,
        source TEXT,
        set_at REAL NOT NULL,
        set_by TEXT NOT NULL
    )
    """,
    # label sets (issue 12): every label belongs to a named label column; 'label' is the ingest's
    """
    ALTER TABLE labels ADD COLUMN label_col TEXT NOT NULL DEFAULT 'label';
    CREATE INDEX labels_col ON labels(dataset_id, label_col, doc_id)
    """,
    # topic edits (issue 11): a person's names for topics and merges of topics, kept beside the discovered
    # ones (nothing of the run is rewritten); an edit is undone by setting undone_at
    """
    CREATE TABLE topic_edits (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES discoveries(run_id) ON DELETE CASCADE,
        topic INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('name', 'merge')),
        name TEXT,
        into_topic INTEGER,
        user TEXT NOT NULL,
        created_at REAL NOT NULL,
        undone_at REAL
    );
    CREATE INDEX topic_edits_run ON topic_edits(run_id, kind, topic)
    """,
    # sessions (issue 16 §5): a browser's sign-in is a random
    # session secret (stored as sha256) that expires and is revoked at sign-out, never the API token itself
    """
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        secret_sha256 TEXT NOT NULL UNIQUE,
        token_id INTEGER NOT NULL REFERENCES tokens(id),
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        revoked_at REAL
    );
    CREATE INDEX sessions_token ON sessions(token_id)
    """,
]



def _autoincrement(conn, table: str) -> None:
    """Rebuild ``table`` with its id AUTOINCREMENT, keeping every row, column and index it has now.

    The new table's SQL is the current one (whatever columns earlier migrations
    added) with ``AUTOINCREMENT`` after the id's ``PRIMARY KEY``. Run with foreign
    keys off (:meth:`Workspace.migrate` does), so dropping the old table neither
    cascades into nor checks the tables that reference it.
    """
    import re

    sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()[0]
    if "AUTOINCREMENT" in sql.upper():
        return
    new_sql, n = re.subn(r"\bid\s+INTEGER\s+PRIMARY\s+KEY\b", "id INTEGER PRIMARY KEY AUTOINCREMENT", sql, count=1,
                         flags=re.IGNORECASE)
    if n != 1:
        raise RuntimeError(f"table {table}: no 'id INTEGER PRIMARY KEY' column to make AUTOINCREMENT in {sql!r}")
    new_sql = re.sub(rf"^\s*CREATE\s+TABLE\s+\"?{table}\"?", f"CREATE TABLE {table}__new", new_sql, count=1,
                     flags=re.IGNORECASE)
    indexes = [r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND "
                                          "sql IS NOT NULL", (table,))]
    cols = ", ".join(f'"{r[1]}"' for r in conn.execute(f"PRAGMA table_info({table})"))
    conn.execute(new_sql)
    conn.execute(f"INSERT INTO {table}__new ({cols}) SELECT {cols} FROM {table}")
    conn.execute(f"DROP TABLE {table}")
    conn.execute(f"ALTER TABLE {table}__new RENAME TO {table}")
    for index in indexes:
        conn.execute(index)


def AUTOINCREMENT_IDS(conn) -> None:  # noqa: N802 - a migration, named like the SQL ones' comments
    """Ids are never reused (issue 16): SQLite hands a deleted row's id to the next row unless the key is
    AUTOINCREMENT, and derived data keyed by a removed dataset's id (prediction sets) was served to the next one.
    Ingest and label ids fingerprint a dataset's state (pipeline steps are skipped when it is unchanged)."""
    for table in ("datasets", "runs", "model_versions", "jobs", "ingests", "labels"):
        _autoincrement(conn, table)
    conn.execute("CREATE INDEX IF NOT EXISTS runs_kind ON runs(kind, id)")  # runs of a kind, newest first


SCHEMA_MIGRATIONS.append(AUTOINCREMENT_IDS)

# schedules (issue 20 §1): pipelines the running server starts by itself. ``spec`` is the pipeline file's content
# copied at schedule time (kind 'file'; relative paths resolve in ``folder``) or the dashboard's checked choices
# as JSON (kind 'dashboard'); ``next_at`` survives a restart; the last run is the job ``last_job_id``
SCHEMA_MIGRATIONS.append("""
CREATE TABLE schedules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    source TEXT,
    folder TEXT,
    spec TEXT NOT NULL,
    every TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_at REAL,
    last_job_id INTEGER,
    created_at REAL NOT NULL,
    user TEXT
);
CREATE INDEX schedules_due ON schedules(paused, next_at)
""")
