"""Benchmark of abstention: does the rule turn away texts of intents never trained on and keep good answers?

Old rule: the probability threshold alone, turning away 20 % of in-scope
validation rows (``abstain_rule="quantile"``). New rule (the default): the best
in-scope probability *and* the Mahalanobis distance to the training rows, both
thresholds chosen on pseudo-out-of-scope classes left out of the training rows
(:mod:`inhouse.training.abstain`). Both are trained by the product path
(``inhouse.training.train.train``, method ``head`` unless ``--method``), then
the test split is classified by the product path (``classify_texts``).

Sets (test splits are only read here, never for tuning):

- banking77: a seeded quarter of the 77 intents (19) held out of training; test
  rows of the other 58 are in scope, the 19 held-out intents' rows are not.
- trec6: two of the six question types held out (seeded), the other four trained.
- unrelated text: the banking77 model is also asked 500 TREC questions (seeded),
  none of them about banking ("what is the weather today" is one such text).

The curve: for the new rule, the test split's in-scope accuracy and out-of-scope
turn-away as the distance threshold moves (the probability threshold fixed at
the chosen one); for the old rule, as the probability threshold moves.

    nice python bench/abstention.py                 # head, writes bench/results/abstention.json and BENCHMARKS.md
    nice python bench/abstention.py --method full   # the full fine-tune (long on 2 cores)
    nice python bench/abstention.py --md-only
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
DEFAULT_ENCODER = "minilm-l6"
SETS = {"banking77": (DATA / "banking77" / "banking77.csv", 19), "trec6": (DATA / "trec6" / "trec6.csv", 2)}
UNRELATED = 500


def workspace(home: str):
    from inhouse.data.ingest import ingest
    from inhouse.workspace.store import Workspace

    ws = Workspace.open(home)
    for name, (csv, _) in SETS.items():
        if name not in ws.dataset_names():
            ingest(ws, csv, name, label_col="label", split_col="split")
    return ws


def sql_list(values) -> str:
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def measure(clf, texts: list[str], truth: list[str], oos: np.ndarray) -> dict:
    """The product's answers on the test rows: in-scope accuracy with and without abstaining, turn-away."""
    from inhouse.classifiers.predict import cached_scores, classify_texts

    out = classify_texts(clf, texts)
    probs, dist = cached_scores(clf, texts)
    j, best = clf.best_in_scope(probs)
    right = np.array([clf.labels[k] == t for k, t in zip(j, truth)])
    ab = np.array(out["abstained"])
    ins = ~oos
    out = {"out_of_scope_recall": round(float(ab[oos].mean()), 4) if oos.any() else None,
           "_right": right, "_best": best, "_dist": dist, "_ab": ab}
    if ins.any():
        out.update(in_scope_accuracy_without_abstaining=round(float(right[ins].mean()), 4),
                   in_scope_accuracy=round(float((right & ~ab)[ins].mean()), 4),
                   in_scope_abstain_rate=round(float(ab[ins].mean()), 4))
    return out


def curve(m: dict, oos: np.ndarray, clf, by: str) -> list[dict]:
    """In-scope accuracy and turn-away on the test rows as one threshold moves (the other as chosen)."""
    ins = ~oos
    rows = []
    if by == "distance":  # the rule's score (1 - p) + weight * d against thresholds at in-scope quantiles
        score = (1.0 - m["_best"]) + clf.distance_weight * m["_dist"]
        for t in np.quantile(score[ins], [0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 1.0]):
            rows.append({"distance_threshold": round(float(t), 3), **_point(m["_right"], score > t, ins, oos)})
    else:
        for t in (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99):
            rows.append({"threshold": t, **_point(m["_right"], m["_best"] < t, ins, oos)})
    return rows


def _point(right, ab, ins, oos) -> dict:
    return {"in_scope_accuracy": round(float((right & ~ab)[ins].mean()), 4),
            "out_of_scope_recall": round(float(ab[oos].mean()), 4)}


def reused(ws, name: str, args):
    """The newest version ``name`` trained with exactly these arguments (``--reuse``), else None."""
    from types import SimpleNamespace

    from inhouse import registry
    from inhouse.errors import InhouseError

    try:
        v = registry.resolve(ws, name)
    except InhouseError:
        return None
    m = v.manifest
    if m.get("training_args") != args.resolved().to_dict():
        return None
    return SimpleNamespace(ref=v.ref, n_train=m["n_train"], n_val=m["n_val"], abstain=m.get("abstain"))


