"""Which out-of-scope score? Candidates compared on cached embeddings, in seconds a try.

Each set: a seeded share of its classes held out of training (their test rows are
out of scope), plus 500 texts of another set (unrelated text). A ``head``
(logistic regression, C 16, temperature on validation) on minilm-l6 embeddings,
as the product trains it. Every choice (detector weights, threshold) is made on
the TRAINING rows only: pseudo-out-of-scope classes left out in 5 folds, and the
final head's own validation rows; the test split is only reported.

Scores tried (higher = more out of scope):

- ``1-p``: one minus the best probability; ``energy``: -logsumexp of the logits;
- ``rule``: today's rule (1 - p) + w·d1, w chosen on the folds (training.abstain.choose_rule);
- ``d1``: cosine distance to the nearest training row; ``dc``: to the nearest row of
  the predicted class; ``lda``: d1 in an LDA projection fit on the training rows;
- ``lr:...``: a logistic regression over the named features fit on the folds'
  rows (pseudo-out-of-scope vs in-scope validation), wordllama features
  (``pw`` its head's best probability, ``agree`` its top label is the
  transformer's, ``pwx`` its probability of the transformer's label, ``dw1`` its
  d1) beside the transformer's.

Thresholds: ``folds`` = the product's balanced objective on the folds within
``--budget`` points; ``val`` = the most abstaining threshold whose loss of
accuracy on the final head's validation rows stays within ``--budget`` points.

    nice python bench/abstention_scores.py --cache /tmp/oos/cache     # embeds on the first run (minutes)
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
DATA = ROOT.parent / "shared" / "data"
# set: (csv, label column, rows kept (column, value) or None, classes held out, unrelated set)
SETS = {
    "banking77": (DATA / "banking77" / "banking77.csv", "label", None, 19, "trec6"),
    "trec6": (DATA / "trec6" / "trec6.csv", "label", None, 2, "banking77"),
    "airline": (DATA / "twitter_airline_sentiment" / "twitter_airline_sentiment.csv", "negative_reason",
                ("label", "negative"), 3, "trec6"),
}
FEATS_X = ["1-p", "margin", "entropy", "d1", "d5", "dc"]
FEATS_W = ["pw", "agree", "pwx", "dw1"]


def frame(name: str):
    import pandas as pd

    csv, col, keep, _, _ = SETS[name]
    df = pd.read_csv(csv)
    if keep:
        df = df[df[keep[0]] == keep[1]].reset_index(drop=True)
    return pd.DataFrame({"text": df["text"], "label": df[col], "split": df["split"]})


def embeddings(name: str, enc: str, cache: Path, home: Path) -> np.ndarray:
    """minilm-l6 ("X") or wordllama ("W") embeddings of every row of the set, by the product's path, cached."""
    path = cache / f"{name}_{enc}.npy"
    if not path.exists():
        from inhouse.classifiers.backbone import frozen_embeddings
        from inhouse.workspace.store import Workspace

        X = frozen_embeddings(Workspace.open(home), {"X": "minilm-l6", "W": "wordllama"}[enc],
                              frame(name)["text"].tolist(), prepare=True)
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, X)
    return np.load(path).astype(np.float32)


def unit(X):
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


class Parts:
    """What the scores need, fitted on training rows: heads on both encoders, reference rows, an LDA."""

    def __init__(self, X, W, y, n, Xv, Wv, yv, C=16.0):
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        from inhouse.training.methods import fit_logistic_head
        from inhouse.training.metrics import fit_temperature

        self.hx = fit_logistic_head(X, y, n, False, C, 0)
        self.hw = fit_logistic_head(W, y, n, False, C, 0)
        for h, V in ((self.hx, Xv), (self.hw, Wv)):
            T = fit_temperature(h.logits(V), yv)
            h.W, h.b = h.W / T, h.b / T
        self.Rx, self.Rw, self.y, self.n = unit(X), unit(W), y, n
        self.lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=0.1).fit(X, y)
        self.Rl = unit(self.lda.transform(X))

    def features(self, X, W) -> dict:
        z = self.hx.logits(X)
        zs = z - z.max(1, keepdims=True)
        P = np.exp(zs) / np.exp(zs).sum(1, keepdims=True)
        top2 = -np.sort(-P, axis=1)[:, :2]
        pred = P.argmax(1)
        S = unit(X) @ self.Rx.T
        srt = -np.sort(-S, axis=1)
        Sc = np.where(self.y[None, :] == pred[:, None], S, -2.0)
        Pw = self.hw.proba(W)
        f = {"1-p": 1 - top2[:, 0], "margin": -(top2[:, 0] - top2[:, 1]),
             "entropy": -(P * np.log(np.maximum(P, 1e-12))).sum(1),
             "energy": -(z.max(1) + np.log(np.exp(zs).sum(1))),
             "d1": 1 - srt[:, 0], "d5": 1 - srt[:, :5].mean(1), "dc": 1 - Sc.max(1),
             "pw": 1 - Pw.max(1), "agree": (Pw.argmax(1) != pred).astype(np.float32),
             "pwx": 1 - Pw[np.arange(len(pred)), pred], "dw1": 1 - (unit(W) @ self.Rw.T).max(1),
             "lda": 1 - (unit(self.lda.transform(X)) @ self.Rl.T).max(1)}
        f["pred"] = pred
        return f


