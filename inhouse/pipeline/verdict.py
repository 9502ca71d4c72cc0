"""Whether a faster stand-in may answer for a version: judged by accuracy on the version's own validation rows.

A stand-in (the int8 ONNX graph, the static-embedding cascade) is accepted
when its accuracy on the validation rows the version was trained beside (never
its training rows, never a test split) is at most :data:`MAX_ACCURACY_LOSS`
below the version's own, whatever the bitwise agreement on near-ties in other
texts; accuracy is of what each answers under the version's abstention rule
(``other`` counted wrong on in-scope rows), so a stand-in that turns away
more good rows fails too. :func:`labelled_rows` recovers those rows from the version's
``train_rows.json`` and ``train_index.safetensors`` and the dataset's texts.

    >>> import numpy as np
    >>> ref = np.array([[.9, .1], [.2, .8], [.6, .4]]); cand = np.array([[.8, .2], [.3, .7], [.4, .6]])
    >>> v = judge(ref, cand, np.array([0, 1, 0]))
    >>> v["accuracy_reference"], round(v["accuracy_loss"], 3), v["accepted"]
    (1.0, 0.333, False)
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from .. import registry
from ..errors import InhouseError
from ..workspace.store import Workspace

MAX_ACCURACY_LOSS = 0.003  # 0.3 point of accuracy on the validation rows


@dataclass(frozen=True)
class LabelledRows:
    """The version's training rows: texts, first-label index into the version's labels, validation flag."""

    texts: list[str]
    y: np.ndarray
    is_val: np.ndarray

    def part(self, val: bool) -> tuple[list[str], np.ndarray]:
        idx = np.flatnonzero(self.is_val == val)
        return [self.texts[i] for i in idx], self.y[idx]


def labelled_rows(ws: Workspace, version: registry.Version) -> LabelledRows | None:
    """The rows ``version`` was trained and validated on, or None (no index, dataset gone, multi-label)."""
    from safetensors.numpy import load_file

    from ..classifiers.base import INDEX_FILE, ROWS_FILE
    from ..workspace.documents import read_documents

    m = version.manifest
    name = (m.get("dataset") or {}).get("name")
    labels = list(m.get("labels") or [])
    if m.get("multi_label") or not name or not (version.path / ROWS_FILE).is_file() \
            or not (version.path / INDEX_FILE).is_file():
        return None
    try:
        rows = json.loads((version.path / ROWS_FILE).read_text(encoding="utf-8"))
        is_val = load_file(str(version.path / INDEX_FILE))["is_val"].astype(bool)
        df = read_documents(ws, name, columns=["doc_id", "text"])
    except (InhouseError, OSError, ValueError, KeyError):
        return None
    text_of = dict(zip(df["doc_id"].tolist(), df["text"].tolist()))
    pos = {label: i for i, label in enumerate(labels)}
    keep = [i for i, (d, t) in enumerate(zip(rows["doc_ids"], rows["labels"]))
            if isinstance(text_of.get(d), str) and t and t[0] in pos]
    if len(keep) != len(rows["doc_ids"]) or len(is_val) != len(keep):
        return None  # the dataset changed since training: these are not the rows it was trained on
    return LabelledRows([text_of[rows["doc_ids"][i]] for i in keep],
                        np.array([pos[rows["labels"][i][0]] for i in keep], dtype=np.int64), is_val)


def judge(reference: np.ndarray, candidate: np.ndarray, gold: np.ndarray,
          max_loss: float = MAX_ACCURACY_LOSS, *, rule=None, distances: tuple | None = None) -> dict:
    """Accuracy of both on ``gold``, the loss, the top-label agreement, and whether the loss is within ``max_loss``.

    With ``rule`` (the version's :class:`~inhouse.classifiers.base.DecisionRule`) each side is judged by what
    it answers, abstention included: ``other`` (where the rule turns a row away on its probabilities and,
    for the distance rule, its ``distances`` = (reference's, candidate's)) is right on rows whose gold label is
    out of scope and wrong elsewhere; ``abstain_agreement`` says on how many rows both turned away alike.

    >>> from inhouse.classifiers.base import DecisionRule
    >>> rule = DecisionRule({"labels": ["a", "b"], "abstain": {"threshold": 0.7}})
    >>> v = judge(np.array([[.9, .1], [.2, .8]]), np.array([[.9, .1], [.35, .65]]), np.array([0, 1]), rule=rule)
    >>> v["accuracy_reference"], v["accuracy"], v["abstain_agreement"], v["agreement"]
    (1.0, 0.5, 0.5, 1.0)
    """
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    a, b = reference.argmax(1), candidate.argmax(1)
    agreement = float((a == b).mean())
    extra = {}
    if rule is not None and rule.can_abstain:
        d0, d1 = distances if distances is not None else (None, None)
        ab0, ab1 = rule.abstains(reference, d0), rule.abstains(candidate, d1)
        a = np.where(ab0, -1, rule.best_in_scope(reference)[0])  # -1: the rule's `other`
        b = np.where(ab1, -1, rule.best_in_scope(candidate)[0])
        gold = np.where(rule.in_scope[np.asarray(gold)], gold, -1)
        extra = {"abstain_agreement": float((ab0 == ab1).mean()), "abstained_reference": int(ab0.sum()),
                 "abstained": int(ab1.sum()), "rule_applied": True}
    acc0, acc1 = float((a == gold).mean()), float((b == gold).mean())
    return {"texts": int(len(gold)), "accuracy_reference": acc0, "accuracy": acc1, "accuracy_loss": acc0 - acc1,
            "agreement": agreement, **extra, "max_loss": max_loss, "accepted": acc0 - acc1 <= max_loss + 1e-12}
