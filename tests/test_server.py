"""The HTTP server on real code paths: a real ``inhouse serve`` on loopback, real models, real files.

One module-scoped server serves a workspace with a 5-intent banking77 slice
and a `head` model (intents@1, alias production); tokens of each role come
from the real ``inhouse tokens create``.
"""

from __future__ import annotations

import json
import threading

import pytest

from serverkit import Server, banking_slice, create_token

WRITE_METHODS = {"post", "put", "patch", "delete"}
OPEN = {"/health", "/session"}  # liveness, and sign-in/out (which checks the token it is given)
# POST routes a viewer may call: they compute an answer and change nothing
INFERENCE = {("post", "/classify"), ("post", "/classify/batch"), ("post", "/classify/stream"),
             ("post", "/v1/embeddings"), ("post", "/v1/chat/completions"), ("post", "/v1/completions"),
             ("post", "/v1/classifications"),
             ("post", "/diff/jobs")}  # a diff reads two versions' answers; as a job since it takes tens of seconds


@pytest.fixture(scope="module")
def served(tmp_path_factory, shared_data):
    from conftest import invoke_cli

    home = tmp_path_factory.mktemp("server-ws")
    csv = banking_slice(shared_data, home)
    r = invoke_cli("--home", home, "ingest", csv, "--dataset", "b5", "--label-col", "label", "--split-col", "split",
                   "--time-col", "created", "--json")
    assert r.exit_code == 0, r.stderr
    r = invoke_cli("--home", home, "train", "--dataset", "b5", "--name", "intents", "--method", "head", "--json")
    assert r.exit_code == 0, r.stderr
    assert invoke_cli("--home", home, "models", "alias", "intents@1", "production").exit_code == 0
    tokens = {role: create_token(home, f"{role}-user", role) for role in ("admin", "editor", "viewer")}
    server = Server(home)
    try:
        yield server, tokens, home
    finally:
        server.stop()


def _fill(path: str) -> str:
    return (path.replace("{name}", "b5").replace("{ref}", "intents@1").replace("{alias}", "staging")
            .replace("{job_id}", "1").replace("{run_id}", "1").replace("{batch}", "lb-x"))


def _operations(spec: dict):
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            yield method, path, op


def test_health_is_open_and_every_other_route_needs_a_token(served):
    server, tokens, _ = served
    with server.client() as c:
        assert c.get("/health").json()["status"] == "ok"
        spec = c.get("/openapi.json").json()
        for method, path, op in _operations(spec):
            if path in OPEN:
                continue
            r = c.request(method.upper(), _fill(path), json={})
            assert r.status_code == 401, (method, path, r.status_code)
            if path.startswith("/v1/"):  # OpenAI's error object, which its clients read
                assert r.json()["error"]["code"] == "invalid_api_key" and "Bearer" in r.json()["error"]["message"]
            else:
                assert r.json()["error"] == "unauthorized" and r.json()["fix"]
        assert c.get("/no/such/route").status_code == 401
    with server.client("ih_not-a-real-token") as c:
        r = c.get("/datasets")
        assert r.status_code == 401 and "unknown or revoked" in r.json()["message"]


def test_viewer_gets_403_on_every_write_route_and_editor_on_admin_routes(served):
    server, tokens, _ = served
    with server.client(tokens["viewer"]) as viewer, server.client(tokens["editor"]) as editor:
        spec = viewer.get("/openapi.json").json()
        writes = 0
        for method, path, op in _operations(spec):
            need = op.get("x-inhouse-role")
            if path in OPEN:
                continue
            assert need in ("viewer", "editor", "admin"), f"{method} {path} declares no role"
            if method in WRITE_METHODS and (method, path) not in INFERENCE:
                assert need in ("editor", "admin"), f"{method} {path} changes state but a viewer may call it"
            if need in ("editor", "admin"):
                writes += 1
                r = viewer.request(method.upper(), _fill(path), json={})
                assert r.status_code == 403, (method, path, r.status_code, r.text)
                assert r.json()["error"] == "forbidden" and "viewer" in r.json()["message"]
            if need == "admin":
                r = editor.request(method.upper(), _fill(path), json={})
                assert r.status_code == 403, (method, path, r.status_code)
        assert writes >= 15
        assert viewer.get("/datasets").status_code == 200
        assert viewer.get("/me").json() == {"name": "viewer-user", "role": "viewer"}


