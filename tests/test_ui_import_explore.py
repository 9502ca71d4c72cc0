"""Import and Explore: the preview and document routes over HTTP, and both screens driven in a real browser.

One module-scoped ``inhouse serve`` holds a 300-row demo corpus ("calls", ingested with the real CLI); the
browser tests import another file through the Import screen and run topic discovery from the Explore screen.
"""

from __future__ import annotations

import gzip
import io
import json
import re

import pytest
from serverkit import Server, create_token
from uikit import assert_clean, open_page, shot

N = 300
SCROLL_TO = "e => window.scrollTo(0, e.getBoundingClientRect().top + window.scrollY - 64)"  # below the sticky bar


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from conftest import invoke_cli

    from inhouse.demo.data import write_csv

    home = tmp_path_factory.mktemp("ui-importx")
    csv = write_csv(home / "calls.csv", n=N, seed=3)
    r = invoke_cli("--home", home, "ingest", csv, "--dataset", "calls", "--label-col", "intent", "--time-col",
                   "timestamp", "--split-col", "split", "--id-col", "message_id", "--json")
    assert r.exit_code == 0, r.stderr
    tokens = {role: create_token(home, f"{role}-user", role) for role in ("editor", "viewer")}
    server = Server(home)
    try:
        yield server, tokens, home
    finally:
        server.stop()


def _demo_bytes(tmp_path, n=N, seed=11) -> bytes:
    from inhouse.demo.data import write_csv

    return write_csv(tmp_path / "d.csv", n=n, seed=seed).read_bytes()


def _preview(c, name: str, data: bytes, **form):
    return c.post("/datasets/preview", files={"file": (name, data)}, data={k: str(v) for k, v in form.items()})


def _tmp_files(home):
    return sorted(p.name for p in (home / "tmp").glob("*")) if (home / "tmp").is_dir() else []


# ------------------------------------------------------------------- API ----

def test_preview_guesses_the_mapping_reads_the_first_rows_and_leaves_nothing(served, tmp_path):
    server, tokens, home = served
    data = _demo_bytes(tmp_path)
    with server.client(tokens["editor"]) as c:
        r = _preview(c, "Contact Center (June).csv", data, n=7)
        assert r.status_code == 200, r.text
        p = r.json()
    assert p["format"] == "csv" and p["columns"] == ["message_id", "timestamp", "channel", "customer_id", "text",
                                                     "intent", "split"]
    assert len(p["rows"]) == 7 and p["rows_read"] == N and p["problems"] == []
    first = data.decode().splitlines()[1].split(",")
    assert p["rows"][0]["message_id"] == first[0] and p["rows"][0]["timestamp"] == first[1]
    assert p["guess"] == {"text": "text", "label": "intent", "time": "timestamp", "id": "message_id", "split": "split"}
    assert set(p["notes"]) == {"text", "label", "time", "id", "split"} and "unique" in p["notes"]["id"]
    assert p["dataset"] == "Contact_Center_June" and p["dataset_exists"] is False and p["partial"] is False
    assert not [f for f in _tmp_files(home) if f.startswith("preview-")]


