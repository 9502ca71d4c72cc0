"""Documents of a dataset: the Parquet schema, ``read_documents`` and ``write_table``."""

from __future__ import annotations

import json
from pathlib import Path

from .labelsets import resolve_label_col, user_labels
from .store import Workspace
from .tables import TABLE_SUFFIXES, write_table  # noqa: F401 - re-exported

__all__ = ["DOC_COLUMNS", "doc_schema", "read_documents", "user_labels", "id_column", "id_output_name",
           "doc_keys", "key_fields", "write_table", "ROW_COLUMN", "TABLE_SUFFIXES"]

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
                   split: str | None = None, labelled_only: bool = False, where: str | None = None,
                   label_col: str | None = None):
    """The documents of a dataset as a pandas DataFrame, in document order.

    ``label`` is the first label of the label column ``label_col`` (default
    ``label``: the ingest's labels with the labels people set into it laid
    over them; or a label set people made with ``label --into``, or a metadata
    column), ``labels`` all of them. ``where`` keeps only the documents for
    which the filter expression holds (see :mod:`inhouse.workspace.filters`).

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> df = read_documents(ws, "banking77", columns=["doc_id", "text", "label"], split="test")
    >>> df = read_documents(ws, "air", columns=["doc_id", "label"], where="airline = 'United'", label_col="complaint")
    """
    import duckdb
    import pandas as pd

    info = ws.dataset(dataset)
    parts = ws.dataset_parts(dataset)
    want = list(columns) if columns else DOC_COLUMNS + ["label"]
    need_labels = any(c in want for c in ("label", "labels")) or labelled_only
    lc = resolve_label_col(ws, dataset, label_col) if need_labels else None
    base_cols = [c for c in DOC_COLUMNS if c in want or c == "doc_id" or (c == "split" and split)]
    if need_labels and lc.kind == "ingest" and "labels" not in base_cols:
        base_cols.append("labels")
    if need_labels and lc.kind == "metadata" and "meta" not in base_cols:
        base_cols.append("meta")
    keep_ids = None
    if where:
        from .filters import matching_doc_ids

        keep_ids = matching_doc_ids(ws, dataset, where)
    if not parts:
        df = pd.DataFrame({c: [] for c in base_cols})
    else:
        con = duckdb.connect()
        files = [str(p) for p in parts]
        conds, params = [], []
        if split is not None:
            conds.append("split = ?")
            params.append(split)
        if keep_ids is not None:
            conds.append("doc_id IN (SELECT unnest(?))")
            params.append(keep_ids.tolist())
        cond = ("WHERE " + " AND ".join(conds)) if conds else ""
        df = con.execute(
            f"SELECT {', '.join(base_cols)} FROM read_parquet(?) {cond} ORDER BY doc_id",
            [files, *params],
        ).fetchdf()
        con.close()
    if need_labels:
        overrides = user_labels(ws, info.id, lc.key)
        if lc.kind == "ingest":
            labels = [list(v) if v is not None else [] for v in df["labels"]]
        elif lc.kind == "metadata":
            labels = [_meta_labels(m, lc.name) for m in df["meta"]]
        else:
            labels = [[] for _ in range(len(df))]
        if overrides:
            labels = [[overrides[d]] if d in overrides else l for d, l in zip(df["doc_id"].tolist(), labels)]
        df["labels"] = labels
        df["label"] = [l[0] if l else None for l in labels]
        if labelled_only:
            df = df[df["label"].notna()].reset_index(drop=True)
    return df[[c for c in want if c in df.columns]]


def _meta_labels(meta, column: str) -> list[str]:
    """The value(s) of metadata ``column`` in a document's ``meta`` JSON, as labels ([] when empty)."""
    if not meta:
        return []
    try:
        v = json.loads(meta).get(column) if isinstance(meta, str) else (meta or {}).get(column)
    except (ValueError, AttributeError):
        return []
    if v is None or v == "" or (isinstance(v, float) and v != v):
        return []
    return [str(x) for x in v if x not in (None, "")] if isinstance(v, list) else [str(v)]


# --------------------------------------------------------------- user ids ----

ROW_COLUMN = "row"  # 1-based data row of the source file (header and blank CSV lines not counted)


def id_column(ws: Workspace, dataset: str) -> str | None:
    """The name of the dataset's own id column (``ingest --id-col``), or None.

    Its values are stored per document as ``source_id``.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> id_column(ws, "tickets")
    'ticket_id'
    """
    info = ws.dataset(dataset)
    name = (info.columns or {}).get("id")
    if isinstance(name, str) and name:
        return name
    # the dataset's columns describe its latest ingest; an earlier one may have had ids
    for (options,) in ws.db.execute("SELECT options FROM ingests WHERE dataset_id = ? AND status = 'done'"
                                    " ORDER BY id DESC", (info.id,)):
        name = json.loads(options or "{}").get("id_col")
        if isinstance(name, str) and name:
            return name
    return None


def id_output_name(id_col: str | None, taken: tuple[str, ...] | list[str] = ()) -> str | None:
    """The column name under which the user's ids are written beside ``taken`` columns.

    The user's own name, unless it would clash with ``row``, ``doc_id`` or one of
    ``taken``; then the stored name ``source_id``.

    >>> id_output_name("ticket_id", ["label"]), id_output_name("label", ["label"]), id_output_name(None)
    ('ticket_id', 'source_id', None)
    """
    if id_col is None:
        return None
    return "source_id" if id_col in (ROW_COLUMN, "doc_id", *taken) else id_col


def doc_keys(ws: Workspace, dataset: str, doc_ids: list[int]) -> dict[int, tuple[str | None, int | None]]:
    """doc_id -> (the user's id or None, source row) for a few documents, without loading the dataset."""
    parts = ws.dataset_parts(dataset)
    wanted = sorted({int(d) for d in doc_ids if d is not None and int(d) >= 0})
    if not wanted or not parts:
        return {}
    import duckdb

    con = duckdb.connect()
    try:
        rows = con.execute("SELECT doc_id, source_id, source_row FROM read_parquet(?)"
                           " WHERE doc_id IN (SELECT unnest(?))", [[str(p) for p in parts], wanted]).fetchall()
    finally:
        con.close()
    return {int(d): (s, None if r is None else int(r)) for d, s, r in rows}


def key_fields(id_name: str | None, key: tuple[str | None, int | None] | None) -> dict:
    """``{id_name: the user's id, "row": source row}`` for one document (``id_name`` None: row only)."""
    source_id, row = key if key is not None else (None, None)
    out = {id_name: source_id} if id_name else {}
    out[ROW_COLUMN] = row
    return out


# ------------------------------------------------------------ user tables ----

# TABLE_SUFFIXES and write_table live in .tables (CSV, XLSX, Parquet, JSON Lines; formulas neutralised)
