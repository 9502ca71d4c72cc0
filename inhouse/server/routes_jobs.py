"""Jobs (status, progress events, cancel, output), runs and their costs, the audit log, API tokens."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from ..errors import NotFound
from . import jobs, tokens
from . import routes_downloads as downloads
from .auditlog import audit_rows
from .auth import principal_of, role
from .common import Body, Id, page, ws_of

router = APIRouter()
Status = Literal["queued", "running", "done", "failed", "cancelled"]


@router.get("/me", tags=["server"], summary="Who this token is", **role("viewer"))
def me(request: Request) -> dict:
    p = principal_of(request)
    return {"name": p.name, "role": p.role}


@router.get("/stats", tags=["server"], summary="Loaded models and how requests were batched onto them",
            **role("viewer"))
def stats(request: Request) -> dict:
    return request.app.state.ctx.models.stats()


@router.get("/jobs", tags=["jobs"], summary="Jobs, newest first", **role("viewer"))
def list_jobs(request: Request, status: Status | None = None, kind: Literal[jobs.KINDS] | None = None,  # type: ignore[valid-type]
              pg: tuple[int, int] = Depends(page)) -> dict:
    limit, offset = pg
    return {"jobs": jobs.listing(ws_of(request), status=status, kind=kind, limit=limit, offset=offset)}


@router.get("/jobs/{job_id}", tags=["jobs"], summary="A job: status, progress, result or error", **role("viewer"))
def get_job(request: Request, job_id: Id) -> dict:
    return jobs.get(ws_of(request), job_id)


@router.post("/jobs/{job_id}/cancel", tags=["jobs"], summary="Cancel a job", **role("editor"))
def cancel_job(request: Request, job_id: Id) -> dict:
    return jobs.cancel(ws_of(request), job_id)


@router.get("/jobs/{job_id}/events", tags=["jobs"], summary="Progress as server-sent events until the job ends",
            response_class=StreamingResponse, **role("viewer"),
            responses={200: {"content": {"text/event-stream": {}}, "description": "event: progress | end"}})
async def job_events(request: Request, job_id: Id, poll: float = Query(0.25, ge=0.05, le=10)):
    ws = ws_of(request)
    first = await run_in_threadpool(jobs.get, ws, job_id)  # 404 before the stream starts

    async def events():
        last, job, quiet = None, first, 0.0
        while True:
            key = (job["status"], job["updated_at"])
            if key != last:
                last, quiet = key, 0.0
                kind = "end" if job["status"] in jobs.FINAL else "progress"
                data = {k: job[k] for k in ("id", "kind", "status", "progress", "attempts", "notes")}
                if kind == "end":
                    data.update(result=job["result"], error=job["error"])
                yield f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n"
                if kind == "end":
                    return
            elif quiet >= 15:
                quiet = 0.0
                yield ": keep-alive\n\n"
            if await request.is_disconnected():
                return
            await asyncio.sleep(poll)
            quiet += poll
            job = await run_in_threadpool(jobs.get, ws, job_id)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.get("/jobs/{job_id}/output", tags=["jobs"], summary="The file a classify job wrote", **role("viewer"),
            response_class=FileResponse, responses={200: {"content": {"application/octet-stream": {}}}})
def job_output(request: Request, job_id: Id, format: downloads.Format | None = downloads.format_query()):
    """The predictions as written, or as ``?format=csv|xlsx|parquet``."""
    ws = ws_of(request)
    job = jobs.get(ws, job_id)
    out = (job.get("result") or {}).get("output")
    folder = (ws.home / "runs" / "jobs").resolve()
    if job["status"] != "done" or not out:
        raise NotFound(f"job {job_id} has no output file (status {job['status']}, kind {job['kind']}).",
                       fix="Only finished classify jobs write one.")
    path = Path(out).resolve()
    if folder not in path.parents or not path.is_file():
        raise NotFound(f"job {job_id}: its output file is gone.", fix="Run the job again.")
    return downloads.table_file(request, path, format)


# ------------------------------------------------------------------- runs ----

def _run(r) -> dict:
    started, finished = r["started_at"], r["finished_at"]
    result = json.loads(r["result"] or "{}")
    return {"id": r["id"], "kind": r["kind"], "status": r["status"], "user": r["user"], "model": r["model"],
            "model_sha256": r["model_sha256"], "started_at": started, "finished_at": finished,
            "params": json.loads(r["params"] or "{}"), "result": result,
            "cost": {"wall_seconds": round(finished - started, 3) if finished and started else None}}


@router.get("/runs", tags=["runs"], summary="Recorded runs (train, classify, embed, ...) with their cost",
            **role("viewer"))
def list_runs(request: Request, kind: str | None = Query(None, max_length=50),
              pg: tuple[int, int] = Depends(page)) -> dict:
    ws = ws_of(request)
    limit, offset = pg
    q = "SELECT * FROM runs" + (" WHERE kind = ?" if kind else "") + " ORDER BY id DESC LIMIT ? OFFSET ?"
    rows = [_run(r) for r in ws.db.execute(q, (*([kind] if kind else []), limit, offset))]
    totals = ws.db.execute("SELECT kind, COUNT(*) AS n, SUM(finished_at - started_at) AS seconds FROM runs "
                           "GROUP BY kind ORDER BY kind").fetchall()
    job_cost = ws.db.execute("SELECT kind, COUNT(*) AS n, SUM(json_extract(result, '$.cost.cpu_seconds')) AS cpu, "
                             "SUM(json_extract(result, '$.cost.wall_seconds')) AS wall FROM jobs "
                             "WHERE status = 'done' GROUP BY kind ORDER BY kind").fetchall()
    return {"runs": rows,
            "totals": [{"kind": t["kind"], "runs": t["n"], "wall_seconds": round(t["seconds"] or 0, 3)} for t in totals],
            "job_costs": [{"kind": t["kind"], "jobs": t["n"], "cpu_seconds": round(t["cpu"] or 0, 3),
                           "wall_seconds": round(t["wall"] or 0, 3)} for t in job_cost]}


@router.get("/runs/{run_id}", tags=["runs"], summary="One run", **role("viewer"))
def get_run(request: Request, run_id: Id) -> dict:
    r = ws_of(request).db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    if r is None:
        raise NotFound(f"run {run_id} not found.", fix="See the runs with: GET /runs")
    return _run(r)


# ------------------------------------------------------------------ audit ----

@router.get("/audit", tags=["audit"], summary="The audit log, newest first", **role("admin"))
def audit(request: Request, user: str | None = Query(None, max_length=200),
          action: str | None = Query(None, max_length=200, description="Prefix, e.g. 'models.' or 'token.'"),
          since: float | None = Query(None, ge=0, le=1e11, description="Epoch seconds"),
          pg: tuple[int, int] = Depends(page)) -> dict:
    limit, offset = pg
    return {"events": audit_rows(ws_of(request), user=user, action=action, since=since, limit=limit, offset=offset)}


# ----------------------------------------------------------------- tokens ----

class TokenRequest(Body):
    name: str = Field(..., min_length=1, max_length=64)
    role: Literal["viewer", "editor", "admin"]


@router.get("/tokens", tags=["tokens"], summary="API tokens (never their secrets)", **role("admin"))
def list_tokens(request: Request, revoked: bool = False) -> dict:
    return {"tokens": [t.to_dict() for t in tokens.list_tokens(ws_of(request), include_revoked=revoked)]}


@router.post("/tokens", tags=["tokens"], summary="Create a token; its secret is shown only in this answer",
             status_code=201, **role("admin"))
def create_token(request: Request, body: TokenRequest) -> dict:
    return tokens.create_token(ws_of(request), body.name, body.role).to_dict()


@router.delete("/tokens/{name}", tags=["tokens"], summary="Revoke a token", **role("admin"))
def revoke_token(request: Request, name: str) -> dict:
    return tokens.revoke_token(ws_of(request), name).to_dict()