def test_preview_of_other_formats_and_odd_columns(served, tmp_path):
    server, tokens, _ = served
    rows = [{"uid": f"u{i}", "body": f"message number {i} about my parcel", "when": f"2026-01-{i % 28 + 1:02d}",
             "sentiment": ["pos", "neg"][i % 2], "score": i} for i in range(40)]
    jsonl = "\n".join(json.dumps(r) for r in rows).encode() + b"\n{not json}\n"
    import pandas as pd

    buf = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buf)
    with server.client(tokens["editor"]) as c:
        p = _preview(c, "feedback.jsonl", jsonl).json()
        assert p["guess"] == {"text": "body", "label": "sentiment", "time": "when", "id": "uid", "split": None}
        assert p["problems"] == [{"row": 41, "line": 41, "reason": "malformed row", "detail": p["problems"][0]["detail"],
                                  "raw": "{not json}\n"}]
        q = _preview(c, "feedback.parquet", buf.getvalue()).json()
        assert q["format"] == "parquet" and q["guess"]["text"] == "body" and q["guess"]["label"] == "sentiment"
        assert q["rows"][3]["score"] == 3
        g = _preview(c, "f.tsv.gz", gzip.compress(b"a\tb\nx y z\t1\n")).json()
        assert g["format"] == "tsv" and g["rows"] == [{"a": "x y z", "b": "1"}] and g["guess"]["text"] == "a"
        good = b"".join(b"hello number %d,2026-01-%02d\n" % (i, i + 1) for i in range(10))
        odd = _preview(c, "odd.csv", b"body,created\n" + good + b" ,2026-01-13\nfine,yesterday\n").json()
        assert odd["guess"]["text"] == "body" and odd["guess"]["time"] == "created"  # 11 of 12 dates parse
        assert odd["checks"]["body"]["text"] == {"count": 1, "examples": [
            {"row": 11, "reason": "empty text", "detail": "column 'body' is empty", "value": " "}]}
        bad_time = odd["checks"]["created"]["time"]
        assert bad_time["count"] == 1 and bad_time["examples"][0]["row"] == 12
        assert bad_time["examples"][0]["reason"] == "bad timestamp" and "yesterday" in bad_time["examples"][0]["detail"]
        dup = _preview(c, "dup.csv", b"a,a\n1,2\n").json()  # a repeated name is renamed, as the ingest does
        assert dup["columns"] == ["a", "a_2"] and dup["rows"] == [{"a": "1", "a_2": "2"}]
        assert dup["warnings"] == ["renamed columns: 'a' -> 'a_2' (clashes with column 1)"]
        semi = _preview(c, "semi.csv", b"text;label\nhello there;a\n").json()
        assert semi["columns"] == ["text;label"] and "';'" in semi["warnings"][0]


def test_preview_reads_only_the_beginning_of_a_large_file(served, tmp_path):
    server, tokens, home = served
    line = b"%d,a long enough text for the preview to stop early %s,lbl\n"
    data = b"id,text,label\n" + b"".join(line % (i, b"x" * 80) for i in range(40_000))  # ~5 MB
    assert len(data) > 4 << 20
    with server.client(tokens["editor"]) as c:
        p = _preview(c, "big.csv", data, n=3).json()
    assert p["partial"] is True and p["bytes_read"] <= 2 << 20 and p["rows_read"] == 500 and len(p["rows"]) == 3
    assert p["problems"] == []
    assert not [f for f in _tmp_files(home) if f.startswith("preview-")]


@pytest.mark.parametrize("name,data,status,words", [
    ("empty.csv", b"", 422, ["'empty.csv' is empty"]),
    ("notes.docx", b"PK\x03\x04", 422, ["expected one of"]),
    ("binary.csv", b"a,b\n\xff\xfe\x00\x01,\xff\n\xfe\xfe,\xff\n", 422, ["binary.csv", "not valid utf-8", "encoding"]),
    ("one-bad.csv", b"a,b\n\x00\xff\xfe,1\n", 422, ["one-bad.csv, row 1", "undecodable", "UTF-8"]),
    ("broken.parquet", b"not parquet at all", 422, ["broken.parquet", "not a readable Parquet"]),
    ("lists.jsonl", b"[1, 2]\n\"x\"\n", 422, ["lists.jsonl, row 1", "expected a JSON object", "format"]),
    ("damaged.csv.gz", b"not gzip at all", 422, ["damaged.csv.gz", "compressed data is damaged"]),
    ("blank.tsv", b"\n\n", 422, ["no columns found", "header"]),
])
def test_preview_refuses_bad_files_with_the_file_row_and_fix(served, name, data, status, words):
    server, tokens, home = served
    with server.client(tokens["editor"]) as c:
        r = _preview(c, name, data)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["fix"], body
    for w in words:
        assert w in body["message"] + body["fix"], body
    assert "preview-" not in body["message"]  # the temporary copy's name never shows
    assert not [f for f in _tmp_files(home) if f.startswith("preview-")]


