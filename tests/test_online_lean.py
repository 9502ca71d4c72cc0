"""The lean single-text path (issue 19 §2): batching only while a model call runs, remembered answers,
fifty concurrent one-text requests on a real server all answered as the version itself would, and a
version served through the ONNX graph prepared for it (built in the background when missing), with the
classify engine's answers."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from inhouse.classifiers.load import load_classifier
from inhouse.server.app import Settings
from inhouse.server.batching import MicroBatcher
from inhouse.server.tokens import create_token
from serverkit import LiveApp
from test_security import head_version


def test_a_call_on_an_idle_model_runs_alone_and_calls_arriving_meanwhile_share_the_next():
    """No window by default: the first call is not held back for company; what queued while it ran is one call."""
    calls: list[list[str]] = []
    running, release = threading.Event(), threading.Event()

    def fn(items):
        calls.append(list(items))
        if len(calls) == 1:
            running.set()
            release.wait(10)
        return [x.upper() for x in items]

    b = MicroBatcher(fn, window=0.0, name="t")  # the server's default: batching on, no window to wait out
    first = b.submit(["a"], client="u1")
    assert running.wait(10)
    later = [b.submit([x], client=f"u{i}") for i, x in enumerate("bcd", 2)]
    release.set()
    assert first.result(10) == ["A"] and [f.result(10) for f in later] == [["B"], ["C"], ["D"]]
    assert calls == [["a"], ["b", "c", "d"]]


def test_with_two_lanes_a_call_arriving_while_one_runs_starts_at_once_on_the_other():
    """One lane per core: the second core does not wait for the first call to end; calls queue only while
    every lane is busy, and then share the next calls."""
    calls: list[list[str]] = []
    started, release = threading.Semaphore(0), threading.Event()

    def fn(items):
        calls.append(list(items))
        started.release()
        release.wait(10)
        return [x.upper() for x in items]

    b = MicroBatcher(fn, name="t", lanes=2)
    first = b.submit(["a"], client="u1")
    assert started.acquire(timeout=10)
    second = b.submit(["b"], client="u2")
    assert started.acquire(timeout=10), "the second call waited for the first although a lane was free"
    later = [b.submit([x], client=f"u{i}") for i, x in enumerate("cdef", 3)]
    assert not started.acquire(timeout=0.3)  # both lanes busy: these queue
    release.set()
    assert [f.result(10) for f in (first, second, *later)] == [["A"], ["B"], ["C"], ["D"], ["E"], ["F"]]
    assert calls[:2] == [["a"], ["b"]] and sorted(x for c in calls[2:] for x in c) == list("cdef")
    assert len(calls) <= 4 and b.batches == len(calls) and b.items == 6


def test_without_batching_every_call_is_its_own_model_call():
    calls: list[list[int]] = []
    b = MicroBatcher(lambda items: calls.append(list(items)) or items, batching=False, name="t")
    assert [b([i]) for i in range(3)] == [[0], [1], [2]]
    assert calls == [[0], [1], [2]]


@pytest.mark.slow
def test_fifty_concurrent_one_text_requests_get_the_versions_own_answers_and_repeats_are_remembered(ws, shared_data):
    import pandas as pd

    v = head_version(ws, "intents", seed=3)
    texts = list(dict.fromkeys(pd.read_csv(shared_data / "banking77" / "banking77.csv")["text"]))[:50]
    clf = load_classifier(ws, v.ref)
    want = clf.predict_proba(texts)
    viewer = create_token(ws, "viewer-user", "viewer").token
    live = LiveApp(Settings(home=str(ws.home), jobs=False))  # default settings
    try:
        def round_of_requests() -> list[dict]:
            answers: list[dict | None] = [None] * len(texts)
            start = threading.Barrier(len(texts))

            def client(i: int) -> None:
                with live.client(viewer) as c:
                    start.wait(30)
                    r = c.post("/v1/classifications", json={"model": v.ref, "input": texts[i], "top_k": 2})
                    answers[i] = {"status": r.status_code, **r.json()}

            threads = [threading.Thread(target=client, args=(i,)) for i in range(len(texts))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            return answers

        first = round_of_requests()
        assert all(a and a["status"] == 200 for a in first), [a for a in first if not a or a["status"] != 200][:3]
        for a, p in zip(first, want):
            assert (a["model"], a["sha256"]) == (v.ref, v.sha256)
            row = a["data"][0]
            assert row["label"] == clf.labels[int(np.argmax(p))]
            assert row["score"] == pytest.approx(float(p.max()), abs=1e-4)
            assert [t["label"] for t in row["top"]] == [clf.labels[j] for j in np.argsort(-p, kind="stable")[:2]]
        stats = live.client(viewer).get("/stats").json()["models"][v.ref]
        assert stats["texts"] == len(texts)  # each text went to the model once, whatever the batches were
        again = round_of_requests()  # the same texts: answered from memory, the same answers
        assert [a["data"] for a in again] == [a["data"] for a in first]
        stats = live.client(viewer).get("/stats").json()["models"][v.ref]
        assert stats["texts"] == len(texts) and stats["remembered"] == len(texts)
    finally:
        live.stop()


@pytest.mark.slow
def test_a_version_answers_on_torch_at_once_then_through_its_graph_built_in_the_background_as_the_engine_does(
        ws, shared_data, tmp_path):
    """A head version saved without its ONNX graph: the first request is answered on torch without waiting
    (the server has the graph built in the background), later ones through the graph, with the engine's own
    answers text for text: label, ``other`` where the version abstains, score, top labels."""
    import pandas as pd
    from conftest import invoke_cli

    from inhouse.pipeline.cascade import load_fast_predictor
    from inhouse.pipeline.engine import predict_unique
    from inhouse.pipeline.onnxcache import read_artifact

    texts = list(dict.fromkeys(pd.read_csv(shared_data / "banking77" / "banking77.csv")["text"]))[:40]
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "bank.csv", index=False)
    assert invoke_cli("--home", ws.home, "ingest", tmp_path / "bank.csv", "--dataset", "bank").exit_code == 0
    # a real linear head on minilm-l6 whose confidence splits these texts: about half under 0.85 (abstained)
    v = head_version(ws, "intents", seed=3, dataset={"name": "bank"}, abstain={"threshold": 0.85, "label": "other"})
    clf = load_classifier(ws, v.ref)
    viewer = create_token(ws, "viewer-user", "viewer").token
    live = LiveApp(Settings(home=str(ws.home), jobs=False))  # default settings (no job worker: a thread prepares)
    try:
        with live.client(viewer) as c:
            def ask(text: str) -> dict:
                r = c.post("/v1/classifications", json={"model": v.ref, "input": text, "top_k": 2})
                assert r.status_code == 200, r.text
                return r.json()

            first = ask(texts[0])
            assert read_artifact(ws, v.sha256) is None  # answered before any graph existed
            assert (first["runtime"], first["backend"], first["served_by"]) == ("torch", "torch", v.ref)
            want = clf.decide(clf.predict_proba(texts[:1]))[0]
            assert first["data"][0]["label"] == want and first["data"][0]["abstained"] == (want == "other")

            deadline = time.monotonic() + 300
            while (now := ask(texts[1]))["runtime"] == "torch":  # the graph is being built beside the requests
                assert time.monotonic() < deadline, "the graph was not built in the background"
                time.sleep(0.5)
            graph = read_artifact(ws, v.sha256)
            assert now["backend"] == f"onnx-{graph['precision']}" and now["served_by"] == v.ref
            assert (now["model"], now["sha256"]) == (v.ref, v.sha256)

            engine = load_fast_predictor(ws, v)  # as inhouse classify runs the version
            answers = [ask(t)["data"][0] for t in texts]  # one at a time: the engine's batch of one text
        for text, got in zip(texts, answers):
            cols, _ = predict_unique(engine, [text], top_k=2)
            assert (got["label"], got["abstained"]) == (cols["label"][0], cols["abstained"][0]), text
            assert got["score"] == pytest.approx(cols["score"][0], abs=1e-5)
            assert [t["label"] for t in got["top"]] == cols["top_labels"][0]
        assert 0 < sum(a["abstained"] for a in answers) < len(answers)  # both kinds of answer were compared
    finally:
        live.stop()


def test_a_server_running_jobs_asks_for_a_missing_graph_as_a_prepare_job(ws):
    """With a job dispatcher, the build happens in a ``prepare`` job (a worker process), asked for once."""
    from inhouse.server.app import ServerContext
    from inhouse.server.jobs import listing

    v = head_version(ws, "intents", seed=3)
    ctx = ServerContext(Settings(home=str(ws.home)))  # its dispatcher is not started: the job stays queued
    try:
        served = ctx.models.classifier(v.ref)
        assert served.runtime == "torch" and served.pending
        ctx.models.classifier(v.ref)
        jobs = listing(ws, kind="prepare")
        assert [(j["status"], j["params"]) for j in jobs] == [("queued", {"ref": v.ref})]
    finally:
        ctx.models.close()


def test_a_loaded_model_is_kept_out_of_full_garbage_collections(ws):
    """Loading a model freezes what is alive (torch, transformers, the app: ~200,000 objects): a full collection
    of them paused every request for 0.1-0.5 s; now it walks only what requests made since."""
    import gc

    from inhouse.server.batching import OnlineModels

    v = head_version(ws, "intents", seed=3)
    models = OnlineModels(ws, model_threads=1)
    gc.unfreeze()
    try:
        models.classifier(v.ref).classify(["where is my card"])
        assert gc.get_freeze_count() > 10_000  # was 0: every full collection walked them all
    finally:
        models.close()
        gc.unfreeze()
