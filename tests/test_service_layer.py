"""The service layer and its registries (issue 16 §2): every door offers what the library has.

REST is driven in process (the real FastAPI app, through Starlette's TestClient) where a test
registers a method or a step in this process: a server started as another process would not see it.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from serverkit import banking_slice


@pytest.fixture
def api(ws):
    """(client with an editor token, the app) on the test's workspace; jobs are queued, not run."""
    from fastapi.testclient import TestClient

    from inhouse.server.app import Settings, create_app
    from inhouse.server.tokens import create_token

    app = create_app(Settings(home=str(ws.home), jobs=False))
    token = create_token(ws, "tester", "editor").token
    return TestClient(app, headers={"Authorization": f"Bearer {token}"}), app


@pytest.fixture
def b5(ws, shared_data, tmp_path, run_cli):
    csv = banking_slice(shared_data, tmp_path, per_label_train=6, per_label_test=2)
    r = run_cli("ingest", csv, "--dataset", "b5", "--label-col", "label", "--split-col", "split", "--time-col", "created")
    assert r.exit_code == 0, r.stderr
    return "b5"


def _train_schema(client) -> dict:
    spec = client.get("/openapi.json").json()
    ref = spec["paths"]["/training"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_every_training_argument_is_accepted_by_post_training(api, b5, ws):
    from inhouse.server import jobs
    from inhouse.training.arguments import TrainingArguments

    client, _ = api
    fields = dataclasses.fields(TrainingArguments)
    assert len(fields) >= 35
    props = _train_schema(client)["properties"]
    assert {f.name for f in fields} <= set(props), sorted({f.name for f in fields} - set(props))
    sent = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory() for f in fields}
    sent.update(method="head", base="minilm-l6", where="label != 'card_arrival'", out_of_scope=["activate_my_card"],
                abstain_target=0.1, lora_targets=["query"], head_C=4.0, num_threads=1)
    r = client.post("/training", json={"dataset": b5, "name": "every-arg", **sent})
    assert r.status_code == 202, r.text
    args = jobs.get(ws, r.json()["job_id"])["params"]["args"]
    assert args == sent
    assert TrainingArguments(**args).where == "label != 'card_arrival'"  # what the worker builds from it
    bad = client.post("/training", json={"dataset": b5, "name": "x", "patience": "soon"})
    assert bad.status_code == 422 and "patience" in bad.json()["message"]


def test_a_field_added_to_training_arguments_appears_in_the_rest_body_without_editing_the_route(monkeypatch):
    from inhouse.server import routes_models
    from inhouse.service import training as training_service
    from inhouse.training.arguments import TrainingArguments

    @dataclasses.dataclass
    class Extended(TrainingArguments):
        temperature_knob: float = 0.7

    assert "temperature_knob" not in routes_models.TrainRequest.model_fields
    monkeypatch.setattr(training_service, "TrainingArguments", Extended)
    model = routes_models.train_request_model()
    assert model.model_fields["temperature_knob"].default == 0.7
    assert "temperature_knob" in model.model_json_schema()["properties"]
    assert model(dataset="d", name="n", temperature_knob=0.9).temperature_knob == 0.9
    assert any(f["name"] == "temperature_knob" for f in training_service.argument_fields())


@pytest.mark.slow
def test_a_registered_training_method_is_offered_by_cli_rest_and_ui_and_trains(api, b5, ws, run_cli):
    from inhouse.training.methods import HeadMethod
    from inhouse.training.registry import register_method, unregister_method

    client, _ = api
    before = client.get("/training/methods").json()
    assert [m["name"] for m in before["methods"]][:4] == ["head", "setfit", "full", "lora"]
    assert "toy-head" not in run_cli("train", "--help").stdout
    assert client.post("/training", json={"dataset": b5, "name": "t", "method": "toy-head"}).status_code == 422

    @register_method("toy-head", title="Toy head", description="A head, under another name.")
    class ToyHead(HeadMethod):
        pass

    try:
        assert "toy-head" in run_cli("train", "--help").stdout
        listed = client.get("/training/methods").json()
        assert {"name": "toy-head", "title": "Toy head", "description": "A head, under another name.",
                "defaults": {}} in listed["methods"]
        from inhouse.server.app import Settings, create_app  # a new app builds its schema from the registry now
        from fastapi.testclient import TestClient

        fresh = TestClient(create_app(Settings(home=str(ws.home), jobs=False)), headers=client.headers)
        assert "toy-head" in _train_schema(fresh)["properties"]["method"]["enum"]
        assert client.post("/training", json={"dataset": b5, "name": "t", "method": "toy-head"}).status_code == 202
        r = run_cli("train", "--dataset", b5, "--name", "toy", "--method", "toy-head", "--base", "wordllama",
                    "--json")
        assert r.exit_code == 0, r.stderr
        assert r.json["method"] == "toy-head" and r.json["ref"] == "toy@1"
        c = run_cli("classify", "toy", "--dataset", b5, "--json")
        assert c.exit_code == 0 and c.json["rows"] == 40, c.stderr
    finally:
        unregister_method("toy-head")
    assert "toy-head" not in run_cli("train", "--help").stdout