def test_preview_checks_role_and_form(served):
    server, tokens, _ = served
    with server.client(tokens["viewer"]) as c:
        assert _preview(c, "a.csv", b"text\nhi\n").status_code == 403
    with server.client(tokens["editor"]) as c:
        assert _preview(c, "a.csv", b"text\nhi\n", n=0).status_code == 422
        assert _preview(c, "a.csv", b"text\nhi\n", delimiter="ab").status_code == 422
        assert _preview(c, "a.csv", b"text\nhi\n", encoding="no-such-codec").status_code in (400, 422)
        r = _preview(c, "a.csv", b"text\nhi\n", encoding="utf-16")  # no byte-order mark
        assert r.status_code == 422 and "a.csv: cannot be read as utf-16" in r.json()["message"]
        assert c.post("/datasets/preview").status_code == 422
    with server.client() as c:
        assert _preview(c, "a.csv", b"text\nhi\n").status_code == 401


def test_document_detail(served):
    server, tokens, _ = served
    with server.client(tokens["viewer"]) as c:
        listed = c.get("/datasets/calls/documents", params={"limit": 3, "offset": 10}).json()["documents"][0]
        d = c.get(f"/datasets/calls/documents/{listed['doc_id']}").json()
        assert {k: d[k] for k in ("doc_id", "text", "label", "time", "split", "source_id")} == \
            {k: listed[k] for k in ("doc_id", "text", "label", "time", "split", "source_id")}
        assert d["source_row"] == 11 and set(d["meta"]) == {"channel", "customer_id"} and d["prediction"] is None
        r = c.get(f"/datasets/calls/documents/{N + 5}")
        assert r.status_code == 404 and "not found" in r.json()["message"] and r.json()["fix"]
        assert c.get("/datasets/calls/documents/-1").status_code == 422
        assert c.get("/datasets/calls/documents/abc").status_code == 422
        assert c.get(f"/datasets/calls/documents/{2**70}").status_code == 422
        assert c.get("/datasets/nope/documents/1").status_code == 404
        r = c.get("/datasets/calls/documents/1", params={"model": "no-such-model"})
        assert r.status_code == 404, r.text


@pytest.fixture(scope="module")
def trained(served):
    """A `head` classifier on wordllama (fast on a CPU): what prediction filters and details need."""
    from conftest import invoke_cli

    _, _, home = served
    r = invoke_cli("--home", home, "train", "--dataset", "calls", "--name", "calls-intents", "--method", "head",
                   "--base", "wordllama", "--json")
    assert r.exit_code == 0, r.stderr
    return r.json["ref"]


@pytest.mark.slow
def test_document_detail_with_a_model_prediction(served, trained):
    from conftest import invoke_cli

    server, tokens, home = served
    with server.client(tokens["viewer"]) as c:
        unstored = c.get("/datasets/calls/documents/1", params={"model": trained}).json()["prediction"]
        assert not unstored["stored"] and unstored["label"]  # one text: computed for this request alone
        # only the test split is classified (the browser test below meets the rest unclassified)
        r = invoke_cli("--home", home, "classify", trained, "--dataset", "calls", "--split", "test")
        assert r.exit_code == 0, r.stderr
        assert c.get("/datasets/calls/documents", params={"model": trained}).json()["error"] == "not_classified"
        listed = c.get("/datasets/calls/documents", params={"model": trained, "split": "test", "limit": 5}).json()
        for row in listed["documents"]:
            d = c.get(f"/datasets/calls/documents/{row['doc_id']}", params={"model": trained}).json()
            p = d["prediction"]
            assert p["model"] == trained and p["stored"] and p["label"] == row["predicted"]
            assert p["label"] == p["top"][0]["label"] or p["abstained"]
            assert abs(p["score"] - row["predicted_score"]) < 1e-5
            assert [t["score"] for t in p["top"]] == sorted((t["score"] for t in p["top"]), reverse=True)


