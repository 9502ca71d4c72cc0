"""Classify throughput (issue 19 §1): distinct short texts, the reference in the same run, 1M documents' RSS.

Builds a throw-away workspace (or reuses ``--home``), trains ``intents``
(method ``head`` on minilm-l6, banking77 train split) through the CLI, which
prepares the version's ONNX graph, int8 verdict and cascade at save time (so
the timed classifies pay no export). Then, each ``inhouse classify --input`` in
a subprocess whose peak RSS is sampled:

1. ``--n`` banking77 texts with random perturbations (nearly all distinct),
   with the cascade (the default) and with ``--no-cascade``;
2. ``--big`` documents (default 1,000,000; the same kind of texts) with the
   cascade, for wall time and peak RSS; with ``--ray`` again through
   ``--engine ray`` on a local Ray (peak RSS of the driver and every Ray process);
3. the reference on a ``--sample`` of the same texts, in this process:
   sentence-transformers ``encode`` (batch 64) + scikit-learn ``predict``.

Each run also reports the CPU seconds it used per 1,000 documents (it and its
children), which moves much less than wall time when other work shares the cores.

Accuracy is against the banking77 label each perturbed text came from
(top label, abstention set aside: the first of ``top_labels``). Results go to BENCHMARKS.md
between the throughput markers (not with ``--no-write``); the last line printed
is one summary line. For a quiet rerun by the lead:

    python bench/throughput.py --big 0                     # 200,000 + the reference on 20,000: ~10 min quiet
    python bench/throughput.py --n 20000 --big 1000000 --ray   # the 1M run, local and Ray: ~25 min quiet
    python bench/throughput.py --small --no-write          # 20,000 + 50,000, a few minutes
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import machine, perturb, write_section  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "banking77" / "banking77.csv"
def cli(home: Path, *args) -> list[str]:
    return [sys.executable, "-m", "inhouse", "--home", str(home), *map(str, args)]


PEAK_PSS = [0.0]  # the last timed() command's peak PSS (MB)


def timed(cmd: list[str]) -> tuple[dict, float, float, float]:
    """Run ``cmd``; return its JSON output, wall seconds, peak RSS (MB) of it and its children (a local Ray's
    processes too), and the CPU seconds they used (less load-dependent than wall)."""
    import resource

    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    proc = psutil.Process(p.pid)
    peak = peak_pss = 0
    tick = 0
    seen_cpu: dict[int, float] = {}  # each process's CPU seconds when last seen: a local Ray's actors are not
    while p.poll() is None:          # waited for by this process, so RUSAGE_CHILDREN misses them
        try:
            tree = [proc, *proc.children(recursive=True)]
            for c in tree:
                try:
                    t = c.cpu_times()
                    seen_cpu[c.pid] = t.user + t.system
                except psutil.Error:
                    pass
            peak = max(peak, sum(c.memory_info().rss for c in tree))
            if tick % 5 == 0:  # proportional set size: shared pages (libraries, Ray's object store) counted once
                peak_pss = max(peak_pss, sum(getattr(c.memory_full_info(), "pss", 0) for c in tree))
        except psutil.Error:
            pass
        tick += 1
        time.sleep(0.2)
    PEAK_PSS[0] = peak_pss / (1 << 20)
    out, err = p.communicate()
    wall = time.time() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return json.loads(out), wall, peak / (1 << 20), max(cpu, sum(seen_cpu.values()))


def reference(home: Path, texts: list[str]) -> tuple[float, float, np.ndarray]:  # seconds, CPU seconds, labels
    """sentence-transformers encode (batch 64) + the version's head as a scikit-learn model's predict."""
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
    lr.coef_, lr.intercept_ = head["W"].astype(np.float64), head["b"].astype(np.float64)
    lr.classes_ = np.arange(len(head["b"]))
    st = SentenceTransformer(get_model(ws, "minilm-l6").path, device="cpu")
    t0, c0 = time.time(), time.process_time()
    X = st.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    pred = lr.predict(X)
    return time.time() - t0, time.process_time() - c0, np.array([v.manifest["labels"][i] for i in pred])


def prepare_workspace(home: Path, src: pd.DataFrame) -> dict:
    """Ingest the banking77 train split and train ``intents`` (which prepares the fast path) unless present."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    listed = subprocess.run(cli(home, "models", "list"), capture_output=True, text=True, env=env).stdout
    if (home / "inhouse.db").exists() and "intents" in listed:
        return json.loads(subprocess.run(cli(home, "models", "prepare", "intents", "--json"), check=True,
                                         capture_output=True, text=True, env=env).stdout)
    src[src["split"] == "train"].to_csv(home / "train.csv", index=False)
    subprocess.run(cli(home, "ingest", home / "train.csv", "--dataset", "b77", "--label-col", "label"), check=True,
                   env=env, capture_output=True)
    r = subprocess.run(cli(home, "train", "--dataset", "b77", "--name", "intents", "--method", "head", "--json"),
                       check=True, env=env, capture_output=True, text=True)
    return json.loads(r.stdout)["prepared"]


