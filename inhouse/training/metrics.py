"""The one place metrics are computed: accuracy, F1, per-class reports, calibration.

Training (validation scores), ``inhouse eval`` and ``inhouse models diff`` all
call :func:`label_report`, so "macro-F1" means one thing everywhere: the mean
F1 over the labels that occur in the true labels.

    >>> r = label_report(["a", "a", "b"], ["a", "b", "b"])
    >>> round(r["accuracy"], 3), round(r["macro_f1"], 3), r["per_class"]["b"]["precision"]
    (0.667, 0.667, 0.5)
"""

from __future__ import annotations

import numpy as np

from .arguments import ECE_BINS

# -------------------------------------------------------------- metrics ----

def label_report(y_true: list, y_pred: list, labels: list | None = None) -> dict:
    """Accuracy, macro-F1 and per-class precision / recall / F1 / support of single-label predictions.

    Macro-F1 averages over the labels present in ``y_true``; ``per_class`` covers
    ``labels`` (default: every label seen in ``y_true`` or ``y_pred``).
    """
    from sklearn.metrics import precision_recall_fscore_support

    y_true, y_pred = list(y_true), list(y_pred)
    labels = sorted(set(y_true) | set(y_pred)) if labels is None else list(labels)
    if not y_true:
        return {"accuracy": 0.0, "macro_f1": 0.0, "n": 0, "per_class": {}}
    present = sorted(set(y_true))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    f_present = precision_recall_fscore_support(y_true, y_pred, labels=present, zero_division=0)[2]
    return {"accuracy": float(np.mean([a == b for a, b in zip(y_true, y_pred)])),
            "macro_f1": float(np.mean(f_present)), "n": len(y_true),
            "per_class": {l: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                          for i, l in enumerate(labels)}}


def multi_label_report(Y: np.ndarray, pred: np.ndarray, labels: list | None = None) -> dict:
    """Subset accuracy, micro- and macro-F1 of 0/1 label matrices (rows: texts, columns: labels),
    and per-class scores when the columns' ``labels`` are given."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    out = {"accuracy": float((pred == Y).all(axis=1).mean()),
           "micro_f1": float(f1_score(Y, pred, average="micro", zero_division=0)),
           "macro_f1": float(f1_score(Y, pred, average="macro", zero_division=0)), "n": int(len(Y))}
    if labels is not None:
        p, r, f, s = precision_recall_fscore_support(Y, pred, zero_division=0)
        out["per_class"] = {l: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                                "support": int(s[i])} for i, l in enumerate(labels)}
    return out


def metrics(y_true: np.ndarray, probs: np.ndarray, multi_label: bool, threshold: float = 0.5) -> dict:
    """Validation scores during training: accuracy and macro-F1 (micro-F1 too for multi-label)."""
    if len(y_true) == 0:
        return {}
    if multi_label:
        return multi_label_report(np.asarray(y_true), (probs >= threshold).astype(int))
    r = label_report(np.asarray(y_true).tolist(), probs.argmax(1).tolist())
    return {"accuracy": r["accuracy"], "macro_f1": r["macro_f1"], "n": r["n"]}


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Sum over equal-width confidence bins of |accuracy - mean confidence| x bin share.

    >>> expected_calibration_error(np.array([0.9, 0.9]), np.array([1, 0]))
    0.4
    """
    if len(confidence) == 0:
        return 0.0
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - confidence[m].mean())
    return round(float(ece), 6)


def score(m: dict) -> float:
    return m.get("micro_f1", m.get("accuracy", 0.0))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T that minimises validation log-loss of ``softmax(logits / T)`` (a grid in log space)."""
    best_t, best_nll = 1.0, np.inf
    for T in np.exp(np.linspace(np.log(0.05), np.log(20.0), 121)):
        z = logits / T
        z = z - z.max(axis=1, keepdims=True)
        nll = float(-(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(axis=1))).mean())
        if nll < best_nll:
            best_t, best_nll = float(T), nll
    return best_t
