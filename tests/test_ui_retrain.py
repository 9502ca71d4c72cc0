"""Close the loop from the UI (issue 20 §4): a new label in the production model's label set -> retrain like
production -> compare with production (flips, per-class deltas, what the new version now covers) -> promote
behind the existing confirmation, in a real browser against a real ``inhouse serve``.

Production is ``intents@1`` (head on minilm-l6) trained on four banking77 intents that people labelled into the
label set ``intent``; the dataset also holds unlabelled documents of an intent it never learnt (``UNSEEN``), which
it turns away. The walk starts on the Analyze dashboard of a pipeline run: the candidate those documents make
("What your labels miss") becomes a label in ``intent``, its documents are confirmed in the queue (keys), then
retrain, diff and promote on the model page.
"""

from __future__ import annotations

import re

import pytest
from loopkit import FIRST, LABEL_SET, UNSEEN, label_where, walk_csv
from serverkit import Server, create_token, wait_job
from uikit import assert_clean, open_page, shot

EDITOR = "erin-editor"


@pytest.fixture(scope="module")
def served(tmp_path_factory, shared_data):
    from conftest import invoke_cli

    home = tmp_path_factory.mktemp("ui-retrain")
    r = invoke_cli("--home", home, "ingest", walk_csv(shared_data, home), "--dataset", "b5", "--split-col", "split",
                   "--time-col", "created", "--json")
    assert r.exit_code == 0, r.stderr
    tokens = {"editor": create_token(home, EDITOR, "editor"), "viewer": create_token(home, "val-viewer", "viewer")}
    server = Server(home)
    try:
        with server.client(tokens["editor"]) as c:
            for intent in FIRST:
                assert c.post("/datasets/b5/labels", json=label_where(intent)).status_code == 200
            r = c.post("/training", json={"dataset": "b5", "name": "intents", "method": "head", "label_col": LABEL_SET,
                                          "seed": 3, "head_C": 4.0})
            assert r.status_code == 202, r.text
            assert wait_job(c, r.json()["job_id"])["result"]["ref"] == "intents@1"
            assert c.put("/models/intents/aliases/production", json={"version": 1, "expected_current": None}).status_code == 200
        yield server, tokens
    finally:
        server.stop()


def test_retrain_routes(served):
    server, tokens = served
    with server.client(tokens["viewer"]) as c:
        p = c.get("/versions/intents/retrain").json()  # a bare name: production
        assert p["like"]["ref"] == "intents@1" and p["method"] == "head" and p["label_col"] == LABEL_SET
        assert p["args"]["seed"] == 3 and p["args"]["head_C"] == 4.0 and sorted(p["labels"]) == sorted(FIRST)
        r = c.post("/versions/intents/retrain")
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
    with server.client(tokens["editor"]) as c:
        r = c.post("/versions/nope@1/retrain")
        assert r.status_code == 404 and r.json()["fix"]
        assert c.get("/versions/" + "x" * 400 + "/retrain").status_code in (400, 404, 422)


def _unseen_candidate(home, cands: dict) -> tuple[dict, int]:
    """The candidate (of a pipeline run's dashboard ``cands``) holding most documents of the intent production
    never learnt, and how many of its documents are that intent's (the truth: the file's ``intent_src``)."""
    import pandas as pd

    from inhouse.analysis.candidates import candidate_doc_ids
    from inhouse.workspace.documents import read_documents
    from inhouse.workspace.store import Workspace

    ws = Workspace.open(home)
    truth = pd.read_csv(home / "b5-walk.csv").drop_duplicates("text").set_index("text")["intent_src"]
    docs = read_documents(ws, "b5", columns=["doc_id", "text"]).set_index("doc_id")["text"]
    count = {x["candidate"]: int((truth[docs[candidate_doc_ids(ws, "b5", cands["discovery_run"], x["candidate"])]]
                                  == UNSEEN).sum()) for x in cands["candidates"]}
    best = max(cands["candidates"], key=lambda x: count[x["candidate"]])
    return best, count[best["candidate"]]