def bench_set(ws, name: str, method: str, seed: int, unrelated: list[str] | None = None, base: str | None = None,
              reuse: bool = False) -> dict:
    from inhouse.classifiers.load import load_classifier
    from inhouse.training.arguments import TrainingArguments
    from inhouse.training.train import train
    from inhouse.workspace.documents import read_documents

    docs = read_documents(ws, name, columns=["doc_id", "text", "label", "split"])
    classes = sorted(docs["label"].dropna().unique())
    held = sorted(np.random.default_rng(seed).choice(classes, size=SETS[name][1], replace=False).tolist())
    where = f"split = 'train' and label not in {sql_list(held)}"
    test = docs[docs["split"] == "test"]
    texts, truth = test["text"].tolist(), test["label"].tolist()
    oos = np.array([t in set(held) for t in truth])
    out = {"set": name, "method": method, "base": base or DEFAULT_ENCODER, "held_out": held, "n_classes": len(classes),
           "n_test_in_scope": int((~oos).sum()), "n_test_out_of_scope": int(oos.sum()), "rules": {}}
    for rule in ("quantile", "distance"):
        t0 = time.time()
        args = TrainingArguments(method=method, where=where, abstain_rule=rule, base=base or DEFAULT_ENCODER)
        r = reused(ws, f"{name}-{method}-{rule}", args) if reuse else None
        r = r or train(ws, name, f"{name}-{method}-{rule}", args)
        clf = load_classifier(ws, r.ref)
        m = measure(clf, texts, truth, oos)
        res = {k: v for k, v in m.items() if not k.startswith("_")}
        res.update(model=r.ref, train_seconds=round(time.time() - t0, 1), n_train=r.n_train, n_val=r.n_val,
                   threshold=clf.abstain_threshold, distance_threshold=clf.distance_threshold,
                   pseudo_out_of_scope=(r.abstain or {}).get("pseudo_out_of_scope"),
                   curve=curve(m, oos, clf, "distance" if rule == "distance" else "probability"))
        if unrelated:
            u = measure(clf, unrelated, ["?"] * len(unrelated), np.ones(len(unrelated), bool))
            res["unrelated_recall"] = u["out_of_scope_recall"]
            weather = clf.predict_scores(["what is the weather today"])
            res["weather"] = {"label": clf.decide(weather[0], distance=weather[1])[0],
                              "best_probability": round(float(weather[0].max()), 4)}
        out["rules"][rule] = res
    return out


def unrelated_texts(ws, seed: int) -> list[str]:
    from inhouse.workspace.documents import read_documents

    q = read_documents(ws, "trec6", columns=["text"])["text"].tolist()
    pick = np.random.default_rng(seed).choice(len(q), size=min(UNRELATED, len(q)), replace=False)
    return [q[i] for i in sorted(pick)]


# Measured once (exploration scripts, 2026-12-03), kept beside the table because it decided the design.
EXPLORATION = """**Which distance** (exploration, banking77, 19 of 77 intents held out, `head` on minilm-l6 with C 16 and
temperature scaling; separating the test split's held-out-intent rows from in-scope rows, AUROC):
1 − probability 0.889; Mahalanobis to class means with a shared covariance (shrinkage 0, 0.01, 0.05, 0.2)
0.811, 0.811, 0.812, 0.817; cosine distance to the nearest training row (k = 1) **0.924**, k = 5 0.922,
k = 10 0.912; (1 − p) + 2·(k = 1 distance) 0.930. The product stores k = 1 (the training rows' unit vectors in
float16, `abstain.safetensors`) and abstains where (1 − p) + w·d > t, w and t tuned on the training rows only.
This comparison read the test split to choose the *kind* of score; no threshold was.

**What is reachable on banking77's held-out intents** (same model, best point on the *test* split
with in-scope accuracy within 2 points of never abstaining, an oracle no rule can beat): probability alone
turns away 41.2 %, probability or distance 50.4 %, (1 − p) + w·d 58.8 %. The issue's target (≥ 75 % within
2 points) is not reachable here with a frozen minilm-l6: the held-out intents are banking intents next to
the trained ones ("card_swallowed" beside "card_not_working"). Unrelated text is another matter (the table).

**Tuning the encoder does not change that** (`--method full`, the CLI's default method: minilm-l6 fine-tuned
end to end on the 58 trained intents, its distance measured in its own tuned embedding): in-scope accuracy
93.8 % never abstaining, 92.8 % with the rule, and 47.5 % of held-out-intent texts turned away, as for `head`;
along its curve, 52.0 % at −1.5 points and 61.2 % at −2.7. Fine-tuning pulls each trained intent's texts
together, and the held-out intents' texts are pulled in with their trained neighbours."""


