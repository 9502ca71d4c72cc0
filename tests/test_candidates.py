"""What your labels miss (issue 20 §2): candidate new categories from what a model turned away, on real data.

A ``head`` model (minilm-l6) learns 8 banking77 intents; an "incoming" file
holds the test rows of those 8 and every row of 3 intents it never saw (real
queries), the unseen ones only in the last three of eight weeks (a new problem
arriving). A pipeline classifies it; its implied ``candidates`` step groups
what the model turned away. Module-scoped: one workspace, one training, one
pipeline run for every test here.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

KNOWN = ["card_arrival", "exchange_rate", "top_up_failed", "pin_blocked", "lost_or_stolen_card", "cash_withdrawal_charge",
         "transfer_timing", "declined_card_payment"]
UNSEEN = ["apple_pay_or_google_pay", "terminate_account", "age_limit"]
PIPELINE = """\
name: incoming
dataset: incoming
steps:
  - ingest: {path: "inbox/*.csv", text_col: text, time_col: created, id_col: query_id, label_col: intent}
  - classify: {model: intents@1}
  - trends: {by: prediction, every: week}
  - report: {out: out/report.html}
"""


def _incoming(shared_data: Path, folder: Path) -> pd.DataFrame:
    df = pd.read_csv(shared_data / "banking77" / "banking77.csv")
    df["query_id"] = [f"Q-{i:05d}" for i in range(len(df))]
    known = df[df["label"].isin(KNOWN) & (df["split"] == "test")]
    unseen = df[df["label"].isin(UNSEEN)]
    rng = np.random.default_rng(0)
    start = pd.Timestamp("2026-01-05", tz="UTC")
    t_known = start + pd.to_timedelta(rng.uniform(0, 56, len(known)), unit="D")
    t_new = start + pd.to_timedelta(rng.uniform(42, 56, len(unseen)), unit="D")  # only in the recent window: the last 2 of 8 weeks
    out = pd.concat([known.assign(created=t_known), unseen.assign(created=t_new)]).sort_values("created")
    out = out.rename(columns={"label": "intent"})[["query_id", "text", "intent", "created"]]
    (folder / "inbox").mkdir(parents=True, exist_ok=True)
    out.to_csv(folder / "inbox" / "incoming.csv", index=False)
    return out


@pytest.fixture(scope="module")
def piped(tmp_path_factory, shared_data):
    """(home, folder, pipeline result, incoming rows): the pipeline has run once."""
    from conftest import invoke_cli

    home = tmp_path_factory.mktemp("cand-ws")
    folder = home / "pipe"
    folder.mkdir()
    df = pd.read_csv(shared_data / "banking77" / "banking77.csv")
    train = df[df["label"].isin(KNOWN) & (df["split"] == "train")].groupby("label").head(40)
    train.to_csv(home / "train.csv", index=False)
    r = invoke_cli("--home", home, "ingest", home / "train.csv", "--dataset", "train", "--label-col", "label")
    assert r.exit_code == 0, r.stderr
    r = invoke_cli("--home", home, "train", "--dataset", "train", "--name", "intents", "--method", "head")
    assert r.exit_code == 0, r.stderr
    rows = _incoming(shared_data, folder)
    (folder / "incoming.yaml").write_text(PIPELINE, encoding="utf-8")
    r = invoke_cli("--home", home, "pipeline", "run", folder / "incoming.yaml", "--json")
    assert r.exit_code == 0, r.stderr
    return home, folder, r.json, rows


def _truth(rows: pd.DataFrame) -> dict:
    return dict(zip(rows["query_id"], rows["intent"]))


@pytest.mark.slow
def test_pipeline_groups_what_the_model_turned_away_into_candidates(piped):
    home, folder, res, rows = piped
    steps = {s["name"]: s for s in res["steps"]}
    assert [s["name"] for s in res["steps"]] == ["ingest", "classify", "trends", "candidates", "report"]
    assert steps["candidates"]["status"] == "done"
    path = folder / "out" / "candidates.parquet"
    assert steps["candidates"]["outputs"] == [str(path)]
    cands = pd.read_parquet(path)
    assert len(cands) >= 2
    # those with the most documents the model turned away first, then the largest
    assert list(zip(-cands["turned_away"], -cands["size"])) == sorted(zip(-cands["turned_away"], -cands["size"]))
    from inhouse.analysis.candidates import candidate_doc_ids
    from inhouse.workspace.documents import read_documents
    from inhouse.workspace.store import Workspace

    from inhouse import registry
    from inhouse.data.predictions import find_set

    ws = Workspace.open(home)
    docs = read_documents(ws, "incoming", columns=["doc_id", "source_id"]).set_index("doc_id")
    pred = find_set(ws, "incoming", registry.resolve(ws, "intents@1").sha256).read(["doc_id", "label"]).set_index("doc_id")
    truth = _truth(rows)
    came_back = {}
    for c in cands.itertuples():
        ids = candidate_doc_ids(ws, "incoming", int(c.discovery_run), int(c.candidate))
        assert len(ids) == c.size
        intents = pd.Series([truth[q] for q in docs.loc[ids, "source_id"]]).value_counts()
        labels = pred.loc[ids, "label"]  # what the model answered each of its documents: turned away, or which label
        assert c.turned_away == int((labels == "other").sum())
        assert json.loads(c.answered_as) == {k: int(n) for k, n in labels[labels != "other"].value_counts().items()}
        if c.size >= 10 and intents.iloc[0] / c.size >= 0.6 and intents.index[0] in UNSEEN:
            came_back.setdefault(intents.index[0], c)
        assert all(q in truth for q in c.representative_ids)  # representatives are the user's ids
    # every intent the model never saw comes back as a candidate of its own (>= 10 documents, >= 60 % that intent),
    # the first candidate is one unseen intent, though discovery found it as a few topics (close / delete ...); a
    # group of known intents the model answered unsure (card_arrival beside lost_or_stolen_card: 60 documents here,
    # larger than any unseen one, first when candidates came largest first) comes after the turned-away ones
    assert sorted(came_back) == sorted(UNSEEN), cands[["name", "size"]]
    top = cands.iloc[0]
    assert top["candidate"] in {c.candidate for c in came_back.values()}, cands[["name", "size"]]
    # it arrived in the recent window (the last quarter of the periods): the growth test says so; its name is made of its documents' words
    assert top["status"] == "emerging" and top["share_recent"] > top["share_baseline"]
    words = " ".join(rows["text"]).lower()
    assert all(w in words for w in top["name"].replace(",", " ").split())
    # the report has the section, with the candidate's name and an example id
    page = (folder / "out" / "report.html").read_text(encoding="utf-8")
    assert "<section id='candidates'>" in page and top["name"] in page and top["representative_ids"][0] in page
    assert "more answered while unsure (best probability under" in page  # the pool says what it holds
    # and the dashboard's data has them
    from inhouse.pipeline.dashboard import dashboard

    d = dashboard(ws, res["run_id"])["candidates"]
    assert d["turned_away"] == steps["candidates"]["rows"] and d["every"] == "week"
    assert d["unsure"] > 0 and d["review"]["validation_share"] == 0.2
    assert [c["name"] for c in d["candidates"]] == cands["name"].tolist()
    shown = next(c for c in d["candidates"] if c["candidate"] == top["candidate"])
    assert shown["growth"]["status"] == "emerging" and shown["representative_ids"][0] == top["representative_ids"][0]


@pytest.mark.slow
def test_discover_within_prediction_equals_the_pipelines_candidates(piped, run_cli):
    home, folder, res, _ = piped
    r = run_cli("--home", home, "discover", "--dataset", "incoming", "--within", "prediction", "--json")
    assert r.exit_code == 0, r.stderr
    from inhouse.workspace.store import Workspace

    stored = json.loads(Workspace.open(home).db.execute("SELECT result FROM runs WHERE id = ?",
                                                        (res["run_id"],)).fetchone()[0])
    piped_c = next(s for s in stored["steps"] if s["name"] == "candidates")["result"]
    assert r.json["model"] == piped_c["model"] == "intents@1"
    assert r.json["turned_away"] == piped_c["turned_away"] > 0
    assert r.json["candidates"] == piped_c["candidates"]  # names, sizes, growth, representatives: identical
    # and in words: the table names the largest candidate and how to make it a label
    r = run_cli("--home", home, "discover", "--dataset", "incoming", "--within", "prediction:intents@1")
    assert r.exit_code == 0, r.stderr
    assert piped_c["candidates"][0]["name"][:40] in r.stdout and "/label" in r.stdout
    assert f"and the {piped_c['unsure']} it answered unsure" in r.stdout


@pytest.mark.slow
def test_candidates_pool_the_answered_but_unsure_documents_by_the_stored_review_criterion(piped, monkeypatch):
    """The distance rule turns away few documents (it keeps answers precise); the candidates also pool what the
    version answered while unsure: best probability under the review criterion stored at training (the 20 %
    quantile of validation rows). A version made before the criterion groups the turned-away documents only."""
    import dataclasses

    from inhouse import registry
    from inhouse.analysis.candidates import candidate_doc_ids, find_candidates
    from inhouse.data.predictions import find_set
    from inhouse.workspace.documents import read_documents
    from inhouse.workspace.store import Workspace

    home, _, _, rows = piped
    ws = Workspace.open(home)
    v = registry.resolve(ws, "intents@1")
    ab = v.manifest["abstain"]
    assert ab["rule"] == "distance" and ab["review"]["validation_share"] == 0.2
    q = ab["review"]["confidence_below"]
    assert 0 < q < 1
    pred = find_set(ws, "incoming", v.sha256).read(["doc_id", "label", "score"]).set_index("doc_id")
    answered_unsure = pred[(pred["label"] != "other") & (pred["score"] < q)]
    res = find_candidates(ws, "incoming", model="intents@1")
    assert res.review == ab["review"] and res.unsure == len(answered_unsure) > 0
    assert res.turned_away == int((pred["label"] == "other").sum())
    grouped = np.concatenate([candidate_doc_ids(ws, "incoming", res.discovery_run, c.candidate) for c in res.candidates])
    docs = read_documents(ws, "incoming", columns=["doc_id", "source_id"]).set_index("doc_id")
    intent = docs["source_id"].map(_truth(rows))
    pool = set(pred.index[pred["label"] == "other"]) | set(answered_unsure.index)
    pulled_in = np.intersect1d(grouped, answered_unsure.index.to_numpy())
    # documents the model answered, unsure, are grouped beside the turned-away ones, and nothing else is
    assert set(grouped.tolist()) <= pool and len(pulled_in) >= 10, (len(pulled_in), len(grouped), len(pool))
    # (here the distance rule turns away all but a handful of the 3 unseen intents' queries, so the ones pooled
    # are in-scope; bench/candidates.py measures what pooling does for 20 held-out intents, near known ones)
    assert set(intent.loc[grouped]) >= set(UNSEEN)
    assert abs(sum(c.share for c in res.candidates) - len(grouped) / (res.turned_away + res.unsure)) < 1e-3

    # a version made before the review criterion (its manifest without it): the turned-away documents only, as before
    real = registry.resolve

    def without_review(ws_, ref):
        got = real(ws_, ref)
        m = {**got.manifest, "abstain": {k: x for k, x in got.manifest["abstain"].items() if k != "review"}}
        return dataclasses.replace(got, manifest=m)

    monkeypatch.setattr(registry, "resolve", without_review)
    old = find_candidates(ws, "incoming", model="intents@1")
    assert old.review is None and old.unsure == 0 and old.turned_away == res.turned_away
    old_grouped = np.concatenate([candidate_doc_ids(ws, "incoming", old.discovery_run, c.candidate)
                                  for c in old.candidates])
    assert set(pred.loc[old_grouped, "label"]) == {"other"} and len(old_grouped) < len(grouped)


@pytest.fixture(scope="module")
def served(piped):
    from serverkit import Server, create_token

    home = piped[0]
    token = create_token(home, "ed", "editor")
    server = Server(home)
    try:
        yield server, token
    finally:
        server.stop()


def _first_candidate(piped) -> tuple[dict, int]:
    from inhouse.pipeline.dashboard import dashboard
    from inhouse.workspace.store import Workspace

    home, _, res, _ = piped
    c = dashboard(Workspace.open(home), res["run_id"])["candidates"]
    return c["candidates"][0], c["discovery_run"]


@pytest.mark.slow
def test_candidate_becomes_a_label_and_the_queue_shows_its_documents(piped, served):
    from inhouse.analysis.candidates import candidate_doc_ids
    from inhouse.workspace.store import Workspace

    server, token = served
    home = piped[0]
    cand, run = _first_candidate(piped)
    members = set(candidate_doc_ids(Workspace.open(home), "incoming", run, cand["candidate"]).tolist())
    with server.client(token) as c:
        r = c.post(f"/datasets/incoming/candidates/{run}/{cand['candidate']}/label", json={"label_col": "new_intents"})
        assert r.status_code == 200, r.text
        a = r.json()
        assert a["label"] == cand["name"] and a["label_col"] == "new_intents" and a["documents"] == cand["size"]
        assert a["ui"].startswith("#/datasets/incoming/label?") and "candidate=" in a["ui"]
        made = c.get("/datasets/incoming/candidates/labels").json()["labels"]
        assert [(m["label"], m["label_col"], m["documents"]) for m in made] == [(cand["name"], "new_intents", cand["size"])]
        url = httpx.URL(a["queue"])
        q = c.get(url.path, params={**dict(url.params), "limit": 200}).json()
        assert q["label_col"] == "new_intents" and q["candidate_documents"] == cand["size"] == q["unlabelled"]
        assert len(q["items"]) == min(200, cand["size"]) and {d["doc_id"] for d in q["items"]} <= members
        # a wrong candidate is a 404 naming the candidates there are; a label set is required
        bad = c.post(f"/datasets/incoming/candidates/{run}/999/label", json={"label_col": "x"})
        assert bad.status_code == 404 and "candidates are" in bad.json()["message"], bad.text
        assert c.post(f"/datasets/incoming/candidates/{run}/0/label", json={}).status_code in (400, 422)


@pytest.mark.slow
def test_make_a_label_button_opens_the_queue_on_the_candidate(browser, piped, served):
    from uikit import assert_clean, open_page, shot

    from inhouse.analysis.candidates import candidate_doc_ids
    from inhouse.workspace.store import Workspace

    server, token = served
    home, _, res, _ = piped
    cand, run = _first_candidate(piped)
    members = set(candidate_doc_ids(Workspace.open(home), "incoming", run, cand["candidate"]).tolist())
    page = open_page(browser, server.url, token)
    page.goto(f"/#/analyze/{res['run_id']}")
    page.get_by_role("heading", name="What your labels miss").wait_for()
    card = page.locator(f"[data-candidate-card='{cand['candidate']}']")
    assert "more answered while unsure" in page.get_by_text("documents were turned away by").inner_text()
    assert cand["name"] in card.inner_text() and f"{cand['turned_away']} turned away" in card.inner_text()
    # a group the model mostly answered, unsure, says with which labels (its most frequent one named)
    from inhouse.pipeline.dashboard import dashboard

    blurred = [x for x in dashboard(Workspace.open(home), res["run_id"])["candidates"]["candidates"]
               if x["turned_away"] * 2 < x["size"]]
    for x in blurred:
        top = max(x["answered_as"].items(), key=lambda kv: kv[1])[0]
        assert top in page.locator(f"[data-candidate-card='{x['candidate']}'] [data-answered-as]").inner_text()
    assert page.locator("[data-answered-as]").count() == len(blurred)
    card.get_by_role("button", name="Make a label…").click()
    card.locator("input[name=label]").fill("ui_new_intent")
    card.get_by_role("button", name="Create label and open the queue").click()
    page.wait_for_url("**/#/datasets/incoming/label?*")
    page.locator(".queue-candidate").wait_for()
    assert f"only the {cand['size']} documents of candidate {run}:{cand['candidate']}" in page.locator(".queue-info").inner_text()
    first = page.locator(".label-btn").first
    assert first.get_attribute("data-label") == "ui_new_intent"  # the new label is key 1
    doc = int(page.locator(".doc-big").get_attribute("data-doc"))
    assert doc in members
    shot(page, "candidates-queue")
    page.keyboard.press("1")
    page.get_by_text(f"Last: document {doc} → ui_new_intent").wait_for()
    with server.client(token) as c:
        d = c.get("/datasets/incoming").json()
    assert d["label_columns"]["new_categories"]["values"] == {"ui_new_intent": 1}
    assert_clean(page)


def test_discover_within_prediction_needs_stored_predictions_and_refuses_what_does_not_apply(ws, run_cli, tmp_path,
                                                                                           shared_data):
    from serverkit import banking_slice

    r = run_cli("ingest", banking_slice(shared_data, tmp_path), "--dataset", "b5", "--label-col", "label")
    assert r.exit_code == 0, r.stderr
    r = run_cli("discover", "--dataset", "b5", "--within", "prediction", "--json")
    assert r.exit_code == 4 and r.json["error"] == "not_found", r.stdout
    assert "no stored predictions" in r.json["message"] and "inhouse classify" in r.json["fix"]
    r = run_cli("discover", "--dataset", "b5", "--within", "prediction", "--where", "label = 'x'")
    assert r.exit_code == 2 and "--where does not apply to --within prediction" in r.stderr
