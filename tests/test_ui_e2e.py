"""The whole path in a real browser, on the demo corpus, as a contact-center lead would walk it.

sign in → upload → map columns → discover → label topics → train (``head``) →
compare with zero-shot → promote → run the pipeline → dashboard; one
screenshot per screen under ``test-artifacts/ui/`` (the README's pictures when
``$INHOUSE_UPDATE_SCREENSHOTS`` is set). A second walk signs in as a viewer
and checks that no screen lets them change anything, in the UI or behind it.

Every step is done by clicking and typing in Chromium; the API is read only to
check what the screens show and what the workspace stored.
"""

from __future__ import annotations

from pathlib import Path
import re
from collections import Counter

import pandas as pd
import pytest
from serverkit import Server, create_token
from uikit import assert_clean, open_page, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]
N = 400
LEAD, VIEWER = "lead", "watcher"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from inhouse.demo.data import write_csv

    home = tmp_path_factory.mktemp("ui-e2e")
    csv = write_csv(home / "contact_center.csv", n=N, seed=11)
    tokens = {LEAD: create_token(home, LEAD, "admin"), VIEWER: create_token(home, VIEWER, "viewer")}
    server = Server(home)
    try:
        yield server, tokens, csv
    finally:
        server.stop()


def _majority_intents(c, run: dict, truth: pd.DataFrame, home: Path) -> dict[int, str]:
    """What a person reading each topic's documents would call it: its most common tagged intent."""
    docs = c.get("/datasets/calls/documents", params={"limit": 1000}).json()["documents"]
    intent = dict(zip(truth["message_id"], truth["intent"].fillna("")))
    by_doc = {d["doc_id"]: intent.get(d["source_id"], "") for d in docs}
    a = pd.read_parquet(home / run["assignments_path"])  # a viewer sees paths relative to the workspace
    out = {}
    for t in run["topics"]:
        if t["topic"] < 0:
            continue
        votes = Counter(by_doc[d] for d in a.loc[a.topic == t["topic"], "doc_id"] if by_doc.get(d))
        if votes:
            out[t["topic"]] = votes.most_common(1)[0][0]
    return out


def test_the_whole_path_from_upload_to_dashboard(served, browser):
    server, tokens, csv = served
    truth = pd.read_csv(csv)
    page = open_page(browser, server.url, tokens[LEAD])  # signs in through the form
    c = server.client(tokens[VIEWER])

    # ---- import: preview, the guessed mapping, no label column (the topics will give the labels)
    page.goto("/#/import")
    page.set_input_files("#import-file", str(csv))
    page.locator(".import-rows tbody tr").first.wait_for()
    guessed = {r: page.locator(f"#map-{r}").input_value() for r in ("text", "label", "time", "id", "split")}
    assert guessed == {"text": "text", "label": "intent", "time": "timestamp", "id": "message_id", "split": "split"}
    page.select_option("#map-label", "")
    page.fill("#dataset-name", "calls")
    shot(page, "e2e-1-import", readme=True)
    page.click("#import-go")
    page.get_by_text("Import summary: calls").wait_for()
    ds = c.get("/datasets/calls").json()
    assert ds["rows"] == N and not ds["labels"]

    # ---- explore: discover topics from the UI
    page.click("#to-explore")
    page.wait_for_url(re.compile(r"#/datasets/calls$"))
    page.get_by_text("No topics yet — run discovery").wait_for()
    page.click("#discover")
    page.locator(".job-panel").wait_for()
    page.locator(".theme-card").first.wait_for(timeout=120_000)  # themes first, then their sub-topics
    page.click("#level-topics")
    page.locator(".topic-card").first.wait_for()
    run = c.get("/datasets/calls/topics/1").json()
    assert page.locator(".topic-card").count() == min(8, len([t for t in run["topics"]]))
    shot(page, "e2e-2-explore", readme=True)

    # ---- label: each topic becomes a label in one action, named as its documents read
    names = _majority_intents(c, run, truth, server.home)
    assert len(set(names.values())) >= 3, names
    for topic, name in names.items():
        page.goto(f"/#/datasets/calls/label?topic={topic}&run=1")
        page.locator(".topic-detail h2", has_text=f"Topic {topic}:").wait_for()  # this topic's panel, not the last one's
        page.get_by_label("label for this topic").fill(name)
        page.locator("[data-action=label-topic]").click()
        page.locator(".ok-box").wait_for()
    page.locator("svg.chart").first.wait_for()
    shot(page, "e2e-3-label", readme=True)
    counts = c.get("/datasets/calls").json()["labels"]
    assert set(counts) == set(names.values()) and sum(counts.values()) > N * 0.8

    # ---- train with the fast head method, then its evaluation beside zero-shot
    page.goto("/#/train?dataset=calls")
    page.locator("select[name=label_col] option").first.wait_for(state="attached")
    page.locator("input[name=name]").fill("intents")
    page.locator("input[name=method][value=head]").check()
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url(re.compile(r"#/train/\d+$"))
    page.locator(".job-panel .progress").first.wait_for(timeout=60_000)
    page.locator(".train-compare").wait_for(timeout=120_000)
    page.evaluate("document.querySelector('.train-compare').scrollIntoView()")
    shot(page, "e2e-4-train", readme=True)
    ev = next(e["metrics"] for e in c.get("/versions/intents@1/evaluations").json()["evaluations"]
              if e["dataset"] == "calls" and e["split"] == "test")
    compare = page.locator(".train-compare").inner_text()
    assert f"{ev['macro_f1']:.3f}" in compare and f"{ev['zero_shot']['macro_f1']:.3f}" in compare

    # ---- deploy: promote intents@1 to production behind the confirmation
    page.locator("a", has_text="Compare with another version / promote").click()
    page.wait_for_url(re.compile(r"#/models/intents$"))
    page.locator("button[data-version='1']").click()
    dialog = page.locator("dialog.modal")
    dialog.wait_for()
    assert "intents@1" in dialog.inner_text()
    shot(page, "e2e-5-promote", readme=True)
    dialog.get_by_role("button", name="Promote @1").click()
    page.locator(".page-head .badge", has_text="production → @1").wait_for()
    assert c.get("/models/intents/aliases").json()["aliases"]["production"] == 1

    # ---- analyze: run the pipeline with the production version, weekly, then the dashboard
    page.goto("/#/analyze?dataset=calls")
    assert page.get_by_label("Model version").input_value() == "intents@production"
    page.get_by_label("Time bucket").select_option("week")
    page.get_by_role("button", name="Run pipeline").click()
    page.locator(".job-panel").wait_for()
    page.wait_for_url("**/#/analyze/*", timeout=180_000)
    run_id = int(page.url.rsplit("/", 1)[1])
    page.get_by_role("heading", name="Category volumes per week").wait_for()
    d = c.get(f"/pipelines/{run_id}").json()
    assert d["user"] == LEAD and d["model"] == "intents@1"
    assert page.locator(".summary-card:not(.candidate)").count() == len(d["summaries"]) > 0
    shot(page, "e2e-6-dashboard", readme=True)

    # ---- and the overview now shows it all
    page.goto("/#/")
    page.locator(".stat").first.wait_for()
    shot(page, "e2e-7-overview", readme=True)
    assert_clean(page)
    page.context.close()
    c.close()


