"""Pipeline runs without a pipeline file: a spec built from a few choices, and a run's dashboard data.

:func:`check_request` checks the choices (dataset, model version, time bucket,
summaries) before any work; :func:`write_spec` writes the pipeline file of
those choices into the workspace (``runs/pipelines/job-N/pipeline.yaml``:
classify, summarize, discover, trends, report), so the run is an ordinary
``inhouse pipeline run`` with its outputs beside the file. :func:`dashboard`
reads a recorded run back as what a dashboard shows (volumes per period,
flagged categories and sub-topics, summaries, cost against closed APIs,
throughput); :func:`run_files` lists the files the run wrote, by name.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> req = check_request(ws, {"dataset": "tickets", "model": "intents@production", "every": "week"})
    >>> path = write_spec(ws, "job-7", req)
    >>> run_pipeline(ws, path)["run_id"]
    12
    >>> sorted(run_files(ws, 12))
    ['predictions.parquet', 'report.html', 'subtopics.parquet', 'summaries.parquet', 'trends.parquet']
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .. import registry
from ..errors import NotFound, UsageError
from ..workspace.costs import CHAT_OUTPUT_TOKENS_PER_DOC, api_equivalent, prices, record_cost, run_cost
from ..workspace.store import Workspace

EVERY = ("day", "week", "month")
SUMMARIES = ("none", "extractive", "llm")
FORMATS = ("parquet", "csv")
FOLDER = ("runs", "pipelines")


def check_request(ws: Workspace, req: dict) -> dict:
    """The request with defaults filled in; raises naming what is wrong (no dataset, no such model...)."""
    from ..models.catalog import DEFAULT_GENERATOR

    r = {"every": "week", "summaries": "extractive", "llm": None, "subtopics": True, "min_topic_size": 10,
         "recent": None, "recent_from": None, "until": None, "format": "parquet", "title": None, **{k: v for k, v in req.items() if v is not None}}
    info = ws.dataset(r["dataset"])  # NotFound naming the datasets there are
    if r["every"] not in EVERY:
        raise UsageError(f"every must be one of {list(EVERY)}, found {r['every']!r}.")
    if r["summaries"] not in SUMMARIES:
        raise UsageError(f"summaries must be one of {list(SUMMARIES)}, found {r['summaries']!r}.")
    for k in ("recent_from", "until"):
        if r[k] is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(r[k])):
            raise UsageError(f"{k} must be a date YYYY-MM-DD, found {r[k]!r}.")
    if r["recent_from"] and r["recent"]:
        raise UsageError("recent and recent_from both choose the recent window; give one of them.")
    if r["format"] not in FORMATS:
        raise UsageError(f"format must be one of {list(FORMATS)}, found {r['format']!r}.")
    if not (info.columns or {}).get("time"):
        raise UsageError(f"dataset {r['dataset']!r} has no time column, so there are no volumes over time.",
                         fix="Ingest it again with its time column mapped (inhouse ingest FILE --time-col COLUMN).")
    version = registry.resolve(ws, r["model"])  # NotFound naming the models there are
    if not (version.manifest or {}).get("labels"):
        raise UsageError(f"{version.ref} is not a classifier (it has no labels).",
                         fix="Choose a trained classifier version, e.g. NAME@production.")
    if r["summaries"] == "llm":
        from ..topics.discover import check_generator

        r["llm"] = r["llm"] or DEFAULT_GENERATOR
        check_generator(ws, r["llm"])
    elif r["llm"]:
        raise UsageError("llm is only used with summaries 'llm'.", fix="Set summaries to 'llm', or leave llm out.")
    return r


def _q(v) -> str:
    return json.dumps(v)  # a JSON string is a valid YAML flow scalar: names cannot become YAML syntax


def write_spec(ws: Workspace, key: str, req: dict) -> Path:
    """Write the pipeline file of a checked request into ``runs/pipelines/KEY/``; returns its path."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", key):
        raise UsageError(f"a pipeline folder name must be letters, digits, - or _, found {key!r}.")
    folder = ws.dir(*FOLDER) / key
    folder.mkdir(parents=True, exist_ok=True)
    steps = [f"  - classify: {{model: {_q(req['model'])}, output: {_q('predictions.' + req['format'])}}}"]
    if req["summaries"] != "none":
        llm = f", llm: {_q(req['llm'])}" if req["summaries"] == "llm" else ""
        steps.append(f"  - summarize: {{by: prediction, n_docs: 3{llm}}}")
    if req["subtopics"]:
        steps.append(f"  - discover: {{within: prediction, min_topic_size: {int(req['min_topic_size'])}, seed: 0}}")
    recent = f", recent: {int(req['recent'])}" if req.get("recent") else ""
    recent += "".join(f", {k}: {_q(req[k])}" for k in ("recent_from", "until") if req.get(k))
    steps.append(f"  - trends: {{by: prediction, every: {req['every']}{recent}}}")
    title = f", title: {_q(req['title'])}" if req.get("title") else ""
    steps.append(f"  - report: {{out: report.html{title}}}")
    text = (f"# written by the web UI / POST /pipelines; run it again with: inhouse pipeline run {folder}/pipeline.yaml\n"
            f"name: {_q('analyze-' + req['dataset'])}\ndataset: {_q(req['dataset'])}\nsteps:\n" + "\n".join(steps) + "\n")
    path = folder / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ runs ----

