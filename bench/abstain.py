"""Benchmark of abstention ("none of these"): the trade-off between answering and abstaining.

The standard set-up for out-of-scope intent detection: a seeded quarter of
banking77's 77 intents (19) is held out of training entirely; a ``head``
classifier (minilm-l6, the product path ``inhouse train``) learns the other 58
from the train split. On the test split, rows of the 58 are in scope and rows
of the 19 are out of scope: the model should abstain on them.

The threshold rule is the product's (:func:`inhouse.training.train.abstain_threshold`):
turn away the ``target`` share of in-scope *validation* rows with the lowest
confidence. ``target`` was tuned without the test split: among the 58 known
intents, a further seeded quarter (15) is held out as pseudo-out-of-scope, a
head is trained on the other 43, and the ``target`` that maximises
½·(in-scope accuracy, abstaining counted wrong) + ½·(out-of-scope recall) on
validation rows of the 43 plus training rows of the 15 is chosen. The test
curve is reported for every ``target``, the tuned one marked.

Second dataset (is the setting general?): airline tweets. A complaint
classifier learns ``negative_reason`` from the negative tweets of the train
split; on the test split, negative tweets are in scope and positive tweets out
of scope. Also shown: the same classifier when the user marks the positive
tweets of the train split as out of scope (``--out-of-scope other``).

    nice python bench/abstain.py                  # writes bench/results/abstain.json and BENCHMARKS.md
    nice python bench/abstain.py --md-only
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import machine, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
TARGETS = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3)
ABSTAIN = "other"


def workspace(home: str):
    from inhouse.data.ingest import ingest
    from inhouse.workspace.store import Workspace

    ws = Workspace.open(home)
    if "banking77" not in ws.dataset_names():
        ingest(ws, DATA / "banking77" / "banking77.csv", "banking77", label_col="label", split_col="split")
    if "air" not in ws.dataset_names():
        ingest(ws, DATA / "twitter_airline_sentiment" / "twitter_airline_sentiment.csv", "air", label_col="label",
               split_col="split", time_col="timestamp")
    return ws


def sql_list(values) -> str:
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def curve(conf_val, correct_val, conf_test, correct_test, oos_test, y_test, pred_test, targets=TARGETS) -> list[dict]:
    """Test metrics for the threshold each ``target`` gives on the in-scope validation rows."""
    from inhouse.training.metrics import label_report
    from inhouse.training.train import abstain_threshold

    rows = []
    for q in targets:
        t, _ = abstain_threshold(conf_val, correct_val, np.zeros(len(conf_val), bool), q)
        ab = conf_test < t
        ins = ~oos_test
        truth = [ABSTAIN if o else y for y, o in zip(y_test, oos_test)]
        pred = [ABSTAIN if a else p for p, a in zip(pred_test, ab)]
        rep = label_report(truth, pred)
        rows.append({"target": q, "threshold": round(float(t), 4),
                     "in_scope_accuracy": round(float((correct_test & ~ab)[ins].mean()), 4),
                     "in_scope_accuracy_answered": round(float(correct_test[ins & ~ab].mean()), 4) if (ins & ~ab).any() else None,
                     "in_scope_abstain_rate": round(float(ab[ins].mean()), 4),
                     "out_of_scope_recall": round(float(ab[~ins].mean()), 4),
                     "balanced": round(0.5 * float((correct_test & ~ab)[ins].mean()) + 0.5 * float(ab[~ins].mean()), 4),
                     "accuracy_with_other": round(rep["accuracy"], 4), "macro_f1_with_other": round(rep["macro_f1"], 4)})
    return rows


def fit(ws, dataset: str, name: str, where: str, label_col: str = "label", out_of_scope=None):
    """Train a head version (the product path) and return it with its validation rows' confidences."""
    from inhouse.classifiers.backbone import frozen_embeddings
    from inhouse.classifiers.load import load_classifier
    from inhouse.training.arguments import TrainingArguments
    from inhouse.training.data import load_training_data
    from inhouse.training.train import train

    args = TrainingArguments(method="head", where=where, label_col=label_col, out_of_scope=out_of_scope,
                             abstain_rule="quantile")  # this benchmark measures the confidence-only rule
    t0 = time.time()
    r = train(ws, dataset, name, args)
    seconds = time.time() - t0
    clf = load_classifier(ws, r.ref)
    data = load_training_data(ws, dataset, args.resolved())
    X = frozen_embeddings(ws, args.base, data.texts, data.hashes, prepare=True)
    P = clf.head.proba(X[data.val_idx])
    y = data.y(data.val_idx)
    j, conf = clf.best_in_scope(P)
    return clf, r, conf, (j == y), seconds


