"""Benchmark: does the cascade answer texts the version of the distance rule would turn away?

The version: ``head`` on minilm-l6 trained on banking77 with 19 of its 77 intents held out (the
abstention benchmark's ``banking77-head-distance``, trained here when ``--home`` lacks it). Its cascade
is built by the product path (:func:`inhouse.pipeline.cascade.build_cascade`, the transformer run by
torch). Then the test split (in-scope intents, held-out intents) and 500 unrelated TREC questions go
through the transformer alone and through the cascade in front of it, with the wordllama distance gate
and without it (``tau`` = inf, what the cascade would do with only its confidence). *Leak*: rows the
transformer turns away (``other``) that the cascade answers instead, as a share of the rows.

    nice python bench/cascade_gate.py --home /tmp/abstain/ws      # prints one JSON object
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(pred, texts):
    from inhouse.pipeline.engine import decide

    probs, dist, _ = pred.scores(texts)
    return decide(pred, probs, 1, distance=dist)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    import abstention as ab

    from inhouse import registry
    from inhouse.pipeline.cascade import Cascade, CascadePredictor, build_cascade, cascade_dir, gated_cascade, load_cascade
    from inhouse.pipeline.engine import load_predictor
    from inhouse.pipeline.verdict import labelled_rows
    from inhouse.workspace.documents import read_documents

    ws = ab.workspace(a.home)
    try:
        v = registry.resolve(ws, "banking77-head-distance")
    except Exception:  # noqa: BLE001 - not trained yet in this workspace
        ab.bench_set(ws, "banking77", "head", a.seed, reuse=True)
        v = registry.resolve(ws, "banking77-head-distance")
    docs = read_documents(ws, "banking77", columns=["text", "label", "split"])
    test = docs[docs["split"] == "test"]
    known = set(v.manifest["labels"])
    sets = {"in_scope": test[test["label"].isin(known)], "held_out": test[~test["label"].isin(known)]}
    texts = {k: d["text"].tolist() for k, d in sets.items()}
    texts["unrelated"] = ab.unrelated_texts(ws, a.seed)
    gold = sets["in_scope"]["label"].tolist()
    tra = load_predictor(ws, v, backend="torch")
    t0 = time.time()
    shutil.rmtree(cascade_dir(ws, v.sha256), ignore_errors=True)  # built again with this code
    m = build_cascade(ws, v, tra, labelled_rows(ws, v))
    out = {"model": v.ref, "build_seconds": round(time.time() - t0, 1), "use": m["use"],
           "threshold": m.get("threshold"), "gate": m.get("distance_gate"), "validation": m.get("validation"),
           "out_of_fold": m.get("out_of_fold"), "reason": m.get("reason"), "sets": {}}
    c = load_cascade(ws, v)
    if c is None or not c.use:  # refused on accuracy: measure the gate anyway, at the threshold it chose
        c = gated_cascade(ws, v, tra, labelled_rows(ws, v), m["threshold"])
        out["gate"], out["forced"] = c.manifest["distance_gate"], True
    ungated = Cascade(c.W, c.b, c.threshold, {**c.manifest, "distance_gate": None}, c.embed, c.distance)
    for name, tx in texts.items():
        base = run(tra, tx)
        row = {"texts": len(tx), "transformer_turned_away": float(np.mean(base["abstained"]))}
        for how, cas in (("gated", c), ("ungated", ungated)):
            if cas is None or not cas.use:
                continue
            p = CascadePredictor(v, tra, cas)
            got = run(p, tx)
            ans = np.array(p.sure(tx)[1])
            leak = np.array(base["abstained"]) & ans
            row[how] = {"share": float(ans.mean()), "turned_away": float(np.mean(got["abstained"])),
                        "leak": float(leak.mean())}
            if name == "in_scope":
                row[how]["accuracy"] = float(np.mean([x == g for x, g in zip(got["label"], gold)]))
        if name == "in_scope":
            row["transformer_accuracy"] = float(np.mean([x == g for x, g in zip(base["label"], gold)]))
        out["sets"][name] = row
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
