"""Measure a classifier version on labelled rows, beside the general model.

Every evaluation reports, on the same rows: accuracy, macro-F1, per-class
precision/recall/F1/support, the most frequent confusions, the confusion
matrix as a PNG, expected calibration error (15 bins), and the zero-shot
accuracy of the untuned base encoder (cosine similarity between each text and
each label name, underscores read as spaces): what fine-tuning bought.

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
from ..classifiers.predict import cached_proba
from ..errors import InputError
from ..registry.core import record_evaluation
from ..training.data import label_text, targets_from
from ..training.metrics import (
    expected_calibration_error,
    label_report,
    multi_label_report,
)
from ..workspace.documents import read_documents
from ..workspace.files import atomic_path, atomic_write_text
from ..workspace.store import Workspace


def zero_shot_proba(ws: Workspace, base: str, texts: list[str], labels: list[str], hashes: list[str] | None = None,
                    *, max_length: int = 128) -> np.ndarray:
    """Cosine similarity of each text to each label name with the untuned base (rows sum to 1 via softmax x 20)."""
    X = frozen_embeddings(ws, base, texts, hashes, max_length=max_length)
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
    """Row-normalised confusion matrix as a PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(labels)
    size = max(5.0, min(30.0, 0.13 * n + 3))
    fig, ax = plt.subplots(figsize=(size, size))
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fs = max(4, min(9, int(400 / max(n, 1))))
    ax.set_xticks(range(n), labels, rotation=90, fontsize=fs)
    ax.set_yticks(range(n), labels, fontsize=fs)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def _eval_rows(ws: Workspace, dataset: str, split: str | None, label_col: str):
    df = read_documents(ws, dataset, columns=["doc_id", "text", "text_hash", "labels", "meta", "split"], split=split)
    if len(df) == 0:
        splits = sorted(read_documents(ws, dataset, columns=["split"])["split"].dropna().unique())
        raise InputError(f"dataset {dataset!r} has no rows in split {split!r}; its splits are {splits}.",
                         fix="Use --split with one of them.")
    targets = targets_from(df, label_col, dataset)
    keep = [i for i, t in enumerate(targets) if t]
    if not keep:
        raise InputError(f"dataset {dataset!r} split {split!r} has no labelled rows to evaluate on.",
                         fix="Evaluate on a labelled split, or label documents first.")
    return ([df["text"][i] for i in keep], [df["text_hash"][i] for i in keep], [targets[i] for i in keep])


def evaluate(ws: Workspace, ref: str, dataset: str, split: str | None = "test", *, label_col: str = "label",
             out: str | Path | None = None) -> dict:
    """Metrics of a model version on a dataset split, with the zero-shot base beside them.

    Writes the confusion matrix PNG to ``out`` (else the workspace's ``runs/``)
    and records the run with the exact version used. Returns a plain dict.
    """
    t0 = time.time()
    clf = load_classifier(ws, ref)
    texts, hashes, targets = _eval_rows(ws, dataset, split, label_col)
    probs = cached_proba(clf, texts, hashes)
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
        y_true = [t[0] for t in targets]
        rep = _single_label_report(y_true, clf.decide(probs), probs.max(axis=1), clf.labels)
        zrep = _single_label_report(y_true, [clf.labels[j] for j in zs.argmax(1)], zs.max(axis=1), clf.labels)
    v = clf.version
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    folder = Path(out) if out else ws.dir("runs")
    png = None
    if rep["_cm"] is not None:
        png = confusion_png(rep["_cm"], rep["_labels"], folder / f"confusion-{v.name}-v{v.version}-{dataset}-{split}-{stamp}.png",
                            f"{v.ref} on {dataset}/{split}: accuracy {rep['accuracy']:.3f}")
    result = {k: val for k, val in rep.items() if not k.startswith("_")}
    result.update({
        "n": len(texts), "model": v.ref, "sha256": v.sha256, "method": clf.method, "base": clf.base,
        "dataset": dataset, "split": split, "confusion_matrix_png": str(png) if png else None,
        "zero_shot": {"model": clf.base, "accuracy": zrep["accuracy"], "macro_f1": zrep["macro_f1"], "ece": zrep["ece"]},
        "unknown_labels": sorted({l for t in targets for l in t} - set(clf.labels)),
        "seconds": round(time.time() - t0, 3),
    })
    if out:
        atomic_write_text(folder / f"eval-{v.name}-v{v.version}-{dataset}-{split}-{stamp}.json",
                          json.dumps(result, indent=2, sort_keys=True))
    record_evaluation(ws, v, dataset, split, result)
    ws.record_run("eval", {"dataset": dataset, "split": split, "label_col": label_col}, result,
                  model=v.ref, model_sha256=v.sha256, started_at=t0)
    return result
