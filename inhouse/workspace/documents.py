"""Documents of a dataset: the Parquet schema, ``read_documents`` and ``write_table``."""

from __future__ import annotations

import json

from .labelsets import overlay_people_labels, resolve_label_col, user_labels
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
    in_sql = need_labels and lc.kind != "metadata"  # people's labels laid over in the same query
    if not parts:
        df = pd.DataFrame({c: [] for c in base_cols})
    else:
        con = duckdb.connect()
        try:
            files = [str(p) for p in parts]
            conds, params = [], []
            if split is not None:
                conds.append("d.split = ?")
                params.append(split)
            if keep_ids is not None:
                conds.append("d.doc_id IN (SELECT unnest(?))")
                params.append(keep_ids.tolist())
            cond = ("WHERE " + " AND ".join(conds)) if conds else ""
            sel = [f"d.{c}" for c in base_cols if not (in_sql and c == "labels")]
            join = ""
            if in_sql:
                join, expr = overlay_people_labels(con, ws, info.id, lc.key,
                                                   base="d.labels" if lc.kind == "ingest" else "NULL")
                sel.append(f"{expr} AS labels")
            df = con.execute(f"SELECT {', '.join(sel)} FROM read_parquet(?) d {join} {cond} ORDER BY d.doc_id",
                             [files, *params]).fetchdf()
        finally:
            con.close()
    if need_labels:
        if in_sql:
            labels = [list(v) if v is not None else [] for v in df["labels"]] if len(df) else []
        else:  # a metadata column: its values read from each document's meta, then the same overlay
            labels = _overlay_meta(ws, info.id, lc, df)
        df["labels"] = labels
        df["label"] = [l[0] if l else None for l in labels]
        if labelled_only:
            df = df[df["label"].notna()].reset_index(drop=True)
    return df[[c for c in want if c in df.columns]]


def _overlay_meta(ws: Workspace, dataset_id: int, lc, df) -> list[list[str]]:
    """The labels of metadata column ``lc`` per row of ``df`` (with ``doc_id`` and ``meta``), people's laid over."""
    import duckdb
    import pyarrow as pa

    base = pa.table({"doc_id": pa.array(df["doc_id"].tolist(), pa.int64()),
                     "labels": pa.array([_meta_labels(m, lc.name) for m in df["meta"]], pa.list_(pa.string())),
                     "pos": pa.array(range(len(df)), pa.int64())})
    con = duckdb.connect()
    try:
        con.register("base", base)
        join, expr = overlay_people_labels(con, ws, dataset_id, lc.key)
        rows = con.execute(f"SELECT {expr} FROM base d {join} ORDER BY d.pos").fetchall()
    finally:
        con.close()
    return [list(r[0]) for r in rows]


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
