"""Prediction sets: what one pinned model version predicted for the documents of a dataset.

A set is keyed by (dataset, model sha256) and kept as immutable Parquet parts
under ``prediction_sets/<dataset id>/<sha256[:16]>/``, one part per chunk of
documents, each written to a temporary name and renamed. A document is in a
set once it is in one of its parts, so an interrupted ``classify`` resumes
where it stopped and a later run computes only the documents added since
(:meth:`PredictionSet.done_doc_ids`). Topics and analysis read sets through
:func:`find_set` (``--by prediction`` / ``--within prediction``); this module
sits low so they need not import the pipeline.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> s = find_set(ws, "tickets")              # the newest set of the dataset
    >>> s.model, s.read(["doc_id", "label"]).head(1).to_dict("records")
    ('intents@3', [{'doc_id': 0, 'label': 'refund'}])
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import NotFound
from ..workspace.files import atomic_path
from ..workspace.store import Workspace

PART_GLOB = "part-*.parquet"


def prediction_schema(multi_label: bool = False):
    """The Arrow schema of a part: one row per document."""
    import pyarrow as pa

    fields = [("doc_id", pa.int64()), ("label", pa.string()), ("score", pa.float64()), ("abstained", pa.bool_()),
              ("best_label", pa.string()), ("top_labels", pa.list_(pa.string())), ("top_scores", pa.list_(pa.float64()))]
    if multi_label:
        fields.append(("labels", pa.list_(pa.string())))
    fields.append(("error", pa.string()))
    return pa.schema(fields)


@dataclass
class PredictionSet:
    """The stored predictions of one model version (``model_sha256``) on one dataset."""

    ws: Workspace
    dataset: str
    dataset_id: int
    model: str
    model_sha256: str
    path: Path
    rows: int = 0
    updated_at: float = 0.0

    @classmethod
    def open(cls, ws: Workspace, dataset: str, model: str, model_sha256: str) -> "PredictionSet":
        """The set of ``model_sha256`` on ``dataset``, created (empty) when new."""
        info = ws.dataset(dataset)
        rel = Path("prediction_sets") / str(info.id) / model_sha256[:16]
        now = time.time()
        with ws.tx() as c:
            c.execute("INSERT OR IGNORE INTO prediction_sets (dataset_id, model, model_sha256, path, rows, created_at,"
                      " updated_at) VALUES (?, ?, ?, ?, 0, ?, ?)", (info.id, model, model_sha256, str(rel), now, now))
        (ws.home / rel).mkdir(parents=True, exist_ok=True)
        return find_set(ws, dataset, model_sha256)

    def parts(self) -> list[Path]:
        return sorted(self.path.glob(PART_GLOB))

    def done_doc_ids(self) -> np.ndarray:
        """Sorted, distinct doc ids that already have a prediction in this set."""
        import pyarrow.parquet as pq

        arrays = [pq.read_table(p, columns=["doc_id"]).column(0).to_numpy() for p in self.parts()]
        if not arrays:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate(arrays))

    def add(self, table) -> Path:
        """Write one part (an Arrow table with :func:`prediction_schema`) atomically."""
        import pyarrow.parquet as pq

        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        with atomic_path(self.path / name) as tmp:
            pq.write_table(table, tmp)
        with self.ws.tx() as c:
            c.execute("UPDATE prediction_sets SET rows = rows + ?, updated_at = ? WHERE dataset_id = ? AND "
                      "model_sha256 = ?", (table.num_rows, time.time(), self.dataset_id, self.model_sha256))
        return self.path / name

    def sql_source(self) -> str:
        """A DuckDB ``read_parquet([...])`` over the parts (one row per doc id: duplicates are never written)."""
        files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in self.parts())
        return f"read_parquet([{files}], union_by_name = true)"

    def read(self, columns: list[str] | None = None):
        """The set as a DataFrame in doc id order (one row per document)."""
        import duckdb
        import pandas as pd

        parts = self.parts()
        cols = columns or ["doc_id", "label", "score", "top_labels", "top_scores", "error"]
        if not parts:
            return pd.DataFrame({c: [] for c in cols})
        con = duckdb.connect()
        try:
            sel = ", ".join(f"any_value({c}) AS {c}" if c != "doc_id" else c for c in cols)
            return con.execute(f"SELECT {sel} FROM {self.sql_source()} GROUP BY doc_id ORDER BY doc_id").fetchdf()
        finally:
            con.close()


def _row_to_set(ws: Workspace, dataset: str, r) -> PredictionSet:
    return PredictionSet(ws, dataset, r["dataset_id"], r["model"], r["model_sha256"], ws.home / r["path"],
                         r["rows"], r["updated_at"])


def find_set(ws: Workspace, dataset: str, model_sha256: str | None = None) -> PredictionSet:
    """The set of ``model_sha256`` on ``dataset``, or (None) the most recently updated one."""
    info = ws.dataset(dataset)
    if model_sha256:
        r = ws.db.execute("SELECT * FROM prediction_sets WHERE dataset_id = ? AND model_sha256 = ?",
                          (info.id, model_sha256)).fetchone()
    else:
        r = ws.db.execute("SELECT * FROM prediction_sets WHERE dataset_id = ? AND rows > 0 ORDER BY updated_at DESC,"
                          " id DESC LIMIT 1", (info.id,)).fetchone()
    if r is None:
        which = f" by model sha256 {model_sha256[:16]}" if model_sha256 else ""
        raise NotFound(f"dataset {dataset!r} has no stored predictions{which}.",
                       fix=f"Classify it first: inhouse classify MODEL --dataset {dataset}")
    return _row_to_set(ws, dataset, r)


def list_sets(ws: Workspace, dataset: str) -> list[PredictionSet]:
    info = ws.dataset(dataset)
    rows = ws.db.execute("SELECT * FROM prediction_sets WHERE dataset_id = ? ORDER BY updated_at DESC", (info.id,))
    return [_row_to_set(ws, dataset, r) for r in rows]