def test_upload_ingests_with_column_mapping_and_reports_the_quarantine(served, tmp_path):
    server, tokens, home = served
    csv = tmp_path / "tickets.csv"
    csv.write_text("body,intent,when\nmy card has not arrived,card_arrival,2026-02-01\n,card_arrival,2026-02-02\n"
                   "what is the exchange rate,exchange_rate,2026-02-03\n", encoding="utf-8")
    with server.client(tokens["editor"]) as c:
        with open(csv, "rb") as f:
            r = c.post("/datasets", files={"file": ("../../../etc/evil tickets.csv", f, "text/csv")},
                       data={"dataset": "tickets", "text_col": "body", "label_col": "intent", "time_col": "when"})
        assert r.status_code == 200, r.text
        d = r.json()
        assert (d["read"], d["stored"], d["quarantined"]) == (3, 2, 1)
        assert d["source"] == "evil tickets.csv" and d["quarantine_sample"][0]["reason"]
        assert not list((home / "tmp").glob("upload-*"))  # the temporary copy is gone
        with open(csv, "rb") as f:  # the same bytes again: nothing added
            again = c.post("/datasets", files={"file": ("t.csv", f)}, data={"dataset": "tickets", "text_col": "body"})
        assert again.json()["skipped"] is True
        r = c.post("/datasets", files={"file": ("tickets.exe", b"x")}, data={"dataset": "tickets"})
        assert r.status_code == 422 and "expected one of" in r.json()["message"]
        r = c.post("/datasets", files={"file": ("t.csv", b"text\nhello\n")}, data={"dataset": "../escape"})
        assert r.status_code == 422
        with open(csv, "rb") as f:
            r = c.post("/datasets", files={"file": ("t.csv", f)}, data={"dataset": "tickets2", "text_col": "nope"})
        assert r.status_code == 422 and r.json()["error"] == "column_not_found"
        names = [x["name"] for x in c.get("/datasets").json()["datasets"]]
        assert "tickets" in names and "b5" in names
        show = c.get("/datasets/tickets").json()
        assert show["rows"] == 2 and show["quarantined"] == 1
        q = c.get("/datasets/tickets/quarantine").json()
        assert q["total"] == 1 and q["rows"][0]["reason"]


@pytest.mark.slow
def test_documents_search_filter_and_paginate(served):
    from conftest import invoke_cli

    server, tokens, home = served
    with server.client(tokens["viewer"]) as c:
        all_docs = c.get("/datasets/b5/documents", params={"limit": 1000}).json()
        assert all_docs["total"] == 100
        page = c.get("/datasets/b5/documents", params={"limit": 7, "offset": 7}).json()
        assert [d["doc_id"] for d in page["documents"]] == [d["doc_id"] for d in all_docs["documents"][7:14]]
        card = c.get("/datasets/b5/documents", params={"q": "CARD", "limit": 1000}).json()
        assert card["total"] > 0 and all("card" in d["text"].lower() for d in card["documents"])
        lab = c.get("/datasets/b5/documents", params={"label": "pin_blocked", "split": "test"}).json()
        assert lab["total"] == 8 and {d["label"] for d in lab["documents"]} == {"pin_blocked"}
        times = c.get("/datasets/b5/documents", params={"time_from": "2026-01-01T10:00:00Z",
                                                       "time_to": "2026-01-01T20:00:00Z"}).json()
        assert times["total"] == 10
        q = {"model": "intents@production", "predicted": "exchange_rate", "split": "test"}
        first = c.get("/datasets/b5/documents", params=q)  # no stored predictions: 409, never computed here
        assert first.status_code == 409 and first.json()["error"] == "not_classified", first.text
        assert "POST /classify/jobs" in first.json()["fix"]
        r = invoke_cli("--home", home, "classify", "intents@production", "--dataset", "b5", "--split", "test")
        assert r.exit_code == 0, r.stderr
        pred = c.get("/datasets/b5/documents", params=q).json()
        assert pred["predictions"]["model"] == "intents@1" and pred["total"] > 0
        assert {d["predicted"] for d in pred["documents"]} == {"exchange_rate"}
        r = c.get("/datasets/b5/documents", params={"time_from": "yesterday-ish"})
        assert r.status_code == 422 and "ISO 8601" in r.json()["fix"]
        assert c.get("/datasets/nope/documents").status_code == 404


