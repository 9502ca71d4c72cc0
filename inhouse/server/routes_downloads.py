"""Tables a person downloads, as CSV, Excel (.xlsx) or Parquet: ``?format=csv|xlsx|parquet``.

Pipeline files and classify outputs take ``?format=`` on their own routes
(:mod:`.routes_pipelines`, :mod:`.routes_jobs`, through :func:`table_file`);
this module adds the tables that had only JSON: a discovery run's topic per
document, a dataset's stored summaries and its quarantined rows. Every CSV and
XLSX goes through :mod:`inhouse.workspace.tables`, so a cell such as
``=HYPERLINK(...)`` arrives as text, never as a formula.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from ..errors import NotFound
from ..workspace import tables
from .auth import role
from .common import Id, ws_of

router = APIRouter()
Format = Literal["csv", "xlsx", "parquet"]
MEDIA = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
FILE = {"response_class": FileResponse,
        "responses": {200: {"content": {m.split(";")[0]: {} for m in MEDIA.values()}}}}


def format_query(default: str | None = None):
    return Query(default, description="csv, xlsx (Excel) or parquet. Text cells that a spreadsheet would run as "
                                      "a formula (=, +, -, @) are written as text.")


def _scratch(request: Request) -> Path:
    folder = ws_of(request).home / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="download-", dir=folder))


def _send(path: Path, folder: Path, name: str, fmt: str) -> FileResponse:
    return FileResponse(path, filename=f"{name}.{fmt}", media_type=MEDIA[fmt],
                        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))


def table_file(request: Request, path: Path, fmt: str | None, media: str | None = None) -> FileResponse:
    """A stored table file as is (no ``fmt``), or converted to ``fmt`` in a scratch folder removed after sending."""
    suffix = path.suffix.lower().lstrip(".")
    if fmt is None or suffix not in ("csv", "parquet", "jsonl", "xlsx"):
        return FileResponse(path, filename=path.name, media_type=media or MEDIA.get(suffix, "application/octet-stream"))
    folder = _scratch(request)
    try:
        out = tables.convert(path, fmt, folder, what=path.stem)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return _send(out, folder, path.stem, fmt)


def frame_file(request: Request, df, name: str, fmt: str) -> FileResponse:
    folder = _scratch(request)
    try:
        out = tables.write_table(df, folder / f"{name}.{fmt}", what=name)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return _send(out, folder, name, fmt)


@router.get("/datasets/{name}/topics/{run_id}/download", tags=["topics"], **role("viewer"), **FILE,
            summary="Download a discovery run's topic of every document (CSV, XLSX or Parquet)")
def topics_download(request: Request, name: str, run_id: Id, format: Format = format_query("csv")):
    from ..topics.runs import load_discovery, write_assignments

    ws = ws_of(request)
    result = load_discovery(ws, name, run_id)
    folder = _scratch(request)
    try:
        out = write_assignments(result, folder / f"topics-{name}-run{run_id}.{format}", ws=ws)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return _send(out, folder, out.stem, format)


@router.get("/datasets/{name}/summaries/download", tags=["analysis"], **role("viewer"), **FILE,
            summary="Download a dataset's stored category summaries (CSV, XLSX or Parquet)")
def summaries_download(request: Request, name: str, run: int | None = Query(None, ge=1, le=2**62),
                       format: Format = format_query("csv")):
    import pandas as pd

    ws = ws_of(request)
    info = ws.dataset(name)
    if run is None:
        run = ws.db.execute("SELECT MAX(run_id) FROM summaries WHERE dataset_id = ?", (info.id,)).fetchone()[0]
    rows = ws.db.execute("SELECT * FROM summaries WHERE dataset_id = ? AND run_id = ? ORDER BY size DESC",
                         (info.id, run)).fetchall() if run is not None else []
    if not rows:
        raise NotFound(f"dataset {name!r} has no stored summaries{f' in run {run}' if run else ''}.",
                       fix=f"Summarize it first: inhouse summarize --dataset {name} "
                           f"(or POST /datasets/{name}/summaries).")
    df = pd.DataFrame([{"category": r["category"], "name": r["name"], "by": r["by_column"], "size": r["size"],
                        "share": r["share"], "kind": r["kind"], "summary": r["summary"],
                        "keywords": json.loads(r["keywords"]), "doc_ids": json.loads(r["doc_ids"]),
                        "model": r["model"], "created_at": r["created_at"]} for r in rows])
    return frame_file(request, df, f"summaries-{name}-run{run}", format)


@router.get("/datasets/{name}/quarantine/download", tags=["datasets"], **role("viewer"), **FILE,
            summary="Download a dataset's quarantined rows with their reasons (CSV, XLSX or Parquet)")
def quarantine_download(request: Request, name: str, format: Format = format_query("csv")):
    import pandas as pd

    from ..data import datasets as datasets_api

    rows = []
    for i in datasets_api.describe_dataset(ws_of(request), name)["ingests"]:
        path = i.get("quarantine_file")
        if path and Path(path).is_file():
            with open(path, encoding="utf-8") as f:
                rows.extend({"ingest": i["id"], **json.loads(line)} for line in f)
    df = pd.DataFrame(rows if rows else [], columns=None if rows else ["ingest", "row", "reason"])
    return frame_file(request, df, f"quarantine-{name}", format)


@router.get("/datasets/{name}/trends/download", tags=["analysis"], **role("viewer"), **FILE,
            summary="Download the trends of a dataset, one row per category (CSV, XLSX or Parquet)")
def trends_download(request: Request, name: str, by: str = Query("label", max_length=200),
                    every: Literal["day", "week", "month"] = "week", within: str | None = Query(None, max_length=200),
                    recent: int | None = Query(None, ge=1, le=10_000), alpha: float = Query(0.05, gt=0, lt=1),
                    min_ratio: float = Query(1.25, ge=1, le=1000), run: int | None = Query(None, ge=1, le=2**62),
                    split: str | None = None, format: Format = format_query("csv")):
    """The same query as ``GET /datasets/{name}/trends``; ``counts`` and ``shares`` follow ``periods``."""
    import pandas as pd

    from ..analysis.trends import trends as trends_api

    res = trends_api(ws_of(request), name, by=by, every=every, within=within, recent=recent, alpha=alpha,
                     min_ratio=min_ratio, run=run, split=split)
    df = pd.DataFrame([{**c.to_dict(), "periods": res.periods} for c in res.categories])
    return frame_file(request, df, f"trends-{name}-{by}-{every}", format)
