"""When a version abstains: a probability-and-distance score, its threshold chosen on pseudo-out-of-scope rows.

A version answers its ``other`` label when ``(1 - p) + weight * d`` is over
``abstain.distance.threshold``, where ``p`` is its best in-scope probability
and ``d`` the text's cosine distance to the nearest training row
(:mod:`inhouse.classifiers.distance`): unsure, far from everything it was
trained on, or some of both. The weight and the threshold are chosen on the
training data alone, for a balanced objective: ½·(in-scope accuracy,
abstaining counted wrong) + ½·(share of out-of-scope rows turned away), among
the rules that cost at most ``abstain_max_loss`` of in-scope accuracy against
never abstaining, so that the rule keeps good answers (default 1 point, half
the 2 points asked: folds of fewer classes are easier than new texts, and a
wordllama head on banking77 lost 3.1 test points at a 2-point budget).
Out-of-scope rows come from leaving classes out: the in-scope classes are
dealt into up to :data:`FOLDS` groups; for each group a head and a distance
model are fitted on the training rows of the other classes, and the group's
rows are scored as texts of intents never trained on (pseudo-out-of-scope), beside the validation rows of the other classes
(in scope). Rows of labels the user marked out of scope are out-of-scope rows
in every fold. The budget is held twice: on the folds, and on the version's
own validation rows (the threshold never abstains more than they allow), since
the folds' heads know a fifth fewer classes and find their in-scope rows easier
than the version will find new texts. Under :data:`SMALL_VALIDATION` validation rows (a few rows a label)
the budget is held on the training rows as well, each scored out of fold (:func:`out_of_fold_scores`):
a handful of validation rows cannot show the tail new texts land in (10 banking77 intents at 12 rows each
lost 6.3 test points to a 1-point budget held on 12 validation rows; 0.5 now). No test split is read.

For ``full``/``setfit``/``lora`` the encoder was tuned on every class, so the
folds refit only the head and the distance on its embeddings; the left-out
classes were still seen by the encoder (an optimistic stand-in, see
BENCHMARKS.md).

Versions made before this rule (no ``abstain.distance``) keep the old one: the
probability threshold alone.
"""

from __future__ import annotations

import numpy as np

from ..classifiers.distance import DISTANCE_FILE, KIND, Distance
from ..progress import task
from .arguments import TrainingArguments
from .data import TrainingData

FOLDS = 5
SMALL_VALIDATION = 300  # fewer in-scope validation rows: the budget is held on out-of-fold training rows too
# (at 300, a 1-point budget may turn away 3 right answers: enough rows to see the tail; banking77's 765 and
# trec6's ~360 stay as they were, where the test loss already kept the budget)
ROW_FOLDS = 10  # folds of the training rows for their out-of-fold scores (10: heads on 90 % of the rows)
DEFAULT_C = 16.0
WEIGHTS = (0.5, 1.0, 2.0, 4.0, 8.0)  # weights of the distance beside 1 - probability tried
S_QUANTILES = np.linspace(0.5, 1.0, 201)  # thresholds tried: these quantiles of the in-scope rows' scores


def fold_groups(classes: list[int], seed: int, folds: int = FOLDS) -> list[list[int]]:
    """The in-scope classes dealt, in a seeded order, into ``min(folds, len(classes))`` groups.

    >>> fold_groups([0, 1, 2, 3, 4, 5], 0, folds=3)
    [[3, 4], [2, 0], [5, 1]]
    """
    order = np.random.default_rng(seed).permutation(np.asarray(classes)).tolist()
    k = min(folds, len(order))
    return [order[i::k] for i in range(k)]


def fold_scores(X, y, data: TrainingData, keep: np.ndarray, out_rows: np.ndarray, n_labels: int, C: float,
                 seed: int) -> tuple[np.ndarray, ...]:
    """Fit a head and a distance on the training rows of the ``keep`` classes; score the validation rows of
    those classes (in scope: probability, right or not, distance) and ``out_rows`` (probability, distance)."""
    from .methods import fit_logistic_head
    from .metrics import fit_temperature

    tr = data.train_idx[keep[y[data.train_idx]]]
    va = data.val_idx[keep[y[data.val_idx]]]
    head = fit_logistic_head(X[tr], y[tr], n_labels, False, C, seed)
    if len(va) >= 2:
        T = fit_temperature(head.logits(X[va]), y[va])
        head.W, head.b = head.W / T, head.b / T
    dist = Distance.fit(X[tr])
    Pv, Po = head.proba(X[va]), head.proba(X[out_rows])
    return Pv.max(1), Pv.argmax(1) == y[va], dist.score(X[va]), Po.max(1), dist.score(X[out_rows])


