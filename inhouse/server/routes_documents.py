"""A file's preview before import, one document, a topic's documents (the web UI's Import and Explore use them).

``POST /datasets/preview`` reads only the first bytes of an upload (the whole
file for Parquet, whose index is at its end, within the upload limit) into the
workspace's tmp/ under a generated name, shows its columns, first rows and a
guessed column mapping, and removes the copy. ``GET /datasets/{name}/documents/{doc_id}``
is one document with its labels, metadata, topics and (with ``model``) the
model's prediction.
"""

from __future__ import annotations

import json
import uuid

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile

from ..data.preview import preview_file
from ..errors import InhouseError, InputError, NotFound
from .auth import role
from .common import BIG, Id, page, ws_of
from .errors import ApiError
from .routes_data import upload_suffix

router = APIRouter()
PREVIEW_BYTES = 2 << 20  # text formats: the preview reads at most this much of the upload
WHOLE_FILE_SUFFIXES = (".parquet", ".xlsx", ".json", ".json.gz")  # readable only whole: up to the upload limit


@router.post("/datasets/preview", tags=["datasets"], summary="Columns, first rows and a guessed column mapping of a file",
             **role("editor", upload=True))
def preview(request: Request, file: UploadFile = File(..., description="CSV, TSV, JSONL, JSON, .xlsx, Parquet or text "
                                                      "(.gz too)"),
            n: int = Form(20, ge=1, le=200, description="Rows to return."),
            encoding: str = Form("utf-8", max_length=40), delimiter: str | None = Form(None, max_length=10),
            sheet: str | None = Form(None, max_length=100, description=".xlsx sheet: name or number")) -> dict:
    """Reads the first rows only; nothing is stored. The answer's ``guess`` is a column mapping for POST /datasets."""
    ws = ws_of(request)
    suffix = upload_suffix(file.filename)
    whole = suffix in WHOLE_FILE_SUFFIXES
    if whole:
        limit = request.app.state.ctx.settings.max_upload_bytes
    else:
        limit = PREVIEW_BYTES
    tmp = ws.dir("tmp") / f"preview-{uuid.uuid4().hex}{suffix}"
    try:
        size, cut = 0, False
        with open(tmp, "wb") as out:
            while chunk := file.file.read(min(1 << 20, limit - size + 1)):
                if size + len(chunk) > limit:
                    if whole:
                        raise ApiError(413, f"the upload is over {limit:,} bytes.",
                                       fix="Split the file, or ingest it on the server with: inhouse ingest")
                    chunk, cut = chunk[:limit - size], True
                out.write(chunk)
                size += len(chunk)
                if cut:
                    break
        if cut and not suffix.endswith(".gz"):
            _cut_at_last_newline(tmp)
        if size == 0:
            raise InputError(f"{file.filename!r} is empty.", fix="Pick the exported file, not an empty one.")
        from ..data.csvspans import parse_delimiter
        from ..data.readers import check_encoding

        source = (file.filename or "upload").replace("\\", "/").rsplit("/", 1)[-1][:200]
        try:
            res = preview_file(tmp, n=n, encoding=check_encoding(encoding), delimiter=parse_delimiter(delimiter or None),
                               source=source, sheet=sheet or None)
        except InhouseError as e:  # the readers name the temporary copy: say the user's file name instead
            e.message = e.message.replace(tmp.name, source)
            e.args = (e.message,)
            raise
    finally:
        tmp.unlink(missing_ok=True)
    res["partial"] = cut
    res["bytes_read"] = size
    res["dataset_exists"] = res["dataset"] in ws.dataset_names()
    return res


def _cut_at_last_newline(path) -> None:
    with open(path, "rb+") as f:
        data = f.read()
        end = data.rfind(b"\n")
        if end >= 0:
            f.truncate(end + 1)


@router.get("/datasets/{name}/documents/{doc_id}", tags=["documents"], summary="One document: text, labels, time, "
            "topics, prediction", **role("viewer"))
def document(request: Request, name: str, doc_id: int = Path(..., ge=0, le=BIG),
             model: str | None = Query(None, max_length=300, description="A classifier version: add its prediction."),
             ) -> dict:
    from ..topics.membership import doc_topics
    from ..workspace.documents import read_documents

    ws = ws_of(request)
    ws.dataset(name)
    df = read_documents(ws, name, where=f"doc_id = {int(doc_id)}")
    if not len(df):
        raise NotFound(f"document {doc_id} not found in dataset {name!r}.",
                       fix=f"List its documents with: GET /datasets/{name}/documents")
    r = df.iloc[0].to_dict()
    t = r.get("time")
    meta = r.get("meta")
    try:
        meta = json.loads(meta) if isinstance(meta, str) and meta else {}
    except ValueError:
        meta = {}
    out = {"dataset": name, "doc_id": int(r["doc_id"]), "text": r["text"],
           "label": r["label"] if isinstance(r.get("label"), str) else None, "labels": list(r.get("labels") or []),
           "time": None if t is None or str(t) == "NaT" else t.isoformat(),
           "split": r.get("split") if isinstance(r.get("split"), str) else None,
           "source_id": r.get("source_id") if isinstance(r.get("source_id"), str) else None,
           "source_row": None if r.get("source_row") is None else int(r["source_row"]),
           "ingest_id": None if r.get("ingest_id") is None else int(r["ingest_id"]),
           "meta": meta, "topics": doc_topics(ws, name, int(doc_id)), "prediction": None}
    if model is not None:
        out["prediction"] = _prediction(ws, name, int(doc_id), r, model)
    return out


def _prediction(ws, dataset: str, doc_id: int, doc: dict, model: str) -> dict:
    from ..service.classify import document_prediction

    return document_prediction(ws, dataset, doc_id, doc["text"], doc["text_hash"], model)


@router.get("/datasets/{name}/topics/{run_id}/documents", tags=["topics"],
            summary="The documents of one topic of a discovery run, most typical first", **role("viewer"))
def topic_documents(request: Request, name: str, run_id: Id,
                    topic: int = Query(..., ge=-1, le=BIG, description="The topic (-1: the outliers)."),
                    pg: tuple[int, int] = Depends(page)) -> dict:
    from ..topics.membership import topic_documents as documents_of

    limit, offset = pg
    return documents_of(ws_of(request), name, run_id, topic, limit=limit, offset=offset)
