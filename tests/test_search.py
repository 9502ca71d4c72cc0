"""The Explore screen's document search in DuckDB gives exactly what reading every document in pandas gives."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from inhouse.data import labels as labels_api
from inhouse.data.ingest import ingest
from inhouse.data.search import search_documents
from inhouse.demo.data import write_csv
from inhouse.workspace.documents import read_documents


@pytest.fixture()
def calls(ws, tmp_path):
    csv = write_csv(tmp_path / "calls.csv", n=400, seed=9)
    ingest(ws, csv, "calls", label_col="intent", time_col="timestamp", id_col="message_id", split_col="split")
    labels_api.label_docs(ws, "calls", [0, 1, 2, 3], "vip", overwrite=True)  # over the file's labels
    labels_api.label_docs(ws, "calls", [5, 6], "card_lost", overwrite=True)
    undone = labels_api.label_docs(ws, "calls", [7], "gone", overwrite=True)
    labels_api.undo(ws, undone.batch)  # an undone label is not a label
    return ws


def _reference(ws, q=None, label=None, unlabelled=False, split=None, t0=None, t1=None):
    df = read_documents(ws, "calls", columns=["doc_id", "text", "label", "labels", "time", "split", "source_id"],
                        split=split)
    if q:
        df = df[df["text"].str.contains(re.escape(q), case=False, na=False)]
    if label is not None:
        df = df[df["labels"].map(lambda ls: label in ls)]
    if unlabelled:
        df = df[df["label"].isna()]
    if t0 is not None:
        df = df[df["time"].notna() & (df["time"] >= t0)]
    if t1 is not None:
        df = df[df["time"].notna() & (df["time"] < t1)]
    return df


T0, T1 = pd.Timestamp("2026-07-01", tz="UTC"), pd.Timestamp("2026-08-01", tz="UTC")
CASES = [{}, {"q": "REFUND"}, {"q": "£"}, {"q": "100%_"}, {"label": "card_lost"}, {"label": "vip"}, {"label": "gone"},
         {"unlabelled": True}, {"split": "test"}, {"t0": T0, "t1": T1}, {"q": "card", "label": "card_lost", "t0": T0},
         {"unlabelled": True, "split": "train", "t1": T1}]


@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(c) or "all")
def test_search_matches_the_pandas_reading_of_every_document(calls, case):
    want = _reference(calls, **case)
    kw = {k: v for k, v in case.items() if k not in ("t0", "t1")}
    for offset in (0, 7):
        got = search_documents(calls, "calls", time_from=case.get("t0"), time_to=case.get("t1"), limit=25,
                               offset=offset, **kw)
        assert got["total"] == len(want)
        page = want.iloc[offset:offset + 25]
        assert [d["doc_id"] for d in got["documents"]] == page["doc_id"].tolist()
        for d, (_, r) in zip(got["documents"], page.iterrows()):
            assert d["labels"] == list(r["labels"]) and d["label"] == (r["label"] if isinstance(r["label"], str) else None)
            assert d["time"] == (None if pd.isna(r["time"]) else r["time"].isoformat())
            assert (d["text"], d["split"], d["source_id"]) == (r["text"], r["split"], r["source_id"])


def test_people_labels_replace_the_files_and_undone_ones_do_not_count(calls):
    vip = search_documents(calls, "calls", label="vip")
    assert vip["total"] == 4 and all(d["labels"] == ["vip"] for d in vip["documents"])
    assert search_documents(calls, "calls", label="gone")["total"] == 0


def test_documents_by_id_reads_just_those_in_the_order_asked(calls):
    from inhouse.data.search import documents_by_id

    every = read_documents(calls, "calls", columns=["doc_id", "text"]).set_index("doc_id")["text"]
    ids = [399, 3, 250, 3 + 1]
    got = documents_by_id(calls, "calls", ids)
    assert got["doc_id"].tolist() == ids and got["text"].tolist() == [every[i] for i in ids]
    assert documents_by_id(calls, "calls", []).empty
    with pytest.raises(ValueError, match="unknown document columns"):
        documents_by_id(calls, "calls", [1], columns=("text; DROP TABLE x",))


def test_matching_ids_are_the_ids_of_every_match_in_order(calls):
    from inhouse.data.search import matching_ids

    for case in ({}, {"unlabelled": True}, {"label": "vip"}, {"q": "card", "split": "test"}):
        assert matching_ids(calls, "calls", **case).tolist() == _reference(calls, **case)["doc_id"].tolist()


def test_doc_ids_pick_documents_with_people_labels_laid_over(calls):
    got = search_documents(calls, "calls", doc_ids=[399, 0, 5], limit=10)
    assert [d["doc_id"] for d in got["documents"]] == [0, 5, 399] and got["total"] == 3
    assert got["documents"][0]["labels"] == ["vip"] and got["documents"][1]["label"] == "card_lost"
    assert search_documents(calls, "calls", doc_ids=[], limit=10)["total"] == 0
