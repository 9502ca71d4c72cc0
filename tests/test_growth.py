"""Bounded growth (issue 16 §7): retention and ``inhouse gc``, ``inhouse status``, paged run lists, one model budget."""

from __future__ import annotations

import os
import time

import numpy as np


def _old(path, days: float) -> None:
    t = time.time() - days * 86400
    os.utime(path, (t, t))


def _grown_workspace(ws):
    """40 pipeline run folders 40 days old (job 2 still running), job files, an orphan set, tmp leftovers, cache parts."""
    from inhouse.classifiers.predict import PredictionCache

    pipes = ws.dir("runs", "pipelines")
    for n in range(1, 41):
        (pipes / f"job-{n}").mkdir()
        (pipes / f"job-{n}" / "predictions.parquet").write_bytes(b"x" * 1000)
        _old(pipes / f"job-{n}", 40)
    now = time.time()
    ws.db.execute("INSERT INTO jobs (id, kind, status, created_at, updated_at) VALUES (2, 'pipeline', 'running', ?, ?)",
                  (now, now))
    jobs = ws.dir("runs", "jobs")
    for name, days in (("job-5.log", 40), ("job-5-predictions.csv", 40), ("job-2.log", 40), ("job-9.log", 1)):
        (jobs / name).write_text("log")
        _old(jobs / name, days)
    ws.dir("prediction_sets", "999", "abc")  # a removed dataset's predictions
    for name, days in (("upload-old.csv", 3), ("upload-new.csv", 0)):
        (ws.home / "tmp" / name).write_text("raw upload")
        _old(ws.home / "tmp" / name, days)
    sha = "c" * 64
    ws.db.execute("INSERT INTO model_versions (name, version, sha256, path, manifest, created_at) VALUES"
                  " ('m', 1, ?, 'p', '{}', 0)", (sha,))
    cache = PredictionCache(ws, sha)
    for i in range(5):
        cache.put([f"h{i}"], np.array([[i, 1.0]], np.float32))
    return cache


def test_gc_removes_what_retention_says_and_keeps_running_jobs(ws, run_cli):
    cache = _grown_workspace(ws)
    before = run_cli("status", "--json").json
    dry = run_cli("gc", "--dry-run", "--json").json
    assert len(dry["pipeline_runs"]) == 9 and "runs/pipelines/job-2" not in {p["path"] for p in dry["pipeline_runs"]}
    assert {p["path"] for p in dry["job_files"]} == {"runs/jobs/job-5.log", "runs/jobs/job-5-predictions.csv"}
    assert [p["path"] for p in dry["orphans"]] == ["prediction_sets/999"]
    assert [p["path"] for p in dry["tmp"]] == ["tmp/upload-old.csv"]
    assert dry["compacted"] == [{"folder": cache.dir.relative_to(ws.home).as_posix(), "parts": 5, "rows": None}]
    assert run_cli("status", "--json").json["folders"]["runs"] == before["folders"]["runs"]  # dry: nothing gone
    r = run_cli("gc", "--keep-pipeline-runs", "5", "--save")
    assert r.exit_code == 0 and r.stdout.startswith("removed 38 items"), r.stdout
    left = sorted(p.name for p in (ws.home / "runs" / "pipelines").iterdir())
    assert len(left) == 6 and "job-2" in left and "job-40" in left and "job-1" not in left
    assert not (ws.home / "prediction_sets" / "999").exists() and (ws.home / "tmp" / "upload-new.csv").exists()
    assert len(cache.parts()) == 1 and len(cache.get([f"h{i}" for i in range(5)])) == 5
    after = run_cli("status", "--json").json
    assert after["folders"]["runs"]["bytes"] < before["folders"]["runs"]["bytes"]
    assert after["retention"]["keep_pipeline_runs"] == 5  # --save kept it
    assert "prediction_sets" in run_cli("status").stdout


def test_pipeline_run_list_is_paged_in_sql(ws):
    from inhouse.pipeline.dashboard import list_runs

    for i in range(30):
        ws.record_run("pipeline", {}, {"name": "daily", "dataset": "a" if i % 2 else "b", "steps": []})
    ws.db.execute("UPDATE runs SET result = 'not json' WHERE id = 1")  # an old run a full scan would parse
    page = list_runs(ws, dataset="a", limit=5)
    assert [r["id"] for r in page] == [30, 28, 26, 24, 22]
    assert [r["id"] for r in list_runs(ws, limit=3, offset=3)] == [27, 26, 25]
    plan = " ".join(str(tuple(r)) for r in ws.db.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM runs WHERE kind = 'pipeline' ORDER BY id DESC LIMIT 5"))
    assert "runs_kind" in plan


def test_model_caches_share_one_memory_budget():
    from inhouse.cache import process_budget
    from inhouse.classifiers import backbone, load
    from inhouse.models import encoders, generators

    caches = [encoders._loaded, load._loaded, backbone._bases, generators._generators]
    assert all(c.budget is process_budget() for c in caches)
    assert set(caches) <= set(process_budget().caches())
