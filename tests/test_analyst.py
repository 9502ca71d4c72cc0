"""Issue 12, an analyst's day without pandas: filters, label sets, "none of these", one embedding per
text, topics against known columns, readable trends, honest LLM options and smaller fixes.

Real data only: a slice of the airline tweets (every 6th tweet, all days, all airlines; mentions,
links and the crowd's labels intact) and of banking77. Embeddings come from ``wordllama`` (static
vectors from a PyPI package: the real encoder path, a second per thousand texts), so the tests stay fast.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from inhouse.errors import Conflict, UsageError
from inhouse.workspace.documents import read_documents
from inhouse.workspace.filters import matching_doc_ids
from inhouse.workspace.store import Workspace

BASE = "wordllama"


def _air_csv(shared_data, folder, step: int = 6):
    df = pd.read_csv(shared_data / "twitter_airline_sentiment" / "twitter_airline_sentiment.csv", dtype=str)
    df = df.drop_duplicates("tweet_id").iloc[::step].reset_index(drop=True)
    path = folder / "air.csv"
    df.to_csv(path, index=False)
    return df, path


@pytest.fixture(scope="module")
def air(tmp_path_factory, shared_data):
    """A workspace with ``air``: every 6th airline tweet (2,414), label = sentiment, ids, times, metadata."""
    from inhouse.data.ingest import ingest

    folder = tmp_path_factory.mktemp("air")
    df, path = _air_csv(shared_data, folder)
    ws = Workspace.open(folder / "home")
    ingest(ws, path, "air", label_col="label", split_col="split", time_col="timestamp", id_col="tweet_id")
    return ws, df, path


def cli(ws, run_cli, *args):
    return run_cli("--home", ws.home, *args)


# ------------------------------------------------------------ 1. filters ----

def test_where_matches_pandas_on_real_columns(air):
    ws, df, _ = air
    times = pd.to_datetime(df["timestamp"], utc=True)
    cases = {
        "label = 'negative'": df["label"] == "negative",
        "airline in ('Delta','United') and time >= '2015-02-20'":
            df["airline"].isin(["Delta", "United"]) & (times >= pd.Timestamp("2015-02-20", tz="UTC")),
        "negative_reason is null and split = 'test'": df["negative_reason"].isna() & (df["split"] == "test"),
        "text ilike '%bag%' and not (label = 'positive')":
            df["text"].str.contains("bag", case=False) & (df["label"] != "positive"),
        f"tweet_id = '{df['tweet_id'][7]}'": df["tweet_id"] == df["tweet_id"][7],
    }
    for expr, want in cases.items():
        got = matching_doc_ids(ws, "air", expr)
        assert len(got) == int(want.sum()), expr
    sub = read_documents(ws, "air", columns=["doc_id", "text", "label"], where="label = 'negative'",
                         label_col="negative_reason")
    assert len(sub) == int((df["label"] == "negative").sum())
    assert set(sub["label"].dropna()) <= set(df["negative_reason"].dropna())


@pytest.mark.parametrize("expr, says", [
    ("airlin = 'Delta'", "has no column 'airlin'"),
    ("label = 'x'; DROP TABLE labels", "semicolon"),
    ("label = (SELECT max(text) FROM docs)", "subquery"),
    ("read_csv('/etc/passwd') IS NOT NULL", "function read_csv"),
    ("label = 'x' -- and the rest", "comment"),
    ("label = 'x' UNION SELECT doc_id FROM docs", "single condition"),
    ("label = 'x' ORDER BY 1", "single condition"),
    ("label = 'open", "not closed"),
    ("getenv('HOME') = 'x'", "function getenv"),
])
def test_where_rejects_unknown_columns_and_sql_beyond_a_condition(air, expr, says):
    ws, _, _ = air
    with pytest.raises(UsageError) as e:
        matching_doc_ids(ws, "air", expr)
    assert says in str(e.value)
    if "airlin" in expr:
        assert "airline" in str(e.value) and "negative_reason" in str(e.value) and "tweet_id" in str(e.value)


def test_where_on_every_stage_cli_and_runs_record_it(air, run_cli, tmp_path):
    ws, df, _ = air
    r = cli(ws, run_cli, "trends", "--dataset", "air", "--by", "negative_reason", "--every", "day",
            "--where", "label = 'negative' and airline = 'United'", "--json")
    assert r.exit_code == 0, r.stderr
    want = int(((df["label"] == "negative") & (df["airline"] == "United")).sum())
    assert r.json["documents"] == want and r.json["where"].startswith("label = 'negative'")
    params = json.loads(ws.db.execute("SELECT params FROM runs WHERE kind = 'trends' ORDER BY id DESC").fetchone()[0])
    assert params["where"] == "label = 'negative' and airline = 'United'"
    out = tmp_path / "united.csv"
    r = cli(ws, run_cli, "datasets", "export", "air", "--where", "airline = 'United'", "--output", out, "--json")
    assert r.exit_code == 0 and r.json["rows"] == int((df["airline"] == "United").sum())
    exported = pd.read_csv(out, dtype=str)
    assert list(exported.columns[:2]) == ["tweet_id", "doc_id"] and set(exported["airline"]) == {"United"}
    bad = cli(ws, run_cli, "summarize", "--dataset", "air", "--by", "airline", "--where", "reason = 'x'")
    assert bad.exit_code == 2 and "has no column 'reason'" in bad.stderr and "negative_reason" in bad.stderr


# ---------------------------------------------------------- 2. label sets ----

def test_label_sets_do_not_clobber_ingested_labels(tmp_path, shared_data, run_cli):
    from inhouse.data.ingest import ingest

    df, path = _air_csv(shared_data, tmp_path, step=12)
    ws = Workspace.open(tmp_path / "home")
    ingest(ws, path, "air", label_col="label", split_col="split", time_col="timestamp", id_col="tweet_id")
    late = "label = 'negative' and negative_reason = 'Cancelled Flight'"
    n = len(matching_doc_ids(ws, "air", late))
    before = read_documents(ws, "air", columns=["doc_id", "label"])
    # the old behaviour silently replaced n ingested 'negative' labels; now it refuses and says how many
    r = cli(ws, run_cli, "label", "--dataset", "air", "--where", late, "--as", "cancelled_flight")
    assert r.exit_code == Conflict.exit_code and f"would change {n} of its labels from ingest" in r.stderr
    assert "--into" in r.stderr and "--overwrite" in r.stderr
    assert read_documents(ws, "air", columns=["doc_id", "label"]).equals(before)
    r = cli(ws, run_cli, "label", "--dataset", "air", "--where", late, "--as", "cancelled_flight",
            "--into", "complaint", "--json")
    assert r.exit_code == 0 and r.json["column"] == "complaint" and r.json["count"] == n
    assert read_documents(ws, "air", columns=["doc_id", "label"]).equals(before)
    got = read_documents(ws, "air", columns=["doc_id", "label"], label_col="complaint")
    assert int((got["label"] == "cancelled_flight").sum()) == n and got["label"].notna().sum() == n
    show = cli(ws, run_cli, "datasets", "show", "air", "--json").json
    assert show["label_columns"]["complaint"] == {"kind": "people", "labelled": n, "distinct": 1,
                                                  "values": {"cancelled_flight": n}}
    assert show["label_columns"]["label"]["values"]["negative"] == int((df["label"] == "negative").sum())
    assert set(show["metadata_columns"]) == {"negative_reason", "airline"}
    assert show["metadata_columns"]["airline"]["values"]["United"] == int((df["airline"] == "United").sum())
    text = cli(ws, run_cli, "datasets", "show", "air").stdout
    assert "complaint (set by people" in text and "airline (from the file" in text
    # a filter sees the new column; --overwrite is an explicit choice and is counted
    assert len(matching_doc_ids(ws, "air", "complaint = 'cancelled_flight'")) == n
    r = cli(ws, run_cli, "label", "--dataset", "air", "--where", late, "--as", "cancelled_flight", "--overwrite",
            "--json")
    assert r.exit_code == 0 and r.json["replaced_ingest_labels"] == n
    assert cli(ws, run_cli, "label", "--undo-last", "--dataset", "air").exit_code == 0
    assert read_documents(ws, "air", columns=["doc_id", "label"]).equals(before)
    # an unknown label column is named with the ones there are
    r = cli(ws, run_cli, "train", "--dataset", "air", "--name", "x", "--label-col", "complain", "--method", "head")
    assert r.exit_code == 3 and "complaint" in r.stderr and "negative_reason" in r.stderr


def test_labels_of_older_workspaces_belong_to_the_ingest_column(ws, shared_data):
    """The migration gives every existing label the column ``label``, so old datasets read as before."""
    cols = [r[1] for r in ws.db.execute("PRAGMA table_info(labels)")]
    assert "label_col" in cols
    default = [r[4] for r in ws.db.execute("PRAGMA table_info(labels)") if r[1] == "label_col"][0]
    assert default == "'label'"


# ------------------------------------------------- 4. one embedding per text ----

@pytest.mark.slow
def test_discover_after_embed_computes_nothing(air, run_cli):
    """``embed`` embeds the text discover uses (mentions and links removed): discover then computes no vector."""
    ws, df, _ = air
    first = cli(ws, run_cli, "embed", "--dataset", "air", "--model", BASE, "--json")
    assert first.exit_code == 0, first.stderr
    assert any("@" in t for t in df["text"]), "the slice has @mentions, which discover strips"
    r = cli(ws, run_cli, "discover", "--dataset", "air", "--model", BASE, "--json")
    assert r.exit_code == 0, r.stderr
    assert r.json["embeddings"] == {"computed": 0, "reused": first.json["unique_texts"]}
    again = cli(ws, run_cli, "embed", "--dataset", "air", "--model", BASE, "--json").json
    assert again["computed"] == 0


# --------------------------------------------------------- 3. none of these ----

@pytest.fixture(scope="module")
def complaints(air):
    """A complaint classifier: negative_reason of the negative train tweets, head on wordllama."""
    from inhouse.training.arguments import TrainingArguments
    from inhouse.training.train import train

    ws, df, _ = air
    r = train(ws, "air", "complaints", TrainingArguments(base=BASE, method="head", label_col="negative_reason",
                                                         where="label = 'negative'", head_C=4.0,
                                                         abstain_rule="quantile"))  # issue 12's rule, still offered
    return ws, df, r


@pytest.mark.slow
def test_training_calibrates_an_abstain_threshold_kept_in_the_hashed_manifest(complaints):
    from inhouse import registry
    from inhouse.classifiers.load import load_classifier
    from inhouse.training.arguments import TrainingArguments
    from inhouse.training.train import train

    ws, df, r = complaints
    a = r.abstain
    assert a["rule"] == "quantile" and a["label"] == "other" and 0 < a["threshold"] < 1
    assert abs(a["val_in_scope_abstain_rate"] - a["target"]) < 0.05
    clf = load_classifier(ws, r.ref)
    assert clf.abstain_threshold == a["threshold"] and clf.can_abstain
    assert "abstain" in registry.hashed_fields(clf.manifest)
    assert clf.manifest["dataset"]["where"] == "label = 'negative'" and clf.manifest["encoder"]["text"] == "clean-v1"
    off = train(ws, "air", "complaints", TrainingArguments(base=BASE, method="head", label_col="negative_reason",
                                                           where="label = 'negative'", abstain=False, head_C=4.0))
    assert off.sha256 != r.sha256, "the abstention setting decides predictions, so it changes the version hash"
    assert not load_classifier(ws, off.ref).can_abstain


@pytest.mark.slow
def test_decide_abstains_and_no_abstain_turns_it_off(complaints, run_cli, tmp_path):
    from inhouse.classifiers.base import Classifier
    from inhouse.classifiers.load import load_classifier

    ws, df, r = complaints
    clf = load_classifier(ws, r.ref)
    P = np.full((2, len(clf.labels)), 1.0 / len(clf.labels))
    P[0, 0] = 0.99
    assert clf.decide(P) == [clf.labels[0], "other"]
    assert clf.decide(P, abstain=False) == [clf.labels[0], clf.labels[0]]
    assert type(clf).decide is Classifier.decide, "one decision for every format (torch and ONNX)"
    out = tmp_path / "pos.jsonl"
    res = cli(ws, run_cli, "classify", r.ref, "--dataset", "air", "--where", "label = 'positive'", "--output", out,
              "--json")
    assert res.exit_code == 0, res.stderr
    rows = pd.read_json(out, lines=True)
    assert len(rows) == int((df["label"] == "positive").sum()) and res.json["abstained"] == int(rows["abstained"].sum())
    assert (rows.loc[rows["abstained"], "label"] == "other").all()
    assert (rows.loc[~rows["abstained"], "label"] != "other").all()
    forced = cli(ws, run_cli, "classify", r.ref, "--dataset", "air", "--where", "label = 'positive'", "--output",
                 tmp_path / "forced.csv", "--no-abstain", "--json")
    assert forced.json["abstained"] == 0 and "other" not in set(pd.read_csv(tmp_path / "forced.csv")["label"])


@pytest.mark.slow
def test_positive_tweets_through_a_complaint_classifier_come_back_as_other(air, run_cli):
    """The user marks positive train tweets out of scope in a label set of their own; the model learns
    from them, and positive tweets of the test split mostly come back as `other`."""
    ws, df, _ = air
    for reason in sorted(df.loc[df["label"] == "negative", "negative_reason"].dropna().unique()):
        q = reason.replace("'", "''")
        r = cli(ws, run_cli, "label", "--dataset", "air", "--where",
                f"split = 'train' and label = 'negative' and negative_reason = '{q}'", "--as", reason,
                "--into", "complaint")
        assert r.exit_code == 0, r.stderr
    assert cli(ws, run_cli, "label", "--dataset", "air", "--where", "split = 'train' and label = 'positive'",
               "--as", "other", "--into", "complaint").exit_code == 0
    r = cli(ws, run_cli, "train", "--dataset", "air", "--name", "complaint-oos", "--base", BASE, "--method", "head",
            "--label-col", "complaint", "--out-of-scope", "other", "--split", "all", "--json")
    assert r.exit_code == 0, r.stderr
    assert r.json["abstain"]["rule"] in ("balanced", "distance") and r.json["abstain"]["out_of_scope"] == ["other"]
    ev = cli(ws, run_cli, "eval", "complaint-oos", "--dataset", "air", "--split", "test", "--label-col", "label",
             "--where", "label = 'positive'", "--json")
    assert ev.exit_code == 0, ev.stderr
    a = ev.json["abstain"]
    assert a["out_of_scope_rows"] == ev.json["n"] and a["out_of_scope_recall"] > 0.5
    pos = cli(ws, run_cli, "classify", "complaint-oos", "--dataset", "air", "--where",
              "split = 'test' and label = 'positive'", "--output", ws.home / "p.csv", "--json").json
    assert pos["label_counts"].get("other", 0) > pos["rows"] / 2
    assert pos["label_counts"].get("other", 0) > pos["label_counts"].get("Customer Service Issue", 0)


@pytest.mark.slow
def test_banking77_held_out_intents_are_abstained_on_more_than_known_ones(tmp_path, shared_data, run_cli):
    df = pd.read_csv(shared_data / "banking77" / "banking77.csv")
    intents = sorted(df["label"].unique())[::6][:12]
    part = df[df["label"].isin(intents)].groupby(["label", "split"]).head(40)
    path = tmp_path / "b.csv"
    part.to_csv(path, index=False)
    ws = Workspace.open(tmp_path / "home")
    assert cli(ws, run_cli, "ingest", path, "--dataset", "b", "--label-col", "label", "--split-col", "split").exit_code == 0
    held = intents[::4]  # a quarter of the intents never seen in training
    where = "label not in (" + ", ".join(f"'{h}'" for h in held) + ")"
    r = cli(ws, run_cli, "train", "--dataset", "b", "--name", "k", "--base", BASE, "--method", "head", "--where",
            where, "--json")
    assert r.exit_code == 0, r.stderr
    ev = cli(ws, run_cli, "eval", "k", "--dataset", "b", "--json").json
    a = ev["abstain"]
    assert a["out_of_scope_rows"] == 40 * len(held) and ev["unknown_labels"] == sorted(held)
    assert a["out_of_scope_recall"] > a["in_scope_abstain_rate"] + 0.1
    assert {"in_scope_accuracy", "abstain_rate", "in_scope_abstain_rate"} <= set(a)
    off = cli(ws, run_cli, "eval", "k", "--dataset", "b", "--no-abstain", "--json").json
    assert off["abstain"]["enabled"] is False and "other" not in off["per_class"]


# ------------------------------------------------------------- 5. compare ----

@pytest.mark.slow
def test_discover_compare_crosstab_and_typical_representatives(air, run_cli, tmp_path):
    ws, df, _ = air
    out = tmp_path / "crosstab.csv"
    r = cli(ws, run_cli, "discover", "--dataset", "air", "--model", BASE, "--where", "label = 'negative'",
            "--compare", "negative_reason", "--compare-output", out, "--json")
    assert r.exit_code == 0, r.stderr
    c = r.json["compare"]
    n_neg = int((df["label"] == "negative").sum())
    assert r.json["n_documents"] == n_neg and r.json["where"] == "label = 'negative'"
    assert c["with_value"] == n_neg and 0 < c["nmi"] < 1 and c["ari"] is not None
    for row in c["rows"]:
        assert row["majority_count"] == max(row["counts"].values())
        assert row["purity"] == pytest.approx(row["majority_count"] / row["with_value"], abs=1e-6)
        assert row["verdict"] in ("matches", "mixed / new")
    table = pd.read_csv(out)
    assert {"topic", "majority", "purity", "Late Flight", "Customer Service Issue"} <= set(table.columns)
    assert table["size"].sum() == n_neg
    text = cli(ws, run_cli, "discover", "--dataset", "air", "--run", r.json["run_id"], "--full").stdout
    first = r.json["topics"][0]
    assert f"tweet_id {first['representative_ids'][0]}:" in text
    assert " ".join(first["representative_texts"][0].split()) in text  # printed in full


# -------------------------------------------------------------- 6. trends ----

def test_trends_volume_time_zone_and_thin_periods(air, run_cli, tmp_path):
    from inhouse.analysis.trends import chart_left_out, trends

    ws, df, _ = air
    utc = trends(ws, "air", by="airline", every="day")
    la = trends(ws, "air", by="airline", every="day", tz="America/Los_Angeles")
    local = pd.to_datetime(df["timestamp"], utc=True).dt.tz_convert("America/Los_Angeles").dt.date
    assert la.totals == local.value_counts().sort_index().tolist() and la.periods[0] == str(min(local))
    assert utc.totals != la.totals and sum(utc.totals) == sum(la.totals) == len(df)
    thin = trends(ws, "air", by="airline", every="day", tz="America/Los_Angeles", min_count=50)
    first_day = thin.totals[0]
    assert first_day < 50 and all(c.thin[0] for c in thin.categories)
    assert all(c.status == "stable" or c.recent_count >= 50 for c in thin.categories)
    r = cli(ws, run_cli, "trends", "--dataset", "air", "--by", "airline", "--every", "day", "--tz",
            "America/Los_Angeles", "--min-count", "50", "--chart", tmp_path / "t.png")
    assert r.exit_code == 0, r.stderr
    assert "VOLUME" in r.stdout and "·" in r.stdout and "volume per day" in r.stdout
    assert chart_left_out(thin) == {}, "six airlines: every one is drawn"
    left = chart_left_out(thin, top=3)[None]
    flagged = [c for c in thin.categories if c.status != "stable"]
    assert len(left) == len(thin.categories) - max(3, len(flagged)) and not {c.category for c in flagged} & set(left)
    drawn_stable = [c.total for c in thin.categories if c.category not in left and c.status == "stable"]
    assert all(c.total <= min(drawn_stable, default=c.total) for c in thin.categories if c.category in left)
    bad = cli(ws, run_cli, "trends", "--dataset", "air", "--tz", "Mars/Olympus")
    assert bad.exit_code == 2 and "time zone" in bad.stderr


# ----------------------------------------------------------------- 7. LLM ----

def test_llm_outputs_are_checked_against_their_sources():
    from inhouse.topics.grounding import check_grounded

    weather = ["flights cancelled because of the snow storm", "weather delays again in Boston", "ice on the wings"]
    assert not check_grounded("Day of the Dead", weather, kind="name")[0]
    assert check_grounded("Weather delays", weather, kind="name")[0]
    assert not check_grounded("These messages are about delays in Denver.", weather, kind="summary")[0]
    assert check_grounded("These messages are about weather delays in Boston.", weather, kind="summary")[0]


@pytest.mark.slow
def test_llm_estimate_comes_first_and_a_no_stops_before_any_prompt(air):
    from inhouse.analysis.summarize import summarize

    ws, df, _ = air
    seen = []
    with pytest.raises(UsageError, match="stopped before summarising"):
        summarize(ws, "air", by="airline", llm="smollm2-135m", model=BASE, confirm=lambda e: seen.append(e) or False)
    est = seen[0]
    assert est.prompts == df["airline"].nunique() and est.documents == len(df) and est.minutes > 0
    assert "prompts" in est.line() and "min on this machine" in est.line()
    assert not ws.db.execute("SELECT 1 FROM runs WHERE kind = 'llm_speed'").fetchall(), "no model ran"


@pytest.mark.slow
def test_keywords_of_a_category_do_not_depend_on_the_others_selected(air):
    from inhouse.analysis.summarize import summarize

    ws, _, _ = air
    alone = summarize(ws, "air", by="airline", model=BASE, categories=["Delta"])[0]
    pair = {s.category: s for s in summarize(ws, "air", by="airline", model=BASE, categories=["Delta", "United"])}
    every = {s.category: s for s in summarize(ws, "air", by="airline", model=BASE)}
    assert alone.keywords == pair["Delta"].keywords == every["Delta"].keywords
    assert alone.summary == every["Delta"].summary


# ------------------------------------------------------------- 8. smaller ----

@pytest.mark.slow
def test_training_bar_ends_on_the_stored_validation_figures(air):
    from inhouse.progress import ListSink, use
    from inhouse.training.arguments import TrainingArguments
    from inhouse.training.train import train

    ws, _, _ = air
    events = []
    with use(ListSink(events)):
        r = train(ws, "air", "sent", TrainingArguments(base=BASE, method="head", abstain=False, split="test"))
    last = [e for e in events if e.desc == "fitting head"][-1]
    assert last.info["C"] == r.val_metrics["C"]
    assert last.info["val_accuracy"] == round(r.val_metrics["accuracy"], 4)


@pytest.mark.slow
def test_explain_weights_of_a_head_version_shows_what_pulls_toward_each_class(complaints, run_cli):
    ws, _, r = complaints
    out = cli(ws, run_cli, "explain-weights", r.ref, "--json").json
    classes = {c["label"]: c for c in out["classes"]}
    assert set(classes) == set(r.labels)
    assert all(c["words"] and c["examples"] for c in classes.values())
    text = cli(ws, run_cli, "explain-weights", r.ref).stdout
    assert "Lost Luggage: words" in text and "no encoder weight changed" in text and "0.00%" not in text


@pytest.mark.slow
def test_eval_warns_when_labels_came_from_topics_of_the_same_embeddings(air, run_cli):
    ws, _, _ = air
    res = cli(ws, run_cli, "discover", "--dataset", "air", "--model", BASE, "--n-topics", "4", "--json").json
    for t in range(4):
        assert cli(ws, run_cli, "label", "--dataset", "air", "--topic", t, "--run", res["run_id"], "--as",
                   f"t{t}", "--into", "topiclabel").exit_code == 0
    assert cli(ws, run_cli, "train", "--dataset", "air", "--name", "circ", "--base", BASE, "--method", "head",
               "--label-col", "topiclabel").exit_code == 0
    ev = cli(ws, run_cli, "eval", "circ", "--dataset", "air", "--label-col", "topiclabel", "--json")
    assert ev.exit_code == 0
    assert ev.json["circular_labels"]["rows"] == ev.json["n"] and "circular" in ev.json["warnings"][0]
    assert "warning:" in ev.stderr


def test_confusion_png_has_counts_and_a_whole_title(tmp_path):
    import matplotlib.image as mpimg

    from inhouse.analysis.evaluate import confusion_png

    cm = np.array([[5, 1], [2, 7]])
    title = "complaints@12 on airline-tweets-with-a-long-name/test: accuracy 0.800 " * 2
    path = confusion_png(cm, ["Late Flight", "other"], tmp_path / "cm.png", title)
    assert mpimg.imread(path).shape[0] > 500


@pytest.mark.slow
def test_models_show_says_training_rows_are_kept_and_export_can_leave_them_out(complaints, run_cli, tmp_path):
    ws, _, r = complaints
    show = cli(ws, run_cli, "models", "show", r.ref).stdout
    assert "keeps its training rows" in show and "--without-training-texts" in show and "abstains    'other'" in show
    out = cli(ws, run_cli, "models", "export", r.ref, "--out", tmp_path / "lean", "--without-training-texts",
              "--no-base", "--json")
    assert out.exit_code == 0, out.stderr
    manifest = json.loads((tmp_path / "lean" / "manifest.json").read_text())
    assert "train_rows.json" not in manifest["files"] and not (tmp_path / "lean" / "model" / "train_rows.json").exists()
    assert out.json["exported_sha256"] != r.sha256 and manifest["abstain"] == r.abstain
    other = Workspace.open(tmp_path / "other")
    imp = run_cli("--home", other.home, "models", "import", tmp_path / "lean", "--json")
    assert imp.exit_code == 0, imp.stderr
