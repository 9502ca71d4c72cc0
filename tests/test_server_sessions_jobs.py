"""Jobs, sessions and the event loop (issue 16 §5), on a real server on 127.0.0.1.

Sign-in makes an expiring session that sign-out revokes (the cookie never holds the token); Secure
cookies behind a trusted TLS proxy only; a locked database never stalls the event loop; the same job
submitted twice is one job; several server processes run --job-workers jobs in total;
/classify/stream reads its body in time linear in its size.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
import sqlite3
import subprocess
import threading
import time

import httpx
import pytest

from inhouse.server import jobs
from inhouse.server.app import Settings
from inhouse.server.routes_classify import ndjson_lines
from inhouse.server.tokens import create_token, revoke_token
from serverkit import LiveApp


@pytest.fixture
def live(ws):
    tokens = {r: create_token(ws, f"{r}-user", r).token for r in ("viewer", "editor")}
    app = LiveApp(Settings(home=str(ws.home), jobs=False, trusted_proxies=["127.0.0.1"]), proxy_headers=False)
    try:
        yield app, tokens
    finally:
        app.stop()


def _cookie(response) -> str:
    raw = response.headers["set-cookie"]
    return raw.split(";", 1)[0].split("=", 1)[1]


def test_sign_in_makes_a_session_that_expires_and_sign_out_revokes(live, ws):
    app, tokens = live
    with app.client() as c:
        r = c.post("/session", json={"token": tokens["editor"]})
        assert r.status_code == 200
        secret = _cookie(r)
        assert tokens["editor"] not in r.headers["set-cookie"] and secret != tokens["editor"]
        assert "max-age=43200" in r.headers["set-cookie"].lower()
        assert c.get("/me").json() == {"name": "editor-user", "role": "editor"}
        out = c.delete("/session", headers={"X-Inhouse-Client": "t"})
        assert out.json()["session_ended"] is True
    with app.client() as stolen:  # the old cookie, replayed after sign-out: dead on the server
        r = stolen.get("/me", headers={"Cookie": f"inhouse_session={secret}"})
        assert r.status_code == 401 and "signed out" in r.json()["message"]
        r = stolen.post("/session", json={"token": tokens["viewer"]})
        secret = _cookie(r)
        ws.db.execute("UPDATE sessions SET expires_at = ?", (time.time() - 1,))  # twelve hours later
        time.sleep(2.1)  # past the verified-secret cache
        assert stolen.get("/me", headers={"Cookie": f"inhouse_session={secret}"}).status_code == 401
        r = stolen.post("/session", json={"token": tokens["viewer"]})
        secret = _cookie(r)
        revoke_token(ws, "viewer-user")  # revoking the token ends its sessions
        time.sleep(2.1)
        assert stolen.get("/me", headers={"Cookie": f"inhouse_session={secret}"}).status_code == 401


def test_cookies_are_secure_behind_a_trusted_tls_proxy_only(live, ws):
    app, tokens = live
    with app.client() as c:
        r = c.post("/session", json={"token": tokens["viewer"]}, headers={"X-Forwarded-Proto": "https"})
        assert "secure" in r.headers["set-cookie"].lower()
        r = c.post("/session", json={"token": tokens["viewer"]})
        assert "secure" not in r.headers["set-cookie"].lower()
    other = LiveApp(Settings(home=str(ws.home), jobs=False), proxy_headers=False)  # no --trusted-proxy
    try:
        with other.client() as c:
            r = c.post("/session", json={"token": tokens["viewer"]}, headers={"X-Forwarded-Proto": "https"})
            assert r.status_code == 200 and "secure" not in r.headers["set-cookie"].lower()  # not believed
    finally:
        other.stop()


def test_a_locked_database_never_stalls_the_event_loop(live, ws):
    """Another process holds the write lock: a new token's first request must not freeze every request."""
    app, tokens = live
    fresh = create_token(ws, "fresh", "viewer").token  # not in any cache: its first use notes last_used_at
    lock = sqlite3.connect(ws.db_path, timeout=1, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    answers: dict[str, float] = {}

    def call() -> None:
        t0 = time.monotonic()
        with app.client(fresh, timeout=90) as c:
            assert c.get("/me").status_code == 200
        answers["me"] = time.monotonic() - t0

    t = threading.Thread(target=call)
    try:
        t.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        assert httpx.get(app.url + "/health", timeout=5).status_code == 200
        answers["health"] = time.monotonic() - t0
        t.join(10)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
        t.join(90)
    assert answers["health"] < 2 and answers["me"] < 5, answers


def test_the_same_job_submitted_twice_is_one_job(live, ws):
    app, tokens = live
    csv = ws.home / "d.csv"
    csv.write_text("text,label\nwhere is my card,a\nmy card is lost,b\n")
    from inhouse.data.ingest import ingest

    ingest(ws, csv, "d", label_col="label")
    with app.client(tokens["editor"]) as c:
        body = {"dataset": "d", "name": "m", "method": "head", "max_steps": 1}
        first = c.post("/training", json=body).json()
        again = c.post("/training", json=body).json()  # a reload of the page that started it
        assert again["job_id"] == first["job_id"] and again["status"] in ("queued", "running")
        other = c.post("/training", json={**body, "seed": 1}).json()
        assert other["job_id"] != first["job_id"]
        assert c.post(f"/jobs/{first['job_id']}/cancel").status_code == 200
        third = c.post("/training", json=body).json()  # a cancelled job is not "the same running job"
        assert third["job_id"] not in (first["job_id"], other["job_id"])
    assert ws.db.execute("SELECT COUNT(*) FROM jobs WHERE kind = 'train'").fetchone()[0] == 3


def test_several_server_processes_run_job_workers_jobs_in_total(ws, monkeypatch):
    """`--workers 2 --job-workers 1`: two dispatchers on one workspace, one job running at a time."""
    spawned: list[subprocess.Popen] = []

    def spawn(self, job_id):  # a real process per job that runs until stopped (a long training, say)
        p = subprocess.Popen(["sleep", "30"])
        spawned.append(p)
        self.ws.db.execute("UPDATE jobs SET worker_pid = ? WHERE id = ?", (p.pid, job_id))
        return p

    monkeypatch.setattr(jobs.Dispatcher, "_spawn", spawn)
    for i in range(3):
        jobs.submit(ws, "embed", {"dataset": f"d{i}", "model": "minilm-l6"})
    a, b = jobs.Dispatcher(ws.home, 1, poll=0.05), jobs.Dispatcher(ws.home, 1, poll=0.05)
    a.start()
    b.start()
    try:
        time.sleep(1.5)
        running = ws.db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'running'").fetchone()[0]
        assert running == 1 and len(spawned) == 1 and [a.leading, b.leading].count(True) == 1
        leader, follower = (a, b) if a.leading else (b, a)
        leader.stop()  # its process ends: the other takes over, recovers the job and runs one at a time
        time.sleep(1.5)
        assert follower.leading
        running = ws.db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'running'").fetchone()[0]
        assert running == 1
    finally:
        a.stop()
        b.stop()
        for p in spawned:
            p.kill()
            p.wait()


def test_stream_lines_are_read_in_time_linear_in_the_body():
    """One 4 MB line arriving in 1 KB chunks: re-splitting the whole buffer per chunk took seconds."""
    line = b'"' + b"x" * (4 << 20) + b'"'
    body = line + b"\n" + b'"short"\n' + line

    async def chunks():
        for i in range(0, len(body), 1024):
            yield body[i:i + 1024]

    async def collect():
        return [x async for x in ndjson_lines(chunks())]

    t0 = time.monotonic()
    with ThreadPoolExecutor(1) as pool:  # its own thread: a session's browser may run a loop in this one
        lines = pool.submit(asyncio.run, collect()).result()
    took = time.monotonic() - t0
    assert lines == [line, b'"short"', line]
    assert took < 1.0, took
