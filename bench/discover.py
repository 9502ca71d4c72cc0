"""Benchmark of ``inhouse discover`` against BERTopic's defaults, plus a 1M-document scaling run.

Test sets (labels hidden from both methods, used only to score):
  - banking77: all 13,083 texts, 77 intents;
  - airline: the negative tweets of twitter_airline_sentiment, against ``negative_reason``.
Tuning sets (where the automatic-k rule and the defaults were chosen):
  - trec6 (fine labels, 50 classes) and tweeteval_emotion (4 classes).

Both methods get the same minilm-l6 embeddings of the same cleaned texts (links and
@handles removed, as ``discover`` does), computed once and cached in the bench
workspace; the times below exclude them. Each run is its own process, so peak RSS
is that run's. ``inhouse`` runs the full product path (``discover()``: read the
documents, load the cached vectors, cluster, keywords, store); BERTopic runs
``BERTopic().fit_transform(docs, embeddings)``. BERTopic's outliers (topic -1)
count as one cluster for NMI/ARI, as a user sees them; NMI on its non-outliers
alone is reported too.

    nice python bench/discover.py                    # everything, writes BENCHMARKS.md
    nice python bench/discover.py --sets banking77 --scale 0 --no-md

BERTopic is a benchmark extra only (requirements-bench.txt); without it its rows
are skipped with a note.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shlex
import subprocess
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
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"
SETS = {
    # name: (csv, filter, truth column, role)
    "banking77": ("banking77/banking77.csv", None, "label", "test"),
    "airline": ("twitter_airline_sentiment/twitter_airline_sentiment.csv", ("label", "negative"),
                "negative_reason", "test"),
    "trec6": ("trec6/trec6.csv", None, "fine_label", "tuning"),
    "tweeteval": ("tweeteval_emotion/tweeteval_emotion.csv", None, "label", "tuning"),
}
MODEL = "minilm-l6"


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: Linux carries that over from the
    parent across fork and exec, so every child would report at least the parent's size."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def workspace(home: str):
    import inhouse  # noqa: F401  (network guard)
    from inhouse.workspace.store import Workspace

    return Workspace.open(home)


# ------------------------------------------------------------- preparing ----

def prepare(ws, name: str) -> np.ndarray:
    """Ingest the set without its labels (once) and cache its embeddings; return the truth per document."""
    import pandas as pd

    from inhouse.data.ingest import ingest
    from inhouse.topics.discover import embed_for_topics
    from inhouse.topics.text import clean_text
    from inhouse.workspace.documents import read_documents

    csv, filt, truth_col, _ = SETS[name]
    df = pd.read_csv(DATA / csv, dtype=str, keep_default_na=False)
    if filt:
        df = df[df[filt[0]] == filt[1]]
    df = df.reset_index(drop=True)
    if name not in ws.dataset_names():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.csv"
            df[["text"]].to_csv(path, index=False)
            ingest(ws, path, name)
    docs = read_documents(ws, name, columns=["doc_id", "text", "source_row"])
    t0 = time.time()
    embed_for_topics(ws, MODEL, [clean_text(t) for t in docs["text"]])
    print(f"[{name}] {len(docs)} documents, embeddings ready in {time.time() - t0:.1f} s", flush=True)
    return df[truth_col].to_numpy()[docs["source_row"].to_numpy() - 1]


def prepare_synthetic(ws, n: int, seed: int = 0) -> np.ndarray:
    """``n`` documents of realistic structure: 200 topics in 20 families (Zipf sizes), 384-d unit vectors
    (family centre + topic offset + noise) put straight into the embedding cache, and short texts built from
    each topic's words. Returns the true topic of each document."""
    from inhouse.data.ingest import ingest
    from inhouse.models.catalog import get_model
    from inhouse.models.embeddings import EmbeddingCache
    from inhouse.workspace.documents import read_documents
    from inhouse.workspace.files import text_hash

    name = f"synthetic-{n}"
    rng = np.random.default_rng(seed)
    k, fam, dim = 200, 20, 384
    words = _vocabulary()
    family = rng.normal(size=(fam, dim))
    centres = family[np.arange(k) % fam] + 0.8 * rng.normal(size=(k, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = 1.0 / np.arange(1, k + 1) ** 0.8
    truth = rng.choice(k, size=n, p=weights / weights.sum())
    if name in ws.dataset_names():
        return truth
    topic_words = [rng.choice(len(words), 6, replace=False) for _ in range(k)]
    common = rng.choice(len(words), 60, replace=False)
    cache = EmbeddingCache(ws, get_model(ws, MODEL).sha256)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.csv"
        with open(path, "w") as f:
            f.write("text\n")
            for start in range(0, n, 100_000):
                t = truth[start:start + 100_000]
                texts = [" ".join([words[w] for w in rng.choice(topic_words[c], 3, replace=False)]
                                  + [words[w] for w in rng.choice(common, 3)] + [str(start + i)])
                         for i, c in enumerate(t)]
                noise = rng.normal(scale=1.1 / np.sqrt(dim), size=(len(t), dim))
                V = (centres[t] + noise).astype(np.float32)
                V /= np.linalg.norm(V, axis=1, keepdims=True)
                cache.put([text_hash(x) for x in texts], V)
                f.write("\n".join(texts) + "\n")
        ingest(ws, path, name)
    print(f"[{name}] generated", flush=True)
    assert len(read_documents(ws, name, columns=["doc_id"])) == n
    return truth


def _vocabulary() -> list[str]:
    import re

    text = (DATA / "banking77" / "banking77.csv").read_text().lower()
    return sorted({w for w in re.findall(r"[a-z]{4,}", text)})


# ---------------------------------------------------------------- child -----

def child(args) -> None:
    """One run in its own process; prints one JSON line."""
    ws = workspace(args.home)
    out = Path(args.out)
    if args.method == "inhouse":
        from inhouse.topics.discover import discover

        t0 = time.time()
        res = discover(ws, args.dataset, model=MODEL, seed=args.seed)
        seconds = time.time() - t0
        a = res.assignments()
        np.save(out, a["topic"].to_numpy())
        info = {"seconds": seconds, "topics": res.n_topics, "run_id": res.run_id,
                "topics_sha": hashlib.sha256(json.dumps([t.to_dict() for t in res.topics]).encode()).hexdigest()}
    else:
        try:
            import bertopic
            from bertopic import BERTopic
        except ImportError:
            print(json.dumps({"skipped": "bertopic is not installed (pip install -r requirements-bench.txt)"}))
            return
        from inhouse.topics.discover import embed_for_topics
        from inhouse.topics.text import clean_text
        from inhouse.workspace.documents import read_documents

        docs = [clean_text(t) for t in read_documents(ws, args.dataset, columns=["text"])["text"]]
        X, _ = embed_for_topics(ws, MODEL, docs)
        t0 = time.time()
        topics, _ = BERTopic().fit_transform(docs, X)
        seconds = time.time() - t0
        topics = np.asarray(topics)
        np.save(out, topics)
        info = {"seconds": seconds, "topics": int(len(set(topics.tolist()) - {-1})), "version": bertopic.__version__}
    info["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(info), flush=True)


def run_child(args, method: str, dataset: str, seed: int, home: str | None = None) -> tuple[dict, np.ndarray | None]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "topics.npy"
        cmd = [sys.executable, __file__, "--child", method, "--dataset", dataset, "--seed", str(seed),
               "--home", home or args.home, "--out", str(out)]
        p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
        if p.returncode != 0 or not lines:
            raise RuntimeError(f"{method} on {dataset} failed:\n{p.stderr[-3000:]}")
        info = json.loads(lines[-1])
        return info, (np.load(out) if out.exists() else None)


# ---------------------------------------------------------------- scoring ---

def score(truth: np.ndarray, runs: list[np.ndarray], infos: list[dict]) -> dict:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    t = runs[0]
    inside = t >= 0
    return {
        "nmi": float(np.mean([normalized_mutual_info_score(truth, r) for r in runs])),
        "ari": float(np.mean([adjusted_rand_score(truth, r) for r in runs])),
        "nmi_non_outliers": float(normalized_mutual_info_score(truth[inside], t[inside])),
        "outliers": float(np.mean(t < 0)),
        "topics": infos[0]["topics"],
        "seconds": float(np.median([i["seconds"] for i in infos])),
        "peak_rss_mb": float(max(i["peak_rss_mb"] for i in infos)),
        "runs": len(runs),
        "identical": all(np.array_equal(t, r) for r in runs[1:]) and
        len({i.get("topics_sha", i["topics"]) for i in infos}) == 1,
        "version": infos[0].get("version"),
    }


def bench_set(args, ws, name: str) -> dict:
    truth = prepare(ws, name)
    out = {"set": name, "role": SETS[name][3], "documents": len(truth), "classes": int(len(set(truth)))}
    for method, repeats in (("inhouse", args.repeats), ("bertopic", args.bertopic_repeats)):
        if repeats <= 0:
            continue
        infos, runs = [], []
        for i in range(repeats):
            info, topics = run_child(args, method, name, seed=0)
            if "skipped" in info:
                out[method] = {"skipped": info["skipped"]}
                break
            infos.append(info)
            runs.append(topics)
            print(f"[{name}] {method} run {i + 1}: {info}", flush=True)
        if runs:
            out[method] = score(truth, runs, infos)
    print(json.dumps(out), flush=True)
    return out


def bench_scale(args) -> dict:
    """In a workspace of its own, so the other sets' runs do not scan its million cached vectors."""
    from sklearn.metrics import normalized_mutual_info_score

    home = args.home + "-scale"
    t0 = time.time()
    truth = prepare_synthetic(workspace(home), args.scale)
    prep = time.time() - t0
    info, topics = run_child(args, "inhouse", f"synthetic-{args.scale}", seed=0, home=home)
    res = {"documents": args.scale, "prepare_seconds": prep, **info,
           "nmi": float(normalized_mutual_info_score(truth, topics)), "true_topics": 200}
    print(json.dumps(res), flush=True)
    return res


# ---------------------------------------------------------------- report ----


def markdown(results: dict) -> str:
    rows = []
    for r in results["sets"]:
        for method in ("inhouse", "bertopic"):
            m = r.get(method)
            if m is None:
                continue
            label = "inhouse discover" if method == "inhouse" else f"BERTopic {m.get('version') or ''} (defaults)"
            if "skipped" in m:
                rows.append(f"| {r['set']} ({r['role']}) | {label} | — | — | — | — | — | — | skipped: {m['skipped']} |")
                continue
            nmi = f"{m['nmi']:.3f}" + (f" ({m['nmi_non_outliers']:.3f})" if m["outliers"] > 0 else "")
            rows.append(f"| {r['set']} ({r['role']}) | {label} | {nmi} | {m['ari']:.3f} | {m['topics']} | "
                        f"{m['outliers']:.1%} | {m['seconds']:.1f} s | {m['peak_rss_mb']:.0f} MB | "
                        f"{'yes' if m['identical'] else 'no'} ({m['runs']} runs) |")
    lines = [
        "## Topic discovery (issue 5)",
        "",
        "Topics found without labels, scored against the hidden classes. Both methods get the same minilm-l6 "
        "embeddings of the same cleaned texts (computed once, not timed). `inhouse discover` is timed end to end "
        "(read documents, load cached vectors, cluster, keywords, store the run); BERTopic is "
        "`BERTopic().fit_transform(docs, embeddings)` with default settings. Times are medians over the runs, each "
        "run in its own process (peak RSS is the run's). For BERTopic, NMI counts its outliers (topic -1) as one "
        "cluster; in brackets, NMI over its non-outliers only. banking77 and airline are the test sets; the "
        "automatic choice of the number of topics (Louvain modularity on a k-NN graph of micro-clusters, "
        "resolution 1, then 10 k-means refinement steps) and the other defaults were chosen on trec6 and "
        "tweeteval.",
        "",
        "| set | method | NMI | ARI | topics | outliers | time | peak RSS | identical runs |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
    ]
    for r in results["sets"]:
        a, b = r.get("inhouse"), r.get("bertopic")
        if a and b and "skipped" not in b:
            lines.append(f"- {r['set']}: NMI {a['nmi'] - b['nmi']:+.3f} against BERTopic, in "
                         f"{a['seconds'] / b['seconds']:.0%} of its time ({b['seconds'] / a['seconds']:.1f}x faster); "
                         f"repeated runs identical: {'yes' if a['identical'] else 'no'} (BERTopic: "
                         f"{'yes' if b['identical'] else 'no'}).")
    lines.append("")
    s = results.get("scale")
    if s:
        lines += [
            f"Scaling: {s['documents']:,} synthetic documents (384-d unit vectors: 200 topics in 20 families, Zipf "
            f"sizes, noise; generated short texts; vectors placed in the embedding cache) → `discover()` end to end "
            f"in {s['seconds']:.0f} s, peak RSS {s['peak_rss_mb'] / 1024:.2f} GB (limit 8 GB), {s['topics']} topics, "
            f"NMI {s['nmi']:.3f} against the 200 generating topics.",
            "",
        ]
    kept = f" (the set rows are from the run of {results['kept_from']})" if results.get("kept_from") else ""
    lines += [f"Machine: {results['machine']}. Date: {results['date']}{kept}. Load average during the run: "
              f"{results['load']} (the 2 cores were shared with other jobs, so times are noisy). "
              f"Command: `{results['command']}`.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", default=str(Path(tempfile.gettempdir()) / "inhouse-bench-discover"))
    ap.add_argument("--sets", default="banking77,airline,trec6,tweeteval")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bertopic-repeats", type=int, default=3)
    ap.add_argument("--scale", type=int, default=1_000_000, help="documents in the scaling run (0: skip)")
    ap.add_argument("--no-md", action="store_true", help="do not update BENCHMARKS.md")
    ap.add_argument("--md-only", action="store_true", help="rewrite BENCHMARKS.md from the last results file")
    ap.add_argument("--keep-sets", action="store_true",
                    help="keep the rows of sets not run now from the last results file")
    ap.add_argument("--child", choices=["inhouse", "bertopic"])
    ap.add_argument("--dataset")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.child:
        args.method = args.child
        child(args)
        return
    if args.md_only:
        write_section("discover", markdown(json.loads((RESULTS / "discover.json").read_text())))
        return
    ws = workspace(args.home)
    load0 = os.getloadavg()[0]
    results = {"machine": machine(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "command": "nice python " + shlex.join(["bench/discover.py", *sys.argv[1:]]), "sets": []}
    for name in [s for s in args.sets.split(",") if s]:
        results["sets"].append(bench_set(args, ws, name))
    if args.keep_sets and (RESULTS / "discover.json").exists():  # rerun only some rows, keep the others
        before = json.loads((RESULTS / "discover.json").read_text())
        done = {r["set"] for r in results["sets"]}
        results["sets"] += [r for r in before["sets"] if r["set"] not in done]
        results["sets"].sort(key=lambda r: list(SETS).index(r["set"]))
        results["kept_from"] = before.get("kept_from", before["date"])
    if args.scale:
        results["scale"] = bench_scale(args)
    results["load"] = f"{load0:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "discover.json").write_text(json.dumps(results, indent=2))
    text = markdown(results)
    print(text)
    if not args.no_md:
        write_section("discover", text)


if __name__ == "__main__":
    main()