@pytest.mark.browser
@pytest.mark.slow
def test_candidate_label_retrain_diff_promote_in_the_browser(served, browser):
    server, tokens = served
    c = server.client(tokens["editor"])
    page = open_page(browser, server.url, tokens["editor"])

    # ---- a pipeline run with production groups what it turned away: the unseen intent is a candidate
    r = c.post("/pipelines", json={"dataset": "b5", "model": "intents@production", "summaries": "none",
                                   "subtopics": False})
    assert r.status_code == 202, r.text
    run = wait_job(c, r.json()["job_id"], timeout=300)["result"]["run_id"]
    cands = c.get(f"/pipelines/{run}").json()["candidates"]
    assert cands["model"] == "intents@1" and cands["turned_away"] >= 10
    cand, unseen = _unseen_candidate(server.home, cands)
    disc = cands["discovery_run"]
    assert unseen >= 10 and unseen / cand["size"] >= 0.6, cand  # the criterion of a candidate of its own

    # ---- the Analyze dashboard: "Make a label…" into production's label set, the queue on its documents
    page.goto(f"/#/analyze/{run}")
    page.get_by_role("heading", name="What your labels miss").wait_for()
    card = page.locator(f"[data-candidate-card='{cand['candidate']}']")
    card.get_by_role("button", name="Make a label…").click()
    card.locator("select[name=label_col]").select_option(LABEL_SET)
    card.locator("input[name=label]").fill(UNSEEN)
    card.get_by_role("button", name="Create label and open the queue").click()
    page.wait_for_url("**/#/datasets/b5/label?*")
    page.locator(".queue-candidate").wait_for()
    info = page.locator(".queue-info").inner_text()
    assert f"only the {cand['size']} documents of candidate {disc}:{cand['candidate']}" in info
    confirmed = 0
    while page.locator(".doc-big").count():  # every document of the candidate without a label in 'intent'
        assert page.locator(".label-btn").first.get_attribute("data-label") == UNSEEN  # the new label is key 1
        doc = page.locator(".doc-big").get_attribute("data-doc")
        page.keyboard.press("1")
        page.get_by_text(f"Last: document {doc} → {UNSEEN}").wait_for()
        confirmed += 1
        page.locator(f".doc-big:not([data-doc='{doc}']), .doc-box .empty").first.wait_for()
    page.get_by_text("Nothing left to label here").wait_for()
    made = c.get("/datasets/b5/candidates/labels").json()["labels"]
    assert [(m["label"], m["label_col"], m["documents"]) for m in made] == [(UNSEEN, LABEL_SET, cand["size"])]
    assert c.get("/datasets/b5").json()["label_columns"][LABEL_SET]["values"][UNSEEN] == confirmed == unseen

    # ---- the model page offers to retrain like production, naming the new label
    page.goto("/#/models/intents")
    added = page.locator(".deploy-retrain-added")
    added.wait_for()
    rows = c.get("/versions/intents/retrain").json()["label_rows"][UNSEEN]  # the training split's, of those confirmed
    assert rows >= 8 and f"{UNSEEN} ({rows} rows)" in added.inner_text()
    assert "method head on minilm-l6" in page.locator(".deploy-retrain").inner_text()
    assert "null" not in page.locator(".deploy-retrain").inner_text()
    page.locator("#retrain-start").click()
    page.wait_for_url(re.compile(r"#/train/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    page.locator(".train-compare-prod").wait_for(timeout=120_000)
    assert UNSEEN in page.locator(".train-like").inner_text()
    job = c.get(f"/jobs/{job_id}").json()
    assert job["kind"] == "retrain" and job["status"] == "done" and job["params"]["like"] == "intents@1"
    assert job["result"]["ref"] == "intents@2" and job["result"]["labels_added"] == [UNSEEN]
    old, new = (c.get(f"/versions/intents@{n}").json()["manifest"] for n in (1, 2))
    assert new["training_args"] == old["training_args"] and new["base"] == old["base"]

    # ---- compare with production: flips, per-class deltas, the new label with its validation scores
    page.locator(".train-compare-prod").click()
    page.wait_for_url(re.compile(r"#/models/intents\?compare="))
    page.locator(".deploy-diff").wait_for(timeout=90_000)
    d = c.get("/jobs", params={"kind": "diff"}).json()["jobs"][0]["result"]
    assert d["old"]["ref"] == "intents@1" and d["new"]["ref"] == "intents@2" and d["split"] == "test"
    assert d["label_col"] == LABEL_SET and d["labelled"] == 32 + confirmed - rows
    assert page.locator(".deploy-diff").get_attribute("data-flipped") == str(d["flipped"]) and d["flipped"] >= 1
    assert page.locator(".deploy-diff svg.chart text.label").count() >= 5  # per-class deltas, the new label's too
    (row,) = d["new_labels"]
    assert row["label"] == UNSEEN and row["validation"]["support"] >= 1
    assert (row["candidate"]["discovery_run"], row["candidate"]["candidate"]) == (disc, cand["candidate"])
    cover = page.locator(".deploy-new-labels tr", has_text=UNSEEN).inner_text()
    assert f"from candidate {disc}:{cand['candidate']}" in cover  # the candidate the new label came from
    assert f"{row['validation']['f1']:.3f}" in cover and str(row["predicted"]) in cover
    shot(page, "deploy-retrain-diff")

    # ---- promote from the diff, behind the existing confirmation
    page.get_by_role("button", name="Promote intents@2 to production").click()
    dialog = page.locator("dialog.modal")
    dialog.locator(".deploy-flips").wait_for(timeout=60_000)
    assert f"{d['flipped']} of {d['documents']} predictions flip" in dialog.inner_text()
    dialog.get_by_role("button", name="Promote @2").click()
    page.locator(".page-head .badge", has_text="production → @2").wait_for()
    assert c.get("/models/intents/aliases").json()["aliases"]["production"] == 2
    last = [e for e in c.get("/models/intents/history").json()["events"] if e["action"] == "models.alias"][-1]
    assert last["user"] == EDITOR and last["details"]["previous"] == 1 and last["details"]["version"] == 2
    # the page now offers to retrain like @2, and says the labels have not moved since
    page.locator(".deploy-retrain button", has_text="Retrain like intents@2").wait_for()
    assert "retraining would give the same model" in page.locator(".deploy-retrain").inner_text()
    assert_clean(page)
    c.close()
    page.context.close()
