"""Schedules (issue 20 §1): ``inhouse pipeline schedule``, the REST routes, and the server running due pipelines.

The live test is the issue's "done when": a real ``inhouse serve`` runs a
scheduled pipeline on an inbox by itself, a file at a time, the second run
classifying only the new rows, and goes on after a restart.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import invoke_cli
from serverkit import LABELS, Server, banking_slice, create_token

PIPELINE = """name: inbox-hourly
dataset: tickets
steps:
  - ingest: {path: "inbox/*.csv", text_col: text, id_col: ticket_id}
  - classify: {model: intents@production}
"""


def _cli_json(home: Path, *args) -> dict:
    r = invoke_cli("--home", home, *args, "--json")
    assert r.exit_code == 0, r.stderr + r.stdout
    return json.loads(r.stdout)


def _schedule(home: Path, folder: Path, every: str) -> dict:
    (folder / "inbox").mkdir(parents=True, exist_ok=True)
    (folder / "p.yaml").write_text(PIPELINE)
    return _cli_json(home, "pipeline", "schedule", folder / "p.yaml", "--every", every)


def test_schedule_cli_checks_stores_a_copy_and_pauses_resumes_removes(tmp_path):
    home = tmp_path / "ws"
    s = _schedule(home, tmp_path, "15m")  # an empty inbox is allowed: the schedule waits for files
    assert s["every"] == "15m" and s["kind"] == "file" and not s["paused"]
    assert 899 < s["next_at"] - s["created_at"] <= 900.5
    (tmp_path / "p.yaml").write_text("name: changed\n")  # a later edit changes nothing: the content was copied
    assert _cli_json(home, "pipeline", "schedules")["schedules"][0]["name"] == "inbox-hourly"
    cron = _cli_json(home, "pipeline", "schedule", _write(tmp_path), "--every",
                     "0 6 * * 1-5", "--name", "weekdays")
    assert time.gmtime(cron["next_at"]).tm_hour == 6 and time.gmtime(cron["next_at"]).tm_wday < 5
    for bad, says in (("0s", "minimum of 1 s"), ("1 2 3", "neither an interval"), ("61 * * * *", "not a valid cron"),
                      ("9" * 400 + "s", "maximum of 366 days"), ("0 0 31 2 *", "never matches a date")):
        r = invoke_cli("--home", home, "pipeline", "schedule", _write(tmp_path), "--every", bad)
        assert r.exit_code != 0 and says in r.stderr, (bad, r.stderr)
    r = invoke_cli("--home", home, "pipeline", "schedule", tmp_path / "nope.yaml", "--every", "1h")
    assert r.exit_code != 0 and "no such pipeline file" in r.stderr
    assert _cli_json(home, "pipeline", "schedules", "pause", str(s["id"]))["paused"] is True
    assert _cli_json(home, "pipeline", "schedules", "pause", str(s["id"]))["next_at"] is None
    resumed = _cli_json(home, "pipeline", "schedules", "resume", str(s["id"]))
    assert not resumed["paused"] and resumed["next_at"] > time.time() + 800
    table = invoke_cli("--home", home, "pipeline", "schedules").stdout
    assert "inbox-hourly" in table and "weekdays" in table and "0 6 * * 1-5" in table
    _cli_json(home, "pipeline", "schedules", "remove", str(s["id"]))
    assert [x["name"] for x in _cli_json(home, "pipeline", "schedules")["schedules"]] == ["weekdays"]
    r = invoke_cli("--home", home, "pipeline", "schedules", "remove", str(s["id"]))
    assert r.exit_code != 0 and f"schedule {s['id']} not found" in r.stderr


def _write(folder: Path) -> Path:
    p = folder / "p2.yaml"
    p.write_text(PIPELINE)
    return p


def test_due_schedules_run_once_after_downtime_and_one_at_a_time(tmp_path):
    """The catch-up rule and the one-run-at-a-time rule on the real job table (no dispatcher: nothing runs)."""
    from inhouse.server import jobs
    from inhouse.service import schedules
    from inhouse.workspace.store import Workspace

    home = tmp_path / "ws"
    s = _schedule(home, tmp_path, "1h")
    ws = Workspace(home)
    try:
        assert schedules.run_due(ws, jobs.submit, now=s["created_at"] + 60) == []  # not due yet
        later = s["created_at"] + 5 * 3600 + 5  # five slots missed while no server ran
        (job,) = schedules.run_due(ws, jobs.submit, now=later)
        assert jobs.get(ws, job)["kind"] == "pipeline-file" and jobs.get(ws, job)["params"] == {"schedule": s["id"]}
        got = schedules.get(ws, s["id"])
        assert got["next_at"] == pytest.approx(later + 3600) and got["last"]["status"] == "queued"
        assert schedules.run_due(ws, jobs.submit, now=later + 2 * 3600) == []  # its job is still queued: no second
        jobs.cancel(ws, job)
        (again,) = schedules.run_due(ws, jobs.submit, now=later + 2 * 3600)
        assert again != job and schedules.get(ws, s["id"])["next_at"] == pytest.approx(later + 3 * 3600)
        schedules.pause(ws, s["id"])
        jobs.cancel(ws, again)
        assert schedules.run_due(ws, jobs.submit, now=later + 10 * 3600) == []  # paused
        schedules.remove(ws, s["id"])  # a job that waited in the queue for a removed schedule runs nothing
        assert "removed" in schedules.run_scheduled(ws, again, s["id"])["skipped"]
    finally:
        ws.close()


def _runs(home: Path) -> list[dict]:
    return [r for r in _cli_json(home, "runs", "list", "--kind", "pipeline", "--limit", "200")["runs"]]


def _classified(home: Path) -> list[int]:
    """The rows each pipeline run classified (oldest first), for runs whose classify step did work."""
    out = []
    for r in reversed(_runs(home)):
        steps = {s["name"]: s for s in r["result"]["steps"]}
        if steps["classify"]["status"] == "done":
            out.append(steps["classify"]["rows"])
    return out


def _wait(cond, timeout: float, what: str, server: Server):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen in {timeout}s; server log:\n{server.read_log()[-3000:]}")


@pytest.mark.slow
def test_live_server_runs_a_scheduled_inbox_pipeline_by_itself(tmp_path, shared_data):
    home = tmp_path / "ws"
    train = banking_slice(shared_data, tmp_path, per_label_train=10, per_label_test=0)
    for args in (("ingest", train, "--dataset", "b5", "--label-col", "label", "--time-col", "created"),
                 ("train", "--dataset", "b5", "--name", "intents", "--method", "head", "--split", "all"),
                 ("models", "alias", "intents@1", "production")):
        r = invoke_cli("--home", home, *args)
        assert r.exit_code == 0, r.stderr
    bank = pd.read_csv(shared_data / "banking77" / "banking77.csv")
    unseen = bank[(bank["split"] == "test") & bank["label"].isin(LABELS)].head(50).reset_index(drop=True)
    unseen = unseen.assign(ticket_id=[f"T{i}" for i in range(len(unseen))])
    s = _schedule(home, tmp_path, "2s")
    editor, viewer = create_token(home, "ops", "editor"), create_token(home, "look", "viewer")

    server = Server(home)
    try:
        with server.client(viewer) as v, server.client(editor) as e:
            # the first runs find an empty inbox: done, nothing run, and said so
            _wait(lambda: (v.get("/schedules").json()["schedules"][0]["last"] or {}).get("skipped"), 40,
                  "a run on the empty inbox", server)
            unseen[["ticket_id", "text"]].head(30).to_csv(tmp_path / "inbox" / "day1.csv", index=False)
            assert _wait(lambda: _classified(home), 60, "a run on the first file", server) == [30]
            board = v.get("/pipelines").json()["runs"]  # on the dashboard like a manual run
            assert board and board[0]["dataset"] == "tickets", board
            assert v.post(f"/schedules/{s['id']}/pause").status_code == 403  # changes need an editor
            assert e.post(f"/schedules/{s['id']}/pause").json()["paused"] is True
            _wait(lambda: v.get(f"/schedules/{s['id']}").json()["last"]["status"] in ("done", "failed"), 60,
                  "the run under way to end", server)  # a paused schedule starts nothing; a run under way ends
    finally:
        server.stop()
    e_runs = len(_runs(home))
    unseen[["ticket_id", "text"]].iloc[30:].to_csv(tmp_path / "inbox" / "day2.csv", index=False)
    time.sleep(2.5)
    assert len(_runs(home)) == e_runs  # no server, no run

    server = Server(home)  # the schedule is in the database: a restarted server goes on with it
    try:
        with server.client(editor) as e:
            time.sleep(2.5)
            assert len(_runs(home)) == e_runs  # paused: nothing runs
            assert e.post(f"/schedules/{s['id']}/resume").json()["paused"] is False
            assert _wait(lambda: _classified(home) == [30, 20], 60, "a run on the second file", server)
            _wait(lambda: len(_runs(home)) >= e_runs + 2, 30, "a run with nothing new", server)
            listed = e.get("/schedules").json()["schedules"][0]
            assert listed["last"]["status"] in ("done", "queued", "running") and listed["every"] == "2s"
            assert e.delete(f"/schedules/{s['id']}").status_code == 200
            assert e.get("/schedules").json()["schedules"] == []
            body = {"every": "0 6 * * *", "pipeline": {"dataset": "b5", "model": "intents@production"}}
            with server.client(viewer) as v:
                assert v.post("/schedules", json=body).status_code == 403
            made = e.post("/schedules", json=body)
            assert made.status_code == 201 and made.json()["kind"] == "dashboard", made.text
            assert time.gmtime(made.json()["next_at"]).tm_hour == 6
            bad = e.post("/schedules", json={**body, "every": "0s"})
            assert bad.status_code == 400 and "minimum of 1 s" in bad.json()["message"], bad.text
            bad = e.post("/schedules", json={**body, "pipeline": {"dataset": "nope", "model": "intents@production"}})
            assert bad.status_code in (400, 404) and "nope" in bad.json()["message"], bad.text
            assert e.delete(f"/schedules/{made.json()['id']}").status_code == 200
            assert e.delete(f"/schedules/{made.json()['id']}").status_code == 404
    finally:
        server.stop()
    runs = _runs(home)
    assert _classified(home) == [30, 20]  # every later run skipped its steps: the inputs had not changed
    last = runs[0]["result"]["steps"]
    assert [(x["name"], x["status"]) for x in last] == [("ingest", "skipped"), ("classify", "skipped"),
                                                        ("candidates", "skipped")]
