"""Pipeline runs: start one on a dataset (a job), list them, a run's dashboard data, and the files it wrote.

The client chooses a dataset, a model version and a time bucket; the server
builds the pipeline file itself (:mod:`inhouse.pipeline.dashboard`), so no
path from outside is ever read. A run's files are served by name, and only
names the run recorded as its outputs.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import Field

from ..service import pipelines as pipelines_service
from ..service import schedules as schedules_service
from . import routes_downloads as downloads
from .auth import role
from .common import Body, Id, JobAccepted, accepted, page, ws_of

router = APIRouter()
MEDIA = {".html": "text/html; charset=utf-8", ".csv": "text/csv; charset=utf-8", ".jsonl": "application/x-ndjson",
         ".parquet": "application/vnd.apache.parquet"}


class PipelineRequest(Body):
    dataset: str = Field(..., min_length=1, max_length=200, description="The dataset to analyze (ingested).")
    model: str = Field(..., min_length=1, max_length=300,
                       description="A trained classifier version or alias: NAME, NAME@N or NAME@ALIAS.")
    every: Literal["day", "week", "month"] = Field("week", description="The time bucket of the volumes and trends.")
    summaries: Literal["none", "extractive", "llm"] = Field(
        "extractive", description="One summary per category: representative documents (extractive) or written "
                                  "by a local LLM (llm).")
    llm: str | None = Field(None, min_length=1, max_length=200,
                            description="The local generative model for summaries 'llm' (default smollm2-135m).")
    subtopics: bool = Field(True, description="Discover sub-topics inside each category and flag their trends.")
    min_topic_size: int = Field(10, ge=2, le=100_000, description="Smallest sub-topic.")
    recent: int | None = Field(None, ge=1, le=1000, description="Periods in the recent window (default: a quarter).")
    recent_from: str | None = Field(None, max_length=10, description="The recent window starts on this date "
                                    "(YYYY-MM-DD); the baseline is everything before it.")
    until: str | None = Field(None, max_length=10, description="Leave out documents after this date (YYYY-MM-DD).")
    format: Literal["parquet", "csv"] = Field("parquet", description="The predictions file's format.")
    title: str | None = Field(None, min_length=1, max_length=200, description="The report's title.")


@router.post("/pipelines", tags=["pipelines"], summary="Run a pipeline on a dataset (a job)", status_code=202,
             **role("editor"))
def start_pipeline(request: Request, body: PipelineRequest) -> JobAccepted:
    ws = ws_of(request)
    params = pipelines_service.check_dashboard_request(ws, body.model_dump())
    return accepted(ws, "pipeline", params)


@router.get("/pipelines", tags=["pipelines"], summary="Pipeline runs, newest first", **role("viewer"))
def list_pipelines(request: Request, dataset: str | None = Query(None, max_length=200),
                   pg: tuple[int, int] = Depends(page)) -> dict:
    limit, offset = pg
    return {"runs": pipelines_service.list_runs(ws_of(request), dataset=dataset, limit=limit, offset=offset)}


@router.get("/pipelines/{run_id}", tags=["pipelines"],
            summary="A run's dashboard: volumes, flagged categories and sub-topics, summaries, cost, files",
            **role("viewer"))
def get_pipeline(request: Request, run_id: Id) -> dict:
    return pipelines_service.dashboard(ws_of(request), run_id)


@router.get("/pipelines/{run_id}/drift", tags=["pipelines"],
            summary="A run's drift (abstain rate, confidence, category mix against its evaluation and earlier runs) "
                    "and its pipeline's drift over runs", **role("viewer"))
def get_pipeline_drift(request: Request, run_id: Id) -> dict:
    return pipelines_service.drift(ws_of(request), run_id)


@router.get("/pipelines/{run_id}/files/{name}", tags=["pipelines"], summary="Download a file the run wrote",
            response_class=FileResponse, **role("viewer"),
            responses={200: {"content": {"application/octet-stream": {}, "text/html": {}, "text/csv": {},
                                         downloads.MEDIA["xlsx"]: {}}}})
def pipeline_file(request: Request, run_id: Id,
                  name: str = PathParam(..., min_length=1, max_length=200, description="A name from the run's files."),
                  format: downloads.Format | None = downloads.format_query()):
    """A table (predictions, summaries, sub-topics, trends) comes as stored, or as ``?format=csv|xlsx|parquet``."""
    path = pipelines_service.run_output(ws_of(request), run_id, name)
    return downloads.table_file(request, path, format, MEDIA.get(path.suffix.lower()))


# -------------------------------------------------------------- schedules ----
# A schedule made here runs the dashboard's pipeline (the server builds the file from checked choices, as
# POST /pipelines does: no path from outside is read). A pipeline *file* (an inbox on the server's disk) is
# scheduled by whoever has that disk: inhouse pipeline schedule FILE.yaml --every 1h. Both are listed here.

class ScheduleRequest(Body):
    every: str = Field(..., min_length=2, max_length=100, description=schedules_service.EVERY_HELP + ".")
    name: str | None = Field(None, min_length=1, max_length=200, description="The schedule's name.")
    pipeline: PipelineRequest = Field(..., description="The dashboard pipeline to run (as POST /pipelines).")


@router.get("/schedules", tags=["pipelines"], summary="Schedules: next run, last run and last result",
            **role("viewer"))
def list_schedules(request: Request) -> dict:
    return {"schedules": schedules_service.listing(ws_of(request))}


@router.post("/schedules", tags=["pipelines"], summary="Schedule the dashboard's pipeline on a dataset",
             status_code=201, **role("editor"))
def create_schedule(request: Request, body: ScheduleRequest) -> dict:
    return schedules_service.schedule_dashboard(ws_of(request), body.pipeline.model_dump(), body.every,
                                                name=body.name)


@router.get("/schedules/{schedule_id}", tags=["pipelines"], summary="One schedule", **role("viewer"))
def get_schedule(request: Request, schedule_id: Id) -> dict:
    return schedules_service.get(ws_of(request), schedule_id)


@router.post("/schedules/{schedule_id}/pause", tags=["pipelines"], summary="Stop starting runs", **role("editor"))
def pause_schedule(request: Request, schedule_id: Id) -> dict:
    return schedules_service.pause(ws_of(request), schedule_id)


@router.post("/schedules/{schedule_id}/resume", tags=["pipelines"],
             summary="Start runs again (the next one interval from now)", **role("editor"))
def resume_schedule(request: Request, schedule_id: Id) -> dict:
    return schedules_service.resume(ws_of(request), schedule_id)


@router.delete("/schedules/{schedule_id}", tags=["pipelines"], summary="Remove a schedule (its runs stay)",
               **role("editor"))
def remove_schedule(request: Request, schedule_id: Id) -> dict:
    return schedules_service.remove(ws_of(request), schedule_id)