def split_rows(labels, split, known, seed=0, val_fraction=0.1):
    """Train and validation rows of the known classes, as training.data._split deals them (per label, seeded)."""
    rng = np.random.default_rng(seed)
    val = []
    for l in sorted(known):
        rows = np.flatnonzero((split == "train") & (labels == l))
        rng.shuffle(rows)
        val.extend(rows[:max(1, int(round(len(rows) * val_fraction)))].tolist())
    val = np.array(sorted(val))
    tr = np.setdiff1d(np.flatnonzero((split == "train") & np.isin(labels, known)), val)
    return tr, val


def fold_features(X, W, labels, known, tr, val, seed):
    """Features of pseudo-out-of-scope rows (classes left out) and in-scope validation rows, over 5 folds."""
    from inhouse.training.abstain import fold_groups

    groups = fold_groups(list(range(len(known))), seed)
    F_in, F_out, correct = [], [], []
    for g in groups:
        out_cls = {known[c] for c in g}
        keep = [c for c in known if c not in out_cls]
        kidx = {c: i for i, c in enumerate(keep)}
        t = tr[np.isin(labels[tr], keep)]
        v = val[np.isin(labels[val], keep)]
        o = np.concatenate([tr, val])[np.isin(labels[np.concatenate([tr, val])], list(out_cls))]
        yt = np.array([kidx[l] for l in labels[t]])
        yv = np.array([kidx[l] for l in labels[v]])
        p = Parts(X[t], W[t], yt, len(keep), X[v], W[v], yv)
        fi = p.features(X[v], W[v])
        correct.append(fi["pred"] == yv)
        F_in.append(fi)
        F_out.append(p.features(X[o], W[o]))
    cat = lambda Fs: {k: np.concatenate([f[k] for f in Fs]) for k in Fs[0]}
    return cat(F_in), cat(F_out), np.concatenate(correct)


def final_features(X, W, Xu, Wu, labels, kidx, tr, val, te):
    """Features from the head fitted on every training row: its validation rows, the test rows, unrelated text."""
    p = Parts(X[tr], W[tr], np.array([kidx[l] for l in labels[tr]]), len(kidx), X[val], W[val],
              np.array([kidx[l] for l in labels[val]]))
    return p.features(X[val], W[val]), p.features(X[te], W[te]), p.features(Xu, Wu)


def cached_features(path: Path, make):
    """The six feature sets (fold in-scope, fold out-of-scope, fold correct, validation, test, unrelated)."""
    names = ("Fi", "Fo", "correct", "Fv", "Ft", "Fu")
    if path.exists():
        z = np.load(path)
        out = [{k.split("/", 1)[1]: z[k] for k in z.files if k.startswith(n + "/")} for n in names]
        out[2] = z["correct/"]
        return out
    made = make()
    flat = {}
    for n, f in zip(names, made):
        flat.update({f"{n}/{k}": v for k, v in f.items()} if isinstance(f, dict) else {f"{n}/": f})
    np.savez(path, **flat)
    return made


def auroc(s_in, s_out) -> float:
    from scipy.stats import rankdata

    r = rankdata(np.concatenate([s_in, s_out]))
    n1, n2 = len(s_in), len(s_out)
    return float((r[n1:].sum() - n2 * (n2 + 1) / 2) / (n1 * n2))


