"""Where the cascade may answer for a version of the distance rule: near its training rows in wordllama space.

A version of the distance rule (:mod:`inhouse.training.abstain`) turns a text
away when it is far from every training row in its transformer's embedding
space; the cascade never computes that embedding. So it answers only texts
whose cosine distance to the nearest training row in *its own* (wordllama)
space is under a threshold ``tau``, chosen so that the cascade (almost) never
answers a text the version would turn away:

the in-scope classes are dealt into the same folds as at training; for each
fold, the version's own rule is refitted on the training rows of the other
classes (a head and the distance on the stored transformer embeddings), and
so is the cascade (its head and its wordllama reference). The fold's left-out
validation rows are texts of intents never trained on; the validation rows are
scored by the version itself. ``tau`` is the largest distance at which, of all
those rows, the ones the (refitted) rule turns away but the (refitted) cascade
would answer are at most half of :data:`~inhouse.pipeline.verdict.MAX_ACCURACY_LOSS`
(the bound the cascade keeps on validation accuracy), capped at the in-scope
validation rows' 99.5th percentile (unrelated text of a kind no fold shows).
The gate is used when that leak is within the whole bound (0.3 point) on those
rows and out of fold (``tau`` chosen on half of the folds, the leak counted on
the other half, both ways).

    >>> d = np.array([.1, .2, .3, .4]); bad = np.array([False, False, True, True])
    >>> choose_tau(d, bad, allowed=0), choose_tau(d, bad, allowed=1)
    (0.3, 0.4)
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ..classifiers.distance import Distance
from .verdict import MAX_ACCURACY_LOSS

CAP_QUANTILE = 0.995


def choose_tau(d: np.ndarray, bad: np.ndarray, allowed: int) -> float:
    """The largest ``tau`` with at most ``allowed`` of the ``bad`` rows at a distance under it (inf: none)."""
    worst = np.sort(d[bad])
    return float(worst[allowed]) if len(worst) > allowed else float("inf")


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fold_rows(X: np.ndarray, V: np.ndarray, y: np.ndarray, is_val: np.ndarray, rule, fit_cascade, conf_t: float,
              seed: int, C: float) -> dict:
    """Per left-out validation row of each fold: whether the refitted rule turns it away (``turned``), whether
    the refitted cascade is sure of it at ``conf_t`` (``sure``), its wordllama distance (``d``), its fold."""
    from ..training.abstain import fold_groups, fold_scores

    n_labels = len(rule.labels)
    train_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    classes = [c for c in np.flatnonzero(rule.in_scope).tolist() if (y[train_idx] == c).any()]
    parts = {"turned": [], "sure": [], "d": [], "fold": []}
    for k, g in enumerate(fold_groups(classes, seed)):
        keep = rule.in_scope.copy()
        keep[g] = False
        out = val_idx[~keep[y[val_idx]]]
        if not len(out):
            continue
        data = SimpleNamespace(train_idx=train_idx, val_idx=val_idx)
        *_, p_out, d_out = fold_scores(X, y, data, keep, out, n_labels, C, seed)
        turned = (1.0 - p_out) + rule.distance_weight * d_out > rule.distance_threshold
        tr = train_idx[keep[y[train_idx]]]
        W, b = fit_cascade(V[tr], y[tr], n_labels)
        P = softmax(V[out] @ W.T + b)
        sure = (P.max(1) >= conf_t) & ~rule.abstains(P, np.zeros(len(P), np.float32))
        for name, v in (("turned", turned), ("sure", sure), ("d", Distance.fit(V[tr]).score(V[out])),
                        ("fold", np.full(len(out), k))):
            parts[name].append(v)
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}


def gate(rows: dict, d_val: np.ndarray, max_loss: float = MAX_ACCURACY_LOSS) -> dict:
    """``tau`` and how it did: the leak (pseudo-out-of-scope rows the rule turns away and the cascade answers,
    as a share of them) on the rows it was chosen on and out of fold, and whether both are within ``max_loss``."""
    n = len(rows["d"])
    cap = float(np.quantile(d_val, CAP_QUANTILE)) if len(d_val) else float("inf")
    if n == 0:
        return {"tau": None, "use": False, "reason": "no pseudo-out-of-scope rows (fewer than 3 classes?)"}
    bad = rows["turned"].astype(bool) & rows["sure"].astype(bool)
    inner = max_loss / 2  # chosen with half the bound, judged (also out of fold) with all of it, as the threshold
    tau = min(cap, choose_tau(rows["d"], bad, int(np.floor(inner * n + 1e-9))))
    folds = np.unique(rows["fold"])
    half = np.isin(rows["fold"], folds[: max(1, len(folds) // 2)])
    leaked = 0
    for a, b in ((half, ~half), (~half, half)):
        if a.any() and b.any():
            t = min(cap, choose_tau(rows["d"][a], bad[a], int(np.floor(inner * a.sum() + 1e-9))))
            leaked += int((bad[b] & (rows["d"][b] < t)).sum())
    leak = float((bad & (rows["d"] < tau)).sum() / n)
    oof = leaked / n
    return {"tau": tau, "cap": cap, "rows": int(n), "turned_away": int(rows["turned"].sum()),
            "turned_away_and_sure": int(bad.sum()), "leak": leak, "leak_out_of_fold": oof,
            "max_leak": max_loss, "use": bool(leak <= max_loss + 1e-12 and oof <= max_loss + 1e-12)}


def distance_gate(version, rows, V: np.ndarray, cas_val: np.ndarray, t_probs: np.ndarray, t_dist: np.ndarray,
                  rule, conf_t: float, fit_cascade) -> tuple[dict, np.ndarray, np.ndarray]:
    """(the gate's figures, each validation row's wordllama distance, the reference vectors) for a version of
    the distance rule: ``V`` the wordllama vectors of ``rows`` (the version's training rows), ``cas_val`` the
    cascade's probabilities on the validation rows, ``t_probs``/``t_dist`` the transformer's."""
    from safetensors.numpy import load_file

    from ..classifiers.base import INDEX_FILE
    from ..training.abstain import DEFAULT_C, fold_groups

    m = version.manifest
    seed = int(m.get("seed") or 0)
    X = load_file(str(version.path / INDEX_FILE))["embeddings"].astype(np.float32)
    y, is_val = rows.y, rows.is_val.astype(bool)
    C = float((m.get("val_metrics") or {}).get("C") or DEFAULT_C)
    pseudo = fold_rows(X, V, y, is_val, rule, fit_cascade, conf_t, seed, C)
    ref = Distance.fit(V[~is_val])
    d_val = ref.score(V[is_val])
    # the validation rows themselves: what the version turns away and the cascade would answer, in the fold of
    # their class (so the out-of-fold check splits them with their class)
    group = {c: k for k, g in enumerate(fold_groups(np.flatnonzero(rule.in_scope).tolist(), seed)) for c in g}
    sure = (cas_val.max(1) >= conf_t) & ~rule.abstains(cas_val, np.zeros(len(cas_val), np.float32))
    both = {"turned": np.concatenate([pseudo["turned"], rule.abstains(t_probs, t_dist)]),
            "sure": np.concatenate([pseudo["sure"], sure]), "d": np.concatenate([pseudo["d"], d_val]),
            "fold": np.concatenate([pseudo["fold"], [group.get(int(c), -1) for c in y[is_val]]])}
    out = gate(both, d_val)
    out.update(pseudo_out_of_scope_rows=int(len(pseudo["d"])), validation_rows=int(is_val.sum()))
    return out, d_val, ref.reference
