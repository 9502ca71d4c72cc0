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
