"""Datasets (upload, list, show, remove), documents (search, filter, paginate), topics, labels, trends, summaries."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from pydantic import Field, model_validator

from ..data import datasets as datasets_api
from ..data import ingest as ingest_api
from ..errors import InputError, UsageError
from ..service import analysis as analysis_service
from ..service import topics as topics_service
from .auth import role
from .errors import ApiError
from .common import BIG, Body, Id, JobAccepted, accepted, clean, page, ws_of

router = APIRouter()
UPLOAD_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet", ".txt", ".csv.gz", ".tsv.gz", ".jsonl.gz",
                   ".ndjson.gz", ".txt.gz", ".json", ".json.gz", ".xlsx")
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


def upload_suffix(filename: str | None) -> str:
    """The reader format from the client's file name, checked against a fixed list (the name itself is never used)."""
    name = (filename or "").lower()
    for s in sorted(UPLOAD_SUFFIXES, key=len, reverse=True):
        if name.endswith(s):
            return s
    raise InputError(f"uploaded file {filename!r}: expected one of {list(UPLOAD_SUFFIXES)}.",
                     fix="Upload a CSV, TSV, JSON Lines, JSON, Excel (.xlsx), Parquet or text file with its usual extension.")


def check_encoding(encoding: str) -> str:
    """A text encoding Python knows, or a 400 naming it (a binary codec such as zlib_codec is not one)."""
    try:
        "\n".encode(encoding)  # a binary codec (bytes to bytes) refuses str: LookupError, as an unknown name does
    except LookupError as e:
        raise UsageError(f"encoding={encoding!r} is not a text encoding ({e}).",
                         fix="Use a text encoding such as utf-8, utf-8-sig, latin-1 or cp1252.") from None
    return encoding


UPLOAD_GLOB = "upload-*"


@contextlib.contextmanager
def upload_file(ws, suffix: str):
    """A new owner-only (0600) file under tmp/ for one upload, locked while it lives and removed after.

    The lock tells :func:`clean_stale_uploads` (run when a server starts) which files a crash left behind:
    a file nobody holds is stale, whatever process wrote it.
    """
    import fcntl

    tmp = ws.dir("tmp") / f"upload-{uuid.uuid4().hex}{suffix}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "wb") as out:
            yield tmp, out
    finally:
        tmp.unlink(missing_ok=True)
        os.close(fd)


def clean_stale_uploads(ws) -> list[str]:
    """Remove upload files no live request holds (left by a crash or a kill); returns their names."""
    from ..service.maintenance import remove_stale_uploads

    return remove_stale_uploads(ws, UPLOAD_GLOB)


def _quarantine_head(path: str | None, n: int = 20) -> list[dict]:
    if not path:
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            out.append(json.loads(line))
            if len(out) >= n:
                break
    return out


@router.post("/datasets", tags=["datasets"], summary="Upload a file into a dataset (like inhouse ingest)",
             **role("editor", upload=True))
def upload(request: Request, file: UploadFile = File(..., description="CSV, TSV, JSONL, JSON, .xlsx, Parquet or text "
                                                     "(.gz too)"),
           dataset: str = Form(..., pattern=NAME),
           text_col: list[str] = Form(["text"], description="Text column; repeat the field to join several."),
           label_col: str | None = Form(None),
           time_col: str | None = Form(None), id_col: str | None = Form(None), split_col: str | None = Form(None),
           label_sep: str | None = Form(None), redact_pii: bool = Form(False),
           max_chars: int = Form(100_000, ge=1, le=10_000_000), encoding: str = Form("utf-8"),
           delimiter: str | None = Form(None, max_length=10, description="CSV field separator, e.g. ';' "
                                        "(default: ',' for .csv, tab for .tsv)"),
           time_format: str | None = Form(None, max_length=100, description="strftime format of the time column"),
           dayfirst: bool | None = Form(None, description="Order of dates like 05/06/2011 (default: from the file)"),
           sheet: str | None = Form(None, max_length=100, description=".xlsx sheet: name or number (default: first)"),
           unescape_html: bool = Form(False, description="Decode HTML entities and strip markup from texts"),
           speaker: list[str] | None = Form(None, description="Conversations: only these speakers' turns")) -> dict:
    """Stores the upload under the workspace's tmp/ with a generated name, ingests it with the same column
    mapping, quarantine and idempotency as ``inhouse ingest``, and removes the temporary copy."""
    ws = ws_of(request)
    limit = request.app.state.ctx.settings.max_upload_bytes
    suffix = upload_suffix(file.filename)
    check_encoding(encoding)
    with upload_file(ws, suffix) as (tmp, out):
        size = 0
        with out:
            while chunk := file.file.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, f"the upload is over {limit:,} bytes.", fix="Split the file, or ingest it "
                                   "on the server with: inhouse ingest")
                out.write(chunk)
        res = ingest_api.ingest(ws, tmp, dataset, text_col=[c for c in text_col if c] or "text",
                                time_format=time_format or None, dayfirst=dayfirst, sheet=sheet or None,
                                unescape_html=unescape_html, speaker=[s for s in speaker or [] if s] or None,
                                label_col=label_col or None,
                                time_col=time_col or None, id_col=id_col or None, split_col=split_col or None,
                                redact_pii=redact_pii, max_chars=max_chars, label_sep=label_sep or None,
                                encoding=encoding, delimiter=delimiter or None)
    d = res.to_dict()
    d["source"] = Path(file.filename or "upload").name[:200]
    d["bytes"] = size
    d["quarantine_sample"] = _quarantine_head(res.quarantine_file)
    return d


