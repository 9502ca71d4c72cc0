"""What limits the sub-topics' NMI (issue 18 §1): the clusterer's settings and variants, on the same cached vectors.

Every row clusters the minilm-l6 vectors of each set with :class:`TopicClusterer` (number of topics chosen
automatically) and scores the fine level against the hidden classes. banking77 is scored on its **train-split
rows only** (tuning must not look at its test split); the demo on its tagged two thirds; trec6 (fine labels),
tweeteval and airline (negative tweets against their reason) on all rows. The vectors come from
bench/discovery.py's workspace (run that first; airline is embedded there on first use).

Variants beside the settings of :class:`ClusterConfig`:
  - ``center``: vectors centred on the corpus mean before clustering (anisotropy);
  - ``knn vote``: after the communities, three rounds of k-NN majority vote instead of the k-means refinement
    (keeps non-convex topics; each document's own topic counts 1.5 votes);
  - ``wordllama``: wordllama's static vectors instead of minilm-l6's; ``concat``: both, each row unit length,
    minilm weighted 0.7 (squared), wordllama 0.3.

    nice python bench/discovery_limits.py                      # all rows, writes BENCHMARKS.md
    nice python bench/discovery_limits.py --rows 'default,no votes (before)' --no-md
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
SETS = ["demo", "trec6", "tweeteval", "airline", "banking77"]
ROWS = {  # name: (ClusterConfig overrides, variant)
    "default": ({}, None), "no votes (before)": ({"vote_purity": 2.0}, None),
    "votes always": ({"vote_purity": 0.0}, None), "vote 0.1": ({"vote": 0.1}, None),
    "vote 0.25": ({"vote": 0.25}, None), "vote 0.5": ({"vote": 0.5}, None),
    "wordllama": ({}, "wordllama"), "concat": ({}, "concat"), "concat no votes": ({"vote_purity": 2.0}, "concat"),
    "resolution 1.5": ({"resolution": 1.5}, None), "resolution 2": ({"resolution": 2.0}, None),
    "n_neighbors 5": ({"n_neighbors": 5}, None), "n_neighbors 20": ({"n_neighbors": 20}, None),
    "docs_per_micro 4": ({"docs_per_micro": 4}, None), "docs_per_micro 16": ({"docs_per_micro": 16}, None),
    "refine 0": ({"refine": 0}, None), "refine 2": ({"refine": 2}, None), "refine 30": ({"refine": 30}, None),
    "center": ({}, "center"), "knn vote": ({}, "vote"),
}


def vectors(ws, name: str):
    """The set's cached vectors, truth and split, as bench/discovery.py prepares them."""
    import discovery

    from inhouse.topics.discover import embed_for_topics
    from inhouse.topics.text import clean_text
    from inhouse.workspace.documents import read_documents

    truth, split = discovery.prepare_demo(ws) if name == "demo" else discovery.prepare_set(ws, name)
    df = read_documents(ws, name, columns=["doc_id", "text"])
    texts = [clean_text(t) for t in df["text"]]
    X, _ = embed_for_topics(ws, discovery.MODEL, texts)
    W, _ = embed_for_topics(ws, "wordllama", texts)
    return X, W, truth, split


def clusterer(over: dict, variant: str | None):
    from inhouse.topics.cluster import TopicClusterer, knn

    class Vote(TopicClusterer):
        def _refine(self, X, doc_topic, graph=None):
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
    for name, (X, W, truth, split) in data.items():
        X = normalize(X)
        if variant == "center":
            X = normalize(X - X.mean(axis=0))
        elif variant == "wordllama":
            X = normalize(W)
        elif variant == "concat":
            X = normalize(np.hstack([np.sqrt(0.7) * X, np.sqrt(0.3) * normalize(W)]))
        c = clusterer(over, variant).fit(X)
        keep = truth != ""
        if split is not None:
            keep &= split != "test" if name == "banking77" else True
        out[name] = {"topics": int(c.n_topics_), "nmi": round(float(nmi(truth[keep], c.labels_[keep])), 3),
                     "purity": round(float(c.neighbour_purity_), 3), "voted": bool(c.voted_)}
    return out


def markdown(results: dict) -> str:
    rows = [f"| {r['row']} | " + " | ".join(f"{r[s]['nmi']:.3f} ({r[s]['topics']}){'*' if r[s]['voted'] else ''}"
                                           for s in SETS) + " |" for r in results["rows"]]
    return "\n".join([
        "## What limits the sub-topics' NMI (issue 18 §1)",
        "",
        "The clusterer's settings one at a time, on the same cached minilm-l6 vectors, topics counted automatically. "
        "NMI (topics in brackets) of the fine level; banking77 on its 10,003 train-split rows only (its test split is "
        "not looked at while tuning), the demo on its tagged rows, airline: its 9,178 negative tweets against their "
        "reason. *default*: neighbour votes in the refinement where at least 0.8 of the neighbour links stay inside "
        "the communities (a star marks the sets where that held); *no votes (before)*: the default until now; "
        "*vote 0.1/0.25/0.5*: the votes' weight (default 0.15); *center*: vectors centred on the corpus mean; "
        "*knn vote*: k-NN majority vote instead of the k-means refinement; *wordllama*, *concat*: other vectors "
        "(see the script).",
        "",
        "| setting | demo | trec6 | tweeteval | airline | banking77 (train rows) |",
        "|---|---:|---:|---:|---:|---:|",
        "| neighbour purity | " + " | ".join(f"{results['rows'][0][s]['purity']:.2f}" for s in SETS) + " |",
        *rows,
        "",
        results["note"],
        "",
        f"Machine: {results['machine']}. Date: {results['date']}. Load average: {results['load']} (shared cores). "
        f"Command: `{results['command']}`.",
        "",
    ])


NOTE = ("Reading it: no single setting lifted banking77 past 0.80 without costing a tuning set; what helps it "
        "(votes of the neighbours, no k-means refinement, a k-NN vote) keeps an intent's many phrasings together, "
        "and what costs trec6 is the same move on data whose neighbour graph does not carry the classes. The two "
        "kinds of data differ plainly in a label-free number: the share of neighbour links that stay inside the "
        "communities (*neighbour purity*, first row: 0.94-0.98 on the intent sets, 0.59-0.64 on the others). So "
        "the default now counts the neighbours' votes (weight 0.15) only where that share is at least 0.8, and is "
        "the k-means refinement as before elsewhere: banking77's train rows 0.782 -> 0.809 with the same 82 "
        "topics, trec6, tweeteval and airline identical, the demo 0.724 -> 0.722. Checked beyond seed 0 (cached "
        "vectors, same rule): banking77 train rows seed 1 0.777 -> 0.803 (68 topics), seed 2 0.779 -> 0.799 (67); "
        "random 5,000 / 2,000 train rows 0.755 -> 0.782 / 0.714 -> 0.738; wordllama vectors 0.695 -> 0.726. The "
        "weight: 0.25 gives the same 0.809 here (0.810 on all texts) but moved the demo's theme cut from 9 themes "
        "(0.871) to 8 (0.841) at seed 0 and seed 1 (0.876 -> 0.855); 0.15 keeps 9 at seed 0 (0.869), also 8 at "
        "seed 1 (0.855), and seed 2 gains (0.901 -> 0.912): the knee of the theme merges is brittle either way. "
        "0.8 lies midway between the two groups; a set near it may flip between the two refinements. Other "
        "vectors are no general win: wordllama alone helps the demo (0.749) and loses elsewhere; minilm+wordllama "
        "(concat) helps the demo (0.755) and airline (0.233) but costs trec6 0.015 and banking77 0.004.")


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