def choose_rule(p_in, correct, d_in, p_out, d_out, max_loss: float | None = None) -> dict:
    """The weight and threshold of ``(1 - p) + weight * d`` with the best ½·(in-scope accuracy, abstaining
    counted wrong) + ½·(out-of-scope recall), among those that cost at most ``max_loss`` of in-scope
    accuracy (None: any). Ties go to the rule that abstains on fewer in-scope rows.

    >>> r = choose_rule(np.array([.9, .9, .8]), np.array([True, True, False]), np.array([.1, .2, .3]),
    ...                 np.array([.9, .4]), np.array([.9, .1]))
    >>> r["balanced"], r["out_of_scope_recall"], r["in_scope_abstain_rate"]
    (0.8333, 1.0, 0.0)
    """
    best: tuple | None = None
    base = float(correct.mean())
    for w in WEIGHTS:
        s_in, s_out = (1 - p_in) + w * d_in, (1 - p_out) + w * d_out
        ts = np.unique(np.concatenate([np.quantile(s_in, S_QUANTILES), [np.inf]]))
        keep = s_in[None, :] <= ts[:, None]  # (threshold, row)
        acc = (keep & correct[None, :]).mean(1)
        turned = (s_out[None, :] > ts[:, None]).mean(1)
        bal = np.where(acc >= base - max_loss - 1e-9, 0.5 * acc + 0.5 * turned, -1.0) if max_loss is not None \
            else 0.5 * acc + 0.5 * turned
        for i in np.flatnonzero(bal >= bal.max() - 1e-9):
            key = (round(float(bal[i]), 9), float(keep[i].mean()))
            if best is None or key > best[0]:
                best = (key, w, float(ts[i]), float(acc[i]), float(keep[i].mean()), float(turned[i]))
    _, w, t, acc, kept, turned = best
    return {"weight": w, "threshold": t, "balanced": round(0.5 * acc + 0.5 * turned, 4),
            "in_scope_accuracy": round(acc, 4), "in_scope_accuracy_without_abstaining": round(base, 4),
            "in_scope_abstain_rate": round(1 - kept, 4), "out_of_scope_recall": round(turned, 4)}


def val_threshold(s_val: np.ndarray, correct_val: np.ndarray, max_loss: float | None) -> float:
    """The lowest threshold (the most abstaining) at which the version's own in-scope validation rows lose at
    most ``max_loss`` of accuracy (abstaining counted wrong) against never abstaining (the highest score when
    none may go; -inf when ``max_loss`` is None: no bound).

    >>> val_threshold(np.array([.1, .2, .9, .5]), np.array([True, True, False, True]), 0.25)
    0.2
    """
    if max_loss is None or len(s_val) == 0:
        return -np.inf
    ts = np.unique(s_val)
    acc = ((s_val[None, :] <= ts[:, None]) & correct_val[None, :]).mean(1)
    return float(ts[np.flatnonzero(acc >= correct_val.mean() - max_loss - 1e-9)[0]])


def _on_validation(head, dist: Distance, X, y, data: TrainingData, in_scope: np.ndarray, weight: float):
    """The version's own rule score and right-or-wrong on its in-scope validation rows (best in-scope label)."""
    va = data.val_idx[in_scope[y[data.val_idx]]]
    P = np.where(in_scope[None, :], head.proba(X[va]), -1.0)
    return (1 - P.max(1)) + weight * dist.score(X[va]), P.argmax(1) == y[va]