def test_a_registered_pipeline_step_is_listed_and_runs(ws, b5, tmp_path, run_cli):
    from inhouse.pipeline.spec import register_step, unregister_step

    assert "tally" not in run_cli("pipeline", "steps").stdout

    @register_step("tally", {"label": (str, ...)})
    def tally(run, step, meter):
        from inhouse import read_documents

        docs = read_documents(run.ws, run.spec.dataset)
        n = int((docs["label"] == step.options["label"]).sum())
        return {"label": step.options["label"], "count": n}, len(docs), []

    try:
        steps = run_cli("pipeline", "steps", "--json").json["steps"]
        assert {"kind": "tally", "options": {"label": {"type": "str", "required": True, "default": None}}} in steps
        spec = tmp_path / "tally.yaml"
        spec.write_text("name: tally\ndataset: b5\nsteps:\n  - tally: {label: card_arrival}\n", encoding="utf-8")
        r = run_cli("pipeline", "run", spec, "--json")
        assert r.exit_code == 0, r.stderr
        step = r.json["steps"][0]
        assert step["name"] == "tally" and step["status"] == "done" and step["rows"] == 40
        run = json.loads(ws.db.execute("SELECT result FROM runs WHERE id = ?", (r.json["run_id"],)).fetchone()[0])
        assert run["steps"][0]["result"] == {"label": "card_arrival", "count": 8}
    finally:
        unregister_step("tally")
    assert "tally" not in run_cli("pipeline", "steps").stdout


def test_a_registered_job_kind_is_accepted_and_run_by_the_worker_path(ws):
    from inhouse.server import jobs, worker
    from inhouse.service.jobs import job_kind, unregister_job_kind

    with pytest.raises(Exception, match="not one of"):
        jobs.submit(ws, "echo", {})

    @job_kind("echo")
    def echo(ws_, job_id, params):
        return {"job": job_id, **params}

    try:
        job_id = jobs.submit(ws, "echo", {"x": 1})
        assert worker.run_kind(ws, job_id, "echo", jobs.get(ws, job_id)["params"]) == {"job": job_id, "x": 1}
    finally:
        unregister_job_kind("echo")


def test_rest_labels_with_where_like_the_cli(api, b5, run_cli):
    client, _ = api
    where = "label = 'card_arrival'"
    r = client.post(f"/datasets/{b5}/labels", json={"label": "arrival", "where": where, "into": "coarse"})
    assert r.status_code == 200, r.text
    cli = run_cli("label", "--dataset", b5, "--where", where, "--as", "arrival", "--into", "coarse2", "--json")
    assert cli.exit_code == 0, cli.stderr
    assert r.json()["count"] == cli.json["count"] == 8
    assert r.json()["source"] == cli.json["source"] == f"where:{where}"
    none = client.post(f"/datasets/{b5}/labels", json={"label": "x", "where": "label = 'nope'", "into": "c3"})
    assert none.status_code == 400 and "matches" in none.json()["message"]


def test_rest_discovery_with_where_runs_on_the_filtered_documents(api, b5, ws):
    from inhouse.server import jobs
    from inhouse.service.jobs import run_job

    client, _ = api
    r = client.post(f"/datasets/{b5}/topics", json={"where": "split = 'train'", "n_topics": 2, "model": "wordllama"})
    assert r.status_code == 202, r.text
    job = jobs.get(ws, r.json()["job_id"])
    assert job["params"]["where"] == "split = 'train'"
    out = run_job(ws, job["id"], "discover", job["params"])
    assert out["n_documents"] == 30 and out["n_topics"] == 2


@pytest.mark.slow
def test_a_registered_encoder_kind_can_be_added_embedded_with_and_trained_on(ws, b5, tmp_path, run_cli):
    import numpy as np

    from inhouse import load_encoder
    from inhouse.models.encoders import Encoder, register_encoder, unregister_encoder

    assert "letters" not in run_cli("models", "add", "--help").stdout

    @register_encoder("letters")
    class Letters(Encoder):
        def encode_batch(self, texts):
            return np.array([[t.lower().count(c) for c in "abcdefghijklmnopqrstuvwxyz"] for t in texts], dtype=np.float32)

    folder = tmp_path / "letters-model"
    folder.mkdir()
    (folder / "alphabet.txt").write_text("abcdefghijklmnopqrstuvwxyz\n", encoding="utf-8")
    try:
        assert "letters" in run_cli("models", "add", "--help").stdout
        r = run_cli("models", "add", "abc", folder, "--kind", "letters", "--json")
        assert r.exit_code == 0, r.stderr
        v = load_encoder(ws, "abc").encode(["aab", "zz"], normalize=False)
        assert v.shape == (2, 26) and v[0, 0] == 2 and v[1, 25] == 2
        t = run_cli("train", "--dataset", b5, "--name", "by-letters", "--method", "head", "--base", "abc", "--json")
        assert t.exit_code == 0, t.stderr
        assert t.json["base"] == "abc" and t.json["n_train"] > 0
        full = run_cli("train", "--dataset", b5, "--name", "nope", "--method", "full", "--base", "abc")
        assert full.exit_code != 0 and "fine-tuning needs a transformer" in full.stderr
    finally:
        unregister_encoder("letters")
    assert "letters" not in run_cli("models", "add", "--help").stdout


def test_rest_trends_with_where_like_the_cli(api, b5, run_cli):
    client, _ = api
    where = "split = 'train'"
    r = client.get(f"/datasets/{b5}/trends", params={"every": "day", "recent": 1, "where": where})
    assert r.status_code == 200, r.text
    cli = run_cli("trends", "--dataset", b5, "--every", "day", "--recent", "1", "--where", where, "--json")
    assert cli.exit_code == 0, cli.stderr
    assert r.json()["totals"] == cli.json["totals"] and sum(r.json()["totals"]) == 30
    assert r.json()["where"] == where