def classify_run(home: Path, name: str, n: int, *extra, out: str | None = None) -> dict:
    r, s, rss, cpu = timed(cli(home, "classify", "intents", "--input", home / f"{name}.parquet", "--id-col", "id",
                               "--output", home / f"{out or name}-out.parquet", "--json", *extra))
    out = {"rows": r["rows"], "seconds": s, "dps": n / s, "rss_mb": rss, "pss_mb": PEAK_PSS[0], "cpu_s": cpu,
           "backend": r["backend"],
           "precision": r.get("precision"), "cascade": r.get("cascade"), "prepared": r.get("prepared"),
           "unique": r.get("unique_texts_computed"), "engine": r.get("engine")}
    print(f"{name}{' ' + ' '.join(extra) if extra else ''}: {out['dps']:,.0f} docs/s, {s:,.1f} s, "
          f"{1000 * cpu / n:.2f} CPU-s per 1k docs, peak RSS {rss:,.0f} MB (PSS {PEAK_PSS[0]:,.0f} MB), "
          f"{r['backend']}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000, help="distinct short texts of the main run")
    ap.add_argument("--big", type=int, default=1_000_000, help="documents of the peak-RSS run (0: skip)")
    ap.add_argument("--sample", type=int, default=20_000, help="texts the reference encodes")
    ap.add_argument("--small", action="store_true", help="--n 20000 --big 50000 --sample 2000")
    ap.add_argument("--ray", action="store_true", help="also classify the --big documents with --engine ray "
                    "(a local Ray; peak RSS of the driver and its Ray processes)")
    ap.add_argument("--no-plain", action="store_true", help="skip the --no-cascade run")
    ap.add_argument("--home", default=None)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    if a.small:
        a.n, a.big, a.sample = 20_000, 50_000, 2_000
    load0 = os.getloadavg()
    home = Path(a.home or tempfile.mkdtemp(prefix="inhouse-throughput-"))
    src = pd.read_csv(DATA)
    t0 = time.time()
    prepared = prepare_workspace(home, src)
    prepare_s = time.time() - t0
    base, gold_of = src["text"].tolist(), src["label"].tolist()
    texts, origin = perturb(base, a.n, seed=0)
    gold = np.array([gold_of[k] for k in origin])
    pd.DataFrame({"id": [f"d{i}" for i in range(a.n)], "text": texts}).to_parquet(home / "main.parquet")
    (home / "plain-out.parquet").unlink(missing_ok=True)  # a --no-plain run must not read an older run's rows
    res = {"main": classify_run(home, "main", a.n)}
    if not a.no_plain:
        res["plain"] = classify_run(home, "main", a.n, "--no-cascade", out="plain")
    if a.big:
        big, _ = perturb(base, a.big, seed=1)
        pd.DataFrame({"id": [f"b{i}" for i in range(a.big)], "text": big}).to_parquet(home / "big.parquet")
        del big
        res["big"] = classify_run(home, "big", a.big)
        if a.ray:
            res["ray"] = classify_run(home, "big", a.big, "--engine", "ray", out="big-ray")
    ref_s, ref_cpu, ref_labels = reference(home, texts[: a.sample])
    report = {"n": a.n, "distinct": len(set(texts)), "big": a.big, "sample": a.sample, "ref_dps": a.sample / ref_s,
              "ref_cpu_s": ref_cpu,
              "res": res, "prepared": prepared, "prepare_s": prepare_s, "load": (load0, os.getloadavg()),
              "accuracy": accuracy(home, gold, ref_labels, a.sample)}
    (home / "throughput.json").write_text(json.dumps(report, indent=2, default=str))
    md = render(report, " ".join(sys.argv[1:]))
    print(md)
    if not a.no_write:
        write_section("throughput", md)
    print(summary(report), flush=True)


def accuracy(home: Path, gold: np.ndarray, ref_labels: np.ndarray, sample: int) -> dict:
    """Top-label accuracy against the label each perturbed text came from, and agreement with the transformer."""
    def best(name):  # the most likely label, abstention set aside (the file output has no best_label column)
        tops = pd.read_parquet(home / f"{name}-out.parquet", columns=["top_labels"])["top_labels"]
        return np.array([t[0] if len(t) else None for t in tops], dtype=object)

    mixed = best("main")
    out = {"cascade": float((mixed == gold).mean()), "reference_sample": float((ref_labels == gold[:sample]).mean()),
           "abstained": float(pd.read_parquet(home / "main-out.parquet", columns=["abstained"])["abstained"].mean())}
    if (home / "plain-out.parquet").exists():
        plain = best("plain")
        out["transformer"] = float((plain == gold).mean())
        out["agreement"] = float((plain == mixed).mean())
        out["abstained_transformer"] = float(pd.read_parquet(home / "plain-out.parquet", columns=["abstained"])
                                             ["abstained"].mean())
    return out


def render(r: dict, args: str) -> str:
    res, acc = r["res"], r["accuracy"]
    p = r["prepared"] or {}
    c = (p.get("cascade") or {})
    cv = c.get("validation") or {}
    lines = ["## Classify throughput (issue 19 §1)", "",
             f"Model `intents` (method `head` on minilm-l6, banking77 train split). Prepared at save: ONNX "
             f"{(p.get('onnx') or {}).get('precision')} ({(p.get('onnx') or {}).get('rule')}); cascade "
             f"{'used' if c.get('use') else 'not used'}: on validation it answers {cv.get('share', 0):.1%} of rows, "
             f"accuracy {cv.get('accuracy', 0):.2%} vs {cv.get('accuracy_transformer', 0):.2%} for the transformer "
             f"alone (out of fold: loss {(c.get('out_of_fold') or {}).get('accuracy_loss', 0):+.2%}). Inputs: "
             "perturbed banking77 texts (typos, added/dropped/swapped words), Parquet in and out, end to end "
             "(process start, reading, tokenizing, inference, writing).", "",
             "| run | documents | distinct | backend | cascade share | docs/s | wall | CPU-s / 1k docs | peak RSS "
             "(PSS) | × reference |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for key, name, n, dist in (("main", "distinct texts, cascade", r["n"], f"{r['distinct']:,}"),
                               ("plain", "distinct texts, --no-cascade", r["n"], f"{r['distinct']:,}"),
                               ("big", "big run, cascade", r["big"], None),
                               ("ray", "big run, cascade, `--engine ray` (local Ray)", r["big"], None)):
        j = res.get(key)
        if not j:
            continue
        share = (j["cascade"] or {}).get("share") if isinstance(j["cascade"], dict) else None
        dist = dist or (f"{j['unique']:,} computed" if j.get("unique") else "-")
        lines.append(f"| {name} | {n:,} | {dist} | {j['backend']} | {'-' if share is None else f'{share:.1%}'} | "
                     f"{j['dps']:,.0f} | {j['seconds']:,.0f} s | {1000 * j.get('cpu_s', 0) / n:.2f} | "
                     f"{j['rss_mb']:,.0f} MB ({j.get('pss_mb', 0):,.0f} MB) | {j['dps'] / r['ref_dps']:.1f}× |")
    lines.append(f"| reference: sentence-transformers `encode` (batch 64) + sklearn `predict` | {r['sample']:,} | - | "
                 f"torch fp32 | - | {r['ref_dps']:,.0f} | - | {1000 * r.get('ref_cpu_s', 0) / r['sample']:.2f} | - "
                 "| 1.0× |")
    lines += ["", f"Top-label accuracy against each text's source label: cascade {acc['cascade']:.2%}"
              + (f", transformer alone {acc['transformer']:.2%} (agreement {acc['agreement']:.2%})"
                 if "transformer" in acc else "")
              + f", reference on its sample {acc['reference_sample']:.2%}. Abstained (`other`): {acc['abstained']:.1%}"
              + (f" (transformer alone: {acc['abstained_transformer']:.1%})." if "abstained_transformer" in acc else "."),
              "", f"Machine: {machine()}. Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC. "
              f"Load average (1 min) at start {r['load'][0][0]:.1f}, at end {r['load'][1][0]:.1f} (the end counts "
              "this benchmark's own work: about 2 on two busy cores). "
              f"Command: `python bench/throughput.py {args}`."]
    if r["load"][0][0] > 1.0:  # other work was running when it started
        lines += ["", "**Measured under load** (other work shared the cores): these numbers are not the benchmark; "
                  "rerun on a quiet machine."]
    return "\n".join(lines)


def summary(r: dict) -> str:
    m, b, ray = r["res"]["main"], r["res"].get("big"), r["res"].get("ray")
    share = (m["cascade"] or {}).get("share") if isinstance(m["cascade"], dict) else None
    return (f"THROUGHPUT n={r['n']} docs/s={m['dps']:.0f} ref={r['ref_dps']:.0f} x={m['dps'] / r['ref_dps']:.1f} "
            f"cascade_share={share if share is None else round(share, 3)} acc={r['accuracy']['cascade']:.4f} "
            f"acc_transformer={r['accuracy'].get('transformer')} big={r['big']} "
            f"big_docs/s={b['dps'] if b else 0:.0f} big_rss_mb={b['rss_mb'] if b else 0:.0f} "
            + (f"ray_docs/s={ray['dps']:.0f} ray_rss_mb={ray['rss_mb']:.0f} " if ray else "") +
            f"cpu_s_per_1k={1000 * m['cpu_s'] / r['n']:.2f} "
            f"load={r['load'][0][0]:.1f}->{r['load'][1][0]:.1f}")


if __name__ == "__main__":
    main()
