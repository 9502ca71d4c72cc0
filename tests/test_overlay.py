"""One overlay of people's labels on a file's labels (issue 16 §2): every reader of labels lays them over
through :func:`inhouse.workspace.labelsets.overlay_people_labels`, so they all agree.

The readers: ``read_documents`` (training, evaluation, exports), Explore's search (``search_documents``),
a dataset's label counts (``describe_dataset``) and ``--where`` filters. Real airline tweets; people label
some documents over the file's label, into a metadata column and into a label set of their own.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from inhouse.data.datasets import describe_dataset
from inhouse.data.ingest import ingest
from inhouse.data.labels import label_docs
from inhouse.data.search import search_documents
from inhouse.workspace import labelsets
from inhouse.workspace.documents import read_documents
from inhouse.workspace.filters import matching_doc_ids


@pytest.fixture
def air(ws, shared_data, tmp_path):
    df = pd.read_csv(shared_data / "twitter_airline_sentiment" / "twitter_airline_sentiment.csv", nrows=240)
    path = tmp_path / "air.csv"
    df.to_csv(path, index=False)
    ingest(ws, path, "air", label_col="label", split_col="split", time_col="timestamp", id_col="tweet_id")
    ids = read_documents(ws, "air", columns=["doc_id"])["doc_id"].tolist()
    label_docs(ws, "air", ids[:7], "refund", overwrite=True)        # over the file's labels
    label_docs(ws, "air", ids[3:5], "negative", overwrite=True)     # the last label a person set wins
    label_docs(ws, "air", ids[10:14], "Lost Luggage", into="negative_reason", overwrite=True)  # a metadata column
    label_docs(ws, "air", ids[20:23], "delay", into="complaint")     # a label set of people's own
    return ws, ids


def test_every_reader_of_labels_agrees_with_the_one_overlay(air):
    ws, ids = air
    read = read_documents(ws, "air", columns=["doc_id", "labels", "label"])
    assert read.set_index("doc_id").loc[ids[:3], "label"].tolist() == ["refund"] * 3
    assert read.set_index("doc_id").loc[ids[3:5], "label"].tolist() == ["negative"] * 2
    found = search_documents(ws, "air", limit=10_000)
    assert found["total"] == len(read) == 240
    assert [d["labels"] for d in found["documents"]] == read["labels"].tolist()
    counts = Counter(x for ls in read["labels"] for x in ls)
    shown = describe_dataset(ws, "air")
    assert shown["labels"] == dict(counts) and shown["unlabelled"] == sum(1 for ls in read["labels"] if not ls)
    for label in ("refund", "negative", "neutral"):
        want = read.loc[read["label"] == label, "doc_id"].tolist()
        assert matching_doc_ids(ws, "air", f"label = '{label}'").tolist() == want
        assert [d["doc_id"] for d in search_documents(ws, "air", label=label, limit=10_000)["documents"]] == want
    meta = read_documents(ws, "air", columns=["doc_id", "label"], label_col="negative_reason").set_index("doc_id")
    assert meta.loc[ids[10:14], "label"].tolist() == ["Lost Luggage"] * 4
    assert matching_doc_ids(ws, "air", "negative_reason = 'Lost Luggage'").tolist() == \
        meta.index[meta["label"] == "Lost Luggage"].tolist()
    own = read_documents(ws, "air", columns=["doc_id", "label"], label_col="complaint", labelled_only=True)
    assert own["doc_id"].tolist() == ids[20:23] and set(own["label"]) == {"delay"}


def test_the_readers_lay_people_labels_over_through_one_function(air, monkeypatch):
    """Before, read_documents, search and the dataset's counts each read the labels table their own way."""
    ws, _ = air
    seen = []
    real = labelsets.user_labels

    def spy(ws_, dataset_id, label_col=labelsets.DEFAULT_LABEL_COL):
        seen.append(label_col)
        return real(ws_, dataset_id, label_col)

    monkeypatch.setattr(labelsets, "user_labels", spy)
    read_documents(ws, "air", columns=["doc_id", "label"])
    assert seen == ["label"]
    search_documents(ws, "air", limit=5)
    assert seen == ["label"] * 2
    describe_dataset(ws, "air")
    assert seen == ["label"] * 3
    read_documents(ws, "air", columns=["doc_id", "label"], label_col="negative_reason")
    assert seen[-1] == "negative_reason"
