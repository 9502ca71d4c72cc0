"""Datasets after ingest: list, describe (labels, splits, time range, ingests), remove."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ..errors import Conflict, UsageError
from ..workspace.labelsets import DEFAULT_LABEL_COL, overlay_people_labels
from ..workspace.store import Workspace
from . import duck
from .ingest import reap_stale_ingests, running_ingests


def list_datasets(ws: Workspace) -> list[dict[str, Any]]:
    """One summary per dataset, from the metadata only (no Parquet is read).

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> list_datasets(ws)
    [{'name': 'banking77', 'rows': 13083, 'ingests': 1, 'quarantined': 0, 'created_at': '2025-...'}]
    """
    rows = ws.db.execute(
        """SELECT d.id, d.name, d.created_at,
                  (SELECT COALESCE(SUM(p.rows), 0) FROM parts p WHERE p.dataset_id = d.id) AS rows,
                  (SELECT COUNT(*) FROM ingests i WHERE i.dataset_id = d.id AND i.status = 'done') AS ingests,
                  (SELECT COALESCE(SUM(json_extract(i.stats, '$.quarantined')), 0) FROM ingests i
                    WHERE i.dataset_id = d.id AND i.status = 'done') AS quarantined
           FROM datasets d ORDER BY d.name""")
    return [{"name": r["name"], "rows": r["rows"], "ingests": r["ingests"], "quarantined": r["quarantined"],
             "created_at": _iso(r["created_at"])} for r in rows]


def describe_dataset(ws: Workspace, name: str) -> dict[str, Any]:
    """Rows, labels and their counts, splits, time range, ingests and quarantine of a dataset.

    Labels are the effective ones: a label set by a person replaces the file's.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> d = describe_dataset(ws, "banking77")
    >>> d["rows"], len(d["labels"]), d["splits"]
    (13083, 77, {'train': 10003, 'test': 3080})
    """
    info = ws.dataset(name)
    parts = ws.dataset_parts(name)
    out: dict[str, Any] = {"name": info.name, "id": info.id, "created_at": _iso(info.created_at),
                           "home": str(ws.home / "datasets" / info.name), "parts": len(parts),
                           "columns": info.columns}
    out.update(_document_stats(ws, info.id, parts))
    out.update(column_stats(ws, name))
    ingests = []
    for r in ws.db.execute("SELECT * FROM ingests WHERE dataset_id = ? ORDER BY id", (info.id,)):
        stats = json.loads(r["stats"] or "{}")
        ingests.append({"id": r["id"], "file": r["source_path"], "sha256": r["source_sha256"],
                        "size": r["source_size"], "status": r["status"], "user": r["user"],
                        "started_at": _iso(r["started_at"]), "finished_at": _iso(r["finished_at"]),
                        "read": stats.get("read"), "stored": stats.get("stored"),
                        "quarantined": stats.get("quarantined"), "quarantine_file": r["quarantine_path"],
                        "options": json.loads(r["options"]), **({"error": stats["error"]} if "error" in stats else {})})
    out["ingests"] = ingests
    out["quarantined"] = sum(i["quarantined"] or 0 for i in ingests if i["status"] == "done")
    return out


def remove_dataset(ws: Workspace, name: str, *, force: bool = False) -> dict[str, Any]:
    """Delete a dataset and everything derived from it.

    Removed: documents, ingests, labels (every label set), quarantine files,
    prediction sets, discovery runs with their topics and topic edits,
    summaries, and the output files of jobs on the dataset (``removed`` in the
    result counts them); ``kept`` says what stays and why (:data:`KEPT_ON_REMOVE`).

    An ingest still marked running blocks removal, unless it is stale: one
    started on this host whose process has ended is given up automatically;
    one started on another host cannot be checked from here, so ``force=True``
    (``inhouse datasets rm NAME --force``) gives it up. An ingest whose process
    still runs on this host always blocks: stop it first.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> remove_dataset(ws, "scratch")
    {'name': 'scratch', 'rows': 120, 'ingests': 1}
    """
    import shutil
    import sqlite3

    info = ws.dataset(name)
    reap_stale_ingests(ws, name, force=force)
    running = running_ingests(ws, name)
    if running:
        first = running[0]
        where = f"pid {first['pid']} on host {first['host']!r}, started {_iso(first['started_at'])}"
        if first["this_host"]:
            raise Conflict(f"dataset {name!r} has an ingest still running (#{first['id']}, {where}).",
                           fix=f"Wait for it to finish, or stop it (kill {first['pid']}), then remove the dataset.")
        raise Conflict(f"dataset {name!r} has an ingest marked running on another host (#{first['id']}, {where}); "
                       "its process cannot be checked from here.",
                       fix=f"If that process is gone (killed, or its machine restarted), remove the dataset anyway "
                           f"with: inhouse datasets rm {name} --force")
    rows = ws.db.execute("SELECT COALESCE(SUM(rows), 0) FROM parts WHERE dataset_id = ?", (info.id,)).fetchone()[0]
    n_ingests = ws.db.execute("SELECT COUNT(*) FROM ingests WHERE dataset_id = ?", (info.id,)).fetchone()[0]
    removed = _derived_records(ws, info.id)
    job_files = _job_outputs(ws, name)
    removed["job_outputs"] = len(job_files)
    try:
        with ws.tx() as c:
            for table in ("prediction_sets", "summaries", "discoveries", "parts", "labels", "ingests"):
                c.execute(f"DELETE FROM {table} WHERE dataset_id = ?", (info.id,))  # topics, topic edits cascade
            c.execute("DELETE FROM datasets WHERE id = ?", (info.id,))
            ws.audit("dataset.rm", name, rows=rows, ingests=n_ingests, removed=removed)
    except sqlite3.IntegrityError as e:
        raise Conflict(f"dataset {name!r} is still used by other records ({e}).",
                       fix="Remove what was built from it (embeddings, models, runs) first.") from None
    for folder in (ws.home / "datasets" / name, ws.home / "quarantine" / name,
                   ws.home / "prediction_sets" / str(info.id)):
        shutil.rmtree(folder, ignore_errors=True)
    for f in job_files:
        shutil.rmtree(f, ignore_errors=True) if f.is_dir() else f.unlink(missing_ok=True)
    return {"name": name, "rows": rows, "ingests": n_ingests, "removed": removed, "kept": KEPT_ON_REMOVE}


# what ``datasets rm`` keeps, and why (shown by the CLI and in --json)
KEPT_ON_REMOVE = {
    "embeddings and cached probabilities": "keyed by (model sha256, text hash), so they are shared with every dataset "
                                           "holding the same text and can never answer for another text; "
                                           "`inhouse gc` removes the cached probabilities of removed model "
                                           "versions",
    "runs, jobs and the audit log": "the history of who did what, with which model version (their output files "
                                    "made from this dataset are removed)",
    "model versions": "a model trained on the dataset stays usable and reproducible from its manifest",
}


def _derived_records(ws: Workspace, ds_id: int) -> dict[str, int]:
    """How many records were built from dataset ``ds_id``, by kind."""
    def count(sql: str) -> int:
        return int(ws.db.execute(sql, (ds_id,)).fetchone()[0])

    return {"prediction_sets": count("SELECT COUNT(*) FROM prediction_sets WHERE dataset_id = ?"),
            "discovery_runs": count("SELECT COUNT(*) FROM discoveries WHERE dataset_id = ?"),
            "topic_edits": count("SELECT COUNT(*) FROM topic_edits e JOIN discoveries d USING (run_id)"
                                 " WHERE d.dataset_id = ?"),
            "summaries": count("SELECT COUNT(*) FROM summaries WHERE dataset_id = ?"),
            "labels": count("SELECT COUNT(*) FROM labels WHERE dataset_id = ?"),
            "label_sets": count("SELECT COUNT(DISTINCT label_col) FROM labels WHERE dataset_id = ?")}


def _job_outputs(ws: Workspace, name: str) -> list[Path]:
    """The files and folders jobs on dataset ``name`` wrote (predictions, pipeline run folders)."""
    found: list[Path] = []
    for (job_id,) in ws.db.execute("SELECT id FROM jobs WHERE json_extract(params, '$.dataset') = ?", (name,)):
        found += sorted((ws.home / "runs" / "jobs").glob(f"job-{int(job_id)}-*"))
        folder = ws.home / "runs" / "pipelines" / f"job-{int(job_id)}"
        if folder.is_dir():
            found.append(folder)
    return found

def _document_stats(ws: Workspace, ds_id: int, parts: list[Path]) -> dict[str, Any]:
    empty = {"rows": 0, "labels": {}, "unlabelled": 0, "splits": {}, "no_split": 0, "time_range": None,
             "distinct_texts": 0, "user_labels": 0}
    if not parts:
        return empty
    con = duck.connect(ws)
    try:
        listing = duck.sql_list([str(p) for p in parts])  # a view cannot take parameters
        con.execute(f"CREATE TEMP VIEW docs AS SELECT doc_id, labels, split, time, text_hash FROM read_parquet({listing})")
        people_join, labels = overlay_people_labels(con, ws, ds_id, DEFAULT_LABEL_COL, name="user_labels")
        con.execute(f"CREATE TEMP VIEW eff AS SELECT d.doc_id, {labels} AS labels FROM docs d {people_join}")
        rows, distinct, tmin, tmax = con.execute(
            "SELECT COUNT(*), COUNT(DISTINCT text_hash), epoch_us(MIN(time)), epoch_us(MAX(time)) FROM docs").fetchone()
        labels = con.execute("SELECT label, COUNT(*) AS n FROM (SELECT unnest(labels) AS label FROM eff)"
                             " GROUP BY label ORDER BY n DESC, label").fetchall()
        unlabelled = con.execute("SELECT COUNT(*) FROM eff WHERE len(labels) = 0").fetchone()[0]
        splits = con.execute("SELECT split, COUNT(*) AS n FROM docs GROUP BY split ORDER BY n DESC, split").fetchall()
        # labels on documents that a --replace or keep-last removed (and could not carry) no longer count
        n_user = con.execute("SELECT COUNT(*) FROM docs d JOIN user_labels u USING (doc_id)").fetchall()[0][0]
    finally:
        con.close()
    return {"rows": rows, "labels": dict(labels), "unlabelled": unlabelled,
            "splits": {s: n for s, n in splits if s is not None},
            "no_split": sum(n for s, n in splits if s is None),
            "time_range": {"min": _us_iso(tmin), "max": _us_iso(tmax)} if tmin is not None else None,
            "distinct_texts": distinct, "user_labels": n_user}


def column_stats(ws: Workspace, name: str, top: int = 50) -> dict[str, Any]:
    """Every label column and every metadata column of a dataset, with the counts of their values.

    ``label_columns``: ``{name: {"kind": "ingest"|"people"|"metadata", "labelled": n, "distinct": k,
    "values": {value: count}}}`` (the ``top`` most frequent values); ``metadata_columns``: the same for
    the file's other columns kept at ingest that hold no labels.
    """
    from ..workspace.filters import documents_view, filter_columns, quote
    from ..workspace.labelsets import label_columns

    kinds = {c.name: c.kind for c in label_columns(ws, name)}
    cols = [c for c in filter_columns(ws, name) if c.kind in ("label", "metadata") and c.name in kinds]
    out: dict[str, Any] = {"label_columns": {}, "metadata_columns": {}}
    if not ws.dataset_parts(name):
        return out
    con = duck.connect(ws)
    try:
        documents_view(con, ws, name, filter_columns(ws, name))
        for c in cols:
            q = quote(c.name)
            n, k = con.execute(f"SELECT COUNT({q}), COUNT(DISTINCT {q}) FROM docs").fetchone()
            values = con.execute(f"SELECT {q}, COUNT(*) AS n FROM docs WHERE {q} IS NOT NULL GROUP BY {q}"
                                 f" ORDER BY n DESC, {q} LIMIT {int(top)}").fetchall()
            group = "metadata_columns" if kinds[c.name] == "metadata" and c.kind == "metadata" else "label_columns"
            entry = {"kind": kinds[c.name], "labelled" if group == "label_columns" else "non_empty": n,
                     "distinct": k, "values": {str(v): int(m) for v, m in values}}
            if c.name == "label":
                entry["file_column"] = (ws.dataset(name).columns or {}).get("label")
            out[group][c.name] = entry
    finally:
        con.close()
    return out


def export_documents(ws: Workspace, name: str, output: str | Path, *, where: str | None = None,
                     label_cols: list[str] | None = None) -> dict[str, Any]:
    """Write the documents of ``name`` (those for which ``where`` holds) with every filter column to a file.

    Columns: the user's id (when the dataset has one), ``row``, ``doc_id``, ``text``, ``split``, ``time``,
    the label columns (``label_cols``, default all) and the metadata columns.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> export_documents(ws, "air", "united.csv", where="airline = 'United'")["rows"]
    3822
    """
    import time as _time

    from ..workspace.documents import write_table
    import duckdb

    from ..workspace.filters import check_where, documents_view, filter_columns, quote
    from ..workspace.labelsets import resolve_label_col

    t0 = _time.time()
    cols = filter_columns(ws, name)
    if label_cols:
        wanted = {resolve_label_col(ws, name, c).name for c in label_cols}
        cols = [c for c in cols if c.kind != "label" or c.name in wanted]
    cols = [c for c in cols if not (c.kind == "id" and c.name == "source_id" and len([x for x in cols if x.kind == "id"]) > 1)]
    order = [c for c in cols if c.kind == "id"] + [c for c in cols if c.kind != "id"]
    con = duck.connect(ws)
    try:
        documents_view(con, ws, name, filter_columns(ws, name))
        cond = " WHERE " + check_where(where, filter_columns(ws, name), name) if where else ""
        try:
            df = con.execute(f"SELECT {', '.join(quote(c.name) for c in order)} FROM docs{cond} ORDER BY doc_id").fetchdf()
        except duckdb.Error as e:  # e.g. a metadata column (text) compared with a number
            raise UsageError(f"--where {where!r} cannot be evaluated: {str(e).splitlines()[0]}",
                             fix="Metadata columns hold text: compare with 'quoted' values, or cast, e.g. "
                                 "CAST(turns AS INTEGER) > 5.") from None
    finally:
        con.close()
    out = write_table(df, output, what="documents")
    result = {"dataset": name, "output": str(out), "rows": int(len(df)), "columns": list(df.columns), "where": where}
    ws.record_run("export_documents", {"dataset": name, "where": where, "label_cols": label_cols}, result,
                  started_at=t0)
    return result


def _us_iso(us: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=us)).isoformat()


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds") if ts else None
