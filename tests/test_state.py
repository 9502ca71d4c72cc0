"""Trustworthy state (issue 16 §1): derived data never outlives the data it was made from.

One small ``head`` model is trained once on generated contact-center messages;
each test then ingests, classifies, removes and re-ingests datasets in the same
workspace and compares what ``classify --dataset`` answers with a fresh
``classify --input`` of the same file.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from inhouse.demo.data import generate
from inhouse.workspace.store import Workspace


@pytest.fixture(scope="module")
def model_home(tmp_path_factory):
    """A workspace with ``intents@1``, trained on 600 generated messages."""
    from conftest import invoke_cli

    home = tmp_path_factory.mktemp("state-ws")
    pd.DataFrame(generate(n=600, seed=3)).to_csv(home / "train.csv", index=False)
    r = invoke_cli("--home", home, "ingest", home / "train.csv", "--dataset", "train", "--label-col", "intent")
    assert r.exit_code == 0, r.stderr
    r = invoke_cli("--home", home, "train", "--dataset", "train", "--name", "intents", "--method", "head",
                   "--split", "all")
    assert r.exit_code == 0, r.stderr
    return home


def _texts(folder: Path, name: str, seed: int, n: int = 300) -> Path:
    df = pd.DataFrame(generate(n=n, seed=seed))[["message_id", "text"]]
    path = folder / f"{name}.csv"
    df.to_csv(path, index=False)
    return path


def _labels(path: Path) -> list[tuple[str, str]]:
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    return sorted((r["message_id"], r["label"]) for r in rows)


def _classify(run_cli, home, *args) -> dict:
    r = run_cli("--home", home, "classify", "intents@1", *args, "--json")
    assert r.exit_code == 0, r.stderr
    return r.json


@pytest.mark.slow
@pytest.mark.parametrize("second_name", ["a", "b"])
def test_removed_dataset_leaves_no_predictions_for_the_next_one(model_home, run_cli, tmp_path, second_name):
    """Reproduction: rm a dataset, ingest other texts (same name or another): classify equals a fresh --input run."""
    first, second = _texts(tmp_path, "first", seed=5), _texts(tmp_path, "second", seed=17)
    r = run_cli("--home", model_home, "ingest", first, "--dataset", "a", "--id-col", "message_id")
    assert r.exit_code == 0, r.stderr
    assert _classify(run_cli, model_home, "--dataset", "a")["computed"] == 300
    r = run_cli("--home", model_home, "datasets", "rm", "a", "--yes", "--json")
    assert r.exit_code == 0, r.stderr
    assert r.json["removed"]["prediction_sets"] == 1
    r = run_cli("--home", model_home, "ingest", second, "--dataset", second_name, "--id-col", "message_id")
    assert r.exit_code == 0, r.stderr
    got = _classify(run_cli, model_home, "--dataset", second_name, "--output", tmp_path / "ds.jsonl")
    assert got["computed"] == 300 and got["reused"] == 0
    _classify(run_cli, model_home, "--input", second, "--id-col", "message_id", "--output", tmp_path / "in.jsonl")
    assert _labels(tmp_path / "ds.jsonl") == _labels(tmp_path / "in.jsonl")
    again = _classify(run_cli, model_home, "--dataset", second_name)  # now reused: shown so, not billed (§10)
    assert again["computed"] == 0 and again["cost"]["documents"] == 0 and again["cost"]["reused"] == 300
    run_cli("--home", model_home, "datasets", "rm", second_name, "--yes")


def test_dataset_run_version_and_job_ids_are_never_reused(ws):
    """Deleting the newest row of each table does not hand its id to the next one."""
    c = ws.db
    for table, cols, vals in _ROWS:
        first = c.execute(f"INSERT INTO {table} ({cols}) VALUES ({vals})").lastrowid
        c.execute(f"DELETE FROM {table} WHERE id = ?", (first,))
        again = c.execute(f"INSERT INTO {table} ({cols}) VALUES ({vals})").lastrowid
        assert again > first, table


_ROWS = [("datasets", "name, created_at", "'x' || random(), 0"),
         ("runs", "kind, started_at, status", "'k', 0, 'done'"),
         ("model_versions", "name, version, sha256, path, manifest, created_at",
          "'m', abs(random()) % 100000, 's', 'p', '{}', 0"),
         ("jobs", "kind, status, created_at, updated_at", "'k', 'queued', 0, 0"),
         ("ingests", "dataset_id, source_path, source_sha256, source_size, options, started_at, status",
          "(SELECT max(id) FROM datasets), 'f', 's' || random(), 1, '{}', 0, 'failed'"),
         ("labels", "dataset_id, doc_id, label, source, batch, user, created_at",
          "(SELECT max(id) FROM datasets), 0, 'x', 'ui', 'b', 'u', 0")]


def test_migration_keeps_a_workspace_made_before_it(tmp_path):
    """A workspace at the schema before AUTOINCREMENT keeps every row, index and reference after the upgrade."""
    from inhouse.workspace.migrations import AUTOINCREMENT_IDS, SCHEMA_MIGRATIONS

    home = tmp_path / "old"
    home.mkdir()
    before = SCHEMA_MIGRATIONS.index(AUTOINCREMENT_IDS)
    conn = sqlite3.connect(home / "inhouse.db", isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    for number, sql in enumerate(SCHEMA_MIGRATIONS[:before], start=1):
        for statement in sql.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (number,))
    conn.execute("INSERT INTO datasets (id, name, created_at) VALUES (1, 'kept', 0), (2, 'gone', 0)")
    conn.execute("INSERT INTO ingests (id, dataset_id, source_path, source_sha256, source_size, options, started_at,"
                 " status) VALUES (1, 1, 'f', 's', 1, '{}', 0, 'done')")
    conn.execute("INSERT INTO runs (id, kind, started_at, status) VALUES (7, 'discover', 0, 'done')")
    conn.execute("INSERT INTO discoveries (run_id, dataset_id, created_at, model, model_sha256, n_documents, n_topics,"
                 " n_outliers, assignments_path) VALUES (7, 1, 0, 'm', 's', 1, 1, 0, 'p')")
    conn.execute("INSERT INTO jobs (id, kind, status, created_at, updated_at, params) VALUES (3, 'k', 'done', 0, 0,"
                 " '{\"a\": 1}')")
    conn.execute("INSERT INTO labels (id, dataset_id, doc_id, label, source, batch, user, created_at, label_col)"
                 " VALUES (4, 1, 0, 'refund', 'ui', 'b', 'ana', 0, 'intent')")
    conn.execute("DELETE FROM datasets WHERE id = 2")
    conn.close()
    ws = Workspace.open(home)
    try:
        assert ws.schema_version() == len(SCHEMA_MIGRATIONS)
        assert [tuple(r) for r in ws.db.execute("SELECT id, name FROM datasets")] == [(1, "kept")]
        assert ws.db.execute("SELECT count(*) FROM discoveries WHERE dataset_id = 1").fetchone()[0] == 1
        assert ws.db.execute("SELECT params FROM jobs WHERE id = 3").fetchone()[0] == '{"a": 1}'
        assert ws.db.execute("PRAGMA foreign_key_check").fetchall() == []
        indexes = {r[0] for r in ws.db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"jobs_status", "runs_kind", "ingests_once", "labels_doc", "labels_col"} <= indexes
        assert ws.db.execute("SELECT label_col FROM labels WHERE id = 4").fetchone()[0] == "intent"
        assert ws.db.execute("INSERT INTO runs (kind, started_at, status) VALUES ('k', 0, 'done')").lastrowid == 8
        assert ws.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        ws.close()


def _ingest(run_cli, folder: Path, name: str, texts: list[str]) -> None:
    path = folder / f"{name}-{abs(hash(tuple(texts))) % 10**8}.csv"
    pd.DataFrame({"text": texts}).to_csv(path, index=False)
    r = run_cli("ingest", path, "--dataset", name)
    assert r.exit_code == 0, r.stderr


def _part(ids: list[int], label: str):
    import pyarrow as pa

    from inhouse.data.predictions import prediction_schema

    n = len(ids)
    return pa.table({"doc_id": ids, "label": [label] * n, "score": [0.9] * n, "abstained": [False] * n,
                     "best_label": [label] * n, "top_labels": [[label]] * n, "top_scores": [[0.9]] * n,
                     "error": [None] * n}, schema=prediction_schema())


def test_a_stale_or_foreign_prediction_part_is_recomputed_never_served(ws, run_cli, tmp_path):
    """Parts made by another model, without provenance, or from texts since replaced are dropped on open."""
    import shutil

    import pyarrow.parquet as pq

    from inhouse.data.predictions import PredictionSet, find_set

    _ingest(run_cli, tmp_path, "d", ["card not here", "refund please", "lost bag"])
    mine, other = "a" * 64, "b" * 64
    s = PredictionSet.open(ws, "d", "m@1", mine)
    s.add(_part([0, 1], "ok"))
    assert s.verify() == [] and list(s.done_doc_ids()) == [0, 1]
    pq.write_table(_part([2], "bare"), s.path / "part-0-bare.parquet")  # written before provenance existed
    foreign = PredictionSet.open(ws, "d", "m@2", other).add(_part([2], "foreign"))
    shutil.copy(foreign, s.path / "part-1-foreign.parquet")  # another model's part in this set's folder
    s = PredictionSet.open(ws, "d", "m@1", mine)
    assert list(s.done_doc_ids()) == [0, 1] and len(s.parts()) == 1 and s.rows == 2
    assert set(s.read(["doc_id", "label"])["label"]) == {"ok"}
    # the same doc ids, other texts: remove the dataset's documents and ingest others under the same id
    keep = s.parts()[0]
    saved = keep.read_bytes()
    r = run_cli("datasets", "rm", "d", "--yes")
    assert r.exit_code == 0, r.stderr
    assert not s.path.exists()  # rm removes the set's folder ...
    ws.db.execute("DELETE FROM sqlite_sequence WHERE name = 'datasets'")  # ... and, even were the id reused,
    _ingest(run_cli, tmp_path, "d", ["something else", "refund please", "new text"])
    s = PredictionSet.open(ws, "d", "m@1", mine)
    assert s.dataset_id == 1
    (s.path / keep.name).write_bytes(saved)  # the old part put back in the new set's folder
    assert list(find_set(ws, "d", mine).done_doc_ids()) == []  # ... its texts do not match: it is not served
    assert s.parts() == []


def test_a_probability_cache_part_of_another_model_is_not_served_and_parts_are_compacted(ws):
    import shutil

    import numpy as np

    from inhouse.classifiers.predict import PredictionCache
    from inhouse.models.embeddings import COMPACT_AT

    a, b = PredictionCache(ws, "a" * 64), PredictionCache(ws, "b" * 64)
    a.put(["h1"], np.array([[0.2, 0.8]], np.float32))
    for p in a.dir.iterdir():
        shutil.copy(p, b.dir / p.name)
    assert set(a.get(["h1"])) == {"h1"} and b.get(["h1"]) == {}
    for i in range(COMPACT_AT):
        a.put([f"x{i}"], np.array([[i, 1.0]], np.float32))
    assert len(a.parts()) <= 2
    got = a.get(["h1"] + [f"x{i}" for i in range(COMPACT_AT)])
    assert len(got) == COMPACT_AT + 1 and got["x7"][0] == 7 and abs(got["h1"][1] - 0.8) < 1e-6
