"""The user's own ids come back in every output that lists documents.

Real tweets with their real 18-digit ``tweet_id`` are ingested twice: as ``tw``
with ``--id-col tweet_id`` and as ``plain`` without ids (so documents are named
by their row in the file). One row has an empty text, so ingest quarantines it
and the row numbers after it must still match the file. Every output is joined
back to the source file, by ``tweet_id`` or by ``row``, and must find the same
text.
"""

from __future__ import annotations

import pandas as pd
import pytest

from inhouse.workspace.documents import read_documents
from inhouse.workspace.store import Workspace

pytestmark = pytest.mark.slow  # a module workspace with trained models (about 10 s)

EMPTY_AT = 5  # 0-based position of the row whose text is empty (file row 6)


@pytest.fixture(scope="module")
def tweets(tmp_path_factory, shared_data):
    """(home, source DataFrame, path of the CSV); datasets ``tw`` (ids) and ``plain``; models s@1 and s@2."""
    from conftest import invoke_cli

    df = pd.read_csv(shared_data / "twitter_airline_sentiment" / "twitter_airline_sentiment.csv",
                     dtype={"tweet_id": str}, keep_default_na=False)
    df = df.drop_duplicates("tweet_id", keep=False)
    src = pd.concat([df[df["split"] == "train"].groupby("label").head(20),
                     df[df["split"] == "test"].groupby("label").head(8)])
    src = src[["tweet_id", "text", "label", "split", "airline"]].sample(frac=1, random_state=0).reset_index(drop=True)
    src.loc[EMPTY_AT, "text"] = ""  # quarantined at ingest; later rows keep their file row numbers
    home = tmp_path_factory.mktemp("ids-ws")
    path = home / "tweets.csv"
    src.to_csv(path, index=False)
    for name, extra in (("tw", ["--id-col", "tweet_id"]), ("plain", [])):
        r = invoke_cli("--home", home, "ingest", path, "--dataset", name, "--label-col", "label",
                       "--split-col", "split", *extra, "--json")
        assert r.exit_code == 0 and r.json["stored"] == len(src) - 1 and r.json["quarantined"] == 1, r.stderr
    for extra in ([], ["--shots", "3", "--seed", "1"]):
        r = invoke_cli("--home", home, "train", "--dataset", "tw", "--name", "s", "--method", "head", *extra)
        assert r.exit_code == 0, r.stderr
    return home, src, path


def _read(path, **kw) -> pd.DataFrame:
    kind = path.suffix
    if kind == ".csv":
        return pd.read_csv(path, keep_default_na=False, na_values=[""], **kw)
    return pd.read_parquet(path) if kind == ".parquet" else pd.read_json(path, lines=True, dtype=False)


def test_classify_dataset_gives_back_the_users_ids_and_file_rows(tweets, run_cli, tmp_path):
    home, src, path = tweets
    by_id = src.set_index("tweet_id")
    r = run_cli("--home", home, "classify", "s", "--dataset", "tw", "--output", tmp_path / "p.csv", "--json")
    assert r.exit_code == 0, r.stderr
    assert r.json["id_column"] == "tweet_id" and r.json["errors"] == 0
    out = _read(tmp_path / "p.csv", dtype={"tweet_id": str})
    assert list(out.columns[:3]) == ["tweet_id", "row", "doc_id"] and "error" in out.columns
    assert len(out) == len(src) - 1 and out["error"].isna().all()
    assert EMPTY_AT + 1 not in set(out["row"])  # the quarantined row
    # the user's id and the row number both point at the same line of the source file
    assert [src.loc[r - 1, "tweet_id"] for r in out["row"]] == out["tweet_id"].tolist()
    docs = read_documents(Workspace.open(home), "tw", columns=["doc_id", "text"]).set_index("doc_id")
    assert docs.loc[out["doc_id"], "text"].tolist() == by_id.loc[out["tweet_id"], "text"].tolist()

    # without --id-col at ingest: the rows join back to the file by row number, the same numbers
    # classify --input gives the same file
    r = run_cli("--home", home, "classify", "s", "--dataset", "plain", "--output", tmp_path / "q.parquet", "--json")
    assert r.exit_code == 0 and r.json["id_column"] is None, r.stderr
    plain = _read(tmp_path / "q.parquet")
    assert list(plain.columns[:2]) == ["row", "doc_id"] and "tweet_id" not in plain.columns
    docs = read_documents(Workspace.open(home), "plain", columns=["doc_id", "text"]).set_index("doc_id")
    assert docs.loc[plain["doc_id"], "text"].tolist() == [src.loc[r - 1, "text"] for r in plain["row"]]
    r = run_cli("--home", home, "classify", "s", "--input", path, "--id-col", "tweet_id",
                "--output", tmp_path / "f.jsonl", "--json")
    assert r.exit_code == 0 and r.json["rows"] == len(src) and r.json["errors"] == 1, r.stderr
    f = _read(tmp_path / "f.jsonl").set_index("row")
    assert f.index.tolist() == list(range(1, len(src) + 1))
    assert f.loc[EMPTY_AT + 1, "error"].startswith("empty text") and pd.isna(f.loc[EMPTY_AT + 1, "label"])
    assert f.loc[plain["row"], "label"].tolist() == plain["label"].tolist()
    assert f.loc[out["row"], "tweet_id"].tolist() == out["tweet_id"].tolist()