class Score:
    """A candidate: a function of the features (after ``fit`` on the folds)."""

    def __init__(self, name):
        self.name = name

    def fit(self, Fi, Fo, correct):
        if self.name == "rule":
            from inhouse.training.abstain import choose_rule

            r = choose_rule(1 - Fi["1-p"], correct, Fi["d1"], 1 - Fo["1-p"], Fo["d1"], 0.01)
            self.w = r["weight"]
        elif self.name.startswith("lr:"):
            from sklearn.linear_model import LogisticRegression

            self.cols = self.name[3:].split(",")
            A = np.concatenate([self.mat(Fi), self.mat(Fo)])
            self.mu, self.sd = A.mean(0), A.std(0) + 1e-9
            yy = np.r_[np.zeros(len(Fi["d1"])), np.ones(len(Fo["d1"]))]
            self.lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit((A - self.mu) / self.sd, yy)
        return self

    def mat(self, F):
        return np.stack([F[c] for c in self.cols], 1)

    def __call__(self, F):
        if self.name == "rule":
            return F["1-p"] + self.w * F["d1"]
        if self.name.startswith("lr:"):
            return self.lr.decision_function((self.mat(F) - self.mu) / self.sd)
        return F[self.name]


def thr_folds(s_in, correct, s_out, budget):
    """The product's choice on the folds: best ½·accuracy + ½·recall within ``budget`` of accuracy."""
    ts = np.unique(np.r_[np.quantile(s_in, np.linspace(0.5, 1, 201)), np.inf])
    keep = s_in[None, :] <= ts[:, None]
    acc = (keep & correct[None]).mean(1)
    rec = (s_out[None, :] > ts[:, None]).mean(1)
    bal = np.where(acc >= correct.mean() - budget - 1e-9, 0.5 * acc + 0.5 * rec, -1)
    return float(ts[int(np.argmax(bal))])


def thr_val(s_val, correct_val, budget):
    """The lowest threshold whose loss of accuracy on the final head's validation rows is within ``budget``."""
    ts = np.unique(np.r_[s_val, np.inf])
    acc = ((s_val[None, :] <= ts[:, None]) & correct_val[None]).mean(1)
    ok = np.flatnonzero(acc >= correct_val.mean() - budget - 1e-9)
    return float(ts[ok[0]])


def oracle(s_in, right, s_out, budget=0.02):
    """Best test turn-away within ``budget`` of test accuracy (no rule can know it; the ceiling)."""
    ts = np.unique(np.r_[s_in, np.inf])
    acc = ((s_in[None, :] <= ts[:, None]) & right[None]).mean(1)
    ok = acc >= right.mean() - budget - 1e-9
    return float((s_out[None, :] > ts[ok][:, None]).mean(1).max())


def run_set(name, cache, home, seed, budgets, candidates):
    df = frame(name)
    X, W = embeddings(name, "X", cache, home), embeddings(name, "W", cache, home)
    labels, split = df["label"].to_numpy().astype(str), df["split"].to_numpy()
    classes = sorted(set(labels))
    held = sorted(np.random.default_rng(seed).choice(classes, size=SETS[name][3], replace=False).tolist())
    known = [c for c in classes if c not in held]
    tr, val = split_rows(labels, split, known, seed)
    te = np.flatnonzero(split == "test")
    oos = np.isin(labels[te], held)
    other = SETS[name][4]
    Xu, Wu = embeddings(other, "X", cache, home), embeddings(other, "W", cache, home)
    pick = np.sort(np.random.default_rng(seed).choice(len(Xu), size=500, replace=False))
    kidx = {c: i for i, c in enumerate(known)}
    Fi, Fo, correct, Fv, Ft, Fu = cached_features(cache / f"{name}_features_{seed}.npz", lambda: (
        *fold_features(X, W, labels, known, tr, val, seed),
        *final_features(X, W, Xu[pick], Wu[pick], labels, kidx, tr, val, te)))
    cv = Fv["pred"] == np.array([kidx[l] for l in labels[val]])
    right = np.array([known[k] == l for k, l in zip(Ft["pred"], labels[te])])
    base = float(right[~oos].mean())
    rows = []
    for c in candidates:
        s = Score(c).fit(Fi, Fo, correct)
        st, su = s(Ft), s(Fu)
        row = {"set": name, "score": c, "auroc_folds": round(auroc(s(Fi), s(Fo)), 3),
               "auroc_test": round(auroc(st[~oos], st[oos]), 3), "acc_never": round(base, 4),
               "oracle_2pt": round(oracle(st[~oos], right[~oos], st[oos]), 4)}
        for how, b in budgets:
            t = thr_folds(s(Fi), correct, s(Fo), b) if how == "folds" else thr_val(s(Fv), cv, b)
            ab = st > t
            row[f"{how}{b:g}"] = {"acc": round(float((right & ~ab)[~oos].mean()), 4),
                                  "oos": round(float(ab[oos].mean()), 4),
                                  "unrel": round(float((su > t).mean()), 4)}
        if c == "rule":  # where the fold-chosen threshold's in-scope abstain rate lands on each kind of row
            t = thr_folds(s(Fi), correct, s(Fo), 0.01)
            row["abstain_rate_at_fold_threshold"] = {k: round(float((v > t).mean()), 4) for k, v in
                                                     (("folds", s(Fi)), ("val", s(Fv)), ("test", st[~oos]))}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {"set": name, "held_out": held, "n_in": int((~oos).sum()), "n_oos": int(oos.sum()), "rows": rows,
            "n_pseudo_in": int(len(Fi["d1"])), "n_pseudo_out": int(len(Fo["d1"])), "val_acc": float(cv.mean()),
            "fold_acc": float(correct.mean())}


