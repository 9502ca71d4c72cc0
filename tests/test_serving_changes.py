"""Serving while the registry changes (issue 16 §4): saving versions and moving aliases never fails a request.

A real server (uvicorn on 127.0.0.1, in this process) serves `intents@production`, a real head on
minilm-l6; eight client threads classify while this thread saves new versions and moves the alias in a
loop. Every answer must be a 200 that names the version that made it, with that version's own scores.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from inhouse import registry
from inhouse.classifiers.load import load_classifier
from inhouse.server.app import Settings
from inhouse.server.tokens import create_token
from serverkit import LiveApp
from test_security import head_version

TEXTS = ["my card has not arrived yet", "I want a refund for this", "someone stole my card"]


@pytest.mark.slow
def test_eight_clients_classify_while_versions_are_saved_and_the_alias_moves(ws):
    first = head_version(ws, "intents", seed=0)
    registry.set_alias(ws, first.ref, "production")
    viewer = create_token(ws, "viewer-user", "viewer").token
    live = LiveApp(Settings(home=str(ws.home), jobs=False, batch_window_ms=5))
    answers: list[dict] = []
    failures: list[str] = []
    stop = threading.Event()

    def client() -> None:
        with live.client(viewer) as c:
            while not stop.is_set():
                r = c.post("/classify/batch", json={"model": "intents@production", "texts": TEXTS})
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:300]}")
                else:
                    answers.append(r.json())

    threads = [threading.Thread(target=client) for _ in range(8)]
    try:
        with live.client(viewer) as c:
            assert c.post("/classify", json={"model": "intents@production", "text": "x"}).json()["version"] == 1
            for t in threads:
                t.start()
            saved = [first]
            for i in range(1, 7):
                saved.append(head_version(ws, "intents", seed=i))  # a save: new version, nothing moves
                time.sleep(0.2)
                target = saved[-1] if i % 3 else saved[0]  # forward, and sometimes back
                registry.set_alias(ws, target.ref, "production")
                # the next request sees the move at once, whole: that version, its hash
                now = c.post("/classify", json={"model": "intents@production", "text": TEXTS[0]}).json()
                assert (now["version"], now["sha256"]) == (target.version, target.sha256), now
                time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        live.stop()
    assert failures == []
    by_version = {v.version: v for v in saved}
    expected = {n: load_classifier(ws, v.ref).predict_proba(TEXTS) for n, v in by_version.items()}
    seen = set()
    for a in answers:
        v = by_version[a["version"]]
        assert a["sha256"] == v.sha256 and a["model"] == v.ref
        labels = list(v.manifest["labels"])
        got = np.array([[dict((t["label"], t["score"]) for t in r["top"])[lab] for lab in labels]
                        for r in a["results"]])
        np.testing.assert_allclose(got, expected[a["version"]], atol=2e-5)  # that version's own scores
        seen.add(a["version"])
    assert len(answers) > 50 and len(seen) >= 4, (len(answers), seen)


def test_a_dropped_model_still_answers_what_was_queued_and_what_comes_late():
    """The served table drops a model (budget, shutdown) while requests wait on it: they still get rows."""
    from inhouse.server.batching import MicroBatcher

    release, running = threading.Event(), threading.Event()

    def fn(items):
        running.set()
        release.wait(10)
        return [x * 2 for x in items]

    b = MicroBatcher(fn, window=0.001, name="t")
    first = b.submit([1, 2])
    assert running.wait(5)
    queued = b.submit([3])  # waits behind the running batch
    b.close()
    release.set()
    assert first.result(5) == [2, 4] and queued.result(5) == [6]
    assert b.submit([4]).result(5) == [8]  # a request that still holds the dropped model


def test_the_batcher_interleaves_clients_instead_of_running_one_big_batch_first():
    from inhouse.server.batching import MicroBatcher

    calls: list[list[str]] = []
    gate = threading.Event()

    def fn(items):
        gate.wait(5)
        calls.append(list(items))
        return items

    b = MicroBatcher(fn, window=0.05, max_batch=128, name="t", slice=16)
    big = b.submit([f"a{i}" for i in range(64)], client="a")
    small = b.submit(["b0"], client="b")
    gate.set()
    assert big.result(5) == [f"a{i}" for i in range(64)] and small.result(5) == ["b0"]
    assert all(len([x for x in c if x.startswith("a")]) <= 16 for c in calls)  # a slice per client per call
    assert "b0" in calls[0]  # the small request rode in the first model call, not after the big one


LONG = ("My card payment was declined twice at the supermarket and then the app froze while I was trying to "
        "check whether the money had left my account, which it had, so now I do not know what happened. ") * 3


@pytest.mark.slow
def test_one_clients_big_batch_does_not_hold_the_model_and_oversized_work_is_refused(ws):
    head_version(ws, "intents", seed=0)
    a, b = create_token(ws, "a", "viewer").token, create_token(ws, "b", "viewer").token
    live = LiveApp(Settings(home=str(ws.home), jobs=False, batch_window_ms=5))
    try:
        with live.client(a) as ca, live.client(b) as cb:
            too_much = ca.post("/classify/batch", json={"model": "intents@1", "texts": [LONG * 3] * 256})
            assert too_much.status_code == 413, too_much.text
            assert "--max-request-tokens" in too_much.json()["message"]
            assert "/classify/jobs" in too_much.json()["fix"]
            big = {"model": "intents@1", "texts": [f"{i} {LONG}" for i in range(128)]}
            assert cb.post("/classify", json={"model": "intents@1", "text": "warm"}).status_code == 200
            t0 = time.monotonic()
            assert ca.post("/classify/batch", json=big).status_code == 200
            alone = time.monotonic() - t0
            waited: dict[str, float] = {}

            def small():
                time.sleep(alone * 0.15)
                t = time.monotonic()
                assert cb.post("/classify", json={"model": "intents@1", "text": "where is my card"}).status_code == 200
                waited["b"] = time.monotonic() - t

            th = threading.Thread(target=small)
            th.start()
            assert ca.post("/classify/batch", json=big).status_code == 200
            th.join(60)
        # one client's 128 long texts alone took `alone` s; the other client's one text waits for one slice
        assert waited["b"] < alone * 0.5, (waited, alone)
    finally:
        live.stop()
