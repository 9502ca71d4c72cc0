"""What limits the sub-topics' NMI (issue 18 §1): the clusterer's settings and variants, on the same cached vectors.

Every row clusters the minilm-l6 vectors of each set with :class:`TopicClusterer` (number of topics chosen
automatically) and scores the fine level against the hidden classes. banking77 is scored on its **train-split
rows only** (tuning must not look at its test split); the demo on its tagged two thirds; trec6 (fine labels)
and tweeteval on all rows. The vectors come from bench/discovery.py's workspace (run that first).

Variants beside the settings of :class:`ClusterConfig`:
  - ``center``: vectors centred on the corpus mean before clustering (anisotropy);
  - ``vote``: after the communities, three rounds of k-NN majority vote instead of the k-means refinement
    (keeps non-convex topics; each document's own topic counts 1.5 votes).

    nice python bench/discovery_limits.py                      # all rows, writes BENCHMARKS.md
    nice python bench/discovery_limits.py --rows default,vote --no-md
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import machine, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SETS = ["demo", "trec6", "tweeteval", "banking77"]
ROWS = {  # name: (ClusterConfig overrides, variant)
    "default": ({}, None), "resolution 1.5": ({"resolution": 1.5}, None), "resolution 2": ({"resolution": 2.0}, None),
    "n_neighbors 5": ({"n_neighbors": 5}, None), "n_neighbors 20": ({"n_neighbors": 20}, None),
    "docs_per_micro 4": ({"docs_per_micro": 4}, None), "docs_per_micro 16": ({"docs_per_micro": 16}, None),
    "refine 0": ({"refine": 0}, None), "refine 2": ({"refine": 2}, None), "refine 30": ({"refine": 30}, None),
    "center": ({}, "center"), "vote": ({}, "vote"),
}


def vectors(ws, name: str):
    """The set's cached vectors, truth and split, as bench/discovery.py prepares them."""
    import discovery

    from inhouse.topics.discover import embed_for_topics
    from inhouse.topics.text import clean_text
    from inhouse.workspace.documents import read_documents

    truth, split = discovery.prepare_demo(ws) if name == "demo" else discovery.prepare_set(ws, name)
    df = read_documents(ws, name, columns=["doc_id", "text"])
    X, _ = embed_for_topics(ws, discovery.MODEL, [clean_text(t) for t in df["text"]])
    return X, truth, split


def clusterer(over: dict, variant: str | None):
    from inhouse.topics.cluster import TopicClusterer, knn

    class Vote(TopicClusterer):
        def _refine(self, X, doc_topic):
            nb, lab = knn(X, 10), doc_topic.copy()
            for _ in range(3):
                votes = np.zeros((len(X), lab.max() + 1))
                np.add.at(votes, (np.repeat(np.arange(len(X)), nb.shape[1]), lab[nb].ravel()), 1.0)
                votes[np.arange(len(X)), lab] += 1.5
                new = votes.argmax(axis=1)
                if np.array_equal(new, lab):
                    break
                lab = new
            return lab

    return (Vote if variant == "vote" else TopicClusterer)(seed=0, **over)


def score(data: dict, over: dict, variant: str | None) -> dict:
    from sklearn.metrics import normalized_mutual_info_score as nmi

    from inhouse.topics.cluster import normalize

    out = {}
    for name, (X, truth, split) in data.items():
        X = normalize(X)
        if variant == "center":
            X = normalize(X - X.mean(axis=0))
        c = clusterer(over, variant).fit(X)
        keep = truth != ""
        if split is not None:
            keep &= split != "test" if name == "banking77" else True
        out[name] = {"topics": int(c.n_topics_), "nmi": round(float(nmi(truth[keep], c.labels_[keep])), 3)}
    return out


def markdown(results: dict) -> str:
    rows = [f"| {r['row']} | " + " | ".join(f"{r[s]['nmi']:.3f} ({r[s]['topics']})" for s in SETS) + " |"
            for r in results["rows"]]
    return "\n".join([
        "## What limits the sub-topics' NMI (issue 18 §1)",
        "",
        "The clusterer's settings one at a time, on the same cached minilm-l6 vectors, topics counted automatically. "
        "NMI (topics in brackets) of the fine level; banking77 on its 10,003 train-split rows only (its test split is "
        "not looked at while tuning), the demo on its tagged rows. *center*: vectors centred on the corpus mean; "
        "*vote*: k-NN majority vote instead of the k-means refinement.",
        "",
        "| setting | demo | trec6 | tweeteval | banking77 (train rows) |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
        results["note"],
        "",
        f"Machine: {results['machine']}. Date: {results['date']}. Load average: {results['load']} (shared cores). "
        f"Command: `{results['command']}`.",
        "",
    ])


NOTE = ("Reading it: no single setting lifts banking77 past 0.80 without costing a tuning set. What helps banking77 "
        "(no k-means refinement, or k-NN votes, which keep non-convex intents whole: 0.803 and 0.808 on its train "
        "rows) costs trec6 0.08-0.09 and tweeteval 0.02-0.03; a higher resolution buys NMI by splitting finer (99 "
        "topics for 77 intents); more neighbours helps the demo (0.776) but merges banking77 intents (56 topics). "
        "So the defaults stay, and the issue's 0.80 on all banking77 texts is not reached (0.783; 0.807 on its "
        "test rows, bench/discovery.py). Not tried: another encoder (minilm-l6 is the only sentence encoder "
        "installed), which is the likeliest next gain.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", default=str(Path(tempfile.gettempdir()) / "inhouse-bench-discovery"))
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--no-md", action="store_true")
    args = ap.parse_args()
    import discover as bench_discover

    ws = bench_discover.workspace(args.home)
    load0 = os.getloadavg()[0]
    data = {s: vectors(ws, s) for s in SETS}
    rows = []
    for name in args.rows.split(","):
        t0 = time.time()
        rows.append({"row": name, **score(data, *ROWS[name]), "seconds": round(time.time() - t0, 1)})
        print(json.dumps(rows[-1]), flush=True)
    results = {"machine": machine(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "command": "nice python " + shlex.join(["bench/discovery_limits.py", *sys.argv[1:]]), "rows": rows,
               "load": f"{load0:.1f} at start, {os.getloadavg()[0]:.1f} at end", "note": NOTE}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "discovery_limits.json").write_text(json.dumps(results, indent=2))
    text = markdown(results)
    print(text)
    if not args.no_md:
        write_section("discovery-limits", text)


if __name__ == "__main__":
    main()
