"""Analyze, Access and Jobs: the pipeline routes (POST/GET /pipelines, a run's dashboard and files) and the screens.

One module-scoped server serves a workspace with the generated contact-center
corpus (``inhouse.demo.data``, with time and a planted trend) and a ``head``
model (intents@1, alias production) trained through the real CLI. The API
tests start a pipeline run through the REST API; the browser tests start one
from the Analyze screen, watch it, read the dashboard and download the report;
an admin creates and revokes a token and finds both in the audit log; a viewer
sees the screens without change controls.
"""

from __future__ import annotations

import time

import pytest

from serverkit import Server, create_token

ROWS = 900


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from conftest import invoke_cli
    from inhouse.demo.data import write_csv

    home = tmp_path_factory.mktemp("analyze-ws")
    csv = write_csv(home / "cc.csv", n=ROWS, seed=5)
    r = invoke_cli("--home", home, "ingest", csv, "--dataset", "cc", "--label-col", "intent", "--time-col", "timestamp",
                   "--id-col", "message_id", "--split-col", "split", "--json")
    assert r.exit_code == 0, r.stderr
    r = invoke_cli("--home", home, "train", "--dataset", "cc", "--name", "intents", "--method", "head", "--json")
    assert r.exit_code == 0, r.stderr
    assert invoke_cli("--home", home, "models", "alias", "intents@1", "production").exit_code == 0
    tokens = {role: create_token(home, f"{role}-user", role) for role in ("admin", "editor", "viewer")}
    server = Server(home)
    try:
        yield server, tokens, home
    finally:
        server.stop()


def wait_job(c, job_id: int, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/jobs/{job_id}").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish in {timeout}s: {job}")


@pytest.fixture(scope="module")
def api_run(served):
    """A pipeline run started through the API (week buckets, extractive summaries, sub-topics)."""
    server, tokens, _ = served
    with server.client(tokens["editor"]) as c:
        r = c.post("/pipelines", json={"dataset": "cc", "model": "intents@production", "every": "week",
                                       "format": "csv", "min_topic_size": 15})
        assert r.status_code == 202, r.text
        job = wait_job(c, r.json()["job_id"])
        assert job["status"] == "done", job
        assert job["kind"] == "pipeline"
        return job["result"]["run_id"]


# ------------------------------------------------------------------- API ----

def test_pipeline_dashboard_data(served, api_run):
    server, tokens, _ = served
    with server.client(tokens["viewer"]) as c:
        runs = c.get("/pipelines").json()["runs"]
        assert api_run in [r["id"] for r in runs]
        d = c.get(f"/pipelines/{api_run}").json()
    assert d["dataset"] == "cc" and d["model"] == "intents@1"
    v = d["volumes"]
    assert v["every"] == "week" and len(v["periods"]) >= 10
    assert sum(sum(s["counts"]) for s in v["series"]) == v["documents"] == ROWS
    assert {s["name"] for s in v["series"]} >= {"app_problem", "card_lost"}
    # the planted problem: a sub-topic inside app_problem emerges in the last weeks
    subs = [f for f in d["flagged"] if f["level"] == "subtopic" and f["status"] == "emerging"]
    assert subs and all(f["share_recent"] > f["share_baseline"] for f in subs), d["flagged"]
    assert any(f["parent"] == "app_problem" for f in subs)
    assert len(d["summaries"]) == len(v["series"]) and all(s["texts"] for s in d["summaries"])
    assert d["cost"]["documents"] == ROWS and d["cost"]["tokens"] > 0
    assert "openai-gpt-4o-mini" in d["cost"]["api"] and d["cost_assumptions"]["prices"]
    assert d["throughput"]["docs_per_second"] > 0
    names = {f["name"] for f in d["files"]}
    assert {"predictions.csv", "summaries.parquet", "trends.parquet", "report.html"} <= names
    assert d["report"] == "report.html"


def test_pipeline_files(served, api_run):
    server, tokens, home = served
    with server.client(tokens["viewer"]) as c:
        r = c.get(f"/pipelines/{api_run}/files/report.html")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "<section id='volumes'>" in r.text and f"run {api_run}" in r.text
        r = c.get(f"/pipelines/{api_run}/files/predictions.csv")
        assert r.status_code == 200 and r.text.count("\n") == ROWS + 1
        (home / "secret.txt").write_text("no")
        for bad in ("..%2F..%2Fsecret.txt", "%2E%2E", "pipeline.yaml", "report.html%00", "/etc/passwd",
                    "..%5C..%5Csecret.txt"):
            r = c.get(f"/pipelines/{api_run}/files/{bad}")
            assert r.status_code == 404, (bad, r.status_code, r.text[:200])
            assert "no" != r.text
        assert c.get("/pipelines/999999/files/report.html").status_code == 404
        r = c.get("/pipelines/999999")
        assert r.status_code == 404 and r.json()["error"] == "not_found" and r.json()["fix"]
        assert c.get("/pipelines/0").status_code == 422


def test_pipeline_refusals(served):
    server, tokens, _ = served
    body = {"dataset": "cc", "model": "intents@production"}
    with server.client(tokens["viewer"]) as c:
        r = c.post("/pipelines", json=body)
        assert r.status_code == 403, r.text
    with server.client(tokens["editor"]) as c:
        r = c.post("/pipelines", json={**body, "model": "nosuch@production"})
        assert r.status_code == 404 and "nosuch" in r.json()["message"], r.text
        r = c.post("/pipelines", json={**body, "model": "intents@7"})
        assert r.status_code == 404, r.text
        r = c.post("/pipelines", json={**body, "dataset": "nope"})
        assert r.status_code == 404 and r.json()["fix"], r.text
        r = c.post("/pipelines", json={**body, "every": "year"})
        assert r.status_code == 422
        r = c.post("/pipelines", json={**body, "path": "/etc/passwd"})
        assert r.status_code == 422  # no field takes a path
        r = c.post("/pipelines", json={**body, "summaries": "llm", "llm": "minilm-l6"})
        assert r.status_code in (404, 422) and r.json()["fix"], r.text
        assert not [j for j in c.get("/jobs", params={"kind": "pipeline", "status": "queued"}).json()["jobs"]]
