"""Classify throughput: 1,000,000 documents with a fine-tuned MiniLM version, against the plain reference.

Builds a throw-away workspace, trains ``intents`` (method ``head`` on minilm-l6,
banking77 train split), writes N banking77 texts with random perturbations (so
that most are distinct) and classifies them with ``inhouse classify --input``
in a subprocess whose peak RSS is sampled. Also: the same with duplicates
(texts drawn from banking77 unchanged), the reference (sentence-transformers
``encode``, batch 64, plus the sklearn head's ``predict``) on a 20,000-document
sample, agreement of the engine with the torch model on that sample, and the
Ray engine (2 workers, local Ray) against the local engine on a smaller N.
Results go to BENCHMARKS.md between the throughput markers.

    python bench/throughput.py                 # N = 1,000,000
    python bench/throughput.py --n 200000 --ray-n 20000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import machine, write_section  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "banking77" / "banking77.csv"
WORDS = ["please", "asap", "thanks", "hi", "hello", "urgent", "again", "today", "now", "help", "ok", "pls", "sir",
         "madam", "team", "btw", "really", "still", "quick question", "hey there"]


def perturb(texts: list[str], n: int, seed: int) -> list[str]:
    """n texts: banking77 texts with random words added, dropped, swapped or typos."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        w = rng.choice(texts).split()
        for _ in range(rng.randint(1, 3)):
            op = rng.random()
            if op < 0.4:
                w.insert(rng.randint(0, len(w)), rng.choice(WORDS))
            elif op < 0.6 and len(w) > 3:
                w.pop(rng.randrange(len(w)))
            elif op < 0.8 and len(w) > 1:
                i = rng.randrange(len(w) - 1)
                w[i], w[i + 1] = w[i + 1], w[i]
            else:
                i = rng.randrange(len(w))
                if len(w[i]) > 3:
                    j = rng.randrange(len(w[i]) - 1)
                    w[i] = w[i][:j] + w[i][j + 1] + w[i][j] + w[i][j + 2:]
        out.append(" ".join(w) + (f" #{rng.randint(0, 999)}" if rng.random() < 0.3 else ""))
    return out


def cli(home: Path, *args) -> list[str]:
    return [sys.executable, "-m", "inhouse", "--home", str(home), *map(str, args)]


def timed(cmd: list[str]) -> tuple[dict, float, float]:
    """Run ``cmd``; return its JSON output, wall seconds and peak RSS (MB) of it and its children."""
    import psutil

    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    proc = psutil.Process(p.pid)
    peak = 0
    while p.poll() is None:
        try:
            rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.2)
    out, err = p.communicate()
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return json.loads(out), time.time() - t0, peak / (1 << 20)


def reference(home: Path, texts: list[str]) -> tuple[float, np.ndarray]:
    """sentence-transformers encode (batch 64) + the sklearn head's predict, as a user would write it."""
    from safetensors.numpy import load_file
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression

    from inhouse import registry
    from inhouse.models.catalog import get_model
    from inhouse.workspace.store import Workspace

    ws = Workspace.open(home)
    v = registry.resolve(ws, "intents")
    head = load_file(str(v.path / "head.safetensors"))
    lr = LogisticRegression()
    lr.coef_, lr.intercept_, lr.classes_ = head["W"].astype(np.float64), head["b"].astype(np.float64), np.arange(len(head["b"]))
    st = SentenceTransformer(get_model(ws, "minilm-l6").path, device="cpu")
    t0 = time.time()
    X = st.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    pred = lr.predict(X)
    return time.time() - t0, pred


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dup-n", type=int, default=None, help="rows of the with-duplicates run (default: --n)")
    ap.add_argument("--ray-n", type=int, default=50_000)
    ap.add_argument("--sample", type=int, default=20_000)
    ap.add_argument("--home", default=None)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    load0 = os.getloadavg()
    home = Path(a.home or tempfile.mkdtemp(prefix="inhouse-throughput-"))
    src = pd.read_csv(DATA)
    base = src["text"].tolist()
    if not (home / "inhouse.db").exists() or "intents" not in subprocess.run(cli(home, "models", "list"), capture_output=True, text=True).stdout:
        src[src["split"] == "train"].to_csv(home / "train.csv", index=False)
        subprocess.run(cli(home, "ingest", home / "train.csv", "--dataset", "b77", "--label-col", "label"), check=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True)
        subprocess.run(cli(home, "train", "--dataset", "b77", "--name", "intents", "--method", "head"), check=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True)
    texts = perturb(base, a.n, seed=0)
    distinct = len(set(texts))
    pd.DataFrame({"id": [f"d{i}" for i in range(a.n)], "text": texts}).to_parquet(home / "docs.parquet")
    rng = random.Random(1)
    dup_n = a.dup_n or a.n
    pd.DataFrame({"id": [f"u{i}" for i in range(dup_n)], "text": [rng.choice(base) for _ in range(dup_n)]}
                 ).to_parquet(home / "dups.parquet")
    res = {}
    # warm the ONNX cache (export + int8 + parity) outside the timed runs, as a user's first run would
    pd.DataFrame({"text": base[:100]}).to_csv(home / "warm.csv", index=False)
    res["warm"], res["warm_s"], _ = timed(cli(home, "classify", "intents", "--input", home / "warm.csv", "--output",
                                              home / "warm.parquet", "--json"))
    print("warm-up (export, quantize, parity):", round(res["warm_s"], 1), "s", flush=True)
    res["main"], res["main_s"], res["main_rss"] = timed(cli(home, "classify", "intents", "--input", home / "docs.parquet",
                                                            "--id-col", "id", "--output", home / "out.parquet", "--json"))
    print("distinct:", res["main"]["docs_per_second"], "docs/s", flush=True)
    res["dup"], res["dup_s"], res["dup_rss"] = timed(cli(home, "classify", "intents", "--input", home / "dups.parquet",
                                                         "--id-col", "id", "--output", home / "dup.parquet", "--json"))
    print("duplicates:", res["dup"]["docs_per_second"], "docs/s", flush=True)
    sample = texts[: a.sample]
    ref_s, ref_pred = reference(home, sample)
    out = pd.read_parquet(home / "out.parquet", columns=["label"]).iloc[: a.sample]
    from inhouse import registry
    from inhouse.classifiers.load import load_classifier
    from inhouse.workspace.store import Workspace

    ws = Workspace.open(home)
    clf = load_classifier(ws, "intents")
    torch_labels = clf.predict(sample)
    agree = float(np.mean(np.array(torch_labels) == out["label"].to_numpy()))
    ref_agree = float(np.mean(np.array([clf.labels[i] for i in ref_pred]) == np.array(torch_labels)))
    res["ray_local"], res["ray_local_s"], res["ray_local_rss"] = timed(cli(
        home, "classify", "intents", "--input", home / "ray.parquet", "--id-col", "id", "--output",
        home / "ray-local.parquet", "--json")) if _write_ray_input(home, texts, a.ray_n) else (None, 0, 0)
    try:
        res["ray"], res["ray_s"], res["ray_rss"] = timed(cli(
            home, "classify", "intents", "--input", home / "ray.parquet", "--id-col", "id", "--output",
            home / "ray-ray.parquet", "--engine", "ray", "--workers", "2", "--json"))
        same = pd.read_parquet(home / "ray-local.parquet").equals(pd.read_parquet(home / "ray-ray.parquet"))
    except SystemExit as e:
        res["ray"], same = None, str(e)[-300:]
    load1 = os.getloadavg()
    v = registry.resolve(ws, "intents")
    report = {"n": a.n, "distinct": distinct, "dup_n": dup_n, "dup_distinct": int(pd.read_parquet(home / "dups.parquet")["text"].nunique()),
              "ref_dps": a.sample / ref_s, "agree": agree, "ref_agree": ref_agree, "load": (load0, load1),
              "ray_same": same, "res": res, "version": v.ref, "sha": v.sha256}
    (home / "throughput.json").write_text(json.dumps(report, indent=2, default=str))
    md = render(report, " ".join(sys.argv[1:]))
    print(md)
    if not a.no_write:
        write_section("throughput", md)


