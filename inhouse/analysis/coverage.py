"""What a new version covers that the old one did not: its added labels, scored on its own validation rows.

:func:`validation_scores` classifies again the rows training held out for
validation (kept in the version's ``train_index.safetensors`` and
``train_rows.json``) and scores each label, with the version's most likely
label as training's own validation figures do. :func:`new_label_coverage` is the
section ``models diff`` adds when the new version has labels the old one lacks:
per added label, its validation scores, how many of the compared documents the
new version gives it, and what the old version answered for those documents
(often ``other``: what it turned away).

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> validation_scores(ws, load_classifier(ws, "intents@2"))["per_class"]["lost_card"]["f1"]
    0.93
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from ..classifiers.base import INDEX_FILE, ROWS_FILE, Classifier
from ..classifiers.predict import cached_proba
from ..errors import NotFound
from ..training.metrics import label_report
from ..workspace.documents import read_documents
from ..workspace.store import Workspace


def validation_scores(ws: Workspace, clf: Classifier) -> dict | None:
    """Accuracy, macro-F1 and per-class scores of ``clf`` on its validation rows; None when it kept none.

    Rows whose document is gone from the dataset, or whose text changed, are left out (``missing``).
    """
    folder = clf.version.path
    if clf.multi_label or not (folder / INDEX_FILE).is_file() or not (folder / ROWS_FILE).is_file():
        return None
    from safetensors.numpy import load_file

    is_val = load_file(str(folder / INDEX_FILE))["is_val"]
    rows = json.loads((folder / ROWS_FILE).read_text(encoding="utf-8"))
    val = [i for i in np.flatnonzero(is_val) if int(rows["doc_ids"][i]) >= 0]  # label-name rows have ids < 0
    wanted = {int(rows["doc_ids"][i]): rows["text_hashes"][i] for i in val}
    try:
        df = read_documents(ws, rows["dataset"], columns=["doc_id", "text", "text_hash"])
    except NotFound:
        return None
    texts = {int(d): t for d, t, h in zip(df["doc_id"], df["text"], df["text_hash"]) if wanted.get(int(d)) == h}
    keep = [i for i in val if int(rows["doc_ids"][i]) in texts]
    if not keep:
        return {"accuracy": 0.0, "macro_f1": 0.0, "n": 0, "per_class": {}, "missing": len(val)}
    probs = cached_proba(clf, [texts[int(rows["doc_ids"][i])] for i in keep], [rows["text_hashes"][i] for i in keep])
    predicted = [clf.labels[j] for j in probs.argmax(axis=1)]
    out = label_report([rows["labels"][i][0] for i in keep], predicted, clf.labels)
    return {**out, "missing": len(val) - len(keep)}


def new_label_coverage(ws: Workspace, old: Classifier, new: Classifier, old_answers: list, new_answers: list,
                       per_class: list[dict]) -> list[dict]:
    """Per label ``new`` has and ``old`` lacks: validation scores, documents given it, what ``old`` said of them.

    ``old_answers``/``new_answers`` are both versions' answers on the compared documents, ``per_class``
    the diff's rows (their gold-label scores on those documents, when labelled, are repeated here).
    """
    added = sorted(set(new.labels) - set(old.labels))
    if not added:
        return []
    val = validation_scores(ws, new)
    on_docs = {r["label"]: r for r in per_class}
    out = []
    for label in added:
        idx = [i for i, a in enumerate(new_answers) if a == label]
        row = {"label": label, "predicted": len(idx),
               "old_answers": dict(Counter(old_answers[i] for i in idx).most_common()),
               "validation": (val["per_class"].get(label) if val else None),
               "validation_rows": val["n"] if val else 0}
        r = on_docs.get(label) or {}
        if r.get("support"):
            row["on_documents"] = {k: r[k] for k in ("support", "new_f1", "new_recall")}
        out.append(row)
    return out