SHOWN = ["1-p", "energy", "rule", "d1", "dc", "lda", "lr:1-p,d1", "lr:1-p,d1,dc", "lr:" + ",".join(FEATS_X),
         "lr:" + ",".join(FEATS_X + FEATS_W)]
NAMES = {"1-p": "1 − p", "energy": "energy (−logsumexp)", "rule": "**today's rule** (1 − p) + w·d1",
         "d1": "d1 (nearest training row)", "dc": "dc (nearest row of the predicted class)",
         "lda": "d1 in LDA space", "lr:1-p,d1": "LR[1 − p, d1]", "lr:1-p,d1,dc": "LR[1 − p, d1, dc]",
         "lr:" + ",".join(FEATS_X): "LR[6 transformer features]",
         "lr:" + ",".join(FEATS_X + FEATS_W): "LR[6 + 4 wordllama features]"}


# What the tables say, written from the run of 2026-12-03 (kept beside them because it decided the design).
FINDINGS = """**What the tables say.**

- **No score reaches 75 % of unseen intents within 2 points on any of the three sets**, not even with the
  threshold read off the test split: the ceiling is about 61 % on banking77 (LR[1 − p, d1, dc]), 25 % on trec6
  (1 − p) and under 10 % on airline complaints. The held-out classes are neighbours of trained ones
  (`card_swallowed` beside `card_not_working`; "who"/"where" questions beside "what" questions; one kind of
  complaint beside another), and on frozen minilm-l6 their texts land among the trained rows. Unrelated text
  is another matter where it is far from the domain: 97–100 % of TREC questions are turned away by a banking77
  version (every score with a distance in it), but a TREC version keeps answering banking queries (they are
  questions too: 10–50 % depending on the score).
- **The best honest operating point** on banking77 is LR[1 − p, d1, dc] (distance to the nearest row *of the
  predicted class* beside the nearest row at all, weights fit on the folds) with 2 points on the final head's
  validation rows: −1.8 points, 58 % of held-out intents and 99.6 % of unrelated text turned away, against
  −2.0, 52 % and 97 % for today's rule at the same budget (+2 points on trec6, +1 on airline). More features
  (margin, entropy, mean of 5 nearest) or a second encoder (wordllama: its own probability, whether its top
  label agrees with the transformer's, its own d1) do not add to it: the folds fit them better (AUROC
  0.919 → 0.924 on banking77, 0.722 → 0.768 on trec6) and the test split does not follow (0.935 → 0.937,
  0.783 → 0.642): a detector fit on classes left out learns those classes. Energy, LDA space and dc alone:
  no better. The one change in the product is the last point below; LR[1 − p, d1, dc] would need the
  predicted class inside the distance (the ONNX graph's distance module reading the probabilities, the
  reference rows' labels in `abstain.safetensors`): measured, not built.
- **The fold gap** (why a budget spent on the folds cost more on new texts): the folds' heads know a fifth
  fewer classes, so they are right more often on their validation rows (93.1 vs 91.8 % on banking77, 92.6
  vs 89.4 % on trec6, 70.7 vs 67.0 % on airline) and the rows a threshold turns away there are mostly their
  errors; on the version's own rows the same threshold turns away more right answers (airline: 1 point
  on the folds cost 2.5 test points; a threshold from the folds for LDA-space distance cost 59 points on
  trec6). Holding the budget on the version's own validation rows as well (the product does since this
  change: `threshold_validation` in the manifest's `pseudo_out_of_scope`, the threshold never below it)
  made the loss follow the budget on all three sets (1 point → −1.1, −0.3, −1.2 test points; 2 points →
  −2.0, −0.8, −2.4 for today's rule, where validation has 765, 340 and 640 rows: ±0.5–1 point of noise)."""


