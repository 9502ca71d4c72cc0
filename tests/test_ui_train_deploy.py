"""The Train and Deploy screens (issue #11, flows 4 and 5) and the route they added, GET /versions/{ref}/weights.

One server per module on a 5-intent banking slice: the browser trains ``intents@1`` with the ``head`` method,
the API trains ``intents@2``; then the browser diffs them and promotes @2 through the confirmation dialog.
"""

from __future__ import annotations

import re

import pytest
from serverkit import Server, banking_slice, create_token, wait_job
from uikit import assert_clean, open_page, shot

EDITOR = "dana-editor"


@pytest.fixture(scope="module")
def served(tmp_path_factory, shared_data):
    from conftest import invoke_cli

    home = tmp_path_factory.mktemp("ui-traindeploy")
    csv = banking_slice(shared_data, home)
    r = invoke_cli("--home", home, "ingest", csv, "--dataset", "b5", "--label-col", "label", "--split-col", "split",
                   "--time-col", "created", "--json")
    assert r.exit_code == 0, r.stderr
    tokens = {"editor": create_token(home, EDITOR, "editor"), "viewer": create_token(home, "vic-viewer", "viewer")}
    server = Server(home)
    try:
        yield server, tokens
    finally:
        server.stop()


def test_weights_route_refuses_bad_refs(served):
    server, tokens = served
    with server.client(tokens["viewer"]) as c:
        r = c.get("/versions/nope@1/weights")
        assert r.status_code == 404 and r.json()["error"] == "not_found" and r.json()["fix"]
        assert c.get("/versions/" + "x" * 400 + "/weights").status_code in (400, 404, 422)
        assert c.get("/versions/nope/weights", params={"against": "y" * 400}).status_code == 422
    with server.client() as anon:
        assert anon.get("/versions/nope@1/weights").status_code == 401