@router.get("/datasets", tags=["datasets"], summary="List datasets", **role("viewer"))
def list_datasets(request: Request) -> dict:
    return {"datasets": datasets_api.list_datasets(ws_of(request))}


@router.get("/datasets/{name}", tags=["datasets"], summary="Rows, labels, splits, time range, ingests", **role("viewer"))
def show_dataset(request: Request, name: str) -> dict:
    return datasets_api.describe_dataset(ws_of(request), name)


@router.delete("/datasets/{name}", tags=["datasets"], summary="Remove a dataset and its documents", **role("admin"))
def remove_dataset(request: Request, name: str) -> dict:
    return datasets_api.remove_dataset(ws_of(request), name)


@router.get("/datasets/{name}/quarantine", tags=["datasets"], summary="Rows that were quarantined", **role("viewer"))
def quarantine(request: Request, name: str, pg: tuple[int, int] = Depends(page)) -> dict:
    d = datasets_api.describe_dataset(ws_of(request), name)
    rows: list[dict] = []
    limit, offset = pg
    seen = 0
    for i in d["ingests"]:
        path = i.get("quarantine_file")
        if not path or not Path(path).is_file():
            continue
        with open(path, encoding="utf-8") as f:
            for line in f:
                if seen >= offset and len(rows) < limit:
                    rows.append({"ingest": i["id"], **json.loads(line)})
                seen += 1
    return {"dataset": name, "total": seen, "rows": rows}


# -------------------------------------------------------------- documents ----

def _parse_time(value: str | None, what: str):
    if value is None:
        return None
    import pandas as pd

    try:
        t = pd.Timestamp(value)
    except (ValueError, TypeError) as e:
        raise InputError(f"{what}={value!r} is not a date or time ({e}).", fix="Use ISO 8601, e.g. 2026-06-01 "
                         "or 2026-06-01T12:00:00Z.") from None
    if t is pd.NaT:
        raise InputError(f"{what}={value!r} is not a date or time.", fix="Use ISO 8601, e.g. 2026-06-01.")
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


@router.get("/datasets/{name}/documents", tags=["documents"], summary="Search and filter documents", **role("viewer"))
def documents(request: Request, name: str,
              q: str | None = Query(None, max_length=1000, description="Text that must appear (case-insensitive)."),
              label: str | None = Query(None, description="Effective label (people's labels replace the file's)."),
              unlabelled: bool = Query(False, description="Only documents without a label."),
              split: str | None = Query(None), time_from: str | None = Query(None, description="ISO 8601, inclusive"),
              time_to: str | None = Query(None, description="ISO 8601, exclusive"),
              model: str | None = Query(None, description="A classifier version: add its prediction to each row."),
              predicted: str | None = Query(None, description="With model: only documents it predicts as this."),
              pg: tuple[int, int] = Depends(page)) -> dict:
    ws = ws_of(request)
    t0, t1 = _parse_time(time_from, "time_from"), _parse_time(time_to, "time_to")
    if predicted is not None and model is None:
        raise UsageError("predicted=... needs model=... (the version whose predictions to filter by).")
    from ..data.search import matching_ids, search_documents

    limit, offset = pg
    filters = dict(q=q, label=label, unlabelled=unlabelled, split=split, time_from=t0, time_to=t1)
    if model is None:  # one page, filtered and counted in DuckDB: milliseconds, not a read of every document
        found = search_documents(ws, name, **filters, limit=limit, offset=offset)
        return {"dataset": name, "total": found["total"], "limit": limit, "offset": offset, "predictions": None,
                "documents": found["documents"]}
    # with a model: its stored predictions (classify's prediction set) for the same candidates, read in DuckDB;
    # a request never classifies the dataset itself (409 not_classified names the classify job to start)
    from ..service.classify import stored_predictions

    pset = stored_predictions(ws, name, model, matching_ids(ws, name, **filters))
    found = search_documents(ws, name, **filters, predictions=pset, predicted=predicted, limit=limit, offset=offset)
    return {"dataset": name, "total": found["total"], "limit": limit, "offset": offset,
            "predictions": {"model": pset.model, "sha256": pset.model_sha256}, "documents": found["documents"]}