def test_labels_on_documents_can_be_undone_and_the_audit_log_names_the_token(served):
    server, tokens, _ = served
    with server.client(tokens["editor"]) as c, server.client(tokens["admin"]) as admin:
        docs = c.get("/datasets/b5/documents", params={"unlabelled": True}).json()
        ids = [d["doc_id"] for d in c.get("/datasets/b5/documents", params={"limit": 3}).json()["documents"]]
        refused = c.post("/datasets/b5/labels", json={"label": "pin_blocked", "doc_ids": ids})
        assert refused.status_code == 409 and "from ingest" in refused.json()["message"]  # labels from the file
        b = c.post("/datasets/b5/labels", json={"label": "pin_blocked", "doc_ids": ids, "overwrite": True}).json()
        assert b["count"] == 3 and b["user"] == "editor-user"
        after = c.get("/datasets/b5/documents", params={"label": "pin_blocked", "limit": 1000}).json()
        assert set(ids) <= {d["doc_id"] for d in after["documents"]}
        assert c.post(f"/labels/{b['batch']}/undo").json()["undone_at"]
        assert c.post(f"/labels/{b['batch']}/undo").status_code == 409
        r = c.post("/datasets/b5/labels", json={"label": "x", "topic": 1, "doc_ids": [1]})
        assert r.status_code == 422 and "exactly one" in r.json()["message"]
        events = admin.get("/audit", params={"user": "editor-user"}).json()["events"]
        assert {"label", "label.undo"} <= {e["action"] for e in events}
        assert docs["total"] == 0


def test_classify_one_batch_and_stream_with_truncation(served):
    server, tokens, _ = served
    with server.client(tokens["viewer"]) as c:
        one = c.post("/classify", json={"model": "intents@production", "text": "I still have not received my card"})
        assert one.status_code == 200, one.text
        d = one.json()
        assert d["model"] == "intents@1" and len(d["sha256"]) == 64 and d["label"] == "card_arrival"
        assert d["truncated"] is False and len(d["top"]) == 3
        batch = c.post("/classify/batch", json={"model": "intents", "texts": ["my card was stolen", "what rate do you use"],
                                                "top_k": 1}).json()
        assert [x["top"][0]["label"] for x in batch["results"]] == ["lost_or_stolen_card", "exchange_rate"]
        # the answer follows the version's abstention rule, as classify jobs do ("other" where it abstains)
        assert all(x["label"] == ("other" if x["abstained"] else x["top"][0]["label"]) for x in batch["results"])
        long = c.post("/classify", json={"model": "intents", "text": "where is my card " * 400}).json()
        assert long["truncated"] is True and long["label"]
        r = c.post("/classify/batch", json={"model": "intents", "texts": ["a"] * 257})
        assert r.status_code == 422 and "at most 256" in r.json()["message"]
        lines = b'"my card was stolen"\n{"id": "x7", "text": "exchange rate please"}\nnot json\n\n{"nope": 1}\n'
        r = c.post("/classify/stream", params={"model": "intents@production", "chunk": 1}, content=lines,
                   headers={"Content-Type": "application/x-ndjson"})
        assert r.status_code == 200 and r.headers["x-inhouse-model"] == "intents@1"
        out = [json.loads(x) for x in r.text.splitlines()]
        assert [o["line"] for o in out] == [1, 2, 3, 5]
        assert out[0]["label"] == "lost_or_stolen_card" and out[1]["id"] == "x7"
        assert "not JSON" in out[2]["error"] and "expected a string" in out[3]["error"]