def _cell(r: dict, base: float) -> str:
    return f"{r['acc'] - base:+.1%} · {r['oos']:.0%} · {r['unrel']:.0%}".replace("%", "")


def markdown(res: dict) -> str:
    sets = res["sets"]
    head = " | ".join(f"{s['set']} ({len(s['held_out'])} held out; {s['n_in']} in / {s['n_oos']} out)" for s in sets)
    lines = [f"{res['date']} · {res['machine']} · `{res['command']}` (cached embeddings; seconds a try once "
             "the features are cached)", "",
             "Each cell: in-scope accuracy change in points vs never abstaining · % of held-out-class test rows "
             "turned away · % of 500 unrelated texts turned away (banking77 and airline: TREC questions; trec6: "
             "banking77 queries). Never abstaining: " + ", ".join(f"{s['set']} {s['rows'][0]['acc_never']:.1%}"
                                                                    for s in sets) + ".", ""]
    for how, what in (("folds0.01", "threshold chosen on the folds (today: ½·acc + ½·recall within 1 point)"),
                      ("val0.015", "threshold: 1.5 points of accuracy on the final head's validation rows"),
                      ("val0.02", "threshold: 2 points of accuracy on the final head's validation rows")):
        lines += [f"*{what}*", "", f"| score | {head} |", "|---|" + "---|" * len(sets)]
        for c in SHOWN:
            cells = []
            for s in sets:
                r = next((r for r in s["rows"] if r["score"] == c), None)
                cells.append(_cell(r[how], r["acc_never"]) if r else "–")
            lines.append(f"| {NAMES[c]} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["*How separable at all* (test split, read only to report): AUROC held-out vs in-scope rows, and "
              "the ceiling: best % turned away at any threshold within 2 test points (an oracle).", "",
              f"| score | {head} |", "|---|" + "---|" * len(sets)]
    for c in SHOWN:
        cells = []
        for s in sets:
            r = next((r for r in s["rows"] if r["score"] == c), None)
            cells.append(f"{r['auroc_test']:.3f} · ceiling {r['oracle_2pt']:.0%}" if r else "–")
        lines.append(f"| {NAMES[c]} | " + " | ".join(cells) + " |")
    lines += ["", "Fold gap (today's rule, threshold chosen on the folds at 1 point): share of in-scope rows "
              "abstained on the folds → the final head's validation rows → the test split: "
              + "; ".join(f"{s['set']} {g['folds']:.1%} → {g['val']:.1%} → {g['test']:.1%}" for s in sets
                          for g in [next(r for r in s["rows"] if r["score"] == "rule")
                                    .get("abstain_rate_at_fold_threshold")] if g)
              + ". Accuracy of the folds' heads on their in-scope validation rows vs the final head's: "
              + "; ".join(f"{s['set']} {s['fold_acc']:.1%} vs {s['val_acc']:.1%}" for s in sets) + ".",
              "", FINDINGS, "", "Held out: " + "; ".join(f"{s['set']}: {', '.join(s['held_out'])}" for s in sets) + "."]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default="/tmp/inhouse-bench-oos/cache")
    ap.add_argument("--home", default="/tmp/inhouse-bench-oos/ws")
    ap.add_argument("--sets", default="banking77,trec6,airline")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scores", default=None, help="';'-separated candidates (default: all)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "abstention_scores.json"))
    ap.add_argument("--md-only", action="store_true", help="rewrite the BENCHMARKS.md section from --out")
    args = ap.parse_args()
    if args.md_only:
        from benchutil import write_section

        write_section("abstention_scores", "### Which out-of-scope score (issue 18)\n\n"
                      + markdown(json.loads(Path(args.out).read_text())))
        return
    cands = args.scores.split(";") if args.scores else [
        "1-p", "energy", "rule", "d1", "dc", "lda", "lr:" + ",".join(FEATS_X), "lr:" + ",".join(FEATS_X + FEATS_W),
        "lr:1-p,d1", "lr:1-p,d1,dc", "lr:1-p,d1,dc,lda"]
    budgets = [("folds", 0.01), ("val", 0.01), ("val", 0.015), ("val", 0.02)]
    from benchutil import machine

    res = {"machine": machine(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "command": "nice python " + shlex.join(["bench/abstention_scores.py", *sys.argv[1:]]),
           "sets": [run_set(n, Path(args.cache), Path(args.home), args.seed, budgets, cands)
                    for n in args.sets.split(",")]}
    tmp = Path(args.out).with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=1))
    tmp.replace(args.out)
    print(markdown(res))


if __name__ == "__main__":
    main()