def _row(ws: Workspace, run_id: int):
    r = ws.db.execute("SELECT * FROM runs WHERE id = ? AND kind = 'pipeline'", (run_id,)).fetchone()
    if r is None:
        raise NotFound(f"pipeline run {run_id} not found.", fix="See the pipeline runs with: GET /pipelines")
    return r


def _steps(r) -> dict[str, dict]:
    return {s["name"]: s for s in json.loads(r["result"] or "{}").get("steps", [])}


def run_files(ws: Workspace, run_id: int) -> dict[str, Path]:
    """The files a pipeline run wrote (its steps' outputs and report), by file name, that still exist."""
    out: dict[str, Path] = {}
    for s in _steps(_row(ws, run_id)).values():
        for o in s.get("outputs") or []:
            p = Path(o)
            if p.is_file():
                out.setdefault(p.name, p)
    return out


def run_file(ws: Workspace, run_id: int, name: str) -> Path:
    """One file of a run, by its name in the run's record; any other name is refused."""
    files = run_files(ws, run_id)
    if name not in files:
        raise NotFound(f"pipeline run {run_id} wrote no file named {name[:100]!r}; its files are {sorted(files)}.",
                       fix=f"Use one of the names listed by GET /pipelines/{run_id}.")
    return files[name]


def summary(ws: Workspace, r) -> dict:
    res = json.loads(r["result"] or "{}")
    steps = {s["name"]: s for s in res.get("steps", [])}
    trends = (steps.get("trends") or {}).get("result") or {}
    flagged = [c for level in ("categories", "subtopics") for c in (trends.get(level) or {}).get("categories", [])
               if c["status"] != "stable"]
    return {"id": r["id"], "name": res.get("name"), "dataset": res.get("dataset"), "model": r["model"],
            "user": r["user"], "status": r["status"], "started_at": r["started_at"], "finished_at": r["finished_at"],
            "seconds": res.get("seconds"), "documents": (steps.get("classify") or {}).get("result", {}).get("rows"),
            "every": (trends.get("categories") or {}).get("every"),
            "emerging": sum(c["status"] == "emerging" for c in flagged),
            "declining": sum(c["status"] == "declining" for c in flagged),
            "drift_status": (res.get("drift") or {}).get("status")}


def list_runs(ws: Workspace, *, dataset: str | None = None, limit: int = 50, offset: int = 0) -> list[dict]:
    """Pipeline runs, newest first (from the web UI, the API or ``inhouse pipeline run``).

    Only the page asked for is read and parsed (the ``runs_kind`` index, the
    dataset matched in SQL), so listing costs the same after thousands of runs.
    """
    cond, params = ("AND json_extract(result, '$.dataset') = ?", [dataset]) if dataset is not None else ("", [])
    rows = ws.db.execute(f"SELECT * FROM runs WHERE kind = 'pipeline' {cond} ORDER BY id DESC LIMIT ? OFFSET ?",
                         [*params, int(limit), int(offset)]).fetchall()
    return [summary(ws, r) for r in rows]


def price_all_documents(ws: Workspace, run_id: int) -> dict | None:
    """Add to a run's cost what classifying ALL its documents would cost on the closed APIs.

    A run classifies only documents without a prediction of its pinned model, so
    its own cost covers the new ones; the dashboard compares like with like: every
    document the run analyzed, its tokens counted with the model's own tokenizer.
    """
    from .costing import count_tokens
    from ..workspace.documents import read_documents

    r = _row(ws, run_id)
    c = (_steps(r).get("classify") or {}).get("result") or {}
    cost = run_cost(ws, run_id)
    if cost is None or not c.get("rows"):
        return cost
    if c.get("computed") == c.get("rows") and cost.get("documents") == c["rows"]:
        full = {"documents": cost["documents"], "tokens": cost["tokens"], "api": cost.get("api") or {}}
    else:
        base = ((registry.resolve(ws, r["model"]).manifest or {}).get("base") or {}).get("name")
        texts = read_documents(ws, json.loads(r["result"] or "{}")["dataset"], columns=["doc_id", "text"])["text"].tolist()
        tokens = count_tokens(ws, base, texts) if base else sum(len(t.split()) for t in texts)
        full = {"documents": len(texts), "tokens": tokens, "api": api_equivalent(ws, len(texts), tokens)}
    cost["all_documents"] = {**full, "reused": c.get("reused"), "computed": c.get("computed")}
    record_cost(ws, run_id, "pipeline", cost)
    return cost


