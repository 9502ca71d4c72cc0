"""Bounded growth (issue 16 §7): 30 simulated daily pipeline runs plus 1,000 document views.

Each simulated day writes what a real UI pipeline run leaves behind: a
``runs/pipelines/job-N/`` folder with a predictions file (``--docs`` rows) and
a report, a job log, a ``jobs`` row, and a ``runs`` row with a full result
record (steps, trends, cost); and ~33 document views with ``?model=``, each
adding one probability-cache part as ``cached_proba`` does. Files are aged by
the simulated clock. Two workspaces, the same days:

- ``no gc``: nothing is ever removed (what every workspace did before);
- ``gc``: ``inhouse gc``'s :func:`collect` after each day with
  ``keep_pipeline_runs=7, keep_days=7``.

After each day: the workspace's disk use, the latency of listing pipeline runs
(``GET /pipelines``' :func:`list_runs`, a page of 10, median of 3) beside the old way
(read and parse every pipeline run, then page), and a cache read of one text.

    nice python bench/growth.py                 # writes bench/results/growth.json and BENCHMARKS.md
    nice python bench/growth.py --days 5 --no-write
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchutil import machine, write_section  # noqa: E402

from inhouse.classifiers.predict import PredictionCache  # noqa: E402
from inhouse.pipeline.dashboard import list_runs, summary  # noqa: E402
from inhouse.pipeline.gc import collect  # noqa: E402
from inhouse.workspace.retention import Retention, disk_usage  # noqa: E402
from inhouse.workspace.store import Workspace  # noqa: E402

DAY = 86400.0
SHA = "5" * 64
LABELS = [f"intent_{i}" for i in range(20)]
PAGE = 10  # runs per page of the list


def _age(path: Path, t: float) -> None:
    import os

    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (t, t))


def simulate_day(ws: Workspace, day: int, t: float, docs: int, views: int, rng) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    job = ws.db.execute("INSERT INTO jobs (kind, status, created_at, updated_at, params) VALUES ('pipeline', 'done', ?,"
                        " ?, ?)", (t, t, json.dumps({"dataset": "calls"}))).lastrowid
    folder = ws.dir("runs", "pipelines", f"job-{job}")
    labels = rng.choice(LABELS, docs)
    pq.write_table(pa.table({"doc_id": np.arange(docs), "label": labels, "score": rng.random(docs),
                             "text": [f"message {day}-{i} about {x}" for i, x in enumerate(labels)]}),
                   folder / "predictions.parquet")
    (folder / "report.html").write_text("<html>" + "x" * 200_000 + "</html>")
    log = ws.dir("runs", "jobs") / f"job-{job}.log"
    log.write_text("step done\n" * 2000)
    cats = [{"category": c, "status": "stable", "total": int((labels == c).sum()), "series": list(range(60))}
            for c in LABELS]
    result = {"name": "daily", "dataset": "calls", "seconds": 12.0, "out_dir": str(folder), "steps": [
        {"name": "classify", "result": {"rows": docs, "computed": docs // 30, "reused": docs - docs // 30},
         "outputs": [str(folder / "predictions.parquet")]},
        {"name": "trends", "result": {"categories": {"every": "day", "categories": cats},
                                      "subtopics": {"categories": cats * 3}}},
        {"name": "report", "outputs": [str(folder / "report.html")]}]}
    ws.db.execute("INSERT INTO runs (kind, started_at, finished_at, status, params, result, model) VALUES"
                  " ('pipeline', ?, ?, 'done', '{}', ?, 'intents@1')", (t, t, json.dumps(result)))
    _age(folder, t)
    _age(log, t)
    cache = PredictionCache(ws, SHA)
    for v in range(views):
        cache.put([f"text-{day}-{v}"], rng.random((1, len(LABELS))).astype(np.float32))


def old_list_runs(ws: Workspace, limit: int = 10) -> list[dict]:
    """How the runs were listed before: every pipeline run read and parsed, then the page cut."""
    rows = ws.db.execute("SELECT * FROM runs WHERE kind = 'pipeline' ORDER BY id DESC").fetchall()
    return [summary(ws, r) for r in rows][:limit]


def _ms(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


def run(days: int, docs: int, views: int) -> dict:
    rows = {"no gc": [], "gc": []}
    start = time.time() - days * DAY
    with tempfile.TemporaryDirectory(prefix="growth-") as tmp:
        for mode in rows:
            ws = Workspace.open(Path(tmp) / mode.replace(" ", "-"))
            ws.db.execute("INSERT INTO model_versions (name, version, sha256, path, manifest, created_at) VALUES "
                          "('intents', 1, ?, 'p', '{}', 0)", (SHA,))
            rng = np.random.default_rng(0)
            for day in range(1, days + 1):
                t = start + day * DAY
                simulate_day(ws, day, t, docs, views // days + (1 if day <= views % days else 0), rng)
                if mode == "gc":
                    collect(ws, retention=Retention(keep_pipeline_runs=7, keep_days=7), now=t + 3600)
                cache = PredictionCache(ws, SHA)
                use = disk_usage(ws)
                mb = lambda k: round(use["folders"].get(k, {"bytes": 0})["bytes"] / 2**20, 2)  # noqa: E731
                rows[mode].append({"day": day, "disk_mb": round(use["total_bytes"] / 2**20, 2), "runs_mb": mb("runs"),
                                   "db_mb": mb("inhouse.db"), "cache_mb": mb("predictions"),
                                   "list_runs_ms": _ms(lambda: list_runs(ws, limit=PAGE)),
                                   "old_list_runs_ms": _ms(lambda: old_list_runs(ws)),
                                   "cache_parts": len(cache.parts()),
                                   "cache_read_ms": _ms(lambda: cache.get([f"text-{day}-0"]))})
            ws.close()
    return rows


def markdown(res: dict, cmd: str) -> str:
    days = res["params"]["days"]
    show = sorted({1, 5, 10, 20, days} & set(range(1, days + 1)))
    lines = ["## Bounded growth: 30 daily pipeline runs and 1,000 document views (issue 16)", "",
             f"{res['date']} · {res['machine']} · `{cmd}` (simulated days: {res['params']['docs']:,} predictions "
             f"per run, a 200 KB report, a job log, the run's full record; {res['params']['views']:,} document "
             "views with `?model=` in all, one cache part each)", "",
             "| day | runs/ no gc / gc | inhouse.db no gc / gc | predictions/ (cache) gc | total no gc / gc "
             "| run list, a page of 10: no gc / gc | run list, old way (parse all), no gc | cache parts no gc / gc "
             "| cache read no gc / gc |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for d in show:
        a, b = res["no gc"][d - 1], res["gc"][d - 1]
        lines.append(f"| {d} | {a['runs_mb']} / {b['runs_mb']} MB | {a['db_mb']} / {b['db_mb']} MB | {b['cache_mb']} MB "
                     f"| {a['disk_mb']} / {b['disk_mb']} MB | {a['list_runs_ms']} / {b['list_runs_ms']} ms "
                     f"| {a['old_list_runs_ms']} ms | {a['cache_parts']} / {b['cache_parts']} "
                     f"| {a['cache_read_ms']} / {b['cache_read_ms']} ms |")
    lines += ["", "`runs/` (run folders, job logs) grows by one run a day without gc and stays at the 7 kept runs "
              "with `inhouse gc` after each day. What gc keeps by design still grows: `inhouse.db` (each run's "
              "record is history, kept) and the probability cache (one entry per distinct text viewed, merged "
              "into one part). The paged run list reads one page from an index on `runs(kind, id)`; the old way "
              "parses every run ever recorded. Cache parts are merged on write once a folder holds 64 (and by "
              "`inhouse gc`). Timings on a shared, loaded 2-core machine: read the trend, not single values."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--docs", type=int, default=2_000, help="Predictions per simulated run.")
    ap.add_argument("--views", type=int, default=1000, help="Document views with ?model= in all.")
    ap.add_argument("--no-write", action="store_true", help="Print only; write no result files.")
    a = ap.parse_args()
    t0 = time.time()
    res = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "machine": machine(),
           "params": {"days": a.days, "docs": a.docs, "views": a.views}, **run(a.days, a.docs, a.views)}
    res["seconds"] = round(time.time() - t0, 1)
    cmd = "nice python bench/growth.py" + ("" if sys.argv[1:] == [] else " " + shlex.join(sys.argv[1:]))
    md = markdown(res, cmd)
    print(md)
    print(f"({res['seconds']} s)")
    if not a.no_write:
        out = Path(__file__).resolve().parent / "results" / "growth.json"
        out.write_text(json.dumps(res, indent=1))
        write_section("growth", md)


if __name__ == "__main__":
    main()
