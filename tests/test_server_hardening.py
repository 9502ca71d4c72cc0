"""Hardening found by a security probe (issue 16 §6), on a real server on 127.0.0.1.

Alias removal is a compare-and-set inside its transaction; a binary codec is a 400, an oversized chunked
upload a 413; viewers see no absolute server paths; every API answer says nosniff, no-store and a deny-all
CSP; raw uploads are owner-only and a crash's leftovers go at the next start; losing concurrent ingests
leave no quarantine file; the workspace is owner-only; `inhouse serve` speaks TLS.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import ssl
import stat
import subprocess
import sys
import threading
import time

import httpx
import pytest

from inhouse import registry
from inhouse.errors import Conflict
from inhouse.server.app import Settings
from inhouse.server.routes_data import clean_stale_uploads, upload_file
from inhouse.server.tokens import create_token
from inhouse.workspace.store import Workspace
from serverkit import REPO, LiveApp, free_port
from test_security import head_version

CSV = "text,label\nwhere is my card,card\nmy card was stolen,lost\n"


@pytest.fixture
def live(ws):
    tokens = {r: create_token(ws, f"{r}-user", r).token for r in ("viewer", "editor", "admin")}
    app = LiveApp(Settings(home=str(ws.home), jobs=False, max_upload_bytes=1 << 20))
    try:
        yield app, tokens
    finally:
        app.stop()


def test_removing_an_alias_checks_expected_current_in_its_transaction(live, ws):
    app, tokens = live
    one, two = head_version(ws, "m", seed=0), head_version(ws, "m", seed=1)
    registry.set_alias(ws, one.ref, "production")
    with pytest.raises(Conflict, match="not the expected m@2"):
        registry.remove_alias(ws, "m", "production", expected=2)
    assert registry.aliases(ws, "m") == {"production": 1}
    both = 0
    with app.client(tokens["editor"]) as c:
        for _ in range(30):  # a move and a removal that both saw version 1: never both succeed
            registry.set_alias(ws, one.ref, "production")
            codes: dict[str, int] = {}
            go = threading.Barrier(2)

            def move():
                go.wait()
                codes["move"] = c.put("/models/m/aliases/production",
                                      json={"version": 2, "expected_current": 1}).status_code

            def remove():
                go.wait()
                codes["rm"] = c.delete("/models/m/aliases/production", params={"expected_current": 1}).status_code

            threads = [threading.Thread(target=move), threading.Thread(target=remove)]
            [t.start() for t in threads]
            [t.join() for t in threads]
            assert sorted(codes.values()) in ([200, 409], [200, 404]), codes
            both += codes == {"move": 200, "rm": 200}
            now = registry.aliases(ws, "m").get("production")
            assert now == (2 if codes["move"] == 200 else None)
    assert both == 0


def test_a_binary_codec_as_encoding_is_a_clear_400(live):
    app, tokens = live
    with app.client(tokens["editor"]) as c:
        r = c.post("/datasets", data={"dataset": "d", "encoding": "zlib_codec"}, files={"file": ("a.csv", CSV)})
    assert r.status_code == 400, r.text
    assert "zlib_codec" in r.json()["message"] and "utf-8" in r.json()["fix"]


def test_an_oversized_chunked_upload_is_413_not_400(live):
    app, tokens = live
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"dataset\"\r\n\r\nbig\r\n--{boundary}\r\n"
            "Content-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\ntext\n").encode()

    def body():  # no Content-Length: chunked, 3 MB against a 1 MB limit
        yield head
        for _ in range(300):
            yield b"where is my card, it is late\n" * 350

    with app.client(tokens["editor"]) as c:
        r = c.post("/datasets", content=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413, r.text
    assert "1,048,576" in r.json()["message"] and "--max-upload-mb" in r.json()["fix"]
    assert list((app.ctx.ws.home / "tmp").glob("upload-*")) == []


def test_viewers_see_no_absolute_server_paths(live, ws):
    app, tokens = live
    head_version(ws, "m")
    home = str(ws.home)
    with app.client(tokens["editor"]) as c:
        r = c.post("/datasets", data={"dataset": "d"}, files={"file": ("a.csv", CSV + "x\n" + "," * 3 + "\n")})
        assert r.status_code == 200, r.text
    for role in ("viewer", "editor", "admin"):
        with app.client(tokens[role]) as c:
            for path in ("/datasets/d", "/versions/m@1", "/models"):
                r = c.get(path)
                assert r.status_code == 200, (path, r.text)
                absolute = [s for s in _strings(r.json()) if s.startswith("/")]
                assert bool(absolute) is (role == "admin"), (role, path, absolute)
            if role != "admin":
                ingest = c.get("/datasets/d").json()["ingests"][0]
                assert ingest["file"].startswith("tmp/upload-") and home not in ingest["file"]


def _strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def test_every_api_answer_has_csp_nosniff_and_no_store(live):
    app, tokens = live
    with app.client(tokens["admin"]) as c:
        answers = [c.get("/health"), c.get("/datasets"), c.post("/tokens", json={"name": "ci", "role": "viewer"}),
                   c.get("/no/such/route"), httpx.get(app.url + "/me"), c.post("/classify", json={})]
    assert answers[2].status_code == 201 and answers[2].json()["token"].startswith("ih_")  # shows a new token
    for r in answers:
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert r.headers["cache-control"] == "no-store", r.url
        assert "default-src 'none'" in r.headers["content-security-policy"], r.url
        assert len(r.headers.get_list("content-security-policy")) == 1


def test_uploads_are_owner_only_and_a_crashs_leftovers_go_at_the_next_start_and_at_gc(ws, run_cli):
    with upload_file(ws, ".csv") as (tmp, out):
        assert stat.S_IMODE(tmp.stat().st_mode) == 0o600
        assert clean_stale_uploads(ws) == []  # held by a live request: kept
    assert not tmp.exists()
    crashed = ws.home / "tmp" / "upload-0123abcd.csv"  # what a kill -9 during an upload leaves
    crashed.write_text(CSV)
    app = LiveApp(Settings(home=str(ws.home), jobs=False))
    try:
        assert not crashed.exists()
    finally:
        app.stop()
    crashed.write_text(CSV)  # and `inhouse models gc` takes one too, between restarts
    r = run_cli("models", "gc", "--json")
    assert r.exit_code == 0 and r.json["uploads"] == 1 and not crashed.exists()


def test_a_new_workspace_is_owner_only(tmp_path):
    ws = Workspace.open(tmp_path / "fresh")
    assert stat.S_IMODE(ws.home.stat().st_mode) == 0o700
    assert stat.S_IMODE(ws.db_path.stat().st_mode) == 0o600
    for sub in ("datasets", "tmp", "quarantine", "models"):
        assert stat.S_IMODE((ws.home / sub).stat().st_mode) == 0o700, sub


def _ingest_in_process(home: str, csv: str) -> None:
    from inhouse.data.ingest import ingest

    ingest(Workspace.open(home), csv, "d", id_col="id")


def test_losing_concurrent_ingests_leave_no_quarantine_file(ws):
    csv = ws.home / "f.csv"
    csv.write_text("id,text\n" + "".join(f"{i},text number {i} about cards\n" for i in range(3000)))
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_ingest_in_process, args=(str(ws.home), str(csv))) for _ in range(4)]
    [p.start() for p in procs]
    [p.join(120) for p in procs]
    done = ws.db.execute("SELECT COUNT(*) FROM ingests WHERE status = 'done'").fetchone()[0]
    folder = ws.home / "quarantine" / "d"
    assert done == 1
    assert not folder.exists() or list(folder.iterdir()) == []


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a test certificate")
def test_serve_speaks_tls_with_a_certificate(ws, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "inhouse", "--home", str(ws.home), "serve", "--port", str(port),
                             "--log-level", "warning", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline, r = time.monotonic() + 90, None
        while time.monotonic() < deadline and r is None:
            try:
                r = httpx.get(f"https://127.0.0.1:{port}/health", verify=ssl.create_default_context(cafile=str(cert)),
                              timeout=2)
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stdout.read().decode()
                time.sleep(0.3)
        assert r is not None and r.status_code == 200 and r.json()["status"] == "ok"
        with pytest.raises(httpx.HTTPError):  # plain HTTP on the TLS port gets nothing
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).raise_for_status()
    finally:
        proc.terminate()
        proc.wait(30)
