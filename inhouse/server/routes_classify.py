"""Classify: one text, a batch, NDJSON streamed in and out, and whole datasets as jobs."""

from __future__ import annotations

import json
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import Field

from .. import registry
from ..errors import InputError
from .auth import role
from .common import Body, JobAccepted, accepted, ws_of
from .errors import from_exception

router = APIRouter()


class DuplexStreamingResponse(StreamingResponse):
    """Streams the answer while the request body is still being read.

    Starlette's own response listens for a disconnect by reading the request,
    which would swallow the body this route reads line by line; here a gone
    client shows up as a failed send instead.
    """

    async def __call__(self, scope, receive, send) -> None:
        try:
            await self.stream_response(send)
        except OSError:
            from starlette.requests import ClientDisconnect

            raise ClientDisconnect() from None
Text = Field(..., max_length=1_000_000, description="Longer than the model reads: truncated, and the answer says so.")


class ClassifyOne(Body):
    model: str = Field(..., max_length=300, description="NAME, NAME@N, NAME@ALIAS (e.g. intents@production)")
    text: str = Text
    top_k: int = Field(3, ge=1, le=100)


class ClassifyBatch(Body):
    model: str = Field(..., max_length=300)
    texts: list[str] = Field(..., min_length=1, description="At most max_batch_texts (256 by default) texts.")
    top_k: int = Field(3, ge=1, le=100)


def served(request: Request, ref: str):
    return request.app.state.ctx.models.classifier(ref)


def check_batch(request: Request, n: int) -> None:
    most = request.app.state.ctx.settings.max_batch_texts
    if n > most:
        raise InputError(f"{n} texts in one request; at most {most}.",
                         fix="Send several requests, or stream NDJSON to POST /classify/stream.")


# Online routes answer with a JSONResponse of plain rows (FastAPI need not validate and re-encode them) and
# declare no_paths (their answers name no server file, so they are not parsed for paths on the way out).

@router.post("/classify", tags=["classify"], summary="Classify one text", response_model=None,
             **role("viewer", no_paths=True))
async def classify_one(request: Request, body: ClassifyOne) -> JSONResponse:
    s = await _served(request, body.model)
    row = (await s.aclassify([body.text], body.top_k))[0]
    return JSONResponse({**s.describe(), **row})


@router.post("/classify/batch", tags=["classify"], summary="Classify a batch of texts", response_model=None,
             **role("viewer", no_paths=True))
async def classify_batch(request: Request, body: ClassifyBatch) -> JSONResponse:
    check_batch(request, len(body.texts))
    s = await _served(request, body.model)
    rows = await s.aclassify(body.texts, body.top_k)
    return JSONResponse({**s.describe(), "results": [{"index": i, **r} for i, r in enumerate(rows)]})


async def _served(request: Request, ref: str):
    return await request.app.state.ctx.models.aclassifier(ref)  # loading takes seconds: never on the event loop


def _parse_line(line: bytes, n: int) -> tuple[str | None, object, str | None]:
    """(text, id, error) from one NDJSON line: a JSON string, or an object with "text" (and "id")."""
    try:
        obj = json.loads(line)
    except ValueError as e:
        return None, None, f"line {n}: not JSON ({e})"
    if isinstance(obj, str):
        return obj, n, None
    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
        return obj["text"], obj.get("id", n), None
    return None, obj.get("id") if isinstance(obj, dict) else None, f"line {n}: expected a string or {{\"text\": ...}}"


async def ndjson_lines(chunks):
    """The lines of a body arriving in ``chunks``, in time linear in its size: each chunk is searched once
    for newlines, and a line split over many chunks is joined once (not re-split with every chunk)."""
    parts: list[bytes] = []
    async for part in chunks:
        start = 0
        while (end := part.find(b"\n", start)) >= 0:
            parts.append(part[start:end])
            yield b"".join(parts)
            parts.clear()
            start = end + 1
        if start < len(part):
            parts.append(part[start:])
    if parts:
        yield b"".join(parts)


@router.post("/classify/stream", tags=["classify"], summary="Classify NDJSON lines, streamed in and out",
             response_class=StreamingResponse, **role("viewer", upload=True),
             responses={200: {"content": {"application/x-ndjson": {}}, "description": "one JSON object per line"}})
async def classify_stream(request: Request, model: str = Query(..., max_length=300), top_k: int = Query(3, ge=1, le=100),
                          chunk: int = Query(256, ge=1, le=4096)):
    """Body: one JSON string or ``{"text": ..., "id": ...}`` per line. Answer: one line per input line, in order,
    each ``{"line", "id", "label", "score", "top", "truncated", "abstained"}`` or ``{"line", "error"}``; nothing is held
    whole in memory."""
    s = await _served(request, model)

    async def out():
        n = 0
        pending: list[tuple[int, object, str]] = []

        async def flush():
            # unbounded per chunk: a stream is the way to send much, and the batcher slices it fairly
            rows = await s.aclassify([t for _, _, t in pending], top_k, bounded=False)
            text = "".join(json.dumps({"line": ln, "id": i, **r}, ensure_ascii=False) + "\n"
                           for (ln, i, _), r in zip(pending, rows))
            pending.clear()
            return text

        try:
            async for line in ndjson_lines(request.stream()):
                n += 1
                if not line.strip():
                    continue
                text, ident, err = _parse_line(line, n)
                if err:
                    if pending:
                        yield await flush()
                    yield json.dumps({"line": n, "id": ident, "error": err}) + "\n"
                    continue
                pending.append((n, ident, text))
                if len(pending) >= chunk:
                    yield await flush()
            if pending:
                yield await flush()
        except Exception as e:  # the status line is gone: the error is the last line
            status, body = from_exception(e)
            yield json.dumps({"error": body["error"], "message": body["message"], "fix": body["fix"],
                              "status": status}) + "\n"

    head = s.describe()
    return DuplexStreamingResponse(out(), media_type="application/x-ndjson",
                             headers={"X-Inhouse-Model": head["model"], "X-Inhouse-Sha256": head["sha256"],
                                      "X-Inhouse-Runtime": head["runtime"]})


class ClassifyDataset(Body):
    model: str = Field(..., max_length=300)
    dataset: str = Field(..., max_length=200)
    split: str | None = None
    where: str | None = Field(None, max_length=2000, description="Only the documents for which this filter holds.")
    top_k: int = Field(3, ge=1, le=100)
    abstain: bool = Field(True, description="false: always the most likely label, never the version's 'other'.")
    format: Literal["parquet", "csv", "jsonl"] | None = Field(
        "parquet", description="The job's output file (GET /jobs/{id}/output); null: only keep the dataset's "
                               "prediction set (what Explore's Predicted filter reads).")


@router.post("/classify/jobs", tags=["classify"], summary="Classify a whole dataset as a job", status_code=202,
             **role("editor"))
def classify_dataset(request: Request, body: ClassifyDataset) -> JobAccepted:
    """The same engine as ``inhouse classify --dataset`` (streamed, resumable, kept as the dataset's prediction
    set keyed by the version's sha256): only documents without a stored prediction are computed."""
    ws = ws_of(request)
    registry.resolve(ws, body.model)
    ws.dataset(body.dataset)
    if body.where:
        from ..workspace.filters import matching_doc_ids

        matching_doc_ids(ws, body.dataset, body.where)  # a bad filter is a 400 now, not a failed job later
    return accepted(ws, "classify", body.model_dump())