def scores(clf, texts: list[str]):
    from inhouse.classifiers.predict import cached_proba

    P = cached_proba(clf, texts)
    j, conf = clf.best_in_scope(P)
    return [clf.labels[k] for k in j], conf


def bench_banking(ws, seed: int) -> dict:
    from inhouse.training.train import abstain_threshold
    from inhouse.workspace.documents import read_documents

    docs = read_documents(ws, "banking77", columns=["doc_id", "text", "label", "split"])
    intents = sorted(docs["label"].dropna().unique())
    rng = np.random.default_rng(seed)
    held = sorted(rng.choice(intents, size=len(intents) // 4, replace=False).tolist())
    known = [i for i in intents if i not in held]
    pseudo = sorted(np.random.default_rng(seed + 1).choice(known, size=len(known) // 4, replace=False).tolist())
    # 1. tune the target on training rows only: pseudo-out-of-scope intents carved from the known ones
    tune_clf, _, conf_v, corr_v, _ = fit(ws, "banking77", "abstain-tune",
                                         f"label not in {sql_list(held + pseudo)}")
    ps = docs[(docs["split"] == "train") & docs["label"].isin(pseudo)]
    _, conf_ps = scores(tune_clf, ps["text"].tolist())
    tuning = []
    for q in TARGETS:
        t, _ = abstain_threshold(conf_v, corr_v, np.zeros(len(conf_v), bool), q)
        acc = float((corr_v & (conf_v >= t)).mean())
        rec = float((conf_ps < t).mean())
        tuning.append({"target": q, "threshold": round(float(t), 4), "val_in_scope_accuracy": round(acc, 4),
                       "pseudo_out_of_scope_recall": round(rec, 4), "balanced": round(0.5 * acc + 0.5 * rec, 4)})
    chosen = max(tuning, key=lambda r: (r["balanced"], -r["target"]))["target"]
    # 2. the model of the 58 known intents, measured on the test split
    clf, r, conf_val, corr_val, seconds = fit(ws, "banking77", "abstain-known", f"label not in {sql_list(held)}")
    test = docs[docs["split"] == "test"]
    pred, conf = scores(clf, test["text"].tolist())
    y = test["label"].tolist()
    oos = np.array([l in set(held) for l in y])
    correct = np.array([p == t for p, t in zip(pred, y)])
    return {"set": "banking77", "held_out": held, "pseudo_out_of_scope": pseudo, "tuning": tuning, "chosen": chosen,
            "n_train": r.n_train, "n_val": r.n_val, "n_test_in_scope": int((~oos).sum()),
            "n_test_out_of_scope": int(oos.sum()), "train_seconds": round(seconds, 1), "model": r.ref,
            "curve": curve(conf_val, corr_val, conf, correct, oos, y, pred)}


def bench_airline(ws) -> dict:
    from inhouse.data.labels import label_docs
    from inhouse.workspace.documents import read_documents
    from inhouse.workspace.filters import matching_doc_ids

    where = "label = 'negative'"
    clf, r, conf_val, corr_val, seconds = fit(ws, "air", "abstain-air", where, label_col="negative_reason")
    test = read_documents(ws, "air", columns=["text", "label"], label_col="label",
                          where="split = 'test' and label in ('negative', 'positive')")
    reasons = read_documents(ws, "air", columns=["label"], label_col="negative_reason",
                             where="split = 'test' and label in ('negative', 'positive')")["label"].tolist()
    oos = np.array([s == "positive" for s in test["label"]])
    y = [ABSTAIN if o else t for o, t in zip(oos, reasons)]
    pred, conf = scores(clf, test["text"].tolist())
    correct = np.array([p == t for p, t in zip(pred, y)])
    out = {"set": "airline", "n_train": r.n_train, "n_test_in_scope": int((~oos).sum()),
           "n_test_out_of_scope": int(oos.sum()), "curve": curve(conf_val, corr_val, conf, correct, oos, y, pred)}
    # the user marks the positive tweets of the train split as out of scope, in a label set of their own
    pos = matching_doc_ids(ws, "air", "split = 'train' and label = 'positive'")
    from inhouse.workspace.labelsets import people_label_sets

    if "complaint" not in people_label_sets(ws, ws.dataset("air").id):
        reasons_all = read_documents(ws, "air", columns=["doc_id", "label"], label_col="negative_reason",
                                     where="split = 'train' and label = 'negative'")
        for reason, group in reasons_all.dropna().groupby("label"):
            label_docs(ws, "air", group["doc_id"].tolist(), reason, into="complaint")
        label_docs(ws, "air", pos.tolist(), ABSTAIN, into="complaint")
    clf2, r2, _, _, _ = fit(ws, "air", "abstain-air-oos", "split = 'train'", label_col="complaint",
                            out_of_scope=[ABSTAIN])
    P = clf2.predict_proba(test["text"].tolist())
    ab = clf2.abstains(P)
    j, _ = clf2.best_in_scope(P)
    corr2 = np.array([clf2.labels[k] == t for k, t in zip(j, y)])
    ins = ~oos
    out["with_out_of_scope_rows"] = {
        "n_out_of_scope_train": int(len(pos)), "threshold": clf2.abstain_threshold, "rule": r2.abstain.get("rule"),
        "in_scope_accuracy": round(float((corr2 & ~ab)[ins].mean()), 4),
        "in_scope_abstain_rate": round(float(ab[ins].mean()), 4),
        "out_of_scope_recall": round(float(ab[~ins].mean()), 4)}
    return out


def markdown(res: dict) -> str:
    b = next(s for s in res["sets"] if s["set"] == "banking77")
    a = next((s for s in res["sets"] if s["set"] == "airline"), None)
    lines = [f"Machine: {res['machine']}. Date: {res['date']}. Command: `{res['command']}`.", "",
             f"**banking77, {len(b['held_out'])} of 77 intents held out of training** (seed 0): a `head` classifier "
             f"(minilm-l6) on the other {77 - len(b['held_out'])} ({b['n_train']:,} train / {b['n_val']:,} validation "
             f"rows); test split: {b['n_test_in_scope']:,} in-scope rows, {b['n_test_out_of_scope']:,} out-of-scope "
             "rows. The threshold is the confidence under which `target` of the in-scope *validation* rows fall; "
             "in-scope accuracy counts abstaining as wrong; *with other*: the held-out intents as one class `other`.",
             "", "| target | threshold | in-scope acc. | acc. when answering | in-scope abstain | out-of-scope recall "
             "| ½(acc.+recall) | acc. with other | macro-F1 with other |", "|---|---|---|---|---|---|---|---|---|"]
    for r in b["curve"]:
        mark = " **(default)**" if r["target"] == b["chosen"] else ""
        lines.append(f"| {r['target']:.2f}{mark} | {r['threshold']:.3f} | {r['in_scope_accuracy']:.1%} | "
                     f"{r['in_scope_accuracy_answered']:.1%} | {r['in_scope_abstain_rate']:.1%} | "
                     f"{r['out_of_scope_recall']:.1%} | {r['balanced']:.3f} | {r['accuracy_with_other']:.1%} | "
                     f"{r['macro_f1_with_other']:.3f} |")
    best = max(b["tuning"], key=lambda r: r["balanced"])
    lines += ["", f"The default `target` {b['chosen']} was chosen on training rows only: {len(b['pseudo_out_of_scope'])} "
              "of the 58 known intents held out as pseudo-out-of-scope, ½(validation in-scope accuracy + "
              f"pseudo-out-of-scope recall) per target: "
              + ", ".join(f"{r['target']:.2f} → {r['balanced']:.3f}" for r in b["tuning"])
              + f" (best {best['target']:.2f}). Target 0 (never abstain) is the forced-choice baseline."]
    if a:
        lines += ["", f"**Second dataset, airline tweets**: a complaint classifier learns `negative_reason` from the "
                  f"negative tweets of the train split ({a['n_train']:,} rows); test split: {a['n_test_in_scope']:,} "
                  f"negative tweets in scope, {a['n_test_out_of_scope']:,} positive tweets out of scope.", "",
                  "| target | threshold | in-scope acc. | in-scope abstain | positive tweets abstained |", "|---|---|---|---|---|"]
        for r in a["curve"]:
            mark = " **(default)**" if r["target"] == b["chosen"] else ""
            lines.append(f"| {r['target']:.2f}{mark} | {r['threshold']:.3f} | {r['in_scope_accuracy']:.1%} | "
                         f"{r['in_scope_abstain_rate']:.1%} | {r['out_of_scope_recall']:.1%} |")
        d = next((r for r in a["curve"] if r["target"] == b["chosen"]), None)
        bd = next((r for r in b["curve"] if r["target"] == b["chosen"]), None)
        if d and bd:
            lines += ["", f"What the rule controls carries over: at the default the in-scope abstain rate on the test "
                      f"split is {bd['in_scope_abstain_rate']:.1%} (banking77) and {d['in_scope_abstain_rate']:.1%} "
                      f"(airline) for a target of {b['chosen']:.0%}. What it buys does not: out-of-scope recall is "
                      f"{bd['out_of_scope_recall']:.1%} on banking77's unseen intents but {d['out_of_scope_recall']:.1%} "
                      "on positive tweets, which a complaint classifier finds about as familiar as its own "
                      "low-confidence complaints."]
        w = a.get("with_out_of_scope_rows")
        if w:
            lines += ["", f"Confidence alone does not tell a thank-you from a complaint: the classes are fuzzy (many "
                      "in-scope tweets are low-confidence too). When the user marks the "
                      f"{w['n_out_of_scope_train']:,} positive tweets of the train split as out of scope "
                      "(`inhouse label --where \"label = 'positive'\" --as other --into complaint`, then `train "
                      "--label-col complaint --out-of-scope other`), the model abstains on "
                      f"{w['out_of_scope_recall']:.1%} of the positive test tweets, with in-scope accuracy "
                      f"{w['in_scope_accuracy']:.1%} and {w['in_scope_abstain_rate']:.1%} of in-scope tweets abstained "
                      f"(threshold {w['threshold']:.3f}, rule `{w['rule']}`)."]
    lines += ["", f"Load average {res.get('load', '?')}. Raw numbers: `bench/results/abstain.json`."]
    return "\n".join(lines)


def write_md(text: str) -> None:
    write_section("abstain", "## Abstention (\"none of these\")\n\n" + text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", default="/tmp/inhouse-bench-abstain")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sets", default="banking77,airline")
    ap.add_argument("--md-only", action="store_true")
    ap.add_argument("--no-md", action="store_true")
    args = ap.parse_args()
    if args.md_only:
        write_md(markdown(json.loads((RESULTS / "abstain.json").read_text())))
        return
    ws = workspace(args.home)
    load0 = os.getloadavg()[0]
    res = {"machine": machine(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "command": "nice python " + shlex.join(["bench/abstain.py", *sys.argv[1:]]), "sets": []}
    if "banking77" in args.sets:
        res["sets"].append(bench_banking(ws, args.seed))
    if "airline" in args.sets:
        res["sets"].append(bench_airline(ws))
    res["load"] = f"{load0:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "abstain.json").write_text(json.dumps(res, indent=2))
    text = markdown(res)
    print(text)
    if not args.no_md:
        write_md(text)


if __name__ == "__main__":
    main()