@pytest.mark.browser
@pytest.mark.slow
def test_train_in_the_browser_then_diff_and_promote(served, browser):
    server, tokens = served
    page = open_page(browser, server.url, tokens["editor"])
    c = server.client(tokens["editor"])

    # ---- train: the form, its name check, then a head training from the UI
    page.goto("/#/train?dataset=b5")
    page.locator("select[name=label_col] option").first.wait_for(state="attached")
    assert page.locator("select[name=dataset]").input_value() == "b5"
    assert page.locator("input[name=name]").input_value() == "b5-classifier"
    assert page.locator("select[name=base] option[value=smollm2-135m]").count() == 0  # generative: not an encoder
    page.locator("select[name=base]").select_option("wordllama")  # static word vectors: nothing to fine-tune
    assert page.locator("input[name=method][value=full]").is_disabled() and "only 'head'" in page.locator(".train-method-note").inner_text()
    page.locator("select[name=base]").select_option("minilm-l6")
    assert page.locator("input[name=method][value=full]").is_enabled()
    page.locator("input[name=name]").fill("bad/name")
    page.get_by_role("button", name="Start training").click()
    assert "without '@', '/'" in page.locator(".train-name-msg").inner_text()
    assert "#/train/" not in page.url
    page.locator("input[name=name]").fill("intents")
    page.locator("input[name=method][value=head]").check()
    page.locator("summary", has_text="Advanced options").click()
    # the methods and the advanced fields come from GET /training/methods: every TrainingArguments field is there
    schema = c.get("/training/methods").json()
    assert page.locator("input[name=method]").count() == len(schema["methods"]) >= 4
    for arg in schema["arguments"]:
        if arg["name"] not in ("base", "method", "label_col"):
            assert page.locator(f".train-advanced [name={arg['name']}]").count() == 1, arg
    page.locator("input[name=seed]").fill("0")
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url(re.compile(r"#/train/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    page.locator(".job-panel .progress").first.wait_for(timeout=60_000)
    shot(page, "train-progress")
    page.locator(".train-compare").wait_for(timeout=90_000)
    page.locator(".train-weights .train-head-note").wait_for()
    page.locator(".train-eval").scroll_into_view_if_needed()
    page.evaluate("document.querySelector('.train-eval').scrollIntoView()")
    shot(page, "train-results")

    job = c.get(f"/jobs/{job_id}").json()
    assert job["status"] == "done" and job["result"]["ref"] == "intents@1" and job["params"]["args"]["method"] == "head"
    evs = c.get("/versions/intents@1/evaluations").json()["evaluations"]
    ev = next(e["metrics"] for e in evs if e["dataset"] == "b5" and e["split"] == "test")
    compare = page.locator(".train-compare").inner_text()
    assert f"{ev['macro_f1']:.3f}" in compare and f"{ev['zero_shot']['macro_f1']:.3f}" in compare
    assert "zero-shot" in compare and ev["zero_shot"]["model"] in compare
    # the page names the rule the version abstains by (before: "below its confidence threshold", the old rule)
    assert ev["abstain"]["enabled"] and ev["abstain"]["distance_threshold"] is not None
    assert "far from everything it was trained on" in compare
    # the confusion matrix: one number per non-empty cell, the same numbers as the API's
    cm = ev["confusion_matrix"]
    cells = [int(t) for t in page.locator(".train-heatmap svg text.cell").all_text_contents()]
    assert sorted(cells) == sorted(v for row in cm["matrix"] for v in row if v) and sum(cells) == ev["n"]
    # per-class table rows match the API
    for label, m in ev["per_class"].items():
        if m["support"]:
            row = page.locator(".train-eval table tr", has_text=label).first.inner_text()
            assert f"{m['f1']:.3f}" in row
    # weights: head leaves the encoder at 0 change; the chart shows the head's per-label norms
    w = c.get("/versions/intents@1/weights").json()
    assert w["overall"]["relative_change"] == 0 and w["layers"] == [] and w["encoder_changed"] is False
    assert "only the small linear classifier head" in page.locator(".train-head-note").inner_text()
    bars = page.locator(".train-weights svg.chart text.label").all_text_contents()
    assert sorted(bars) == sorted(x["label"] for x in w["head"]["largest_label_norms"])
    assert "tensors" not in w and "tensors" in c.get("/versions/intents@1/weights", params={"tensors": True}).json()

    # ---- a second version through the API (fewer shots, another seed: some predictions flip)
    r = c.post("/training", json={"dataset": "b5", "name": "intents", "method": "head", "shots": 3, "seed": 7})
    assert r.status_code == 202, r.text
    assert wait_job(c, r.json()["job_id"])["result"]["ref"] == "intents@2"
    assert c.put("/models/intents/aliases/production", json={"version": 1, "expected_current": None}).status_code == 200

    # ---- deploy: list, versions, diff
    page.locator("a", has_text="Compare with another version / promote").click()
    page.wait_for_url(re.compile(r"#/models/intents$"))
    page.locator("#diff-run").wait_for()
    assert page.get_by_role("button", name="Evaluate on b5/test").count() == 1  # only @2 is not evaluated yet
    assert page.locator("select[name=old]").input_value() == "intents@1"
    assert page.locator("select[name=new]").input_value() == "intents@2"
    page.locator("select[name=split] option[value=test]").wait_for(state="attached")
    page.locator("#diff-run").click()
    page.locator(".deploy-diff").wait_for(timeout=60_000)
    d = c.get("/diff", params={"old": "intents@1", "new": "intents@2", "dataset": "b5", "split": "test"}).json()
    assert page.locator(".deploy-diff").get_attribute("data-flipped") == str(d["flipped"])
    assert f"{d['flipped']} of {d['documents']}" in page.locator(".deploy-diff .stats").inner_text()
    assert page.locator(".deploy-diff svg.chart text.label").count() >= 5
    ran = c.get("/jobs", params={"kind": "diff"}).json()["jobs"]  # the page's diff ran as a job, not in a request
    assert ran and ran[0]["status"] == "done" and ran[0]["result"]["flipped"] == d["flipped"]
    shot(page, "deploy-versions")

    # ---- promote @2 with the confirmation: it names both versions and how many predictions flip
    page.locator("button[data-version='2']").click()
    dialog = page.locator("dialog.modal")
    dialog.locator(".deploy-flips").wait_for(timeout=60_000)
    text = dialog.inner_text()
    assert "intents@1" in text and "intents@2" in text and f"{d['flipped']} of {d['documents']} predictions flip" in text
    assert (dialog.locator(".deploy-worse").count() == 1) == (d["metrics"]["macro_f1"]["delta"] < 0)
    shot(page, "deploy-promote-confirm")
    dialog.get_by_role("button", name="Promote @2").click()
    page.locator(".page-head .badge", has_text="production → @2").wait_for()
    assert c.get("/models/intents/aliases").json()["aliases"]["production"] == 2
    last = [e for e in c.get("/models/intents/history").json()["events"] if e["action"] == "models.alias"][-1]
    assert last["user"] == EDITOR and last["details"]["previous"] == 1 and last["details"]["version"] == 2
    row = page.locator("table tr", has_text="intents@production: @1 → @2").first.inner_text()
    assert EDITOR in row

    page.goto("/#/models")
    page.locator("table tr", has_text="intents").first.wait_for()
    assert "@2" in page.locator("table tr", has_text="intents").first.inner_text()
    assert_clean(page)
    c.close()
    page.context.close()


@pytest.mark.browser
def test_viewers_see_everything_but_cannot_train_or_promote(served, browser):
    server, tokens = served
    page = open_page(browser, server.url, tokens["viewer"])
    page.goto("/#/train?dataset=b5")
    start = page.get_by_role("button", name="Start training")
    start.wait_for()
    assert start.is_disabled() and page.locator("input[name=name]").is_disabled()
    with server.client(tokens["viewer"]) as c:
        has_model = bool(c.get("/models", params={"name": "intents"}).json()["models"])
    if has_model:  # after the editor's test: the versions are visible, promotion is not allowed
        page.goto("/#/models/intents")
        page.locator("#diff-run").wait_for()
        assert page.locator("#diff-run").is_enabled()  # reading a diff changes nothing
        for b in page.locator("button[data-version], .deploy-eval button").all():
            assert b.is_disabled() and "editor" in b.get_attribute("title")
    else:
        page.goto("/#/models")
        page.get_by_text("No trained models yet").wait_for()
    assert_clean(page)
    page.context.close()
