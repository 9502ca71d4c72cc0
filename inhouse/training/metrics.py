"""The one place metrics are computed: accuracy, F1, per-class reports, calibration."""

from __future__ import annotations

import numpy as np

from .arguments import ECE_BINS

# -------------------------------------------------------------- metrics ----

def metrics(y_true: np.ndarray, probs: np.ndarray, multi_label: bool, threshold: float = 0.5) -> dict:
    """accuracy and macro-F1 (subset accuracy, micro/macro-F1 for multi-label)."""
    from sklearn.metrics import accuracy_score, f1_score

    if len(y_true) == 0:
        return {}
    if multi_label:
        pred = (probs >= threshold).astype(int)
        return {"accuracy": float(accuracy_score(y_true, pred)),
                "micro_f1": float(f1_score(y_true, pred, average="micro", zero_division=0)),
                "macro_f1": float(f1_score(y_true, pred, average="macro", zero_division=0)), "n": int(len(y_true))}
    pred = probs.argmax(1)
    return {"accuracy": float(accuracy_score(y_true, pred)),
            "macro_f1": float(f1_score(y_true, pred, average="macro", labels=np.unique(y_true), zero_division=0)),
            "n": int(len(y_true))}


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

