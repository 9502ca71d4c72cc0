"""Search and filter a dataset's documents one page at a time, in DuckDB over its Parquet parts.

The Explore screen (``GET /datasets/{name}/documents``) asks for a page of 25
out of millions; reading every document into pandas for each page took
seconds at a million. Here the filters (text contains, effective label,
unlabelled, split, time range) and the count run inside DuckDB, and only the
page's rows come back. People's labels are laid over the file's by the one
overlay (:func:`inhouse.workspace.labelsets.overlay_people_labels`): a person's
last label for a document replaces the file's labels.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> page = search_documents(ws, "calls", q="refund", label="refund_request", limit=25)
    >>> page["total"], len(page["documents"])
    (1873, 25)
"""

from __future__ import annotations

from typing import Any

from ..workspace.labelsets import overlay_people_labels, resolve_label_col
from .predictions import PredictionSet
from ..workspace.store import Workspace
from .duck import connect, sql_string

COLUMNS = ["doc_id", "text", "label", "labels", "time", "split", "source_id"]


def search_documents(ws: Workspace, dataset: str, *, q: str | None = None, label: str | None = None,
                     unlabelled: bool = False, split: str | None = None, time_from=None, time_to=None,
                     doc_ids: list[int] | None = None, predictions: PredictionSet | None = None,
                     predicted: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """``{"total", "documents"}``: the documents that match, counted, and the page ``[offset, offset + limit)``.

    ``q`` is a case-insensitive substring of the text; ``label`` an effective
    label (people's over the file's); ``time_from`` inclusive, ``time_to``
    exclusive (pandas Timestamps in UTC); ``doc_ids`` only these documents.
    With ``predictions`` (a stored prediction set) each document also carries
    ``predicted`` and ``predicted_score`` as classify stored them, and
    ``predicted`` keeps only the documents with that stored label: nothing is
    computed here. Documents come in document order.
    """
    import pandas as pd

    con, where, params = _filtered(ws, dataset, q=q, label=label, unlabelled=unlabelled, split=split,
                                   time_from=time_from, time_to=time_to, doc_ids=doc_ids, predictions=predictions,
                                   predicted=predicted)
    if con is None:
        return {"total": 0, "documents": []}
    extra = ", predicted, predicted_score" if predictions is not None else ""
    try:
        total = con.execute(f"SELECT COUNT(*) FROM docs {where}", params).fetchone()[0]
        df = con.execute(f"SELECT doc_id, text, labels, time, split, source_id{extra} FROM docs {where} "
                         "ORDER BY doc_id LIMIT ? OFFSET ?", [*params, limit, offset]).fetchdf()
    finally:
        con.close()
    out = []
    for r in df.to_dict("records"):
        labels = [str(x) for x in (r["labels"] if r["labels"] is not None else [])]
        t = r["time"]
        row = {"doc_id": int(r["doc_id"]), "text": r["text"], "label": labels[0] if labels else None,
               "labels": labels, "time": None if t is None or pd.isna(t) else pd.Timestamp(t).isoformat(),
               "split": r["split"], "source_id": r["source_id"]}
        if predictions is not None:
            score = r["predicted_score"]
            row["predicted"] = r["predicted"] if isinstance(r["predicted"], str) else None
            row["predicted_score"] = None if score is None or pd.isna(score) else round(float(score), 6)
        out.append(row)
    return {"total": int(total), "documents": out}


def matching_ids(ws: Workspace, dataset: str, **filters):
    """The doc_ids (an int64 array, in document order) of every document that matches ``filters`` (the keyword
    filters of :func:`search_documents`), without reading any text the filters do not need."""
    import numpy as np

    con, where, params = _filtered(ws, dataset, **filters)
    if con is None:
        return np.zeros(0, dtype=np.int64)
    try:
        ids = con.execute(f"SELECT doc_id FROM docs {where} ORDER BY doc_id", params).fetchnumpy()["doc_id"]
    finally:
        con.close()
    return np.asarray(ids, dtype=np.int64)


def _filtered(ws: Workspace, dataset: str, *, q=None, label=None, unlabelled=False, split=None, time_from=None,
              time_to=None, doc_ids=None, predictions: PredictionSet | None = None, predicted: str | None = None):
    """(connection with the view ``docs``, WHERE clause, parameters); (None, "", []) for a dataset with no parts."""
    import pandas as pd

    info = ws.dataset(dataset)
    parts = [str(p) for p in ws.dataset_parts(dataset)]
    if not parts:
        return None, "", []
    lc = resolve_label_col(ws, dataset, None)
    con = connect(ws)
    try:
        people_join, labels = overlay_people_labels(con, ws, info.id, lc.key)
        con.execute("SET TimeZone = 'UTC'")  # times come back in UTC whatever the machine's zone
        files = "[" + ", ".join(sql_string(p) for p in parts) + "]"  # a view cannot take parameters: quoted literals
        pred_cols, pred_join = "", ""
        if predictions is not None:  # what classify stored for this version: read, never computed here
            pred_cols = ", s.label AS predicted, s.score AS predicted_score"
            stored = predictions.sql_source() if predictions.parts() else \
                "(SELECT NULL::BIGINT AS doc_id, NULL::VARCHAR AS label, NULL::DOUBLE AS score WHERE false)"
            pred_join = f" LEFT JOIN {stored} s ON s.doc_id = d.doc_id"
        con.execute(f"CREATE TEMP VIEW docs AS SELECT d.doc_id, d.text, d.time, d.split, d.source_id, {labels} AS labels"
                    f"{pred_cols} FROM read_parquet({files}) d {people_join}{pred_join}")
    except BaseException:
        con.close()
        raise
    conds, params = [], []
    if q:
        conds.append("strpos(lower(text), lower(?)) > 0")
        params.append(q)
    if label is not None:
        conds.append("list_contains(labels, ?)")
        params.append(label)
    if unlabelled:
        conds.append("len(labels) = 0")
    if split is not None:
        conds.append("split = ?")
        params.append(split)
    if time_from is not None:
        conds.append("time IS NOT NULL AND time >= ?")
        params.append(time_from.to_pydatetime())
    if time_to is not None:
        conds.append("time IS NOT NULL AND time < ?")
        params.append(time_to.to_pydatetime())
    if doc_ids is not None:
        conds.append("doc_id IN (SELECT unnest(?::BIGINT[]))")
        params.append([int(d) for d in doc_ids])
    if predicted is not None:
        if predictions is None:
            raise ValueError("predicted= filters by a stored prediction set: pass predictions= too")
        conds.append("predicted = ?")
        params.append(predicted)
    return con, ("WHERE " + " AND ".join(conds)) if conds else "", params


def documents_by_id(ws: Workspace, dataset: str, doc_ids: list[int],
                    columns: tuple[str, ...] = ("doc_id", "text", "text_hash")):
    """The stored ``columns`` of the documents ``doc_ids`` (a DataFrame in the order of ``doc_ids``), read in
    DuckDB without loading the rest of the dataset: what a sample of a million documents needs."""
    import pandas as pd

    allowed = {"doc_id", "text", "text_hash", "time", "split", "source_id", "source_row", "ingest_id", "meta"}
    bad = [c for c in columns if c not in allowed]
    if bad:
        raise ValueError(f"unknown document columns {bad}; expected some of {sorted(allowed)}")
    cols = list(dict.fromkeys(["doc_id", *columns]))
    parts = [str(p) for p in ws.dataset_parts(dataset)]
    if not parts or not doc_ids:
        return pd.DataFrame({c: [] for c in cols})
    con = connect(ws)
    try:
        con.register("wanted", pd.DataFrame({"doc_id": pd.Series(doc_ids, dtype="int64"),
                                             "pos": range(len(doc_ids))}))
        df = con.execute(f"SELECT {', '.join('d.' + c for c in cols)} FROM read_parquet(?) d "
                         "JOIN wanted w USING (doc_id) ORDER BY w.pos", [parts]).fetchdf()
    finally:
        con.close()
    return df
