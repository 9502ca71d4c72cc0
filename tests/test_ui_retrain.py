"""Close the loop from the UI (issue 20 §4): a new label in the production model's label set -> retrain like
production -> compare with production (flips, per-class deltas, what the new version now covers) -> promote
behind the existing confirmation, in a real browser against a real ``inhouse serve``.

Production is ``intents@1`` (head on minilm-l6) trained on four banking77 intents that people labelled into the
label set ``intent``; the walk starts where the candidate action (issue 20 §2) ends: a new label's documents
labelled into that set (:func:`candidate_to_label_hook`).
"""

from __future__ import annotations

import re

import pytest
from loopkit import FIRST, LABEL_SET, NEW_LABEL, label_where, loop_csv
from serverkit import Server, create_token, wait_job
from uikit import assert_clean, open_page, shot

EDITOR = "erin-editor"


@pytest.fixture(scope="module")
def served(tmp_path_factory, shared_data):
    from conftest import invoke_cli

    home = tmp_path_factory.mktemp("ui-retrain")
    r = invoke_cli("--home", home, "ingest", loop_csv(shared_data, home), "--dataset", "b5", "--split-col", "split",
                   "--json")
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


def candidate_to_label_hook(c, page) -> None:
    """HOOK for issue 20 §2 (branch h/candidates): the step before retraining, a new label in the production
    model's label set with its documents labelled. Today the label action through REST
    (POST /datasets/{name}/labels, what the Label screen sends). Once the candidate action is merged, this is
    where the browser walks from the Analyze dashboard's candidate ("Make a label…" into the label set
    ``intent``, then confirming its documents in the queue) on data where the model turns that intent away;
    the rest of the test stays as it is."""
    r = c.post("/datasets/b5/labels", json=label_where(NEW_LABEL))
    assert r.status_code == 200 and r.json()["count"] == 20, r.text


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


@pytest.mark.browser
@pytest.mark.slow
def test_new_label_retrain_diff_promote_in_the_browser(served, browser):
    server, tokens = served
    c = server.client(tokens["editor"])
    page = open_page(browser, server.url, tokens["editor"])
    candidate_to_label_hook(c, page)

    # ---- the model page offers to retrain like production, naming the new label
    page.goto("/#/models/intents")
    added = page.locator(".deploy-retrain-added")
    added.wait_for()
    assert f"{NEW_LABEL} (12 rows)" in added.inner_text()  # the training split's rows of the new label
    assert "method head on minilm-l6" in page.locator(".deploy-retrain").inner_text()
    assert "null" not in page.locator(".deploy-retrain").inner_text()
    page.locator("#retrain-start").click()
    page.wait_for_url(re.compile(r"#/train/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    page.locator(".train-compare-prod").wait_for(timeout=120_000)
    assert NEW_LABEL in page.locator(".train-like").inner_text()
    job = c.get(f"/jobs/{job_id}").json()
    assert job["kind"] == "retrain" and job["status"] == "done" and job["params"]["like"] == "intents@1"
    assert job["result"]["ref"] == "intents@2" and job["result"]["labels_added"] == [NEW_LABEL]
    old, new = (c.get(f"/versions/intents@{n}").json()["manifest"] for n in (1, 2))
    assert new["training_args"] == old["training_args"] and new["base"] == old["base"]

    # ---- compare with production: flips, per-class deltas, the new label with its validation scores
    page.locator(".train-compare-prod").click()
    page.wait_for_url(re.compile(r"#/models/intents\?compare="))
    page.locator(".deploy-diff").wait_for(timeout=90_000)
    d = c.get("/jobs", params={"kind": "diff"}).json()["jobs"][0]["result"]
    assert d["old"]["ref"] == "intents@1" and d["new"]["ref"] == "intents@2" and d["split"] == "test"
    assert d["label_col"] == LABEL_SET and d["labelled"] == 40
    assert page.locator(".deploy-diff").get_attribute("data-flipped") == str(d["flipped"]) and d["flipped"] >= 1
    assert page.locator(".deploy-diff svg.chart text.label").count() >= 5  # per-class deltas, the new label's too
    (row,) = d["new_labels"]
    assert row["label"] == NEW_LABEL and row["validation"]["support"] >= 1
    cover = page.locator(".deploy-new-labels tr", has_text=NEW_LABEL).inner_text()
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
