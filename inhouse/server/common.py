"""What the route modules share: the context, pagination, request models' base, job submission."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query, Request
from pydantic import BaseModel, ConfigDict

from ..workspace.store import Workspace
from . import jobs

PAGE_MAX = 1000
BIG = 2**62  # SQLite integers are 64-bit: larger numbers are an input error, not an overflow
Id = Annotated[int, Path(ge=1, le=BIG, description="A positive id.")]


class Body(BaseModel):
    """Request bodies refuse fields they do not know (a typo is an error, not a silent default)."""

    model_config = ConfigDict(extra="forbid")


class JobAccepted(BaseModel):
    job_id: int
    status: str
    kind: str
    links: dict[str, str]


def ws_of(request: Request) -> Workspace:
    return request.app.state.ctx.ws


def ctx_of(request: Request):
    return request.app.state.ctx


def page(limit: int = Query(50, ge=1, le=PAGE_MAX, description="Items per page."),
         offset: int = Query(0, ge=0, le=10**9, description="Items to skip.")) -> tuple[int, int]:
    return limit, offset


def accepted(ws: Workspace, kind: str, params: dict[str, Any]) -> JobAccepted:
    job_id = jobs.submit(ws, kind, params)  # the same job already queued or running comes back as itself
    return JobAccepted(job_id=job_id, status=jobs.get(ws, job_id)["status"], kind=kind,
                       links={"self": f"/jobs/{job_id}", "events": f"/jobs/{job_id}/events",
                              "cancel": f"/jobs/{job_id}/cancel"})


def clean(d: dict) -> dict:
    """Without the None values (the library's defaults apply)."""
    return {k: v for k, v in d.items() if v is not None}
