"""One engine per operation (issue 16 §2): the same classify request gives the same rows from every door,
requests read stored predictions instead of classifying a dataset themselves, and a version diff is a job.

One module-scoped real server on a 5-intent banking77 slice with a real ``head`` model (minilm-l6).
"""

from __future__ import annotations

import pandas as pd
import pytest

from serverkit import Server, banking_slice, create_token, wait_job

COLUMNS = ["doc_id", "row", "label", "score", "abstained", "top_labels", "top_scores", "error", "model", "model_sha256"]


@pytest.fixture(scope="module")
def served(tmp_path_factory, shared_data):
    from conftest import invoke_cli

    home = tmp_path_factory.mktemp("engine-ws")
    csv = banking_slice(shared_data, home)
    for name in ("b5", "fresh"):
        r = invoke_cli("--home", home, "ingest", csv, "--dataset", name, "--label-col", "label", "--split-col",
                       "split", "--time-col", "created", "--json")
        assert r.exit_code == 0, r.stderr
    for name in ("intents", "second"):
        r = invoke_cli("--home", home, "train", "--dataset", "b5", "--name", name, "--method", "head", "--json")
        assert r.exit_code == 0, r.stderr
    tokens = {role: create_token(home, f"{role}-user", role) for role in ("editor", "viewer")}
    server = Server(home)
    try:
        yield server, tokens, home
    finally:
        server.stop()


def _rows(path) -> pd.DataFrame:
    df = pd.read_parquet(path) if str(path).endswith(".parquet") else pd.read_json(path, lines=True)
    df = df[COLUMNS].sort_values("doc_id").reset_index(drop=True)
    df["top_labels"] = df["top_labels"].map(list)
    df["top_scores"] = df["top_scores"].map(lambda xs: [round(float(x), 6) for x in xs])
    df["score"] = df["score"].astype(float).round(6)
    df["error"] = [e if isinstance(e, str) else None for e in df["error"]]
    for col in ("doc_id", "row"):
        df[col] = df[col].astype("int64")
    df["abstained"] = df["abstained"].astype(bool)
    return df


@pytest.mark.slow
def test_the_same_classify_request_gives_the_same_rows_from_every_door(served, tmp_path):
    """CLI, the public Python API and a REST job: one engine (onnx, the stored prediction set), equal rows.
    Before, the REST job and ``inhouse.classify`` ran the older in-memory torch engine: other scores, no set."""
    import inhouse
    from conftest import invoke_cli

    server, tokens, home = served
    cli = invoke_cli("--home", home, "classify", "intents", "--dataset", "b5", "--split", "test", "--output",
                     tmp_path / "cli.parquet", "--json")
    assert cli.exit_code == 0, cli.stderr
    ws = inhouse.Workspace.open(home)
    try:
        py = inhouse.classify(ws, "intents", dataset="b5", split="test", output=str(tmp_path / "py.jsonl"))
    finally:
        ws.close()
    with server.client(tokens["editor"]) as c:
        job = c.post("/classify/jobs", json={"model": "intents", "dataset": "b5", "split": "test"}).json()
        rest = wait_job(c, job["job_id"])
        out = c.get(f"/jobs/{job['job_id']}/output")
        assert out.status_code == 200
    (tmp_path / "rest.parquet").write_bytes(out.content)
    res = rest["result"]
    for r in (cli.json, py, res):
        assert r["rows"] == 40 and r["model"] == "intents@1" and r["prediction_set"] == cli.json["prediction_set"]
        assert r["backend"] == cli.json["backend"] or r["computed"] == 0
    assert py["computed"] == 0 and res["computed"] == 0  # the CLI stored them: the other doors reuse them
    a, b, c_ = _rows(tmp_path / "cli.parquet"), _rows(tmp_path / "py.jsonl"), _rows(tmp_path / "rest.parquet")
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    pd.testing.assert_frame_equal(a, c_, check_dtype=False)
    assert a["label"].notna().all() and set(a["label"]) - {"other"}


