"""The lean single-text path (issue 19 §2): batching only while a model call runs, remembered answers,
and fifty concurrent one-text requests on a real server all answered as the version itself would."""

from __future__ import annotations

import threading

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
