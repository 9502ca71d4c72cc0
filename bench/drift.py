"""Benchmark of the drift flag: how often it fires on unshifted runs (false alarms) and on shifted ones, by run size.

Set-up as ``tests/test_drift.py``, larger: a ``head`` classifier (minilm-l6, the
product path ``inhouse train``) learns ``--known`` banking77 intents (seeded) from
the train split; the other intents are never seen. The test rows of the known
intents are cut in two halves: half A is the version's evaluation (the baseline
profile, as ``inhouse eval`` records it), half B feeds the simulated runs. A run
of ``n`` documents draws ``(1 - s)·n`` rows from half B and ``s·n`` from test rows
of unseen intents (``s`` = the shifted share); it is judged against the
evaluation with the product's :func:`inhouse.analysis.drift.compare` and default
thresholds. Each cell is the share of ``--trials`` seeded runs flagged (any metric,
and the abstain rate alone).

    nice python bench/drift.py                       # writes bench/results/drift.json
    nice python bench/drift.py --known 12 --trials 100
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "banking77" / "banking77.csv"


def cli(home: Path, *args) -> None:
    subprocess.run([sys.executable, "-m", "inhouse", "--home", str(home), *map(str, args)], check=True,
                   cwd=REPO, stdout=subprocess.DEVNULL)


def answers(home: Path, ref: str, texts: list[str]):
    """Per text: the decided label, whether the model abstained, its best in-scope probability."""
    from inhouse.classifiers.load import load_classifier
    from inhouse.workspace.store import Workspace

    ws = Workspace.open(home)
    try:
        clf = load_classifier(ws, ref)
        probs = clf.predict_proba(texts)
        return clf.decide(probs), clf.abstains(probs), clf.best_in_scope(probs)[1]
    finally:
        ws.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--known", type=int, default=58, help="intents the model learns (the rest are never seen)")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--sizes", default="20,50,100,250,500")
    ap.add_argument("--shares", default="0,0.1,0.25,0.5,1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "drift.json"))
    ap.add_argument("--cache", default=None, help="an .npz keeping the model's answers on the test split "
                                                  "(reused by a rerun with the same --known and --seed)")
    a = ap.parse_args()
    from inhouse.analysis.drift import DriftThresholds, Profile, compare

    rng = np.random.default_rng(a.seed)
    df = pd.read_csv(DATA)
    intents = sorted(df["label"].unique())
    known = sorted(rng.choice(intents, size=a.known, replace=False).tolist())
    t0 = time.time()
    test = df[df["split"] == "test"].reset_index(drop=True)
    if a.cache and Path(a.cache).exists():
        z = np.load(a.cache, allow_pickle=False)
        labels, abstained, conf = z["labels"].tolist(), z["abstained"], z["conf"]
    else:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            df[df["label"].isin(known)].to_csv(home / "known.csv", index=False)
            cli(home, "ingest", home / "known.csv", "--dataset", "bank", "--label-col", "label", "--split-col", "split")
            cli(home, "train", "--dataset", "bank", "--name", "intents", "--method", "head")
            labels, abstained, conf = answers(home, "intents@1", test["text"].tolist())
        if a.cache:
            np.savez(a.cache, labels=np.array(labels), abstained=np.asarray(abstained), conf=np.asarray(conf))
    train_s = round(time.time() - t0, 1)
    seen = np.flatnonzero(test["label"].isin(known).to_numpy())
    unseen = np.flatnonzero(~test["label"].isin(known).to_numpy())
    rng.shuffle(seen)
    half_a, half_b = seen[: len(seen) // 2], seen[len(seen) // 2:]

    def profile(idx):
        return Profile.of([labels[i] for i in idx], abstained[idx], conf[idx])

    base, t = profile(half_a), DriftThresholds()
    cells = []
    for n in [int(x) for x in a.sizes.split(",")]:
        for s in [float(x) for x in a.shares.split(",")]:
            k = int(round(s * n))
            if n - k > len(half_b) or k > len(unseen):
                continue  # not enough rows for this cell (a small --known)
            flagged = abst = 0
            for _ in range(a.trials):
                idx = np.concatenate([rng.choice(half_b, n - k, replace=False), rng.choice(unseen, k, replace=False)])
                c = compare(profile(idx), base, t)
                flagged += c["flagged"]
                abst += c["metrics"]["abstain_rate"]["flagged"]
            cells.append({"documents": n, "shifted_share": s, "flagged": round(flagged / a.trials, 3),
                          "abstain_flagged": round(abst / a.trials, 3)})
            print(f"n={n:>4} shifted={s:>4.0%}  flagged {flagged / a.trials:6.1%}  (abstain rate {abst / a.trials:6.1%})")
    out = {"known": a.known, "trials": a.trials, "seed": a.seed, "thresholds": t.to_dict(), "train_seconds": train_s,
           "baseline": base.to_dict() | {"counts": None},
           "unshifted_abstain_rate": round(float(abstained[half_b].mean()), 4),
           "unseen_abstain_rate": round(float(abstained[unseen].mean()), 4),
           "unseen_mean_confidence": round(float(conf[unseen].mean()), 4), "cells": cells}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(json.dumps({k: v for k, v in out.items() if k != "cells"}, indent=1))


if __name__ == "__main__":
    main()