def _flags(cats: list[dict], level: str) -> list[dict]:
    keep = ("category", "name", "parent", "status", "share_baseline", "share_recent", "share_ratio", "q_value",
            "total", "recent_count", "baseline_count")
    return [{**{k: c.get(k) for k in keep}, "level": level} for c in cats if c["status"] != "stable"]


def _candidates(c: dict | None) -> dict | None:
    """The run's candidate new categories (what the model turned away or was unsure of), for the dashboard;
    None: not run."""
    if not c or c.get("enabled") is False or "candidates" not in c:
        return None
    keep = ("candidate", "name", "name_source", "keywords", "size", "turned_away", "answered_as", "share",
            "share_of_all", "parent", "representative_ids", "representative_texts", "growth")
    return {**{k: c.get(k) for k in ("model", "turned_away_labels", "documents", "turned_away", "unsure", "review", "discovery_run",
                                     "id_column", "every", "periods", "recent_periods", "growth_note")},
            "candidates": [{k: x.get(k) for k in keep} for x in c["candidates"]]}


def drift(ws: Workspace, run_id: int) -> dict:
    """A run's drift record (None when it did not classify) and its pipeline's drift history, oldest first,
    up to this run (the chart over runs)."""
    from ..analysis.drift import history

    r = _row(ws, run_id)
    res = json.loads(r["result"] or "{}")
    runs = [h for h in history(ws, res.get("name"), res.get("dataset"), limit=200) if h["run_id"] <= run_id][-30:]
    return {"run_id": run_id, "drift": res.get("drift"), "history": runs}


def dashboard(ws: Workspace, run_id: int) -> dict:
    """What the Analyze dashboard shows of one pipeline run."""
    r = _row(ws, run_id)
    steps = _steps(r)
    res = lambda name: (steps.get(name) or {}).get("result") or {}  # noqa: E731
    t = res("trends")
    cats = t.get("categories") or {}
    subs = t.get("subtopics") or {}
    volumes = None
    if cats:
        volumes = {"every": cats["every"], "periods": cats["periods"], "recent": cats.get("recent", []),
                   "recent_periods": cats["recent_periods"], "recent_from": cats.get("recent_from"),
                   "until": cats.get("until"), "totals": cats["totals"], "documents": cats["documents"],
                   "alpha": cats["alpha"], "min_ratio": cats["min_ratio"], "without_time": cats.get("without_time"),
                   "series": [{"category": c["category"], "name": c["name"], "status": c["status"],
                               "counts": c["counts"], "total": c["total"]}
                              for c in sorted(cats["categories"], key=lambda c: -c["total"])]}
    flagged = _flags(cats.get("categories", []), "category") + _flags(subs.get("categories", []), "subtopic")
    flagged.sort(key=lambda c: (c["level"] != "category", c["status"] != "emerging", c["q_value"]))
    summaries = [{k: s.get(k) for k in ("category", "name", "size", "share", "keywords", "kind", "summary", "texts",
                                         "ids", "model", "id_column", "notes")}
                 for s in res("summarize").get("summaries", [])]
    c = res("classify")
    cost = run_cost(ws, run_id)
    files = run_files(ws, run_id)
    return {
        **summary(ws, r),
        "steps": [{k: s.get(k) for k in ("name", "status", "reason", "seconds", "rows")} for s in steps.values()],
        "model_sha256": r["model_sha256"],
        "volumes": volumes,
        "flagged": flagged,
        "summaries": summaries,
        "subtopics": [{k: x.get(k) for k in ("parent", "topic", "name", "size", "share", "keywords")}
                      for x in res("discover").get("topics", [])],
        "candidates": _candidates(res("candidates")),
        "throughput": {"documents": c.get("rows"), "computed": c.get("computed"), "reused": c.get("reused"),
                       "seconds": c.get("seconds"), "docs_per_second": c.get("docs_per_second"),
                       "backend": c.get("backend"), "label_counts": c.get("label_counts")},
        "cost": cost,
        "cost_assumptions": {
            "local": "Run on this machine: no per-token charge; the cost is the CPU time and memory shown.",
            "api": "Every document this run analyzed, its input tokens counted with the model's own tokenizer, at each "
                   "closed API's list price (documents whose predictions this run reused from an earlier run count too); "
                   f"chat models also answer {CHAT_OUTPUT_TOKENS_PER_DOC} output tokens per document (a label).",
            "prices": [p.to_dict() for p in prices(ws)],
            "change": "Set your own prices with: inhouse prices set MODEL --input X --output Y --read-on YYYY-MM-DD"},
        "files": [{"name": n, "bytes": p.stat().st_size, "kind": p.suffix.lstrip(".").lower(),
                   "href": f"/pipelines/{run_id}/files/{n}"} for n, p in sorted(files.items())],
        "drift": json.loads(r["result"] or "{}").get("drift"),
        "drift_history": drift(ws, run_id)["history"],
        "report": next((Path(o).name for o in (steps.get("report") or {}).get("outputs") or []
                        if Path(o).name in files), None),
    }
