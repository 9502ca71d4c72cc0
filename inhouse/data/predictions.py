"""Prediction sets: what one pinned model version predicted for the documents of a dataset.

A set is keyed by (dataset, model sha256) and kept as immutable Parquet parts
under ``prediction_sets/<dataset id>/<sha256[:16]>/``, one part per chunk of
documents, each written to a temporary name and renamed. A document is in a
set once it is in one of its parts, so an interrupted ``classify`` resumes
where it stopped and a later run computes only the documents added since
(:meth:`PredictionSet.done_doc_ids`).

Every part records what it was made from: the model sha256 (in the file's
metadata) and, per row, the ``text_hash`` of the document it predicts. Before a
set is reused (:meth:`PredictionSet.open`, :func:`find_set`) each part is checked
against the dataset's documents as they are now; a part made by another model,
without that record (written before it existed), or predicting a document whose
text changed or which is gone (a removed dataset, a re-ingest under the same
name) is deleted, so its documents are computed again instead of served
(:meth:`PredictionSet.verify`). Topics and analysis read sets through
:func:`find_set` (``--by prediction`` / ``--within prediction``); this module
sits low so they need not import the pipeline.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> s = find_set(ws, "tickets")              # the newest set of the dataset
    >>> s.model, s.read(["doc_id", "label"]).head(1).to_dict("records")
    ('intents@3', [{'doc_id': 0, 'label': 'refund'}])
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import NotFound
from ..workspace.files import atomic_path
from ..workspace.store import Workspace

PART_GLOB = "part-*.parquet"
PROVENANCE_KEY = b"inhouse.provenance"

log = logging.getLogger(__name__)


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

    def verify(self) -> list[Path]:
        """Delete the parts not made by this model from the dataset's current texts; return them.

        A part is kept when its metadata names ``model_sha256`` and every row's
        ``text_hash`` equals the text hash of the document with that doc id now.
        """
        parts = self.parts()
        if not parts:
            return []
        key = (str(self.path), self.model_sha256, _files_key(parts), _files_key(self.ws.dataset_parts(self.dataset)))
        with _verified_lock:
            if key in _verified:
                return []
        stale = [p for p in parts if _part_model(p) != self.model_sha256]
        checked = [p for p in parts if p not in stale]
        stale += _parts_with_foreign_rows(self.ws, self.dataset, checked)
        for p in stale:
            log.warning("prediction part %s was not made by %s from the current texts of dataset %r; its documents "
                        "will be computed again", p, self.model, self.dataset)
            p.unlink(missing_ok=True)
        if stale:
            self._recount()
        else:
            with _verified_lock:  # the same parts over the same documents need no second check in this process
                if len(_verified) > 4096:
                    _verified.clear()
                _verified.add(key)
        return stale

    def _recount(self) -> None:
        import pyarrow.parquet as pq

        rows = sum(pq.ParquetFile(p).metadata.num_rows for p in self.parts())
        with self.ws.tx() as c:
            c.execute("UPDATE prediction_sets SET rows = ?, updated_at = ? WHERE dataset_id = ? AND model_sha256 = ?",
                      (rows, time.time(), self.dataset_id, self.model_sha256))
        self.rows = rows

    def parts(self) -> list[Path]:
        return sorted(self.path.glob(PART_GLOB))

    def done_doc_ids(self) -> np.ndarray:
        """Sorted, distinct doc ids that already have a prediction in this set."""
        import pyarrow.parquet as pq

        arrays = [pq.read_table(p, columns=["doc_id"]).column(0).to_numpy() for p in self.parts()]
        if not arrays:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate(arrays))

    def add(self, table, text_hashes: list[str] | None = None) -> Path:
        """Write one part (an Arrow table with :func:`prediction_schema`) atomically, with its provenance.

        ``text_hashes`` are the hashes of the texts that were predicted, per row;
        without them they are read from the dataset's documents now.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        ids = table.column("doc_id").to_pylist()
        hashes = text_hashes if text_hashes is not None else _current_hashes(self.ws, self.dataset, ids)
        if "text_hash" in table.column_names:
            table = table.drop(["text_hash"])
        table = table.append_column("text_hash", pa.array(hashes, pa.string()))
        meta = {"model_sha256": self.model_sha256, "model": self.model, "dataset_id": self.dataset_id}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               PROVENANCE_KEY: json.dumps(meta).encode()})
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