def test_topic_documents_and_topic_membership(served, tmp_path):
    import time

    server, tokens, _ = served
    with server.client(tokens["editor"]) as c:
        r = c.post("/datasets", files={"file": ("small.csv", _demo_bytes(tmp_path, n=150, seed=5))},
                   data={"dataset": "small", "label_col": "intent", "time_col": "timestamp"})
        assert r.status_code == 200, r.text
        job = c.post("/datasets/small/topics", json={"model": "wordllama", "min_topic_size": 5}).json()["job_id"]
        for _ in range(600):
            j = c.get(f"/jobs/{job}").json()
            if j["status"] in ("done", "failed", "cancelled"):
                break
            time.sleep(0.2)
        assert j["status"] == "done", j
        run = j["result"]["run_id"]
        topics = c.get(f"/datasets/small/topics/{run}").json()["topics"]
        t = max(topics, key=lambda t: t["size"])
        page1 = c.get(f"/datasets/small/topics/{run}/documents", params={"topic": t["topic"], "limit": 4}).json()
        page2 = c.get(f"/datasets/small/topics/{run}/documents",
                      params={"topic": t["topic"], "limit": 4, "offset": 4}).json()
        assert page1["total"] == t["size"] and len(page1["documents"]) == 4
        sims = [d["similarity"] for d in page1["documents"] + page2["documents"]]
        assert sims == sorted(sims, reverse=True)
        assert not {d["doc_id"] for d in page1["documents"]} & {d["doc_id"] for d in page2["documents"]}
        first = page1["documents"][0]
        d = c.get(f"/datasets/small/documents/{first['doc_id']}").json()
        assert d["text"] == first["text"]
        assert d["topics"][0] == {**d["topics"][0], "run_id": run, "topic": t["topic"], "name": t["name"]}
        r = c.get(f"/datasets/small/topics/{run}/documents", params={"topic": 10_000})
        assert r.status_code == 404 and "topics are 0.." in r.json()["message"]
        assert c.get(f"/datasets/small/topics/{run + 50}/documents", params={"topic": 0}).status_code == 404
        assert c.get(f"/datasets/small/topics/{run}/documents").status_code == 422
        assert c.get(f"/datasets/small/topics/{run}/documents", params={"topic": -2}).status_code == 422
        assert c.get("/datasets/nope/topics/1/documents", params={"topic": 0}).status_code == 404


# --------------------------------------------------------------- browser ----

