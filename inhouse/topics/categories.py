"""The category of each document: a label, a discovered topic, or any column of the file."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..errors import InputError, UsageError
from ..workspace.documents import read_documents
from ..workspace.labelsets import label_columns
from ..workspace.store import Workspace
from .runs import load_discovery

# ------------------------------------------------------------ categories ----

BUILTIN_COLUMNS = ("label", "topic", "theme", "prediction", "review", "split", "source_id")
PREDICTION = "prediction"
REVIEW = "review"  # the prediction, with the documents the version was unsure of given its abstain label


def prediction_model(ws: Workspace, column: str) -> str | None:
    """The model sha256 a ``prediction[:REF]`` column names (None: the dataset's newest prediction set).

    ``REF`` is a model reference (``intents@3``, ``intents@production``) or a full sha256.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> prediction_model(ws, "prediction:intents@1")[:12]
    '3f9a1c0b7d2e'
    """
    _, _, ref = column.partition(":")
    ref = ref.strip()
    if not ref:
        return None
    if len(ref) == 64 and all(c in "0123456789abcdef" for c in ref.lower()):
        return ref.lower()
    from .. import registry

    return registry.resolve(ws, ref).sha256


def is_prediction(column: str | None) -> bool:
    return bool(column) and (column == PREDICTION or column.startswith(PREDICTION + ":"))


def is_review(column: str | None) -> bool:
    return bool(column) and (column == REVIEW or column.startswith(REVIEW + ":"))


def review_values(labels: list, scores: list, abstain: dict | None) -> tuple[list, np.ndarray]:
    """What a version gives each document for review: its stored label, or its abstain label where it answered
    but was unsure (best in-scope probability ``scores`` under ``abstain.review.confidence_below``); and which
    rows were so made. Versions without ``abstain.review`` (made before it): the labels as stored.

    >>> review_values(["a", "other", "b"], [0.4, 0.2, 0.9], {"label": "other", "review": {"confidence_below": 0.5}})
    (['other', 'other', 'b'], array([ True, False, False]))
    >>> review_values(["a", "b"], [0.1, 0.9], {"label": "other"})
    (['a', 'b'], array([False, False]))
    """
    ab = abstain if isinstance(abstain, dict) else {}
    q = ab["review"].get("confidence_below") if isinstance(ab.get("review"), dict) else None
    if q is None:
        return list(labels), np.zeros(len(labels), dtype=bool)
    other = str(ab.get("label") or "other")
    away = {other, *(str(x) for x in ab.get("out_of_scope") or [])}
    sc = np.array([np.nan if s is None else s for s in scores], dtype=np.float64)
    unsure = (sc < float(q)) & np.array([l is not None and l == l and str(l) not in away for l in labels], dtype=bool)
    return [other if u else l for l, u in zip(labels, unsure)], unsure


def category_values(ws: Workspace, dataset: str, column: str, doc_ids: np.ndarray, *,
                    run: int | None = None) -> tuple[list[str | None], dict[str, str]]:
    """The value of ``column`` for each of ``doc_ids``, and a display name per value.

    ``column`` is ``label`` (the effective label), a label set people made
    (``label --into``), ``topic`` (the latest discovery, or ``run``),
    ``prediction`` (what the model of the dataset's newest stored prediction set
    predicted; ``prediction:intents@3`` for one version), ``review`` (the same
    with its abstain label where it answered but was unsure: :func:`review_values`,
    the pool candidate new categories come from; ``review:intents@3``), ``split``,
    ``source_id``, the file's own name for one of them, or any other column kept
    from the ingested file (metadata, with people's labels into it laid over).

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> values, names = category_values(ws, "tweets", "negative_reason", np.array([0, 1]))
    >>> values
    ['Late Flight', None]
    """
    import pandas as pd

    info = ws.dataset(dataset)
    cols = info.columns or {}
    original = {v: k for k, v in cols.items() if isinstance(v, str) and k in ("label", "split", "id")}
    key = original.get(column, column)
    key = "source_id" if key == "id" else key
    meta = cols.get("meta") or []
    review = is_review(column) and not (column == REVIEW and REVIEW in meta)
    if review or (is_prediction(column) and not (column == PREDICTION and PREDICTION in meta)):
        from ..data.predictions import find_set

        pset = find_set(ws, dataset, prediction_model(ws, column))
        p = pset.read(["doc_id", "label", "score"] if review else ["doc_id", "label"])
        labels = p["label"].tolist()
        if review:
            from .. import registry

            abstain = (registry.resolve(ws, pset.model_sha256).manifest or {}).get("abstain")
            labels, _ = review_values(labels, p["score"].tolist(), abstain)
        by_doc = dict(zip(p["doc_id"].tolist(), labels))
        values = [by_doc.get(int(d)) for d in doc_ids]
        values = [None if v is None or v != v else str(v) for v in values]
        return values, {v: v for v in set(values) if v is not None}
    if key == "topic":
        res = load_discovery(ws, dataset, run, texts=False)
        a = res.assignments()
        by_doc = dict(zip(a["doc_id"].tolist(), a["topic"].tolist()))
        values = [None if by_doc.get(int(d)) is None else str(by_doc[int(d)]) for d in doc_ids]
        names = {str(t.topic): t.name for t in res.topics}
        names["-1"] = "outliers"
        return values, names
    if key == "theme" and "theme" not in meta:  # the theme of each document's topic in a discovery run
        res = load_discovery(ws, dataset, run, texts=False)
        of = {t.topic: t.theme for t in res.topics}
        a = res.assignments()
        by_doc = dict(zip(a["doc_id"].tolist(), (of.get(int(t)) for t in a["topic"])))
        values = [None if by_doc.get(int(d)) is None else str(by_doc[int(d)]) for d in doc_ids]
        return values, {str(t.theme): t.name for t in res.themes}
    if key == "time" or column == cols.get("time"):
        raise UsageError(f"{column!r} is the time column; group by a category instead.",
                         fix="Use --every day|week|month for time.")
    sets = {c.name for c in label_columns(ws, dataset)}  # label sets people made, and metadata columns
    if key in ("split", "source_id"):
        df = read_documents(ws, dataset, columns=["doc_id", key])
        series = df.set_index("doc_id")[key]
    elif key == "label" or column in sets:  # a label column: the file's values with people's labels laid over
        df = read_documents(ws, dataset, columns=["doc_id", "label"], label_col=column)
        series = df.set_index("doc_id")["label"]
    elif column in meta:
        df = read_documents(ws, dataset, columns=["doc_id", "meta"])
        series = pd.Series([_meta_value(m, column) for m in df["meta"]], index=df["doc_id"])
    else:
        known = list(BUILTIN_COLUMNS) + [c for c in sorted(sets | set(meta)) if c not in BUILTIN_COLUMNS]
        raise InputError(f"dataset {dataset!r} has no column {column!r}; columns are {known}.",
                         fix="Use one of them (the file's other columns are kept at ingest).")
    values = series.reindex(doc_ids).tolist()
    values = [None if v is None or (isinstance(v, float) and np.isnan(v)) or v == "" else str(v) for v in values]
    return values, {v: v for v in set(values) if v is not None}


def _meta_value(meta: str | None, column: str) -> Any:
    if not meta:
        return None
    try:
        return json.loads(meta).get(column)
    except (ValueError, AttributeError):
        return None