# ----------------------------------------------------------------- topics ----

class DiscoverRequest(Body):
    within: str | None = Field(None, description="Find sub-topics inside each category of this column.")
    model: str | None = Field(None, description="Embedding model (default minilm-l6).")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    n_topics: int | None = Field(None, ge=1, le=10_000)
    outliers: bool = False
    min_topic_size: int = Field(10, ge=1, le=1_000_000)
    llm: str | None = Field(None, description="Name topics with a local generative model.")
    split: str | None = None
    where: str | None = Field(None, max_length=20_000, description="Only documents for which this filter holds, "
                              "e.g. \"label = 'negative'\" (as the CLI's --where).")
    n_themes: int | None = Field(None, ge=1, le=10_000,
                                 description="Exact number of themes (groups of topics); default: chosen, 8-30.")


@router.get("/datasets/{name}/topics", tags=["topics"], summary="Discovery runs of a dataset", **role("viewer"))
def topic_runs(request: Request, name: str) -> dict:
    ws = ws_of(request)
    info = ws.dataset(name)
    rows = ws.db.execute("SELECT run_id, created_at, model, within, split, n_documents, n_topics, n_outliers, llm, user "
                         "FROM discoveries WHERE dataset_id = ? ORDER BY run_id DESC", (info.id,))
    return {"dataset": name, "runs": [dict(r) for r in rows]}


@router.get("/datasets/{name}/topics/{run_id}", tags=["topics"], summary="One discovery run with its topics",
            **role("viewer"))
def topic_run(request: Request, name: str, run_id: Id,
              level: Literal["all", "themes", "topics"] = Query(
                  "all", description="themes: the themes only (each lists its topic ids); topics: the fine "
                                     "topics only; all: both."),
              n_themes: int | None = Query(None, ge=1, le=10_000, description=(
                  "Group the run's topics into this many themes (coarser or finer; a cut of the run's stored "
                  "theme tree, not stored); themes_chosen says the count the data chooses."))) -> dict:
    from ..service.topics import regroup
    from ..topics.runs import load_discovery

    ws = ws_of(request)
    res = load_discovery(ws, name, run_id) if n_themes is None else regroup(ws, name, run_id, n_themes)
    d = res.to_dict()
    if level == "themes":
        d.pop("topics")
    elif level == "topics":
        d.pop("themes")
    return d


@router.post("/datasets/{name}/topics", tags=["topics"], summary="Start a topic discovery job", status_code=202,
             **role("editor"))
def start_discovery(request: Request, name: str, body: DiscoverRequest) -> JobAccepted:
    ws = ws_of(request)
    ws.dataset(name)
    return accepted(ws, "discover", {"dataset": name, **clean(body.model_dump())})


# ----------------------------------------------------------------- labels ----

class LabelRequest(Body):
    label: str = Field(..., min_length=1, max_length=200)
    topic: int | None = Field(None, ge=-1, le=BIG, description="Label every document of this topic ...")
    run: int | None = Field(None, ge=1, le=BIG, description="... of this discovery run (default: the latest).")
    doc_ids: list[Annotated[int, Field(ge=0, le=BIG)]] | None = Field(None, min_length=1, max_length=100_000,
                                                                      description="... or these documents.")
    into: str | None = Field(None, min_length=1, max_length=200,
                             description="Label column to write (created on first use); default: the ingest's.")
    overwrite: bool = Field(False, description="Allow replacing labels that came with the file at ingest.")
    where: str | None = Field(None, min_length=1, max_length=20_000,
                              description="Label every document for which this filter holds (as the CLI's --where); "
                                          "with topic or doc_ids: only those of them for which it holds.")

    @model_validator(mode="after")
    def one_target(self):
        if self.topic is not None and self.doc_ids is not None:
            raise ValueError("give exactly one of topic or doc_ids (where alone labels every match)")
        if self.topic is None and self.doc_ids is None and self.where is None:
            raise ValueError("give exactly one of topic or doc_ids, or a where filter")
        return self


@router.post("/datasets/{name}/labels", tags=["labels"], summary="Label a topic or documents (one undoable batch)",
             **role("editor"))