# (screen, whether it holds controls that change something: those must be there, and disabled)
SCREENS = [("#/", False), ("#/import", False), ("#/datasets/calls", True), ("#/datasets/calls/label?topic=0&run=1", True),
           ("#/train?dataset=calls", True), ("#/models", False), ("#/models/intents", False),
           ("#/analyze?dataset=calls", True), ("#/jobs", False), ("#/access", False)]


def test_a_viewer_sees_every_screen_but_can_change_nothing(served, browser):
    server, tokens, _ = served
    with server.client(tokens[VIEWER]) as c:
        if not c.get("/datasets").json()["datasets"]:
            pytest.skip("runs after the whole-path test, on what it made")
        before = (c.get("/datasets/calls/labels").json()["batches"], c.get("/models/intents/aliases").json(),
                  c.get("/jobs", params={"limit": 1000}).json()["jobs"])
    page = open_page(browser, server.url, tokens[VIEWER])
    page.locator(".banner", has_text="viewer").wait_for()
    disabled = {}
    for screen, changes in SCREENS:
        page.goto("/" + screen)
        page.locator("main h1, main h2").first.wait_for()
        page.locator("main .loading").first.wait_for(state="detached")
        if changes:
            page.locator("main [data-needs][disabled]").first.wait_for(state="attached", timeout=15_000)
            page.wait_for_timeout(300)  # screens fill in parts: let the last part land
        # every control that changes something is there but disabled, with the reason as its tooltip
        live = page.locator("main [data-needs='editor']:not([disabled]), main [data-needs='admin']:not([disabled])")
        assert live.count() == 0, (screen, live.all_inner_texts())
        titles = page.locator("main [data-needs][disabled]").evaluate_all("els => els.map(e => e.title)")
        assert all(t.startswith("Needs the") for t in titles), (screen, titles)
        disabled[screen] = len(titles)
    # the keyboard labeller takes no keys from a viewer
    page.goto("/#/datasets/calls/label")
    page.locator("main h1, main h2").first.wait_for()
    page.keyboard.press("1")
    # and the server refuses a change made from the page's own script, cookie and header included
    status = page.evaluate("""async () => (await fetch('/models/intents/aliases/production', {method: 'PUT',
        headers: {'Content-Type': 'application/json', 'X-Inhouse-Client': 'web-ui'},
        body: JSON.stringify({version: 1, expected_current: 1})})).status""")
    assert status == 403
    with server.client(tokens[VIEWER]) as c:
        after = (c.get("/datasets/calls/labels").json()["batches"], c.get("/models/intents/aliases").json(),
                 c.get("/jobs", params={"limit": 1000}).json()["jobs"])
    assert after == before
    shot(page, "viewer-label")
    assert_clean(page)
    page.context.close()