def test_bad_input_gets_a_4xx_with_one_error_shape(served):
    server, tokens, _ = served
    with server.client(tokens["editor"]) as c:
        cases = [
            c.post("/classify", content=b'{"model": "intents", "text": ', headers={"Content-Type": "application/json"}),
            c.post("/classify", json={"model": "intents", "text": 42}),
            c.post("/classify", json={"model": "no-such-model", "text": "hi"}),
            c.post("/classify", json={"text": "hi"}),
            c.post("/classify", json={"model": "intents", "text": "hi", "surprise": 1}),
            c.post("/classify", content=b"x" * (9 << 20), headers={"Content-Type": "application/json"}),
            c.get("/no/such/route"),
            c.delete("/health"),
            c.get("/jobs/not-a-number"),
            c.post("/training", json={"dataset": "b5", "name": "bad/name", "method": "head"}),
            c.post("/training", json={"dataset": "b5", "name": "m", "method": "magic"}),
        ]
        expected = [422, 422, 404, 422, 422, 413, 404, 405, 422, 400, 422]
        for r, want in zip(cases, expected):
            assert r.status_code == want, (r.request.url, r.status_code, r.text)
            body = r.json()
            assert set(body) == {"error", "message", "fix"} and body["message"], body
            assert "Traceback" not in r.text
        assert "not valid JSON" in cases[0].json()["message"]
        assert "text" in cases[1].json()["message"] and "model" in cases[3].json()["message"]


@pytest.mark.slow
def test_two_alias_moves_with_the_same_expected_current_one_wins_one_gets_409(served):
    server, tokens, _ = served
    with server.client(tokens["editor"]) as c:
        r = c.post("/training", json={"dataset": "b5", "name": "intents", "method": "head", "seed": 1})
        assert r.status_code == 202
        job = _wait_job(c, r.json()["job_id"])
        assert job["status"] == "done", job
        assert job["result"]["ref"] == "intents@2" and job["user"] == "editor-user"
        assert job["result"]["cost"]["cpu_seconds"] > 0
        assert c.put("/models/intents/aliases/staging", json={"version": 1}).status_code == 422  # expected_current required
        assert c.put("/models/intents/aliases/staging", json={"version": 1, "expected_current": None}).status_code == 200
        results = []
        barrier = threading.Barrier(2)

        def move(version: int) -> None:
            with server.client(tokens["editor"]) as own:
                barrier.wait()
                results.append(own.put("/models/intents/aliases/staging", json={"version": version, "expected_current": 1}))

        threads = [threading.Thread(target=move, args=(v,)) for v in (2, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        codes = sorted(r.status_code for r in results)
        assert codes == [200, 409], [r.text for r in results]
        loser = next(r for r in results if r.status_code == 409).json()
        assert loser["error"] == "conflict" and "intents@2" in loser["message"] and loser["fix"]
        assert c.get("/models/intents/aliases").json()["aliases"]["staging"] == 2
        assert c.get("/v1/models").status_code == 200


def _wait_job(c, job_id: int, timeout: float = 240) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/jobs/{job_id}").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish: {job}")


@pytest.mark.slow
def test_openai_client_against_the_live_server(served):
    import base64

    import numpy as np
    from openai import OpenAI

    server, tokens, _ = served
    client = OpenAI(base_url=server.url + "/v1", api_key=tokens["viewer"], max_retries=0, timeout=120)
    ids = {m.id for m in client.models.list().data}
    assert {"intents@1", "intents@production", "minilm-l6", "smollm2-135m"} <= ids
    one = client.embeddings.create(model="minilm-l6", input="where is my card")  # the client asks for base64
    many = client.embeddings.create(model="minilm-l6", input=["where is my card", "exchange rate"],
                                    encoding_format="float")
    assert len(one.data[0].embedding) == 384 and len(many.data) == 2
    assert np.allclose(one.data[0].embedding, many.data[0].embedding, atol=1e-5)
    assert abs(np.linalg.norm(many.data[1].embedding) - 1) < 1e-3
    chat = client.chat.completions.create(model="smollm2-135m", max_tokens=12, temperature=0,
                                          messages=[{"role": "user", "content": "Say hello."}])
    assert chat.choices[0].message.content.strip() and chat.model == "smollm2-135m"
    assert chat.usage.completion_tokens <= 12
    pieces = list(client.chat.completions.create(model="smollm2-135m", max_tokens=8, stream=True, stop=["\n\n"],
                                                 messages=[{"role": "user", "content": "Count to three."}]))
    assert len(pieces) >= 2 and "".join(p.choices[0].delta.content or "" for p in pieces).strip()
    cls = client.post("/classifications", cast_to=object,
                      body={"model": "intents@production", "input": ["my card was stolen"]})
    assert cls["model"] == "intents@1" and cls["data"][0]["label"] == "lost_or_stolen_card" and len(cls["sha256"]) == 64
    import openai

    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-encoder", input="x")
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0).models.list()
    long = server.client(tokens["viewer"]).post("/v1/chat/completions", json={
        "model": "smollm2-135m", "max_tokens": 1900, "stop": [" ", "\n", "."],  # leaves ~100 prompt tokens
        "messages": [{"role": "user", "content": "card lost " * 3000}]})
    assert long.status_code == 200 and long.headers["x-inhouse-truncated"] == "true"
    assert long.json()["inhouse"]["truncated"] is True
    raw = base64.b64decode(server.client(tokens["viewer"]).post(
        "/v1/embeddings", json={"model": "minilm-l6", "input": "x", "encoding_format": "base64"}).json()["data"][0]["embedding"])
    assert len(raw) == 384 * 4