def _write_ray_input(home: Path, texts: list[str], n: int) -> bool:
    pd.DataFrame({"id": [f"r{i}" for i in range(n)], "text": texts[:n]}).to_parquet(home / "ray.parquet")
    return True


def render(r: dict, args: str) -> str:
    res = r["res"]
    m, d = res["main"], res["dup"]
    rows = [("local, distinct texts", r["n"], r["distinct"], m, res["main_s"], res["main_rss"]),
            ("local, with duplicates", r["dup_n"], r["dup_distinct"], d, res["dup_s"], res["dup_rss"])]
    lines = ["## Classify throughput (issue 9)", "",
             f"Model: `{r['version']}` (sha256 {r['sha'][:12]}), method `head` on minilm-l6, banking77 train split. "
             f"Input: Parquet, one row per document; output Parquet. Times are end to end (process start, reading, "
             f"tokenizing, inference, writing), the ONNX export done before (first-use cost: "
             f"{res['warm_s']:.0f} s, once per version).", "",
             "| run | documents | distinct | backend | docs/s | wall | peak RSS | × reference |",
             "|---|---:|---:|---|---:|---:|---:|---:|"]
    for name, n, dist, j, s, rss in rows:
        lines.append(f"| {name} | {n:,} | {dist:,} | {j['backend']} | {n / s:,.0f} | {s:,.0f} s | {rss:,.0f} MB | "
                     f"{n / s / r['ref_dps']:.1f}× |")
    lines.append(f"| reference: sentence-transformers `encode` (batch 64) + sklearn `predict`, {20000:,}-doc sample | "
                 f"20,000 | - | torch fp32 | {r['ref_dps']:,.0f} | - | - | 1.0× |")
    if res.get("ray"):
        rl, rr = res["ray_local"], res["ray"]
        lines.append(f"| local engine, Ray comparison input | {rl['rows']:,} | - | {rl['backend']} | "
                     f"{rl['rows'] / res['ray_local_s']:,.0f} | {res['ray_local_s']:.0f} s | {res['ray_local_rss']:,.0f} MB | - |")
        lines.append(f"| Ray engine, local Ray, 2 workers | {rr['rows']:,} | - | {rr['backend']} | "
                     f"{rr['rows'] / res['ray_s']:,.0f} | {res['ray_s']:.0f} s | {res['ray_rss']:,.0f} MB | - |")
    lines += ["", f"Agreement of the engine's labels with the torch model on the first {20000:,} documents: "
              f"{r['agree']:.2%} (the reference's: {r['ref_agree']:.2%}). Ray output identical to local: {r['ray_same']}.",
              "", f"Machine: {machine()}. Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC. "
              f"Load average (1 min) at start {r['load'][0][0]:.1f}, at end {r['load'][1][0]:.1f}. "
              f"Command: `python bench/throughput.py {args}`."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