@pytest.mark.browser
def test_import_screen_previews_maps_uploads_and_shows_the_quarantine(served, browser, tmp_path):
    server, tokens, _ = served
    lines = _demo_bytes(tmp_path).decode().splitlines(keepends=True)
    lines.insert(51, "M999991,2026-06-03T10:00:00Z,chat,C1,too,many,fields,here\n")      # data row 51
    lines.insert(121, "M999992,not-a-date,chat,C2,where is my card,card_delivery,train\n")  # data row 121
    path = tmp_path / "June export.csv"
    path.write_text("".join(lines), encoding="utf-8")
    page = open_page(browser, server.url, tokens["editor"])
    page.goto("/#/import")
    page.set_input_files("#import-file", str(path))
    page.locator(".import-rows tbody tr").first.wait_for()
    assert page.locator(".import-rows tbody tr").count() == 20
    assert {r: page.locator(f"#map-{r}").input_value() for r in ("text", "label", "time", "id", "split")} == \
        {"text": "text", "label": "intent", "time": "timestamp", "id": "message_id", "split": "split"}
    assert page.locator("#dataset-name").input_value() == "June_export"
    assert "row 51" in page.locator(".warn-box").first.inner_text()  # the preview already names the bad rows
    checks = page.locator(".import-checks")
    assert "row 121" in checks.inner_text() and "bad timestamp" in checks.inner_text()
    page.select_option("#map-time", "")
    assert checks.inner_text() == ""  # no time column: nothing to warn about
    page.select_option("#map-time", "timestamp")
    page.fill("#dataset-name", "bad name!")
    assert page.locator("#import-go").is_disabled()
    page.fill("#dataset-name", "calls")
    page.get_by_text("This dataset exists: the rows are added to it").wait_for()
    page.fill("#dataset-name", "june")
    page.select_option("#map-id", "")
    page.select_option("#map-id", "message_id")
    assert page.locator("#import-go").is_enabled()
    page.locator(".card", has_text="2. Preview").evaluate(SCROLL_TO)
    shot(page, "import-preview")
    page.click("#import-go")
    page.get_by_text("Import summary: june").wait_for()
    page.locator(".import-result table tbody tr").nth(1).wait_for()
    with server.client(tokens["viewer"]) as c:
        ds = c.get("/datasets/june").json()
        q = c.get("/datasets/june/quarantine").json()
    assert ds["rows"] == N and ds["columns"]["id"] == "message_id" and q["total"] == 2
    stored = page.locator(".stat", has_text="stored").locator(".stat-value").inner_text()
    assert stored == f"{N:,}"
    rows = page.locator(".import-result table tbody tr")
    assert rows.count() == 2
    texts = [rows.nth(i).inner_text() for i in range(2)]
    assert texts[0].startswith("51") and "wrong field count" in texts[0]
    assert texts[1].startswith("121") and "bad timestamp" in texts[1] and "not-a-date" in texts[1]
    shot(page, "import-summary")
    page.click("#to-explore")
    page.wait_for_url(re.compile(r"#/datasets/june"))
    page.locator(".ds-stats").wait_for()
    assert_clean(page)
    page.context.close()


