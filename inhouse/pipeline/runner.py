"""``inhouse pipeline run FILE.yaml``: run the steps of a pipeline file, incrementally, and record each.

The model reference of ``classify`` is resolved to its sha256 once, before any
work, so moving an alias mid-run changes nothing in the run. Each step gets a
fingerprint of its options, the dataset's state (its finished ingests), the
pinned model and the step before it; a step whose fingerprint equals the one
of the last run of the same pipeline (and whose outputs are still there) is
skipped and says so. ``ingest`` reads only files not ingested before (by
sha256) and ``classify`` computes only documents without a prediction, so a
second run after new files land processes only the new rows; summaries,
sub-topics and trends are then recomputed over everything.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> r = run_pipeline(ws, "examples/contact-center-daily.yaml")
    >>> [(s["name"], s["status"]) for s in r["steps"]]
    [('ingest', 'done'), ('classify', 'done'), ('summarize', 'done'), ('discover', 'done'), ('trends', 'done'), ('report', 'done')]
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable

from .. import registry
from ..analysis.drift import run_drift
from ..errors import InhouseError, NotFound
from ..workspace.costs import CostMeter, record_cost
from ..workspace.files import json_dumps
from ..workspace.store import Workspace
from .spec import PipelineSpec, Step, load_spec, step_runner


def _dataset_state(ws: Workspace, dataset: str) -> list:
    try:
        info = ws.dataset(dataset)
    except NotFound:
        return []
    rows = ws.db.execute("SELECT id, source_sha256 FROM ingests WHERE dataset_id = ? AND status = 'done' ORDER BY id",
                         (info.id,)).fetchall()
    labels = ws.db.execute("SELECT count(*), max(id), count(undone_at) FROM labels WHERE dataset_id = ?",
                           (info.id,)).fetchone()
    return [[r[0], r[1]] for r in rows] + [list(labels)]


def _previous(ws: Workspace, spec: PipelineSpec) -> dict:
    for (result,) in ws.db.execute("SELECT result FROM runs WHERE kind = 'pipeline' AND status = 'done' "
                                   "ORDER BY id DESC LIMIT 50"):
        r = json.loads(result or "{}")
        if r.get("name") == spec.name and r.get("dataset") == spec.dataset and r.get("file") == str(spec.path):
            return r
    return {}


def _files_state(spec: PipelineSpec, step: Step) -> list:
    """What the ingest step would read: each matching file's name, size and modification time."""
    files = [p for p in sorted(spec.folder.glob(step.options["path"])) if p.is_file()]
    return [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def _fingerprint(*parts) -> str:
    return hashlib.sha256(json_dumps(parts).encode()).hexdigest()[:32]


class PipelineRun:
    """One run of a pipeline file: pinned versions, step state and results, the report's inputs."""

    def __init__(self, ws: Workspace, spec: PipelineSpec):
        self.ws, self.spec = ws, spec
        self.version: registry.Version | None = None
        self.results: dict[str, dict] = {}
        self.steps: list[dict] = []
        self.drift: dict | None = None  # the run's drift record, once classify has run (or been skipped)
        self.started = time.time()
        self.previous = _previous(ws, spec)
        self.prev_steps = {s["name"]: s for s in self.previous.get("steps", [])}
        out = spec.find("report")
        self.out_dir = spec.resolve(out.options["out"]).parent if out else spec.folder / f"{spec.name}-out"

    def col(self, value: str | None) -> str | None:
        """A step's ``by``/``within`` with ``prediction`` and ``review`` pinned to the run's version (not the
        dataset's newest prediction set, which another version may have written since)."""
        if self.version is not None and value in ("prediction", "review"):
            return f"{value}:{self.version.sha256}"
        return value

    def pin(self) -> None:
        """Resolve and verify the model of ``classify`` once, naming the line on failure."""
        step = self.spec.find("classify")
        if step is None:
            return
        try:
            self.version = registry.verify(registry.resolve(self.ws, step.options["model"]))
        except InhouseError as e:
            err = type(e).__new__(type(e))
            InhouseError.__init__(err, f"{step.where(self.spec)}: classify.model {step.options['model']!r}: "
                                       f"{e.message}", fix=e.fix)
            raise err from e
        if not self.version.manifest.get("labels"):
            raise NotFound(f"{step.where(self.spec)}: {self.version.ref} is not a classifier.")


def run_pipeline(ws: Workspace, path: str | Path, *, on_step: Callable[[dict], None] | None = None,
                 folder: str | Path | None = None) -> dict:
    """Run a pipeline file; returns run_id, steps (name, status, seconds, rows, outputs), report, cost and
    drift (the run's drift record when it classifies, see :mod:`inhouse.analysis.drift`; else None).

    ``folder``: where the file's relative paths resolve (default: its own folder).
    """
    from . import steps as step_fns

    spec = load_spec(path, folder=folder)
    run = PipelineRun(ws, spec)
    run.pin()
    run.out_dir.mkdir(parents=True, exist_ok=True)
    upstream = _fingerprint(spec.name, spec.dataset, run.version.sha256 if run.version else None)
    with CostMeter() as meter:
        for step in spec.steps:
            state = _dataset_state(ws, spec.dataset) if step.kind != "ingest" else _files_state(spec, step)
            fp = _fingerprint(upstream, step.kind, step.options, state)
            prev = run.prev_steps.get(step.kind)
            t0 = time.time()
            if (prev and prev.get("fingerprint") == fp and prev.get("result") is not None
                    and all(Path(o).exists() for o in prev.get("outputs", []))):
                entry = {**prev, "status": "skipped", "seconds": 0.0, "rows": 0,
                         "reason": "inputs unchanged since run " + str(run.previous.get("run_id"))}
                run.results[step.kind] = prev["result"]
            else:
                result, rows, outputs = step_runner(step.kind, step_fns)(run, step, meter)
                if step.kind == "ingest" and rows == 0:
                    status, reason = "skipped", "no new file"
                else:
                    status, reason = "done", None
                run.results[step.kind] = result
                entry = {"name": step.kind, "line": step.line, "status": status, "reason": reason,
                         "seconds": round(time.time() - t0, 3), "rows": rows, "outputs": [str(o) for o in outputs],
                         "model": run.version.ref if run.version and step.kind == "classify" else None,
                         "model_sha256": run.version.sha256 if run.version and step.kind == "classify" else None,
                         "inputs": {"dataset": spec.dataset, "options": step.options,
                                    "documents": _dataset_state(ws, spec.dataset)[-2:-1]},
                         "cost": result.get("cost") if isinstance(result, dict) else None, "result": result}
            entry["fingerprint"] = fp if step.kind == "ingest" else _fingerprint(
                upstream, step.kind, step.options, _dataset_state(ws, spec.dataset))
            upstream = entry["fingerprint"] if step.kind != "ingest" else _fingerprint(upstream, _dataset_state(ws, spec.dataset))
            run.steps.append(entry)
            if step.kind == "classify" and run.version is not None:
                run.drift = run_drift(ws, spec.name, spec.dataset, run.version, spec.drift)
            if on_step:
                on_step({k: v for k, v in entry.items() if k != "result"})
    cost = meter.result(ws)
    report = run.results.get("report", {}).get("path")
    summary = {"name": spec.name, "dataset": spec.dataset, "file": str(spec.path),
               "model": run.version.ref if run.version else None,
               "model_sha256": run.version.sha256 if run.version else None,
               "report": report, "out_dir": str(run.out_dir), "seconds": round(time.time() - run.started, 3),
               "steps": run.steps, "drift": run.drift}
    run_id = ws.record_run("pipeline", {"file": str(spec.path), "name": spec.name}, summary,
                           model=summary["model"], model_sha256=summary["model_sha256"], started_at=run.started)
    record_cost(ws, run_id, "pipeline", cost)
    if report and run.steps[-1]["name"] == "report" and run.steps[-1]["status"] == "done":
        from .report import add_run_footer

        add_run_footer(Path(report), run_id, cost)
    public_steps = [{k: v for k, v in s.items() if k not in ("result", "fingerprint")} for s in run.steps]
    return {"run_id": run_id, "name": spec.name, "dataset": spec.dataset, "model": summary["model"],
            "model_sha256": summary["model_sha256"], "steps": public_steps, "report": report,
            "out_dir": str(run.out_dir), "seconds": summary["seconds"], "cost": cost, "drift": run.drift}
