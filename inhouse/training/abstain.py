"""When a version abstains: probability and distance thresholds chosen on pseudo-out-of-scope rows.

A version answers its ``other`` label when its best in-scope probability is
under ``abstain.threshold`` *or* the text's distance to the training rows
(:mod:`inhouse.classifiers.distance`) is over ``abstain.distance.threshold``.
Both thresholds are chosen on the training data alone, for a balanced
objective: ½·(in-scope accuracy, abstaining counted wrong) + ½·(share of
out-of-scope rows turned away), among the pairs that cost at most
``abstain_max_loss`` (default 2 points) of in-scope accuracy against never
abstaining, so that the rule keeps good answers. Out-of-scope rows come from leaving classes
out: the in-scope classes are dealt into up to :data:`FOLDS` groups; for each
group a head and a distance model are fitted on the training rows of the other
classes, and the group's rows are scored as texts of intents never trained on
(pseudo-out-of-scope), beside the validation rows of the other classes
(in scope). Rows of labels the user marked out of scope are out-of-scope rows
in every fold. No test split is read.

For ``full``/``setfit``/``lora`` the encoder was tuned on every class, so the
folds refit only the head and the distance on its embeddings; the left-out
classes were still seen by the encoder (an optimistic stand-in, see
BENCHMARKS.md).

Versions made before this rule (no ``abstain.distance``) keep the old one: the
probability threshold alone.
"""

from __future__ import annotations

import numpy as np

from ..classifiers.distance import DISTANCE_FILE, SHRINK, Distance
from ..progress import task
from .arguments import TrainingArguments
from .data import TrainingData

FOLDS = 5
DEFAULT_C = 16.0
P_QUANTILES = np.linspace(0.0, 0.3, 31)  # probability thresholds tried: these quantiles of in-scope rows
D_QUANTILES = np.linspace(0.7, 1.0, 31)  # distance thresholds tried (1.0: the largest in-scope distance)


def fold_groups(classes: list[int], seed: int, folds: int = FOLDS) -> list[list[int]]:
    """The in-scope classes dealt, in a seeded order, into ``min(folds, len(classes))`` groups.

    >>> fold_groups([0, 1, 2, 3, 4, 5], 0, folds=3)
    [[3, 4], [2, 0], [5, 1]]
    """
    order = np.random.default_rng(seed).permutation(np.asarray(classes)).tolist()
    k = min(folds, len(order))
    return [order[i::k] for i in range(k)]


def _fold_scores(X, y, data: TrainingData, keep: np.ndarray, out_rows: np.ndarray, n_labels: int, C: float,
                 seed: int) -> tuple[np.ndarray, ...]:
    """Fit a head and a distance on the training rows of the ``keep`` classes; score the validation rows of
    those classes (in scope: probability, right or not, distance) and ``out_rows`` (probability, distance)."""
    from .methods import fit_logistic_head
    from .train import fit_temperature

    tr = data.train_idx[keep[y[data.train_idx]]]
    va = data.val_idx[keep[y[data.val_idx]]]
    head = fit_logistic_head(X[tr], y[tr], n_labels, False, C, seed)
    if len(va) >= 2:
        T = fit_temperature(head.logits(X[va]), y[va])
        head.W, head.b = head.W / T, head.b / T
    dist = Distance.fit(X[tr], y[tr], n_labels)
    Pv, Po = head.proba(X[va]), head.proba(X[out_rows])
    return Pv.max(1), Pv.argmax(1) == y[va], dist.score(X[va]), Po.max(1), dist.score(X[out_rows])


