"""A job is never lost: SIGKILL the server mid-job, start it again, the job runs to the end."""

from __future__ import annotations

import time

import pytest

from serverkit import Server, banking_slice, create_token


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for whoever adopted it to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_a_job_running_when_the_server_is_killed_is_resumed_after_restart(tmp_path, shared_data, run_cli):
    home = tmp_path / "ws"
    home.mkdir()
    csv = banking_slice(shared_data, home)
    assert run_cli("--home", home, "ingest", csv, "--dataset", "b5", "--label-col", "label",
                   "--split-col", "split").exit_code == 0
    token = create_token(home, "ops", "editor")
    server = Server(home)
    try:
        with server.client(token) as c:
            job_id = c.post("/training", json={"dataset": "b5", "name": "intents", "method": "head"}).json()["job_id"]
            deadline = time.monotonic() + 120
            while c.get(f"/jobs/{job_id}").json()["status"] != "running":
                assert time.monotonic() < deadline
                time.sleep(0.1)
        server.kill()  # SIGKILL: no shutdown handler runs
        from inhouse.workspace.store import Workspace

        row = Workspace(home).db.execute("SELECT status, worker_pid FROM jobs WHERE id = ?", (job_id,)).fetchone()
        assert row["status"] == "running"  # as the killed server left it
        deadline = time.monotonic() + 10
        while _running(row["worker_pid"]):  # the orphaned worker notices its server is gone and exits
            assert time.monotonic() < deadline, "the worker outlived its server"
            time.sleep(0.2)
        server = Server(home)
        with server.client(token) as c:
            deadline = time.monotonic() + 180
            while (job := c.get(f"/jobs/{job_id}").json())["status"] not in ("done", "failed", "cancelled"):
                assert time.monotonic() < deadline, job
                time.sleep(0.3)
            assert job["status"] == "done", job
            assert job["attempts"] == 2 and "server stopped" in job["notes"][0]["note"]
            assert job["result"]["ref"] == "intents@1"
            assert [m["ref"] for m in c.get("/models", params={"name": "intents"}).json()["models"]] == ["intents@1"]
    finally:
        server.stop()