@pytest.mark.slow
def test_jobs_stream_progress_events_and_can_be_cancelled(served):
    server, tokens, _ = served
    with server.client(tokens["editor"]) as c:
        job = c.post("/datasets/b5/embeddings", json={"model": "wordllama"}).json()
        events = []
        with c.stream("GET", f"/jobs/{job['job_id']}/events") as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith("event: "):
                    events.append(line[7:])
        assert events[-1] == "end" and "progress" in events
        done = c.get(f"/jobs/{job['job_id']}").json()
        assert done["status"] == "done" and done["result"]["documents"] == 100
        assert any(t["desc"].startswith("embedding") for t in done["progress"]["tasks"])
        first = c.post("/training", json={"dataset": "b5", "name": "slow", "method": "full", "max_steps": 500,
                                          "batch_size": 8}).json()
        queued = c.post("/training", json={"dataset": "b5", "name": "never", "method": "head"}).json()
        assert c.post(f"/jobs/{queued['job_id']}/cancel").json()["status"] == "cancelled"
        _wait_running(c, first["job_id"])
        c.post(f"/jobs/{first['job_id']}/cancel")
        assert _wait_job(c, first["job_id"], 60)["status"] == "cancelled"
        assert c.post(f"/jobs/{first['job_id']}/cancel").status_code == 409
        assert c.get("/models", params={"name": "never"}).json()["models"] == []
        runs = c.get("/runs").json()
        assert any(t["kind"] == "embed" for t in runs["totals"]) and runs["job_costs"]


def _wait_running(c, job_id: int, timeout: float = 120) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/jobs/{job_id}").json()
        if job["status"] == "running" and job["progress"].get("tasks"):
            return job
        assert job["status"] in ("queued", "running"), job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never ran")


def test_tokens_cli_revoke_and_audit(served, run_cli):
    server, tokens, home = served
    temp = create_token(home, "temp-bot", "viewer")
    with server.client(temp) as c:
        assert c.get("/datasets").status_code == 200
    r = run_cli("--home", home, "tokens", "list", "--json")
    listed = {t["name"]: t for t in r.json["tokens"]}
    assert listed["temp-bot"]["role"] == "viewer" and "token" not in listed["temp-bot"]
    assert temp not in (home / "inhouse.db").read_bytes().decode("latin-1")  # only the hash is stored
    assert run_cli("--home", home, "tokens", "revoke", "temp-bot").exit_code == 0
    import time

    time.sleep(2.2)  # the server caches a verified token for 2 s
    with server.client(temp) as c:
        assert c.get("/datasets").status_code == 401
    assert run_cli("--home", home, "tokens", "create", "admin-user", "--role", "admin").exit_code == 8  # exists
    with server.client(tokens["admin"]) as admin, server.client(tokens["editor"]) as editor:
        made = admin.post("/tokens", json={"name": "api-made", "role": "editor"}).json()
        assert made["token"].startswith("ih_")
        assert editor.post("/tokens", json={"name": "x", "role": "admin"}).status_code == 403
        assert editor.get("/audit").status_code == 403
        events = admin.get("/audit", params={"action": "token."}).json()["events"]
        assert {("token.create", "api-made", "admin-user"), ("token.revoke", "temp-bot")} <= \
            {(e["action"], e["target"], e["user"]) for e in events} | {(e["action"], e["target"]) for e in events}
    out = run_cli("--home", home, "audit", "--action", "token.", "--json").json["events"]
    assert any(e["target"] == "api-made" and e["user"] == "admin-user" for e in out)