def choose_thresholds(p_in, correct, d_in, p_out, d_out, max_loss: float | None = None) -> dict:
    """The (probability, distance) thresholds with the best ½·(in-scope accuracy) + ½·(out-of-scope recall),
    among those that cost at most ``max_loss`` of in-scope accuracy (None: any).

    Ties go to the pair that abstains on fewer in-scope rows.

    >>> r = choose_thresholds(np.array([.9, .9, .8]), np.array([True, True, False]), np.array([1., 2., 3.]),
    ...                       np.array([.9, .4]), np.array([9., 1.]))
    >>> r["balanced"], r["out_of_scope_recall"]
    (0.8333, 1.0)
    """
    tp = np.unique(np.concatenate([[0.0], np.quantile(p_in, P_QUANTILES)]))
    td = np.unique(np.concatenate([np.quantile(d_in, D_QUANTILES), [np.inf]]))
    keep_in = (p_in[None, :, None] >= tp[:, None, None]) & (d_in[None, :, None] <= td[None, None, :])  # (tp, row, td)
    acc = (keep_in & correct[None, :, None]).mean(1)
    kept = keep_in.mean(1)
    turned = ((p_out[None, :, None] < tp[:, None, None]) | (d_out[None, :, None] > td[None, None, :])).mean(1)
    bal = 0.5 * acc + 0.5 * turned
    if max_loss is not None:  # never abstaining (tp 0, td inf) costs nothing, so some pair is always allowed
        bal = np.where(acc >= correct.mean() - max_loss - 1e-9, bal, -1.0)
    best = np.flatnonzero(np.isclose(bal.ravel(), bal.max(), rtol=0, atol=1e-9))
    i, j = np.unravel_index(best[np.argmax(kept.ravel()[best])], bal.shape)
    return {"threshold": round(float(tp[i]), 6), "distance_threshold": float(td[j]),
            "balanced": round(float(bal[i, j]), 4), "in_scope_accuracy": round(float(acc[i, j]), 4),
            "in_scope_accuracy_without_abstaining": round(float(correct.mean()), 4),
            "in_scope_abstain_rate": round(float(1 - kept[i, j]), 4),
            "out_of_scope_recall": round(float(turned[i, j]), 4)}


def calibrate_distance(X: np.ndarray, data: TrainingData, oos_labels: list[str], args: TrainingArguments,
                       C: float | None = None) -> tuple[dict, Distance] | None:
    """The ``abstain`` fields of the distance rule and the version's :class:`Distance`; None when the data
    cannot make pseudo-out-of-scope rows (fewer than 3 in-scope classes, or no validation rows)."""
    labels = data.labels
    y = np.array([labels.index(t[0]) for t in data.targets])
    in_scope = np.array([l not in set(oos_labels) for l in labels])
    classes = [c for c in np.flatnonzero(in_scope).tolist() if (y[data.train_idx] == c).any()]
    if len(classes) < 3 or len(data.val_idx) < 2:
        return None
    C = float(C or DEFAULT_C)
    groups = fold_groups(classes, args.seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(5)]
    with task("choosing when to abstain", total=len(groups), unit="fold") as t:
        for g in groups:
            keep = in_scope.copy()
            keep[g] = False
            out_rows = np.flatnonzero(~keep[y])
            for acc, a in zip(parts, _fold_scores(X, y, data, keep, out_rows, len(labels), C, args.seed)):
                acc.append(a)
            t.advance(1)
    p_in, correct, d_in, p_out, d_out = (np.concatenate(a) for a in parts)
    chosen = choose_thresholds(p_in, correct, d_in, p_out, d_out, args.abstain_max_loss)
    tr = data.train_idx[in_scope[y[data.train_idx]]]
    dist = Distance.fit(X[tr], y[tr], len(labels))
    fields = {"threshold": chosen["threshold"], "rule": "distance", "target": None,
              "distance": {"kind": "mahalanobis", "file": DISTANCE_FILE, "shrink": SHRINK,
                           "threshold": chosen["distance_threshold"]},
              "pseudo_out_of_scope": {"folds": len(groups), "max_loss": args.abstain_max_loss, "classes": [[labels[c] for c in g] for g in groups],
                                      "in_scope_rows": int(len(p_in)), "out_of_scope_rows": int(len(p_out)),
                                      **{k: v for k, v in chosen.items() if k not in ("threshold", "distance_threshold")}}}
    return fields, dist
