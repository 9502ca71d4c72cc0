"""Schedules: pipelines the running server starts by itself, every interval or on a cron expression.

``inhouse pipeline schedule FILE.yaml --every 1h`` stores a schedule in the
workspace database; the ``inhouse serve`` process that holds the job
dispatcher's lock submits a ``pipeline-file`` job when one is due (see
:func:`run_due`), and the job runs the pipeline like ``inhouse pipeline run``,
so its run is recorded (``inhouse runs list --kind pipeline``) and steps whose
inputs did not change are skipped.

The rules:

- **What runs.** The pipeline file's *content* is copied into the schedule
  when it is scheduled: a later edit, move or removal of the file changes
  nothing (schedule it again to change it). Its relative paths (the inbox,
  the report) still resolve in the file's original folder, so new files that
  land in the inbox are what the next run reads. A copy rather than a path:
  what runs unattended is exactly what a person scheduled and saw validated.
- **When.** ``--every`` takes ``Ns``, ``Nm``, ``Nh`` or ``Nd`` (at least 1 s)
  or a 5-field cron expression, read in UTC (with croniter).
- **One at a time.** A due schedule whose previous job is still queued or
  running is not started again; it runs once that job ends.
- **Catch-up after downtime.** However many slots were missed while no
  server ran, a schedule runs *once* when the server is back, and its next
  run is then one interval later (cron: the next matching time after now).
- **Restarts.** Everything is in the database (next run, last job), so a
  restarted server goes on where the last one stopped.

    Illustrative (needs a workspace; not run as a doctest):
    >>> s = schedule_file(ws, "examples/contact-center-daily.yaml", "1h")
    >>> s["every"], s["paused"]
    ('1h', False)
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import InputError, MissingDependency, NotFound, UsageError
from ..workspace.files import atomic_write_text, json_dumps
from ..workspace.store import Workspace, current_user

JOB_KIND = "pipeline-file"
MIN_INTERVAL_S = 1.0
MAX_INTERVAL_S = 366 * 86400.0
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
EVERY_HELP = "Ns, Nm, Nh or Nd (e.g. 15m, 1h, 1d; at least 1s), or a 5-field cron expression in UTC ('0 6 * * 1-5')"


def interval_seconds(every: str) -> float | None:
    """``15m`` -> 900.0; a cron expression -> None (checked); anything else is a :class:`UsageError`."""
    text = every.strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", text)
    if m:
        seconds = float(m.group(1)) * UNITS[m.group(2)]
        if seconds < MIN_INTERVAL_S:
            raise UsageError(f"--every {every!r} is shorter than the minimum of {MIN_INTERVAL_S:g} s.",
                             fix=f"Give {EVERY_HELP}.")
        if seconds > MAX_INTERVAL_S:
            raise UsageError(f"--every {every!r} is longer than the maximum of 366 days.", fix=f"Give {EVERY_HELP}.")
        return seconds
    if len(text.split()) == 5:
        _croniter(text)
        return None
    raise UsageError(f"--every {every!r} is neither an interval nor a 5-field cron expression.", fix=f"Give {EVERY_HELP}.")


def _croniter(expr: str, start: float | None = None):
    try:
        from croniter import croniter
    except ImportError as e:  # pragma: no cover - croniter comes with the default install
        raise MissingDependency("croniter", "pipeline", "A cron expression in --every") from e
    try:
        return croniter(expr, start if start is not None else time.time())
    except (ValueError, KeyError) as e:
        raise UsageError(f"--every {expr!r}: not a valid cron expression ({e}).", fix=f"Give {EVERY_HELP}.") from e


def next_time(every: str, after: float) -> float:
    """The first run time strictly after ``after`` (epoch seconds, UTC)."""
    seconds = interval_seconds(every)
    if seconds is not None:
        return after + seconds
    import datetime as dt

    it = _croniter(every, dt.datetime.fromtimestamp(after, dt.timezone.utc))
    try:
        return float(it.get_next(float))
    except ValueError as e:  # croniter's CroniterBadDateError: a day that never comes (31 February)
        raise UsageError(f"--every {every!r}: this cron expression never matches a date ({e}).",
                         fix=f"Give {EVERY_HELP}.") from e


# ------------------------------------------------------------------ create ----

def schedule_file(ws: Workspace, path: str | Path, every: str, *, name: str | None = None) -> dict:
    """Schedule a pipeline file: its content is copied now and checked (an empty inbox is allowed)."""
    from ..pipeline.spec import load_spec

    path = Path(path)
    spec = load_spec(path, require_files=False)  # every mistake named by its line, before it is stored
    return _insert(ws, name or spec.name, "file", str(path.resolve()), str(spec.folder), spec.text, every)


def schedule_dashboard(ws: Workspace, params: dict, every: str, *, name: str | None = None) -> dict:
    """Schedule the dashboard's pipeline (POST /pipelines' choices, checked): the server builds the file."""
    from .pipelines import check_dashboard_request

    req = check_dashboard_request(ws, params)
    return _insert(ws, name or f"{req['dataset']}-dashboard", "dashboard", None, None, json_dumps(req), every)


def _insert(ws: Workspace, name: str, kind: str, source, folder, spec: str, every: str) -> dict:
    every = " ".join(every.split())
    now = time.time()
    nxt = next_time(every, now)
    with ws.tx() as db:
        cur = db.execute("INSERT INTO schedules (name, kind, source, folder, spec, every, next_at, created_at, user) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (name, kind, source, folder, spec, every, nxt, now,
                                                               current_user()))
        sid = int(cur.lastrowid)
        ws.audit("schedule.create", f"schedule:{sid}", name=name, every=every, source=source)
    return get(ws, sid)


# ------------------------------------------------------------- read/change ----

def _row(ws: Workspace, schedule_id: int):
    r = ws.db.execute("SELECT * FROM schedules WHERE id = ?", (schedule_id,)).fetchone()
    if r is None:
        raise NotFound(f"schedule {schedule_id} not found.", fix="See the schedules with: inhouse pipeline schedules")
    return r


def _last_result(ws: Workspace, job_id: int | None) -> dict | None:
    if job_id is None:
        return None
    j = ws.db.execute("SELECT status, result, error, finished_at FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if j is None:
        return {"job_id": job_id, "status": "gone"}
    result = json.loads(j["result"]) if j["result"] else {}
    error = json.loads(j["error"]) if j["error"] and j["error"].startswith("{") else j["error"]
    return {"job_id": job_id, "status": j["status"], "run_id": result.get("run_id"), "skipped": result.get("skipped"),
            "drift": (result.get("drift") or {}).get("status"), "finished_at": j["finished_at"], "error": error.get("message") if isinstance(error, dict) else error}


def _decode(ws: Workspace, r) -> dict:
    return {"id": r["id"], "name": r["name"], "kind": r["kind"], "source": r["source"], "folder": r["folder"],
            "every": r["every"], "paused": bool(r["paused"]), "next_at": None if r["paused"] else r["next_at"],
            "last_at": r["last_at"], "last": _last_result(ws, r["last_job_id"]), "created_at": r["created_at"],
            "user": r["user"]}


def get(ws: Workspace, schedule_id: int) -> dict:
    return _decode(ws, _row(ws, schedule_id))


def listing(ws: Workspace) -> list[dict]:
    return [_decode(ws, r) for r in ws.db.execute("SELECT * FROM schedules ORDER BY id")]


def pause(ws: Workspace, schedule_id: int) -> dict:
    """Stop starting runs (a run under way goes on)."""
    _row(ws, schedule_id)
    with ws.tx() as db:
        db.execute("UPDATE schedules SET paused = 1 WHERE id = ?", (schedule_id,))
        ws.audit("schedule.pause", f"schedule:{schedule_id}")
    return get(ws, schedule_id)


def resume(ws: Workspace, schedule_id: int) -> dict:
    """Start runs again; the next one is one interval from now (paused slots are not caught up)."""
    r = _row(ws, schedule_id)
    with ws.tx() as db:
        db.execute("UPDATE schedules SET paused = 0, next_at = ? WHERE id = ? AND paused = 1",
                   (next_time(r["every"], time.time()), schedule_id))
        ws.audit("schedule.resume", f"schedule:{schedule_id}")
    return get(ws, schedule_id)


def remove(ws: Workspace, schedule_id: int) -> dict:
    """Remove a schedule (its past runs stay; a run under way goes on, a queued one ends without running)."""
    out = get(ws, schedule_id)
    with ws.tx() as db:
        db.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,))
        ws.audit("schedule.remove", f"schedule:{schedule_id}", name=out["name"])
    return out


# ----------------------------------------------------------------- running ----

def run_due(ws: Workspace, submit: Callable[[Workspace, str, dict], int], now: float | None = None) -> list[int]:
    """Submit a job for each schedule that is due and has no job queued or running; returns the job ids.

    Called by the server process that holds the job dispatcher's lock. Missed slots are not run one by
    one: a due schedule runs once and its next run is one interval after ``now``.
    """
    now = time.time() if now is None else now
    started = []
    for r in ws.db.execute("SELECT * FROM schedules WHERE paused = 0 AND next_at <= ? ORDER BY next_at",
                           (now,)).fetchall():
        last = _last_result(ws, r["last_job_id"])
        if last and last["status"] in ("queued", "running"):
            continue  # one run at a time: it runs once the previous one has ended
        job_id = submit(ws, JOB_KIND, {"schedule": r["id"]})
        with ws.tx() as db:
            db.execute("UPDATE schedules SET last_job_id = ?, last_at = ?, next_at = ? WHERE id = ?",
                       (job_id, now, next_time(r["every"], now), r["id"]))
        started.append(job_id)
    return started


def run_scheduled(ws: Workspace, job_id: int, schedule_id: int) -> dict:
    """The ``pipeline-file`` job: the schedule's pipeline, run like ``inhouse pipeline run``."""
    from ..pipeline.spec import ingest_matches, load_spec
    from ..progress import task
    from .pipelines import run_dashboard_pipeline, run_file

    try:
        r = _row(ws, schedule_id)
    except NotFound:  # removed while this job waited in the queue
        return {"schedule": schedule_id, "run_id": None, "skipped": "the schedule was removed before this run started"}
    if r["kind"] == "dashboard":
        return {**run_dashboard_pipeline(ws, job_id, json.loads(r["spec"])), "schedule": schedule_id}
    folder = Path(r["folder"])
    if not folder.is_dir():
        raise InputError(f"schedule {schedule_id} ({r['name']}): its folder {folder} is gone; the pipeline's "
                         "relative paths resolve there.",
                         fix=f"Restore the folder, or remove the schedule: inhouse pipeline remove {schedule_id}")
    path = ws.dir("schedules") / f"schedule-{schedule_id}.yaml"
    if not path.is_file() or path.read_text(encoding="utf-8") != r["spec"]:
        atomic_write_text(path, r["spec"])
    spec = load_spec(path, folder=folder, require_files=False)
    ingest = spec.find("ingest")
    if ingest is not None and not ingest_matches(spec, ingest):
        return {"schedule": schedule_id, "run_id": None,
                "skipped": f"ingest.path {ingest.options['path']!r} matches no file under {folder} yet"}
    with task("pipeline steps", total=len(spec.steps), unit="step") as t:
        out = run_file(ws, path, folder=folder, on_step=lambda s: t.advance(1, step=s["name"], status=s["status"]))
    return {"schedule": schedule_id, **{k: out[k] for k in ("run_id", "name", "dataset", "model", "steps", "seconds",
                                                            "drift")}}