def test_binding_beyond_loopback_without_a_token_refuses_to_start(tmp_path, run_cli):
    r = run_cli("--home", tmp_path / "empty", "serve", "--host", "0.0.0.0", "--port", "1")
    assert r.exit_code == 2 and "inhouse tokens create" in r.stderr


def test_docs_are_served_offline(served):
    server, _, _ = served
    with server.client() as c:
        html = c.get("/docs").text
        assert "/docs-static/swagger-ui-bundle.js" in html and "cdn" not in html.lower()
        assert c.get("/docs-static/swagger-ui-bundle.js").status_code == 200
        assert c.get("/openapi.json").json()["info"]["title"] == "inhouse"


@pytest.mark.slow
def test_a_version_with_an_onnx_export_is_served_through_onnx(served, run_cli):
    server, tokens, home = served
    texts = ["my card was stolen", "what exchange rate do you use", "my pin is blocked", "top up failed again"]
    with server.client(tokens["viewer"]) as c:
        before = c.post("/classify/batch", json={"model": "intents@1", "texts": texts}).json()
        assert before["runtime"] == "torch"
        r = run_cli("--home", home, "models", "export", "intents@1", "--out", home / "onnx-export", "--format", "onnx",
                    "--check-size", "40")
        assert r.exit_code == 0, r.stderr
        assert run_cli("--home", home, "models", "import", home / "onnx-export", "--name", "intents-onnx").exit_code == 0
        after = c.post("/classify/batch", json={"model": "intents@1", "texts": texts}).json()
        assert after["runtime"] == "onnx" and after["served_by"] == "intents-onnx@1"
        assert after["model"] == "intents@1" and after["sha256"] == before["sha256"]  # still names what was asked
        assert [x["label"] for x in after["results"]] == [x["label"] for x in before["results"]]


def test_promoting_over_the_api_answers_at_once_and_prepares_fast_classify_in_a_job(served):
    """Moving an alias over REST must not run the ONNX export and the int8/cascade checks inside the request
    (tens of seconds behind a button): the move answers, a ``prepare`` job builds them, and a second move of an
    already prepared version starts no job."""
    from conftest import invoke_cli

    from inhouse.pipeline.onnxcache import read_artifact
    from inhouse.workspace.store import Workspace

    server, tokens, home = served
    r = invoke_cli("--home", home, "train", "--dataset", "b5", "--name", "quick", "--method", "head", "--seed", "7", "--no-prepare",
                   "--json")
    assert r.exit_code == 0, r.stderr
    sha = json.loads(r.stdout)["sha256"]
    assert read_artifact(Workspace(home), sha) is None
    with server.client(tokens["editor"]) as c:
        r = c.put("/models/quick/aliases/production", json={"version": 1, "expected_current": None})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["ref"] == "quick@1" and "prepared" not in body
        job = _wait_job(c, body["prepare_job"]["job_id"])
        assert job["status"] == "done" and job["kind"] == "prepare", job
        assert job["result"]["prepared"] is True and job["result"]["onnx"]["precision"] in ("int8", "fp32")
        assert read_artifact(Workspace(home), sha) is not None
        again = c.put("/models/quick/aliases/staging", json={"version": 1, "expected_current": None}).json()
        assert "prepare_job" not in again