@pytest.mark.slow
def test_explore_predicted_filter_reads_stored_predictions_or_asks_for_a_classify_job(served):
    """Before: the request classified every candidate itself (minutes on a big dataset). Now it reads the
    prediction set, and without one answers 409 not_classified whose fix is the classify job."""
    server, tokens, home = served
    q = {"model": "second", "predicted": "exchange_rate", "limit": 1000}
    with server.client(tokens["viewer"]) as v, server.client(tokens["editor"]) as e:
        r = v.get("/datasets/fresh/documents", params=q)
        assert r.status_code == 409, r.text
        body = r.json()
        assert body["error"] == "not_classified" and "second@1" in body["message"]
        assert "POST /classify/jobs" in body["fix"] and '"dataset": "fresh"' in body["fix"]
        assert not (home / "predictions").exists() or not any((home / "predictions").rglob("*.parquet"))
        job = e.post("/classify/jobs", json={"model": "second@1", "dataset": "fresh", "format": None}).json()
        done = wait_job(e, job["job_id"])
        assert done["result"]["output"] is None and done["result"]["rows"] == 100
        assert {t["desc"] for t in done["progress"]["tasks"]} >= {"classifying fresh with second@1"}
        got = v.get("/datasets/fresh/documents", params=q).json()
        every = v.get("/datasets/fresh/documents", params={"model": "second", "limit": 1000}).json()
    import inhouse
    from inhouse.data.predictions import find_set

    ws = inhouse.Workspace.open(home)
    try:
        stored = find_set(ws, "fresh", inhouse.registry.resolve(ws, "second").sha256).read(["doc_id", "label", "score"])
    finally:
        ws.close()
    want = stored[stored["label"] == "exchange_rate"]
    assert got["predictions"]["model"] == "second@1" and got["total"] == len(want) > 0
    assert [d["doc_id"] for d in got["documents"]] == want["doc_id"].tolist()
    assert {d["predicted"] for d in got["documents"]} == {"exchange_rate"}
    by_id = dict(zip(stored["doc_id"], stored["score"].round(6)))
    assert every["total"] == 100 and all(d["predicted_score"] == by_id[d["doc_id"]] for d in every["documents"])
    with server.client(tokens["viewer"]) as v:  # one document's prediction is the stored one too
        d = v.get(f"/datasets/fresh/documents/{want['doc_id'].iloc[0]}", params={"model": "second"}).json()
    assert d["prediction"]["stored"] and d["prediction"]["label"] == "exchange_rate"


@pytest.mark.slow
def test_version_diff_runs_as_a_job_with_progress(served, monkeypatch):
    """Before: only GET /diff, the whole comparison inside one request (51 s seen); POST /diff/jobs did not exist."""
    server, tokens, home = served
    with server.client(tokens["viewer"]) as v:
        job = v.post("/diff/jobs", json={"old": "intents@1", "new": "second@1", "dataset": "b5", "split": "test",
                                         "examples": 5})
        assert job.status_code == 202, job.text
        done = wait_job(v, job.json()["job_id"])
        inline = v.get("/diff", params={"old": "intents@1", "new": "second@1", "dataset": "b5", "split": "test",
                                        "examples": 5}).json()
    d = done["result"]
    assert done["kind"] == "diff" and d["documents"] == 40 and d["old"]["ref"] == "intents@1"
    assert (d["agreement"], d["flipped"], d["per_class"]) == (inline["agreement"], inline["flipped"],
                                                              inline["per_class"])
    assert any(t["desc"].startswith("comparing intents@1 and second@1") for t in done["progress"]["tasks"])

    import inhouse
    from inhouse.errors import Conflict
    from inhouse.service import diff as service_diff

    monkeypatch.setattr(service_diff, "INLINE_DOCUMENTS", 10)
    ws = inhouse.Workspace.open(home)
    try:
        with pytest.raises(Conflict, match="long work") as e:
            service_diff.inline_diff(ws, "intents@1", "second@1", "b5", split="test")
        assert "POST /diff/jobs" in e.value.fix
        assert service_diff.inline_diff(ws, "intents@1", "second@1", "b5", split="test", limit=10)["documents"] == 10
    finally:
        ws.close()
