"""Measure a classifier version on labelled rows, beside the general model.

Every evaluation reports, on the same rows: accuracy, macro-F1, per-class
precision/recall/F1/support, the most frequent confusions, the confusion
matrix as a PNG, expected calibration error (15 bins), and the zero-shot
accuracy of the untuned base encoder (cosine similarity between each text and
each label name, underscores read as spaces): what fine-tuning bought.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> r = evaluate(ws, "intents@1", "banking77", split="test")
    >>> round(r["accuracy"], 3), round(r["zero_shot"]["accuracy"], 3)
    (0.931, 0.624)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..classifiers.backbone import frozen_embeddings
from ..classifiers.load import load_classifier
from ..classifiers.predict import cached_scores
from ..errors import InputError
from ..registry.core import record_evaluation
from ..training.data import label_text
from ..training.metrics import (
    expected_calibration_error,
    label_report,
    multi_label_report,
)
from ..workspace.documents import read_documents
from ..workspace.files import atomic_path, atomic_write_text
from ..workspace.store import Workspace
from .drift import Profile


def zero_shot_proba(ws: Workspace, base: str, texts: list[str], labels: list[str], hashes: list[str] | None = None,
                    *, max_length: int = 128) -> np.ndarray:
    """Cosine similarity of each text to each label name with the untuned base (rows sum to 1 via softmax x 20)."""
    X = frozen_embeddings(ws, base, texts, hashes, max_length=max_length, prepare=True)
    L = frozen_embeddings(ws, base, [label_text(l) for l in labels], max_length=max_length)
    X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    L = L / np.maximum(np.linalg.norm(L, axis=1, keepdims=True), 1e-12)
    z = (X @ L.T) * 20.0
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _single_label_report(y_true: list[str], y_pred: list[str], conf: np.ndarray, model_labels: list[str]) -> dict:
    from sklearn.metrics import confusion_matrix

    labels = sorted(set(model_labels) | set(y_true))
    r = label_report(y_true, y_pred, labels)
    correct = np.array([a == b for a, b in zip(y_true, y_pred)], dtype=float)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    off = [(int(cm[i, j]), labels[i], labels[j]) for i, j in zip(*np.nonzero(cm)) if i != j]
    off.sort(key=lambda x: (-x[0], x[1], x[2]))
    return {
        "accuracy": r["accuracy"], "macro_f1": r["macro_f1"],
        "per_class": {l: {k: round(v, 4) if isinstance(v, float) else v for k, v in m.items()}
                      for l, m in r["per_class"].items()},
        "ece": expected_calibration_error(conf, correct),
        "top_confusions": [{"true": t, "predicted": q, "count": c} for c, t, q in off[:10]],
        "_cm": cm, "_labels": labels,
    }


def _multi_label_report(Y: np.ndarray, probs: np.ndarray, threshold: float, labels: list[str]) -> dict:
    pred = (probs >= threshold).astype(int)
    conf = np.where(pred == 1, probs, 1 - probs).ravel()
    summary = multi_label_report(Y, pred, labels)
    return {
        "accuracy": summary["accuracy"], "micro_f1": summary["micro_f1"], "macro_f1": summary["macro_f1"],
        "per_class": {l: {k: round(v, 4) if isinstance(v, float) else v for k, v in m.items()}
                      for l, m in summary["per_class"].items()},
        "ece": expected_calibration_error(conf, (pred == Y).astype(float).ravel()),
        "top_confusions": [], "_cm": None, "_labels": labels,
    }


def confusion_png(cm: np.ndarray, labels: list[str], path: Path, title: str) -> Path:
    """Confusion matrix as a PNG, written atomically: colour row-normalised, each cell's count written
    in it (up to 40 labels), the title wrapped so it is never cut off."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import textwrap

    n = len(labels)
    size = max(6.0, min(30.0, 0.3 * n + 4))
    fig, ax = plt.subplots(figsize=(size, size))
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fs = max(4, min(9, int(400 / max(n, 1))))
    ax.set_xticks(range(n), labels, rotation=90, fontsize=fs)
    ax.set_yticks(range(n), labels, fontsize=fs)
    if n <= 40:  # the count in every non-empty cell (row-normalised colour)
        cfs = max(4, min(9, int(300 / max(n, 1))))
        for i, j in zip(*np.nonzero(cm)):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=cfs,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("\n".join(textwrap.wrap(title, width=max(30, int(size * 9)))), fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def _eval_rows(ws: Workspace, dataset: str, split: str | None, label_col: str, where: str | None = None):
    df = read_documents(ws, dataset, columns=["doc_id", "text", "text_hash", "labels", "split"], split=split,
                        label_col=label_col, where=where)
    if len(df) == 0:
        splits = sorted(read_documents(ws, dataset, columns=["split"])["split"].dropna().unique())
        raise InputError(f"dataset {dataset!r} has no rows in split {split!r}"
                         f"{' where ' + where if where else ''}; its splits are {splits}.",
                         fix="Use --split with one of them" + (", or check --where." if where else "."))
    targets = [list(l) for l in df["labels"]]
    keep = [i for i, t in enumerate(targets) if t]
    if not keep:
        raise InputError(f"dataset {dataset!r} split {split!r} has no labelled rows in label column {label_col!r} "
                         "to evaluate on.", fix="Evaluate on a labelled split, or label documents first.")
    return ([df["text"][i] for i in keep], [df["text_hash"][i] for i in keep], [targets[i] for i in keep],
            [int(df["doc_id"][i]) for i in keep])


def abstain_report(clf, y_true: list[str], probs: np.ndarray, distance: np.ndarray | None = None) -> dict:
    """How abstention did: in-scope accuracy, abstain rates and, for labels the model never saw or that
    it was told are out of scope, the recall of abstaining on them."""
    abstained = clf.abstains(probs, distance)
    j, _ = clf.best_in_scope(probs)
    known = {l for l, ok in zip(clf.labels, clf.in_scope) if ok}
    ins = np.array([t in known for t in y_true], dtype=bool)
    right = np.array([clf.labels[k] == t for k, t in zip(j, y_true)], dtype=bool)
    out = {"label": clf.other_label, "threshold": clf.abstain_threshold, "distance_threshold": clf.distance_threshold,
           "abstain_rate": float(abstained.mean()),
           "in_scope_rows": int(ins.sum()), "out_of_scope_rows": int((~ins).sum())}
    if ins.any():
        out.update(in_scope_accuracy=float((right & ~abstained)[ins].mean()),
                   in_scope_accuracy_answered=float(right[ins & ~abstained].mean()) if (ins & ~abstained).any() else None,
                   in_scope_accuracy_without_abstaining=float(right[ins].mean()),
                   in_scope_abstain_rate=float(abstained[ins].mean()))
    out["out_of_scope_recall"] = float(abstained[~ins].mean()) if (~ins).any() else None
    return out


def circular_labels(ws: Workspace, dataset: str, doc_ids: list[int], label_col: str, model_sha256s: set[str]) -> dict:
    """How many of ``doc_ids`` carry a label set from a discovered topic whose embeddings came from one of
    ``model_sha256s`` (the classifier's base): evaluating on them measures the clustering, not the model."""
    from ..workspace.labelsets import resolve_label_col

    info = ws.dataset(dataset)
    key = resolve_label_col(ws, dataset, label_col).key
    rows = ws.db.execute(
        "SELECT l.doc_id, l.source FROM labels l WHERE l.dataset_id = ? AND l.label_col = ? AND l.undone_at IS NULL"
        " AND l.source LIKE 'topic:%' AND l.id = (SELECT MAX(id) FROM labels m WHERE m.dataset_id = l.dataset_id"
        " AND m.doc_id = l.doc_id AND m.label_col = l.label_col AND m.undone_at IS NULL)", (info.id, key)).fetchall()
    runs = {}
    for d, source in rows:
        runs.setdefault(int(source.split(":")[1]), set()).add(int(d))
    same, models = set(), set()
    for run, docs in runs.items():
        r = ws.db.execute("SELECT model, model_sha256 FROM discoveries WHERE run_id = ?", (run,)).fetchone()
        if r is not None and r["model_sha256"] in model_sha256s:
            same |= docs
            models.add(r["model"])
    n = len(same & set(doc_ids))
    return {"rows": n, "share": round(n / max(len(doc_ids), 1), 4), "models": sorted(models)}


def evaluate(ws: Workspace, ref: str, dataset: str, split: str | None = "test", *, label_col: str = "label",
             out: str | Path | None = None, where: str | None = None, abstain: bool = True) -> dict:
    """Metrics of a model version on a dataset split, with the zero-shot base beside them.

    Predictions are the model's decisions, abstention included (``other`` where
    it is not confident enough; ``abstain=False`` turns that off); test rows
    whose label the model never saw count as right when it abstains. The
    ``abstain`` section reports in-scope accuracy, the abstain rate and the
    recall of abstaining on such rows. ``warnings`` says when the labels came
    from topics discovered with the model's own base embeddings (circular).

    Writes the confusion matrix PNG to ``out`` (else the workspace's ``runs/``)
    and records the run with the exact version used. Returns a plain dict.
    """
    t0 = time.time()
    clf = load_classifier(ws, ref)
    texts, hashes, targets, doc_ids = _eval_rows(ws, dataset, split, label_col, where)
    probs, distance = cached_scores(clf, texts, hashes)
    enc = clf.manifest.get("encoder", {})
    zs = zero_shot_proba(ws, clf.base, texts, clf.labels, hashes, max_length=enc.get("max_length", 128))
    if clf.multi_label:
        pos = {l: i for i, l in enumerate(clf.labels)}
        Y = np.zeros((len(texts), len(clf.labels)), int)
        for r, t in enumerate(targets):
            for l in t:
                if l in pos:
                    Y[r, pos[l]] = 1
        rep = _multi_label_report(Y, probs, clf.head.threshold, clf.labels)
        zs_pred = np.zeros_like(Y)
        zs_pred[np.arange(len(Y)), zs.argmax(1)] = 1
        zrep = _multi_label_report(Y, zs_pred.astype(float), 0.5, clf.labels)
    else:
        y_raw = [t[0] for t in targets]
        scope = {l for l, ok in zip(clf.labels, clf.in_scope) if ok}
        abstaining = abstain and clf.can_abstain
        # a label the model never saw (or was told is out of scope) is answered right by abstaining
        y_true = [t if t in scope or not abstaining else clf.other_label for t in y_raw]
        shown = sorted(scope) + ([clf.other_label] if abstaining else [])
        rep = _single_label_report(y_true, clf.decide(probs, abstain=abstain, distance=distance),
                                   clf.best_in_scope(probs)[1], shown)
        zrep = _single_label_report(y_raw, [clf.labels[j] for j in zs.argmax(1)], zs.max(axis=1), clf.labels)
    v = clf.version
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    folder = Path(out) if out else ws.dir("runs")
    png = None
    if rep["_cm"] is not None:
        png = confusion_png(rep["_cm"], rep["_labels"], folder / f"confusion-{v.name}-v{v.version}-{dataset}-{split}-{stamp}.png",
                            f"{v.ref} on {dataset}/{split}: accuracy {rep['accuracy']:.3f}")
    result = {k: val for k, val in rep.items() if not k.startswith("_")}
    if not clf.multi_label:
        result["abstain"] = {**abstain_report(clf, y_raw, probs, distance),
                             "enabled": bool(abstain and clf.can_abstain)}
        # what the model answered on these rows: the baseline its runs' drift is measured against
        decided = clf.decide(probs, abstain=abstain, distance=distance)
        result["profile"] = Profile.of(decided, clf.abstains(probs, distance) & abstaining,
                                       clf.best_in_scope(probs)[1]).to_dict()
    warnings = []
    base_sha = (clf.manifest.get("base") or {}).get("sha256")
    circ = circular_labels(ws, dataset, doc_ids, label_col, {base_sha} if base_sha else set())
    if circ["rows"]:
        warnings.append(f"{circ['rows']} of {len(doc_ids)} rows ({circ['share']:.0%}) have labels set from topics "
                        f"discovered with {', '.join(circ['models'])}, the embeddings {v.ref} is built on: the accuracy "
                        "on them is circular (it measures how well the model re-finds the clusters). Evaluate on "
                        "labels people checked, or on another dataset.")
    result.update({
        "n": len(texts), "model": v.ref, "sha256": v.sha256, "method": clf.method, "base": clf.base,
        "dataset": dataset, "split": split, "confusion_matrix_png": str(png) if png else None,
        "zero_shot": {"model": clf.base, "accuracy": zrep["accuracy"], "macro_f1": zrep["macro_f1"], "ece": zrep["ece"],
                      "per_class": {l: m.get("f1") for l, m in zrep["per_class"].items()}},
        "confusion_matrix": ({"labels": rep["_labels"], "matrix": rep["_cm"].tolist()} if rep["_cm"] is not None else None),
        "unknown_labels": sorted({l for t in targets for l in t} - set(clf.labels)),
        "where": where, "label_col": label_col, "warnings": warnings, "circular_labels": circ,
        "seconds": round(time.time() - t0, 3),
    })
    if out:
        atomic_write_text(folder / f"eval-{v.name}-v{v.version}-{dataset}-{split}-{stamp}.json",
                          json.dumps(result, indent=2, sort_keys=True))
    record_evaluation(ws, v, dataset, split, result)
    ws.record_run("eval", {"dataset": dataset, "split": split, "label_col": label_col, "where": where,
                           "abstain": abstain}, result,
                  model=v.ref, model_sha256=v.sha256, started_at=t0)
    return result