@pytest.mark.browser
@pytest.mark.slow
def test_explore_discovers_topics_searches_filters_and_opens_a_document(served, browser):
    server, tokens, _ = served
    page = open_page(browser, server.url, tokens["editor"])
    page.goto("/#/datasets/calls")
    page.get_by_text("No topics yet — run discovery").wait_for()
    assert "300" in page.locator(".ds-stats").inner_text()
    assert page.locator("#discover-model").input_value() == "minilm-l6"
    page.select_option("#discover-model", "wordllama")  # a static encoder: seconds on a CPU
    page.click("#discover")
    page.locator(".job-panel").wait_for()
    page.locator(".theme-card").first.wait_for(timeout=90_000)  # themes first (tests/test_ui_themes.py)
    page.click("#level-topics")
    page.locator(".topic-card").first.wait_for()
    with server.client(tokens["viewer"]) as c:
        run = c.get("/datasets/calls/topics").json()["runs"][0]
        topics = c.get(f"/datasets/calls/topics/{run['run_id']}").json()["topics"]
    assert run["n_topics"] == len(topics) > 8
    assert page.locator(".topic-card").count() == 8  # the biggest first, then all on demand
    biggest = max(topics, key=lambda t: t["size"])
    first = page.locator(".topic-card").first
    assert biggest["name"] in first.inner_text() and biggest["keywords"][0] in first.inner_text()
    assert first.get_by_role("link", name="Label this topic").get_attribute("href") == \
        f"#/datasets/calls/label?topic={biggest['topic']}&run={run['run_id']}"
    shot(page, "explore-topics")
    page.click("#topics-more")
    assert page.locator(".topic-card").count() == len(topics)

    # a topic's documents, most typical first
    first.locator(".topic-docs").click()
    page.get_by_text(f"{biggest['size']} documents in this topic.").wait_for()
    assert page.locator(".docs-box tbody tr").count() == min(25, biggest["size"])
    assert page.locator("#doc-search").is_disabled()
    page.click("#topic-clear")
    page.get_by_text(f"{N} documents match.").wait_for()

    # search with "/" and filter by label and time
    page.locator("body").click(position={"x": 5, "y": 200})
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "doc-search"
    page.keyboard.type("refund")
    page.keyboard.press("Enter")
    with server.client(tokens["viewer"]) as c:
        want = c.get("/datasets/calls/documents", params={"q": "refund", "limit": 1000}).json()
    page.get_by_text(f"{want['total']} documents match.").wait_for()
    rows = page.locator(".docs-box tbody tr")
    assert rows.count() == min(25, want["total"]) and all("refund" in t.lower() for t in rows.all_inner_texts())
    page.select_option("#filter-label", "refund_request")
    page.fill("#filter-from", "2026-07-01")
    page.locator("#filter-from").dispatch_event("change")
    with server.client(tokens["viewer"]) as c:
        want = c.get("/datasets/calls/documents", params={"q": "refund", "label": "refund_request",
                                                           "time_from": "2026-07-01", "limit": 1000}).json()
    assert 0 < want["total"] < 25
    page.get_by_text(f"{want['total']} documents match.").wait_for()
    assert rows.count() == want["total"]
    assert all("refund_request" in t for t in rows.all_inner_texts())
    page.locator(".card", has_text="Documents").last.evaluate(SCROLL_TO)
    shot(page, "explore-documents")

    # paging over everything
    page.click("text=Clear")
    page.get_by_text(f"{N} documents match.").wait_for()
    page.click("#page-next")
    page.get_by_text(f"26–50 of {N}").wait_for()

    # a document's page
    doc = want["documents"][0]
    page.click("text=Clear")
    page.fill("#doc-search", doc["text"][:40])
    page.keyboard.press("Enter")
    page.locator(".docs-box tbody tr").first.wait_for()
    page.locator(".docs-box tbody tr", has_text=doc["text"][:40]).first.click()
    page.wait_for_url(re.compile(r"#/datasets/calls/docs/\d+"))
    page.locator("#doc-text").wait_for()
    doc_id = int(page.url.rsplit("/", 1)[-1])
    with server.client(tokens["viewer"]) as c:
        d = c.get(f"/datasets/calls/documents/{doc_id}").json()
    assert page.locator("#doc-text").inner_text() == d["text"]
    assert d["topics"] and d["topics"][0]["run_id"] == run["run_id"]
    assert d["topics"][0]["name"] in page.locator(".card", has_text="Topics").inner_text()
    page.click("#back-to-dataset")
    page.locator("#doc-search").wait_for()
    assert page.locator("#doc-search").input_value() == doc["text"][:40]  # the filters survive the round trip

    # sub-topics within each label: a click-through from a category to its topics
    assert page.locator("#discover-model").input_value() == "wordllama"  # the latest run's encoder is the default
    page.select_option("#discover-within", "label")
    page.click("#discover")
    page.locator(".parent-card").first.wait_for(timeout=90_000)
    with server.client(tokens["viewer"]) as c:
        run2 = c.get("/datasets/calls/topics").json()["runs"][0]
        sub = c.get(f"/datasets/calls/topics/{run2['run_id']}").json()["topics"]
    assert run2["within"] == "label"
    card = page.locator(".parent-card[data-parent='card_lost']")
    card.click()
    page.locator("#topics-up").wait_for()
    assert page.locator(".topic-card").count() == len([t for t in sub if t["parent"] == "card_lost"])
    assert "card_lost" in page.locator(".crumbs").inner_text()
    shot(page, "explore-subtopics")
    page.click("#topics-up")
    page.locator(".parent-card").first.wait_for()
    assert_clean(page)
    page.context.close()


@pytest.mark.browser
def test_viewer_sees_but_cannot_import_or_discover(served, browser):
    server, tokens, _ = served
    page = open_page(browser, server.url, tokens["viewer"])
    page.goto("/#/import")
    page.get_by_text("Importing needs an editor").wait_for()
    assert page.locator("#import-file").count() == 0
    page.goto("/#/datasets/calls")
    page.locator("#discover").wait_for()
    assert page.locator("#discover").is_disabled() and page.locator("#discover-within").is_disabled()
    page.locator(".docs-box tbody tr").first.wait_for()
    assert page.locator("#doc-search").is_enabled()
    assert_clean(page)
    page.context.close()