_verified: set[tuple] = set()
_verified_lock = threading.Lock()


def _files_key(paths: list[Path]) -> tuple:
    """What identifies the content of these files cheaply: name, size and mtime of each."""
    out = []
    for p in paths:
        try:
            st = p.stat()
            out.append((p.name, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((p.name, -1, -1))
    return tuple(out)


def _part_model(part: Path) -> str | None:
    """The model sha256 a part records in its metadata (None: no record, or unreadable)."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(part).metadata or {}
        return json.loads(meta[PROVENANCE_KEY])["model_sha256"]
    except (OSError, KeyError, ValueError, TypeError):
        return None


def _doc_hashes_sql(ws: Workspace, dataset: str) -> str:
    files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in ws.dataset_parts(dataset))
    return f"read_parquet([{files}])" if files else "(SELECT NULL::BIGINT AS doc_id, NULL::VARCHAR AS text_hash LIMIT 0)"


def _current_hashes(ws: Workspace, dataset: str, doc_ids: list[int]) -> list[str | None]:
    """The text hash of each document now (None where there is no such document)."""
    import duckdb
    import pyarrow as pa

    con = duckdb.connect()
    try:
        con.register("wanted", pa.table({"doc_id": pa.array(doc_ids, pa.int64())}))
        lo, hi = (min(doc_ids), max(doc_ids)) if doc_ids else (0, -1)
        found = dict(con.execute(f"SELECT doc_id, text_hash FROM {_doc_hashes_sql(ws, dataset)} WHERE doc_id BETWEEN "
                                 f"{int(lo)} AND {int(hi)} AND doc_id IN (SELECT doc_id FROM wanted)").fetchall())
    finally:
        con.close()
    return [found.get(d) for d in doc_ids]


def _parts_with_foreign_rows(ws: Workspace, dataset: str, parts: list[Path]) -> list[Path]:
    """The parts with a row whose text hash is missing or differs from its document's now."""
    import duckdb
    import pyarrow.parquet as pq

    bare = [p for p in parts if "text_hash" not in pq.read_schema(p).names]
    parts = [p for p in parts if p not in bare]
    if not parts:
        return bare
    files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in parts)
    con = duckdb.connect()
    try:
        bad = con.execute(
            f"SELECT DISTINCT p.filename FROM read_parquet([{files}], filename = true, union_by_name = true) p "
            f"LEFT JOIN {_doc_hashes_sql(ws, dataset)} d USING (doc_id) "
            "WHERE d.text_hash IS NULL OR p.text_hash IS NULL OR d.text_hash <> p.text_hash").fetchall()
    finally:
        con.close()
    return bare + [Path(f) for (f,) in bad]


def find_set(ws: Workspace, dataset: str, model_sha256: str | None = None, *, verify: bool = True) -> PredictionSet:
    """The set of ``model_sha256`` on ``dataset``, or (None) the most recently updated one.

    The set's parts are checked first (:meth:`PredictionSet.verify`) unless ``verify=False``.
    """
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
    found = _row_to_set(ws, dataset, r)
    if verify:
        found.verify()
    return found


def list_sets(ws: Workspace, dataset: str) -> list[PredictionSet]:
    info = ws.dataset(dataset)
    rows = ws.db.execute("SELECT * FROM prediction_sets WHERE dataset_id = ? ORDER BY updated_at DESC", (info.id,))
    return [_row_to_set(ws, dataset, r) for r in rows]
