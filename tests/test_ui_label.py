"""The Label screen and its API: rename and merge topics, the labelling queue, labelling one document at a time.

One module-scoped server serves a workspace with the demo corpus (300 messages, one in ten labelled in the
file, the rest unlabelled) and its topic discovery (run by the CLI, not the UI), plus a `head` model trained
on a second, fully labelled copy (so the labelled dataset itself has no model of its own: its queue is diversity).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from serverkit import REPO, Server, create_token


def _cli(home, *args: str) -> None:
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(home), "INHOUSE_HOME": str(home)}
    r = subprocess.run([sys.executable, "-m", "inhouse", "--home", str(home), *args], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from inhouse.demo.data import write_csv

    home = tmp_path_factory.mktemp("label-ws")
    full = write_csv(home / "demo.csv", n=300)
    df = pd.read_csv(full)
    df.loc[df.index % 10 != 0, "intent"] = None
    df.to_csv(home / "part.csv", index=False)
    _cli(home, "ingest", str(home / "part.csv"), "--dataset", "demo", "--label-col", "intent", "--time-col", "timestamp")
    _cli(home, "discover", "--dataset", "demo")
    _cli(home, "ingest", str(full), "--dataset", "full", "--label-col", "intent")
    _cli(home, "train", "--dataset", "full", "--name", "intents", "--method", "head")
    tokens = {r: create_token(home, f"{r}-user", r) for r in ("editor", "viewer")}
    server = Server(home)
    try:
        yield server, tokens, home
    finally:
        server.stop()


def _labels(c, dataset="demo") -> dict[int, str | None]:
    docs = c.get(f"/datasets/{dataset}/documents", params={"limit": 1000}).json()["documents"]
    return {d["doc_id"]: d["label"] for d in docs}


def _run(c) -> dict:
    return c.get("/datasets/demo/topics/1").json()


# ------------------------------------------------------------------ API ----

def test_rename_a_topic_shows_in_the_run_and_refuses_bad_input(served):
    server, tokens, _ = served
    with server.client(tokens["editor"]) as c, server.client(tokens["viewer"]) as v:
        before = _run(c)["topics"][3]["name"]
        r = c.put("/datasets/demo/topics/1/3/name", json={"name": "  Card  arrival "})
        assert r.status_code == 200, r.text
        assert r.json()["previous"] == before and r.json()["name"] == "Card arrival"
        t = _run(c)["topics"][3]
        assert t["name"] == "Card arrival" and t["name_source"] == "person:editor-user"
        assert c.put("/datasets/demo/topics/1/999/name", json={"name": "x"}).status_code == 404
        assert c.put("/datasets/demo/topics/7/0/name", json={"name": "x"}).status_code == 404  # no such run
        assert c.put("/datasets/demo/topics/1/3/name", json={"name": ""}).status_code == 422
        assert c.put("/datasets/demo/topics/1/3/name", json={"name": "   "}).status_code == 400
        assert c.put("/datasets/demo/topics/1/3/name", json={"name": "x", "extra": 1}).status_code == 422
        assert v.put("/datasets/demo/topics/1/3/name", json={"name": "x"}).status_code == 403
        assert _run(c)["topics"][3]["name"] == "Card arrival"


def test_merge_makes_two_topics_one_for_labelling_and_unmerge_restores_them(served):
    server, tokens, _ = served
    with server.client(tokens["editor"]) as c:
        run = _run(c)
        a, b = run["topics"][1], run["topics"][2]
        r = c.post("/datasets/demo/topics/1/merges", json={"topic": 2, "into": 1})
        assert r.status_code == 200, r.text
        merged = _run(c)["topics"]
        assert merged[2]["merged_into"] == 1 and merged[1]["merged"] == [2]
        assert merged[1]["size"] == a["size"] + b["size"]
        # labelling topic 1 now labels both topics' documents (into a label set of our own: no file labels there)
        lb = c.post("/datasets/demo/labels", json={"label": "both", "topic": 1, "run": 1, "into": "check"}).json()
        assert lb["count"] == a["size"] + b["size"]
        assert c.post(f"/labels/{lb['batch']}/undo").status_code == 200
        r = c.post("/datasets/demo/labels", json={"label": "x", "topic": 2, "run": 1, "into": "check"})
        assert r.status_code == 409 and "merged into topic 1" in r.json()["message"]
        # bad input
        r = c.post("/datasets/demo/topics/1/merges", json={"topic": 1, "into": 1})
        assert r.status_code == 400 and "itself" in r.json()["message"]
        assert c.post("/datasets/demo/topics/1/merges", json={"topic": 999, "into": 1}).status_code == 404
        assert c.post("/datasets/demo/topics/1/merges", json={"topic": 0, "into": 999}).status_code == 404
        assert c.post("/datasets/demo/topics/1/merges", json={"topic": 2, "into": 0}).status_code == 409  # merged
        assert c.post("/datasets/demo/topics/1/merges", json={"topic": 0, "into": 2}).status_code == 409  # into merged
        assert c.post("/datasets/demo/topics/1/merges", json={"topic": -1, "into": 0}).status_code == 422
        assert c.post("/datasets/nope/topics/1/merges", json={"topic": 0, "into": 1}).status_code == 404
        # undo
        assert c.post("/datasets/demo/topics/1/unmerge", json={"topic": 2}).json()["was_into"] == 1
        assert c.post("/datasets/demo/topics/1/unmerge", json={"topic": 2}).status_code == 404
        back = _run(c)["topics"]
        assert back[2]["merged_into"] is None and back[1]["size"] == a["size"]


def test_queue_diversity_without_a_model_and_uncertainty_with_one(served):
    server, tokens, _ = served
    with server.client(tokens["viewer"]) as c:
        q = c.get("/datasets/demo/queue", params={"limit": 10}).json()
        assert q["strategy"] == "diversity" and "no trained model" in q["reason"]
        assert q["vectors"] == "embeddings:minilm-l6"  # the discovery's stored vectors, not recomputed
        ids = [d["doc_id"] for d in q["items"]]
        labels = _labels(c)
        assert len(set(ids)) == 10 and all(labels[i] is None for i in ids)
        assert [d["doc_id"] for d in c.get("/datasets/demo/queue", params={"limit": 10}).json()["items"]] == ids
        ex = c.get("/datasets/demo/queue", params={"limit": 10, "exclude": ",".join(map(str, ids[:3]))}).json()
        assert not set(ids[:3]) & {d["doc_id"] for d in ex["items"]}
        u = c.get("/datasets/demo/queue", params={"model": "intents@1", "limit": 8}).json()
        assert u["strategy"] == "uncertainty" and u["model"] == "intents@1"
        scores = [d["score"] for d in u["items"]]
        assert scores == sorted(scores) and all(d["predicted"] for d in u["items"])
        assert c.get("/datasets/demo/queue", params={"strategy": "best"}).status_code == 422
        r = c.get("/datasets/demo/queue", params={"model": "nosuch@1"})
        assert r.status_code == 404 and r.json()["fix"]
        assert c.get("/datasets/demo/queue", params={"model": "intents@9"}).status_code == 404
        assert c.get("/datasets/demo/queue", params={"strategy": "uncertainty"}).status_code == 404  # no model yet
        assert c.get("/datasets/demo/queue", params={"exclude": "1,x"}).status_code == 400
        fresh = c.get("/datasets/demo/queue", params={"label_col": "brand_new_set", "limit": 3}).json()
        assert fresh["unlabelled"] == 300 and fresh["label_col"] == "brand_new_set"  # a new set: all unlabelled
        assert c.get("/datasets/demo/queue", params={"label_col": "text"}).status_code == 422  # reserved
        assert c.get("/datasets/demo/queue", params={"limit": 0}).status_code == 422
        assert c.get("/datasets/nope/queue").status_code == 404


# ----------------------------------------------------------- queue logic ----

def test_uncertainty_picks_the_smallest_margins():
    from inhouse.analysis.queue import margins, uncertainty_order

    probs = np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [0.6, 0.3, 0.1], [0.34, 0.33, 0.33], [1.0, 0, 0]])
    assert uncertainty_order(probs, 2).tolist() == [3, 1]
    assert uncertainty_order(probs, 5).tolist() == [3, 1, 2, 0, 4]
    assert np.allclose(margins(probs), [0.85, 0.05, 0.3, 0.01, 1.0])


def test_diversity_spreads_over_clusters_and_is_deterministic_for_a_seed():
    from inhouse.analysis.queue import farthest_first, hashed_vectors

    rng = np.random.default_rng(1)
    centers = np.eye(8)[:4] * 5
    vecs = np.concatenate([c + rng.normal(0, 0.1, (60, 8)) for c in centers])
    picked = farthest_first(vecs, 4, seed=3)
    assert sorted(i // 60 for i in picked) == [0, 1, 2, 3]  # one from each cluster
    assert farthest_first(vecs, 4, seed=3).tolist() == picked.tolist()
    assert len(set(farthest_first(vecs, 300, seed=0).tolist())) == 240  # never more than there are, no repeats
    h = hashed_vectors(["card lost", "lost card", "refund please"])
    assert np.allclose(h[0], h[1]) and h[0] @ h[2] < 0.5


# -------------------------------------------------------------- browser ----

def _wait_doc_change(page, old: int) -> int:
    page.wait_for_function("(old) => { const d = document.querySelector('.doc-big'); "
                           "return d && d.dataset.doc !== String(old); }", arg=old)
    return int(page.locator(".doc-big").get_attribute("data-doc"))


@pytest.mark.browser
def test_label_a_topic_then_documents_one_at_a_time_with_the_keyboard(served, browser):
    from uikit import assert_clean, open_page, shot

    server, tokens, _ = served
    with server.client(tokens["editor"]) as c:
        run = _run(c)
        labels = _labels(c)
        a = pd.read_parquet(server.home / run["assignments_path"])  # paths are relative to the workspace
        # a topic with documents labelled in the file: labelling it asks before overwriting those
        topic = next(t for t in run["topics"] if any(labels[d] for d in a.loc[a.topic == t["topic"], "doc_id"]))
        page = open_page(browser, server.url, tokens["editor"])
        page.goto(f"/#/datasets/demo/label?topic={topic['topic']}&run=1")
        page.locator(".topic-list li.selected").wait_for()
        assert page.locator(".topic-detail h2").inner_text().startswith(f"Topic {topic['topic']}:")
        box = page.get_by_label("label for this topic")
        assert box.input_value() == topic["name"]
        box.fill("topic_label")
        page.locator("[data-action=label-topic]").click()
        dlg = page.locator("dialog.modal")
        dlg.wait_for()
        assert "came from the file" in dlg.inner_text()
        assert page.locator(".topic-detail .error-box .fix").count() == 1  # the API's fix, shown
        dlg.get_by_role("button", name="Overwrite").click()
        page.locator(".ok-box").wait_for()
        got = _labels(c)
        ids = a.loc[a.topic == topic["topic"], "doc_id"].tolist()
        assert all(got[d] == "topic_label" for d in ids)
        page.locator("svg.chart").first.wait_for()
        shot(page, "label-topics")

        # one at a time: number keys, n for a new label, s to skip, u to undo
        page.get_by_role("button", name="One at a time").click()
        page.locator(".doc-big").wait_for()
        assert "no trained model" in page.locator(".queue-info").inner_text()
        page.locator("main").click(position={"x": 5, "y": 5})
        first = int(page.locator(".doc-big").get_attribute("data-doc"))
        page.keyboard.press("n")
        page.get_by_label("new label", exact=True).fill("greeting")
        page.get_by_label("new label", exact=True).press("Enter")
        cur = _wait_doc_change(page, first)
        done = {first: "greeting"}
        for key in ("1", "2", "1"):
            want = page.locator(".label-btn").nth(int(key) - 1).get_attribute("data-label")
            page.keyboard.press(key)
            nxt = _wait_doc_change(page, cur)
            done[cur] = want
            last, cur = cur, nxt
        skipped = cur
        page.keyboard.press("s")
        cur = _wait_doc_change(page, skipped)
        got = _labels(c)
        assert all(got[d] == lab for d, lab in done.items()) and got[skipped] is None
        shot(page, "label-one-at-a-time", readme=True)
        page.keyboard.press("u")
        _wait_doc_change(page, cur)
        assert int(page.locator(".doc-big").get_attribute("data-doc")) == last  # back to the undone document
        got = _labels(c)
        assert got[last] is None and all(got[d] == lab for d, lab in done.items() if d != last)
        batches = c.get("/datasets/demo/labels").json()["batches"]
        assert sum(1 for b in batches if b["source"] == "manual" and b["count"] == 1) == 4

        # undo the whole topic batch from the batches table, behind a confirmation
        tb = next(b for b in batches if b["source"] == f"topic:1:{topic['topic']}" and not b["undone_at"])
        page.locator(f"[data-batch='{tb['batch']}']").click()
        page.locator("dialog.modal").get_by_role("button", name="Undo batch").click()
        page.locator(f"[data-batch='{tb['batch']}']").wait_for(state="detached")
        got = _labels(c)
        assert not any(got[d] == "topic_label" for d in ids)
        assert any(b["batch"] == tb["batch"] and b["undone_at"] for b in c.get("/datasets/demo/labels").json()["batches"])
        assert_clean(page)
        page.context.close()


@pytest.mark.browser
def test_a_viewer_sees_the_label_screen_but_cannot_label(served, browser):
    from uikit import assert_clean, open_page

    server, tokens, _ = served
    page = open_page(browser, server.url, tokens["viewer"])
    page.goto("/#/datasets/demo/label?mode=docs")
    page.locator(".doc-big").wait_for()
    assert page.locator(".label-btn").first.is_disabled()
    before = page.locator(".doc-big").get_attribute("data-doc")
    page.keyboard.press("1")
    page.wait_for_timeout(300)
    assert page.locator(".doc-big").get_attribute("data-doc") == before
    assert page.get_by_label("new label", exact=True).is_disabled()
    page.keyboard.press("s")  # skipping changes nothing: a viewer may page through the queue
    page.wait_for_function("(b) => document.querySelector('.doc-big').dataset.doc !== b", arg=before)
    page.get_by_role("button", name="Topics → labels").click()
    assert page.locator("[data-action=label-topic]").is_disabled()
    assert page.get_by_label("label for this topic").is_disabled()
    assert all(page.locator("[data-batch]").nth(i).is_disabled() for i in range(page.locator("[data-batch]").count()))
    assert_clean(page)
    page.context.close()


@pytest.mark.browser
def test_rename_merge_and_unmerge_topics_on_the_screen(served, browser):
    from uikit import assert_clean, open_page

    server, tokens, _ = served
    with server.client(tokens["editor"]) as c:
        page = open_page(browser, server.url, tokens["editor"])
        page.goto("/#/datasets/demo/label?topic=5")
        page.locator(".topic-detail").wait_for()
        page.locator(".topic-edit summary").click()
        page.get_by_label("topic name").fill("App crashes")
        page.locator("[data-action=rename]").click()
        page.locator(".topic-list li.selected", has_text="App crashes").wait_for()
        assert _run(c)["topics"][5]["name"] == "App crashes"
        size5, size6 = (_run(c)["topics"][i]["size"] for i in (5, 6))
        assert page.locator(".topic-edit").get_attribute("open") is not None  # stays open while editing
        page.get_by_label("topic to merge in").select_option("6")
        page.locator("[data-action=merge]").click()
        page.locator("dialog.modal").get_by_role("button", name="Merge").click()
        page.locator("[data-unmerge='6']").wait_for()
        assert page.locator(".topic-list li[data-topic='6']").count() == 0  # shown as part of topic 5 only
        assert page.get_by_label("label for this topic").input_value() == "App crashes"
        assert f"Label all {size5 + size6} documents" in page.locator("[data-action=label-topic]").inner_text()
        run = _run(c)
        assert run["topics"][6]["merged_into"] == 5 and run["topics"][5]["size"] == size5 + size6
        page.locator("[data-unmerge='6']").click()
        page.locator(".topic-list li[data-topic='6']").wait_for()
        assert _run(c)["topics"][6]["merged_into"] is None
        # a label set of one's own: the topic's labels go into it, the file's labels stay as they are
        page.get_by_label("label column").select_option("__new__")
        page.get_by_label("name of the new label set").fill("complaint")
        page.get_by_label("name of the new label set").press("Enter")
        page.locator(".topic-detail", has_text="label column complaint").wait_for()
        page.locator("[data-action=label-topic]").click()
        page.locator(".ok-box").wait_for()
        b = c.get("/datasets/demo/labels").json()["batches"][0]
        assert b["column"] == "complaint" and b["label"] == "App crashes" and b["count"] == size5
        assert_clean(page)
        page.context.close()


# ------------------------------------------- least sure, accept, 10+ labels ----

def test_least_sure_orders_a_confident_models_documents_by_log_margin():
    """A full fine-tune says 0.9999... for nearly everything: p1 - p2 rounds to 1.0 (float32) for all of them, so
    the old queue could not order them and showed documents at 100 % confidence."""
    from inhouse.analysis.queue import log_margins, margins, uncertainty_order

    logits = np.array([[25.0, 0, -3], [18.0, 0, -1], [30.0, 0, 0], [3.0, 1.0, 0]])
    probs = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
    assert margins(probs)[:3].tolist() == [1.0, 1.0, 1.0]
    assert uncertainty_order(probs, 4).tolist() == [3, 1, 0, 2]
    assert np.allclose(log_margins(probs), [25, 18, 30, 2], atol=1e-3)


def test_queue_items_carry_the_log_margin_smallest_first(served):
    server, tokens, _ = served
    with server.client(tokens["viewer"]) as c:
        u = c.get("/datasets/demo/queue", params={"model": "intents@1", "limit": 50}).json()
        lm = [d["log_margin"] for d in u["items"]]
        assert lm == sorted(lm) and len(set(lm)) > 1


@pytest.mark.browser
def test_accept_key_and_the_tenth_label_by_chord_with_live_counts(served, browser):
    from uikit import assert_clean, open_page

    server, tokens, home = served
    with server.client(tokens["editor"]) as c:
        docs = c.get("/datasets/demo/documents", params={"limit": 300}).json()["documents"]
        for i, d in enumerate(docs[-11:]):  # eleven labels in a label set of our own
            r = c.post("/datasets/demo/labels", json={"label": f"L{i:02d}", "doc_ids": [d["doc_id"]], "into": "tenplus"})
            assert r.status_code == 200, r.text
        page = open_page(browser, server.url, tokens["editor"])
        page.goto("/#/datasets/demo/label?mode=docs&col=tenplus&model=intents@1")
        page.locator(".doc-big").wait_for()
        page.locator(".accept-btn").wait_for()
        assert page.locator(".label-btn").count() == 11  # more than 9 labels: all on keys
        assert page.locator(".label-btn kbd").nth(9).inner_text() == "0 0"
        page.locator("main").click(position={"x": 5, "y": 5})

        # a: accept the model's suggestion
        first = int(page.locator(".doc-big").get_attribute("data-doc"))
        suggested = page.locator(".accept-btn").get_attribute("data-label")
        page.keyboard.press("a")
        cur = _wait_doc_change(page, first)
        assert _labels_in(home, "tenplus")[first] == suggested

        # 0 then 0: the tenth label; its count goes from 1 to 2 on the button
        tenth = page.locator(".label-btn").nth(9).get_attribute("data-label")
        assert page.locator(f".label-btn[data-label='{tenth}'] .label-count").inner_text() == "1"
        page.keyboard.press("0")
        page.keyboard.press("0")
        _wait_doc_change(page, cur)
        assert _labels_in(home, "tenplus")[cur] == tenth
        page.wait_for_function("(l) => document.querySelector(`.label-btn[data-label='${l}'] .label-count`)"
                               "?.textContent === '2'", arg=tenth)
        assert_clean(page)
        page.context.close()


def _labels_in(home, col: str) -> dict[int, str | None]:
    from inhouse.workspace.documents import read_documents
    from inhouse.workspace.store import Workspace

    ws = Workspace.open(home)
    try:
        df = read_documents(ws, "demo", columns=["doc_id", "label"], label_col=col)
    finally:
        ws.close()
    return {int(d): (None if lab is None or lab != lab else lab) for d, lab in zip(df["doc_id"], df["label"])}
