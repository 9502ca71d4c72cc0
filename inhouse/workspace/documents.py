"""Documents of a dataset: the Parquet schema, ``read_documents`` and ``write_table``."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .files import atomic_path
from .store import Workspace

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


# --------------------------------------------------------------- user ids ----

ROW_COLUMN = "row"  # 1-based data row of the source file (header and blank CSV lines not counted)


def id_column(ws: Workspace, dataset: str) -> str | None:
    """The name of the dataset's own id column (``ingest --id-col``), or None.

    Its values are stored per document as ``source_id``.

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

TABLE_SUFFIXES = (".csv", ".parquet", ".jsonl")


def write_table(df, path: str | os.PathLike, *, what: str = "results") -> Path:
    """Write a DataFrame atomically as CSV, Parquet or JSON Lines, by the file's extension.

    In CSV, list-valued columns (top labels, keywords) are written as JSON.

    >>> write_table(pd.DataFrame({"id": [1], "topic": [3]}), "topics.csv")
    PosixPath('topics.csv')
    """
    from ..errors import UsageError

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