@pytest.mark.browser
@pytest.mark.slow
def test_explore_filters_by_prediction_and_shows_it_on_the_document(served, trained, browser):
    server, tokens, _ = served
    page = open_page(browser, server.url, tokens["editor"])
    page.goto("/#/datasets/calls")
    page.locator(".docs-box tbody tr").first.wait_for()
    page.select_option("#filter-model", trained)
    with server.client(tokens["viewer"]) as c:
        manifest = c.get(f"/versions/{trained}").json()["manifest"]
    abstains = (manifest.get("abstain") or {}).get("threshold") is not None
    known = manifest["labels"] + ([manifest["abstain"].get("label") or "other"] if abstains else [])
    # no stored predictions for the whole dataset: the page offers the classify job, follows it, then filters
    start = page.get_by_role("button", name=f"Classify this dataset with {trained}")
    start.wait_for()
    assert "no stored prediction" in page.locator(".classify-first").inner_text()
    shot(page, "explore-classify-first")
    start.click()
    page.locator(".docs-box .job-panel").wait_for()
    page.locator(f".docs-box th:has-text('Predicted ({trained})')").wait_for(timeout=120_000)
    page.wait_for_timeout(300)
    # the choices are the model's own labels, in its order
    assert page.locator("#filter-predicted option").all_inner_texts() == ["any prediction", *known]
    page.select_option("#filter-predicted", "card_lost")
    with server.client(tokens["viewer"]) as c:
        want = c.get("/datasets/calls/documents", params={"model": trained, "predicted": "card_lost", "limit": 25}).json()
    assert want["total"] > 0
    page.get_by_text(f"{want['total']} documents match.").wait_for()
    rows = page.locator(".docs-box tbody tr")
    assert rows.count() == min(25, want["total"]) and all("card_lost" in t for t in rows.all_inner_texts())
    rows.first.click()
    page.locator(".pred").wait_for()
    assert "card_lost" in page.locator(".pred").inner_text()
    shot(page, "explore-document")
    assert page.locator("#doc-model").input_value() == trained
    assert_clean(page)
    page.context.close()


@pytest.mark.browser
def test_a_semicolon_file_is_previewed_and_imported_with_its_separator(served, browser, tmp_path):
    """Regression: the preview spotted ';' but the upload had no way to pass it, so such files could not be imported."""
    server, tokens, _ = served
    path = tmp_path / "export.csv"
    path.write_text("message_id;text;intent\nS1;my card has not arrived yet;card_delivery\n"
                    "S2;how do I reset my pin, please;account_access\nS3;I was charged twice;billing_dispute\n",
                    encoding="utf-8")
    with server.client(tokens["editor"]) as c:
        assert _preview(c, "export.csv", path.read_bytes()).json()["suggested_delimiter"] == ";"
        r = c.post("/datasets", files={"file": ("export.csv", path.read_bytes())},
                   data={"dataset": "semi_api", "text_col": "text", "delimiter": ";"})
        assert r.status_code == 200 and r.json()["stored"] == 3, r.text
    page = open_page(browser, server.url, tokens["editor"])
    page.goto("/#/import")
    page.set_input_files("#import-file", str(path))
    page.get_by_text("separated by ';'").wait_for()
    assert page.locator("#map-text").input_value() == "text" and page.locator("#map-id").input_value() == "message_id"
    page.fill("#dataset-name", "semi")
    page.click("#import-go")
    page.get_by_text("Import summary: semi").wait_for()
    with server.client(tokens["viewer"]) as c:
        docs = c.get("/datasets/semi/documents").json()["documents"]
    assert sorted(d["text"] for d in docs)[0] == "I was charged twice" and len(docs) == 3
    assert_clean(page)
    page.context.close()