def markdown(res: dict) -> str:
    runs = list({json.dumps(s.get("run") or _run_of(res), sort_keys=True): s.get("run") or _run_of(res)
                 for s in res["sets"]}.values())
    lines = [f"Machine: {res['machine']}. "
             + " ".join(f"{', '.join(sorted({s['method'] for s in res['sets'] if (s.get('run') or _run_of(res)) == r}))}"
                        f" rows: {r['date']}, `{r['command']}`, load average {r.get('load', '?')}." for r in runs)
             + " (A shared machine: rerun on a quiet one for timings.)"
             + (" `--reuse`: the versions were trained by the run before it, with the same arguments."
                if any("--reuse" in r["command"] for r in runs) else ""), "",
             "*Old rule*: best in-scope probability under the threshold that turns away 20 % of in-scope validation "
             "rows. *New rule* (default since issue 18): (1 − probability) + w·(cosine distance to the nearest "
             "training row) over a threshold, w and the threshold chosen on pseudo-out-of-scope classes left out of "
             "the training rows (½·accuracy + ½·turn-away, at most 1 point of validation accuracy). "
             "In-scope accuracy counts abstaining as wrong; *turned away*: share of out-of-scope test rows "
             "answered `other`.", "",
             "| set | method | rule | in-scope acc. never abstaining | in-scope acc. | in-scope abstained | "
             "held-out classes turned away | unrelated text turned away | \"what is the weather today\" |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in res["sets"]:
        for rule, r in s["rules"].items():
            w = r.get("weather")
            lines.append(f"| {s['set']} ({len(s['held_out'])} of {s['n_classes']} held out) | {s['method']}, "
                         f"{s.get('base', DEFAULT_ENCODER)} | {rule} | "
                         f"{r['in_scope_accuracy_without_abstaining']:.1%} | {r['in_scope_accuracy']:.1%} | "
                         f"{r['in_scope_abstain_rate']:.1%} | {r['out_of_scope_recall']:.1%} | "
                         + (f"{r['unrelated_recall']:.1%} | " if r.get("unrelated_recall") is not None else "– | ")
                         + (f"{w['label']} (p {w['best_probability']:.3f}) |" if w else "– |"))
    lines += ["", "Curves on the test split (in-scope accuracy → held-out classes turned away), one threshold "
              "moving, the other as chosen; **bold**: the chosen point.", ""]
    for s in res["sets"]:
        for rule, r in s["rules"].items():
            key = "distance_threshold" if rule == "distance" else "threshold"
            chosen = r["distance_threshold"] if rule == "distance" else r["threshold"]
            pts = []
            for p in r["curve"]:
                pts.append(f"{p[key]:g}: {p['in_scope_accuracy']:.1%} → {p['out_of_scope_recall']:.1%}")
            pts.append(f"**{chosen:.4g}: {r['in_scope_accuracy']:.1%} → {r['out_of_scope_recall']:.1%}**")
            what = "threshold of (1 − p) + w·d" if rule == "distance" else "probability threshold"
            lines.append(f"- {s['set']}, {s['method']}, {s.get('base', DEFAULT_ENCODER)}, {rule} rule ({what}): "
                         + "; ".join(pts))
    lines += ["", EXPLORATION]
    held = {s["set"]: s["held_out"] for s in res["sets"]}
    lines += ["", "Held out: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in held.items()) + ".",
              "Raw numbers: `bench/results/abstention.json`."]
    return "\n".join(lines)


def _run_of(res: dict) -> dict:
    """The run that measured a set: its own record, else (results from before sets kept one) the file's."""
    return {k: res.get(k) for k in ("date", "command", "load")}


def write_md(text: str) -> None:
    write_section("abstention", "## Abstention: distance + probability (issue 18)\n\n" + text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", default="/tmp/inhouse-bench-abstention")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--method", default="head")
    ap.add_argument("--base", default=None, help="base model (default: the product's, minilm-l6)")
    ap.add_argument("--sets", default="banking77,trec6")
    ap.add_argument("--reuse", action="store_true", help="measure versions the last run trained, if their "
                    "training arguments are the same (train_seconds then says how long measuring took)")
    ap.add_argument("--md-only", action="store_true")
    ap.add_argument("--no-md", action="store_true")
    args = ap.parse_args()
    path = RESULTS / "abstention.json"
    if args.md_only:
        write_md(markdown(json.loads(path.read_text())))
        return
    ws = workspace(args.home)
    load0 = os.getloadavg()[0]
    res = {"machine": machine(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "command": "nice python " + shlex.join(["bench/abstention.py", *sys.argv[1:]]), "sets": []}
    if path.exists() and (args.method != "head" or args.base):  # add these rows to the last results
        last = json.loads(path.read_text())
        res["sets"] = [{**s, "run": s.get("run") or _run_of(last)} for s in last["sets"]
                       if (s["method"], s.get("base")) != (args.method, args.base or DEFAULT_ENCODER)]
    first = len(res["sets"])
    for name in args.sets.split(","):
        res["sets"].append(bench_set(ws, name, args.method, args.seed,
                                     unrelated_texts(ws, args.seed) if name == "banking77" else None, args.base,
                                     args.reuse))
    res["load"] = f"{load0:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    for s in res["sets"][first:]:
        s["run"] = _run_of(res)
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=2))
    tmp.replace(path)
    text = markdown(res)
    print(text)
    if not args.no_md:
        write_md(text)


if __name__ == "__main__":
    main()
