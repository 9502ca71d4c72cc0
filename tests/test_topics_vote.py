"""Neighbour votes in the topics' refinement (issue 18 §1): on intent data, where the neighbour graph supports
the topics, they keep an intent's many phrasings in one topic; where it does not (question types) the
refinement is the k-means one as before. Real banking77 and trec6 rows, wordllama vectors (fast)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import normalized_mutual_info_score as nmi

from inhouse.models.encoders import load_encoder
from inhouse.topics.cluster import TopicClusterer
from inhouse.topics.text import clean_text


def _vectors(ws, shared_data, name: str, csv: str, truth: str, n: int):
    """``n`` rows of a real set (banking77: train split only; tuning never looks at its test rows)."""
    df = pd.read_csv(shared_data / name / csv, dtype=str, keep_default_na=False)
    if "split" in df:
        df = df[df["split"] == "train"]
    df = df.sample(n=n, random_state=0).sort_index()
    X = load_encoder(ws, "wordllama").encode([clean_text(t) for t in df["text"]])
    return X, df[truth].to_numpy()


@pytest.mark.slow
def test_votes_keep_intents_whole_where_the_graph_supports_them(ws, shared_data):
    X, truth = _vectors(ws, shared_data, "banking77", "banking77.csv", "label", 4000)
    new = TopicClusterer(seed=0).fit(X)
    old = TopicClusterer(seed=0, vote_purity=2.0).fit(X)  # the refinement without votes (the old default)
    assert new.voted_ and not old.voted_ and new.neighbour_purity_ >= 0.8
    assert new.n_topics_ == old.n_topics_, "votes move documents between topics, they do not add topics"
    gain = nmi(truth, new.labels_) - nmi(truth, old.labels_)
    assert gain >= 0.015, f"neighbour votes should keep intents whole: NMI {nmi(truth, old.labels_):.3f} -> " \
                         f"{nmi(truth, new.labels_):.3f}"
    again = TopicClusterer(seed=0).fit(X)
    assert np.array_equal(again.labels_, new.labels_)


@pytest.mark.slow
def test_no_votes_where_the_graph_does_not_support_the_topics(ws, shared_data):
    X, _ = _vectors(ws, shared_data, "trec6", "trec6.csv", "fine_label", 2000)
    new = TopicClusterer(seed=0).fit(X)
    assert not new.voted_ and new.neighbour_purity_ < 0.8
    assert np.array_equal(new.labels_, TopicClusterer(seed=0, vote_purity=2.0).fit(X).labels_)