def test_discover_and_summarize_name_documents_by_the_users_ids(tweets, run_cli, tmp_path):
    home, src, _ = tweets
    by_id = src.set_index("tweet_id")
    r = run_cli("--home", home, "discover", "--dataset", "tw", "--n-topics", "3", "--min-topic-size", "3",
                "--output", tmp_path / "t.csv", "--json")
    assert r.exit_code == 0, r.stderr
    res = r.json
    out = _read(tmp_path / "t.csv", dtype={"tweet_id": str})
    assert list(out.columns) == ["tweet_id", "row", "doc_id", "topic", "name"] and len(out) == len(src) - 1
    assert [src.loc[r - 1, "tweet_id"] for r in out["row"]] == out["tweet_id"].tolist()
    docs = read_documents(Workspace.open(home), "tw", columns=["doc_id", "text"]).set_index("doc_id")
    assert docs.loc[out["doc_id"], "text"].tolist() == by_id.loc[out["tweet_id"], "text"].tolist()
    assert res["id_column"] == "tweet_id"
    for t in res["topics"]:
        assert len(t["representative_ids"]) == len(t["representative_docs"]) > 0
        assert by_id.loc[t["representative_ids"], "text"].tolist() == t["representative_texts"]

    r = run_cli("--home", home, "summarize", "--dataset", "tw", "--by", "label", "--n-docs", 2, "--json")
    assert r.exit_code == 0, r.stderr
    for s in r.json["summaries"]:
        assert s["id_column"] == "tweet_id" and len(s["ids"]) == len(s["doc_ids"]) == 2
        assert by_id.loc[s["ids"], "text"].tolist() == s["texts"]
        assert set(by_id.loc[s["ids"], "label"]) == {s["category"]}
    human = run_cli("--home", home, "summarize", "--dataset", "tw", "--by", "label", "--n-docs", 2).stdout
    first = r.json["summaries"][0]
    assert f"tweet_id: {first['ids'][0]}, {first['ids'][1]}" in human

    r = run_cli("--home", home, "summarize", "--dataset", "plain", "--by", "airline", "--n-docs", 2, "--json")
    assert r.exit_code == 0, r.stderr
    for s in r.json["summaries"]:
        assert s["id_column"] == "row"
        assert [src.loc[i - 1, "text"] for i in s["ids"]] == s["texts"]


def test_explain_and_diff_examples_carry_the_users_ids(tweets, run_cli):
    home, src, _ = tweets
    by_id = src.set_index("tweet_id")
    r = run_cli("--home", home, "explain", "s@1", "thank you so much, great flight and lovely crew", "--k", 3, "--json")
    assert r.exit_code == 0, r.stderr
    x = r.json
    assert x["id_column"] == "tweet_id"
    for e in x["supporting"] + x["nearest_other"]:
        assert by_id.loc[e["tweet_id"], "text"] == e["text"] and src.loc[e["row"] - 1, "tweet_id"] == e["tweet_id"]
    human = run_cli("--home", home, "explain", "s@1", "thank you so much, great flight and lovely crew", "--k", 3).stdout
    assert f"(tweet_id {x['supporting'][0]['tweet_id']}) {x['supporting'][0]['text']}" in human

    r = run_cli("--home", home, "models", "diff", "s@1", "s@2", "--dataset", "tw", "--json")
    assert r.exit_code == 0, r.stderr
    d = r.json
    assert d["flipped"] > 0 and d["examples"] and d["id_column"] == "tweet_id"
    for e in d["examples"]:
        assert by_id.loc[e["tweet_id"], "text"] == e["text"] and by_id.loc[e["tweet_id"], "label"] == e["gold"]
    human = run_cli("--home", home, "models", "diff", "s@1", "s@2", "--dataset", "tw").stdout
    assert f"tweet_id {d['examples'][0]['tweet_id']}:" in human


def test_label_accepts_the_users_ids_and_says_what_ids_look_like(tweets, run_cli, tmp_path):
    home, src, path = tweets
    r = run_cli("--home", home, "ingest", path, "--dataset", "tw-label", "--id-col", "tweet_id", "--label-col", "label")
    assert r.exit_code == 0, r.stderr
    # a later ingest without ids does not make the dataset forget the ids it has
    (tmp_path / "more.csv").write_text("text\nmy flight was late again\n", encoding="utf-8")
    assert run_cli("--home", home, "ingest", tmp_path / "more.csv", "--dataset", "tw-label").exit_code == 0
    ws = Workspace.open(home)
    docs = read_documents(ws, "tw-label", columns=["doc_id", "source_id", "label"])
    assert docs["source_id"].isna().sum() == 1
    a, b = docs["source_id"].iloc[3], docs["source_id"].iloc[7]
    # the documents carry labels from the file: replacing them is an explicit --overwrite (issue 12)
    r = run_cli("--home", home, "label", "--dataset", "tw-label", "--doc", a, "--doc", b, "--as", "mine",
                "--overwrite", "--json")
    assert r.exit_code == 0 and r.json["count"] == 2, r.stderr
    after = read_documents(ws, "tw-label", columns=["doc_id", "source_id", "label"])
    assert sorted(after.loc[after["label"] == "mine", "source_id"]) == sorted([a, b])
    # internal doc ids need the explicit flag
    d = int(docs["doc_id"].iloc[0])
    r = run_cli("--home", home, "label", "--dataset", "tw-label", "--doc-id", d, "--as", "other", "--overwrite",
                "--json")
    assert r.exit_code == 0 and r.json["count"] == 1, r.stderr
    r = run_cli("--home", home, "label", "--dataset", "tw-label", "--doc", str(d), "--as", "x")
    assert r.exit_code == 4, r.stderr
    assert f"has no document with tweet_id '{d}'" in r.stderr
    assert f"ids look like '{docs['source_id'].iloc[0]}'" in r.stderr and "--doc-id" in r.stderr
    # a dataset ingested without --id-col: --doc takes doc_ids, and says so for anything else
    r = run_cli("--home", home, "label", "--dataset", "plain", "--doc", "T-1", "--as", "x")
    assert r.exit_code == 2 and "ingested without --id-col" in r.stderr and "doc_id" in r.stderr