def out_of_fold_scores(X, y, data: TrainingData, in_scope: np.ndarray, n_labels: int, C: float, seed: int,
                       weight: float, folds: int = ROW_FOLDS) -> tuple[np.ndarray, np.ndarray]:
    """The rule's score and right-or-wrong of each in-scope training row, from a head and a distance fitted on
    the other row folds (stratified by label, seeded): new in-scope texts the budget can be held on when the
    validation rows are few. A label with one training row is absent from its fold's head: that row is wrong
    (abstaining on it costs nothing), so it never holds the threshold down."""
    from .methods import fit_logistic_head
    from .metrics import fit_temperature

    tr = data.train_idx[in_scope[y[data.train_idx]]]
    order = np.random.default_rng(seed).permutation(len(tr))
    fold = np.zeros(len(tr), dtype=int)
    for c in np.unique(y[tr]):  # each label's rows dealt round the folds
        rows = order[y[tr][order] == c]
        fold[rows] = np.arange(len(rows)) % folds
    va = data.val_idx[in_scope[y[data.val_idx]]]
    scores, right = np.zeros(len(tr), np.float32), np.zeros(len(tr), dtype=bool)
    for k in range(folds):
        fit, rows = tr[fold != k], tr[fold == k]
        if len(rows) == 0 or len(np.unique(y[fit])) < 2:
            continue
        head = fit_logistic_head(X[fit], y[fit], n_labels, False, C, seed)
        if len(va) >= 2:
            T = fit_temperature(head.logits(X[va]), y[va])
            head.W, head.b = head.W / T, head.b / T
        P = np.where(in_scope[None, :], head.proba(X[rows]), -1.0)
        scores[fold == k] = 1 - P.max(1)
        right[fold == k] = P.argmax(1) == y[rows]
    return scores + weight * _leave_one_out_distance(X[tr]), right


def _leave_one_out_distance(X: np.ndarray, batch: int = 256) -> np.ndarray:
    """Each row's cosine distance to the nearest *other* row (float16 references, as :class:`Distance`)."""
    ref = Distance.fit(X)
    R = ref.reference.astype(np.float32)
    out = np.zeros(len(X), np.float32)
    for i in range(0, len(X), batch):
        S = R[i:i + batch] @ R.T
        S[np.arange(len(S)), np.arange(i, i + len(S))] = -2.0
        out[i:i + batch] = 1.0 - S.max(axis=1)
    return out


def calibrate_distance(X: np.ndarray, data: TrainingData, oos_labels: list[str], args: TrainingArguments,
                       C: float | None = None, head=None) -> tuple[dict, Distance] | None:
    """The ``abstain`` fields of the distance rule and the version's :class:`Distance`; None when the data
    cannot make pseudo-out-of-scope rows (fewer than 3 in-scope classes, or no validation rows).

    ``head``: the version's own head. The accuracy budget is then also held on its validation rows: the
    threshold never abstains more than ``abstain_max_loss`` of their accuracy allows. The folds' heads
    know a fifth fewer classes, so their in-scope rows are easier (fewer look-alike intents) and a
    budget spent on them costs more on new texts (bench/abstention_scores.py)."""
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
            for acc, a in zip(parts, fold_scores(X, y, data, keep, out_rows, len(labels), C, args.seed)):
                acc.append(a)
            t.advance(1)
    p_in, correct, d_in, p_out, d_out = (np.concatenate(a) for a in parts)
    chosen = choose_rule(p_in, correct, d_in, p_out, d_out, args.abstain_max_loss)
    tr = data.train_idx[in_scope[y[data.train_idx]]]
    dist = Distance.fit(X[tr])
    if head is not None and args.abstain_max_loss is not None:
        s_val, right = _on_validation(head, dist, X, y, data, in_scope, chosen["weight"])
        t_val = val_threshold(s_val, right, args.abstain_max_loss)
        chosen.update(threshold_folds=chosen["threshold"], threshold_validation=t_val,
                      threshold=max(chosen["threshold"], t_val))
        if len(s_val) < SMALL_VALIDATION:  # too few rows to see the tail new texts land in: add the training rows
            s_tr, right_tr = out_of_fold_scores(X, y, data, in_scope, len(labels), C, args.seed, chosen["weight"])
            t_tr = val_threshold(np.concatenate([s_val, s_tr]), np.concatenate([right, right_tr]),
                                 args.abstain_max_loss)
            chosen.update(threshold_training_rows=t_tr, budget_rows=int(len(s_val) + len(s_tr)),
                          threshold=max(chosen["threshold"], t_tr))
    fields = {"threshold": round(max(0.0, 1.0 - chosen["threshold"]), 6), "rule": "distance", "target": None,
              "distance": {"kind": KIND, "file": DISTANCE_FILE, "weight": chosen["weight"],
                           "threshold": chosen["threshold"]},
              "pseudo_out_of_scope": {"folds": len(groups), "max_loss": args.abstain_max_loss,
                                      "classes": [[labels[c] for c in g] for g in groups],
                                      "in_scope_rows": int(len(p_in)), "out_of_scope_rows": int(len(p_out)),
                                      **{k: v for k, v in chosen.items() if k not in ("threshold", "weight")}}}
    return fields, dist
