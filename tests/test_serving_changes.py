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
