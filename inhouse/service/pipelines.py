"""Running a pipeline: a pipeline file (``inhouse pipeline run``) or the dashboard's checked choices (a job).

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> run_file(ws, "examples/contact-center-daily.yaml")["run_id"]
    7
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path

from ..analysis.drift import EXIT_CODE as DRIFT_EXIT_CODE  # noqa: F401 - the CLI's exit code for a flagged run
from ..workspace.store import Workspace


def run_file(ws: Workspace, path: str | Path, *, on_step: Callable[[dict], None] | None = None,
             folder: str | Path | None = None) -> dict:
    """Run a pipeline file; see :func:`inhouse.pipeline.runner.run_pipeline`."""
    from ..pipeline.runner import run_pipeline

    return run_pipeline(ws, path, on_step=on_step, folder=folder)


def step_kinds() -> list[dict]:
    """The steps a pipeline file may name (built-in and registered): kind, and each option's type and default."""
    from ..pipeline.spec import STEPS

    def type_name(t) -> str:
        return t.__name__ if isinstance(t, type) else "number"

    return [{"kind": kind, "options": {k: {"type": type_name(t), "required": d is ..., "default": None if d is ... else d}
                                       for k, (t, d) in schema.items()}} for kind, schema in STEPS.items()]


def check_dashboard_request(ws: Workspace, params: dict) -> dict:
    """The dashboard's choices (dataset, model, bucket, summaries ...), checked; what a pipeline job runs."""
    from ..pipeline.dashboard import check_request

    return check_request(ws, params)


def run_dashboard_pipeline(ws: Workspace, job_id: int, p: dict) -> dict:
    """POST /pipelines: the pipeline file of the checked choices, run like ``inhouse pipeline run``."""
    from ..pipeline.dashboard import price_all_documents, write_spec
    from ..progress import task

    req = check_dashboard_request(ws, p)
    path = write_spec(ws, f"job-{job_id}", req)
    n = 2 + (req["summaries"] != "none") + bool(req["subtopics"]) + 1
    with task("pipeline steps", total=n, unit="step") as t:
        r = run_file(ws, path, on_step=lambda s: t.advance(1, step=s["name"], status=s["status"]))
    try:
        price_all_documents(ws, r["run_id"])
    except Exception:  # the run is recorded and its report written; only the closed-API comparison is missing
        traceback.print_exc()
    return {k: r[k] for k in ("run_id", "name", "dataset", "model", "model_sha256", "steps", "seconds", "drift")}


def list_runs(ws: Workspace, *, dataset: str | None = None, limit: int = 50, offset: int = 0) -> list[dict]:
    """Pipeline runs, newest first (what the dashboard lists)."""
    from ..pipeline.dashboard import list_runs as runs

    return runs(ws, dataset=dataset, limit=limit, offset=offset)


def dashboard(ws: Workspace, run_id: int) -> dict:
    """A run's dashboard: volumes, flagged categories and sub-topics, summaries, cost, files."""
    from ..pipeline.dashboard import dashboard as board

    return board(ws, run_id)


def drift(ws: Workspace, run_id: int) -> dict:
    """A pipeline run's drift record and the drift of its pipeline's runs over time (for a chart)."""
    from ..pipeline.dashboard import drift as run_drift

    return run_drift(ws, run_id)


def run_output(ws: Workspace, run_id: int, name: str) -> Path:
    """The path of a file the run recorded as one of its outputs (only those)."""
    from ..pipeline.dashboard import run_file as output

    return output(ws, run_id, name)