def label(request: Request, name: str, body: LabelRequest) -> dict:
    return topics_service.label(ws_of(request), name, body.label, topic=body.topic, run=body.run, doc_ids=body.doc_ids,
                                where=body.where, into=body.into, overwrite=body.overwrite).to_dict()


@router.get("/datasets/{name}/labels", tags=["labels"], summary="Labelling batches, newest first", **role("viewer"))
def label_batches(request: Request, name: str, limit: int = Query(50, ge=1, le=1000)) -> dict:
    return {"batches": [b.to_dict() for b in topics_service.label_batches(ws_of(request), name, limit=limit)]}


@router.post("/labels/{batch}/undo", tags=["labels"], summary="Undo a labelling batch", **role("editor"))
def undo(request: Request, batch: str) -> dict:
    return topics_service.undo(ws_of(request), batch).to_dict()


# ---------------------------------------------------- trends & summaries ----

@router.get("/datasets/{name}/trends", tags=["analysis"], summary="Emerging and declining categories over time",
            **role("viewer"))
def trends(request: Request, name: str, by: str = Query("label", max_length=200),
           every: Literal["day", "week", "month"] = "week", within: str | None = Query(None, max_length=200),
           recent: int | None = Query(None, ge=1, le=10_000), alpha: float = Query(0.05, gt=0, lt=1),
           min_ratio: float = Query(1.25, ge=1, le=1000), run: int | None = Query(None, ge=1, le=BIG),
           split: str | None = None,
           where: str | None = Query(None, max_length=20_000, description="Only documents for which this filter holds "
                                     "(as the CLI's --where)."),
           recent_from: str | None = Query(None, max_length=40, description="Recent window from this date (YYYY-MM-DD)."),
           until: str | None = Query(None, max_length=40, description="Leave out documents after this date.")) -> dict:
    return analysis_service.trends(ws_of(request), name, by=by, every=every, within=within, recent=recent, alpha=alpha,
                                   min_ratio=min_ratio, run=run, split=split, where=where, recent_from=recent_from,
                                   until=until).to_dict()


@router.get("/datasets/{name}/summaries", tags=["analysis"], summary="Stored category summaries", **role("viewer"))
def summaries(request: Request, name: str, run: int | None = Query(None, ge=1, le=BIG, description="A summarize run id.")) -> dict:
    ws = ws_of(request)
    info = ws.dataset(name)
    if run is None:
        r = ws.db.execute("SELECT MAX(run_id) FROM summaries WHERE dataset_id = ?", (info.id,)).fetchone()
        run = r[0]
    rows = ws.db.execute("SELECT * FROM summaries WHERE dataset_id = ? AND run_id = ? ORDER BY size DESC",
                         (info.id, run)).fetchall() if run is not None else []
    return {"dataset": name, "run_id": run, "summaries": [
        {"category": r["category"], "name": r["name"], "by": r["by_column"], "size": r["size"], "share": r["share"],
         "kind": r["kind"], "summary": r["summary"], "keywords": json.loads(r["keywords"]),
         "doc_ids": json.loads(r["doc_ids"]), "model": r["model"], "model_sha256": r["model_sha256"],
         "created_at": r["created_at"]} for r in rows]}


class SummarizeRequest(Body):
    by: str = Field("label", max_length=200)
    llm: str | None = Field(None, description="A local generative model, e.g. smollm2-135m (else extractive).")
    n_docs: int = Field(5, ge=1, le=50)
    categories: list[str] | None = Field(None, max_length=1000)
    run: int | None = Field(None, ge=1, le=BIG)
    split: str | None = None
    where: str | None = Field(None, max_length=20_000, description="Only documents for which this filter holds.")


@router.post("/datasets/{name}/summaries", tags=["analysis"], summary="Start a summarize job", status_code=202,
             **role("editor"))
def start_summaries(request: Request, name: str, body: SummarizeRequest) -> JobAccepted:
    ws = ws_of(request)
    ws.dataset(name)
    return accepted(ws, "summarize", {"dataset": name, **clean(body.model_dump())})


class EmbedRequest(Body):
    model: str = Field("minilm-l6", description="An embedding model (GET /models).")
    split: str | None = None


@router.post("/datasets/{name}/embeddings", tags=["datasets"], summary="Start an embedding job", status_code=202,
             **role("editor"))
def start_embedding(request: Request, name: str, body: EmbedRequest) -> JobAccepted:
    from ..models.catalog import get_model

    ws = ws_of(request)
    ws.dataset(name)
    get_model(ws, body.model)
    return accepted(ws, "embed", {"dataset": name, **clean(body.model_dump())})
