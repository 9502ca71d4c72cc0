"""Load on a local server: 50 concurrent clients, single-text classify and /v1/embeddings, 60 s each.

Builds a workspace (a 20-intent banking77 slice, a `head` model on minilm-l6),
starts ``inhouse serve`` on a free loopback port, and drives it with N
concurrent clients (asyncio + httpx) for a fixed time; every run stops by
itself. Reports throughput, p50/p95/p99 latency and errors, for:

1. classify (``POST /classify``, one text) on the micro-batching server;
2. the same on a one-request-at-a-time server of the same model
   (``--batch-window-ms 0``: batching off, one model call at a time);
3. ``POST /v1/embeddings`` (one text, minilm-l6) on both.

Writes ``bench/results/load.json`` and the table between the ``load`` markers
in BENCHMARKS.md. The clients share the machine with the server (and, on a
shared box, with everyone else): read the numbers with that in mind.

    nice python bench/load.py                        # 60 s per run, writes BENCHMARKS.md
    python bench/load.py --duration 10 --no-md       # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from benchutil import machine, write_section  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def build_workspace(home: Path, intents: int = 20, per_label: int = 30) -> list[str]:
    import pandas as pd

    from inhouse.cli import main as cli_main

    df = pd.read_csv(SHARED / "banking77" / "banking77.csv")
    labels = sorted(df["label"].unique())[:intents]
    df = df[df["label"].isin(labels)]
    train = df[df["split"] == "train"].groupby("label").head(per_label)
    csv = home / "slice.csv"
    train.to_csv(csv, index=False)

    def run(*args):
        try:
            cli_main(["--home", str(home), *map(str, args)])
        except SystemExit as e:
            if e.code:
                raise
    run("ingest", csv, "--dataset", "b20", "--label-col", "label", "--split-col", "split")
    run("train", "--dataset", "b20", "--name", "intents", "--method", "head")
    run("models", "alias", "intents@1", "production")
    # the ONNX path: an int8 export registered beside the version is what the server runs for it
    run("models", "export", "intents@1", "--out", home / "onnx", "--format", "onnx", "--quantize", "int8")
    run("models", "import", home / "onnx", "--name", "intents-onnx")
    return df[df["split"] == "test"]["text"].tolist()


async def drive(url: str, token: str, path: str, payload, texts: list[str], clients: int, duration: float) -> dict:
    import httpx

    lat: list[float] = []
    errors: dict[str, int] = {}
    stop = time.monotonic() + duration
    headers = {"Authorization": f"Bearer {token}"}
    rng = np.random.default_rng(0)
    order = rng.permutation(len(texts))

    async def client(i: int, c: httpx.AsyncClient) -> None:
        k = i
        while time.monotonic() < stop:
            text = texts[order[k % len(order)]]
            k += clients
            t0 = time.perf_counter()
            try:
                r = await c.post(path, json=payload(text), headers=headers)
                ok = r.status_code == 200
                key = str(r.status_code)
            except httpx.HTTPError as e:
                ok, key = False, type(e).__name__
            if ok:
                lat.append(time.perf_counter() - t0)
            else:
                errors[key] = errors.get(key, 0) + 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as c:
        t0 = time.monotonic()
        await asyncio.gather(*(client(i, c) for i in range(clients)))
        wall = time.monotonic() - t0
    ms = np.array(lat) * 1000 if lat else np.array([float("nan")])
    return {"requests": len(lat), "errors": sum(errors.values()), "error_kinds": errors, "seconds": round(wall, 1),
            "rps": round(len(lat) / wall, 1), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1)}


def run_server(home: Path, window_ms: float, texts, token, clients, duration) -> dict:
    from serverkit import Server

    server = Server(home, "--batch-window-ms", str(window_ms))
    out = {}
    try:
        cases = {"classify": ("/classify", lambda t: {"model": "intents@production", "text": t}),
                 "embeddings": ("/v1/embeddings", lambda t: {"model": "minilm-l6", "input": t})}
        for name, (path, payload) in cases.items():
            asyncio.run(drive(server.url, token, path, payload, texts, 4, 3))  # load the model, warm up
            load0 = os.getloadavg()[0]
            out[name] = asyncio.run(drive(server.url, token, path, payload, texts, clients, duration))
            out[name]["load_avg_before"] = round(load0, 2)
            out[name]["load_avg_after"] = round(os.getloadavg()[0], 2)
            import httpx

            out[name]["server_stats"] = httpx.get(server.url + "/stats", headers={"Authorization": f"Bearer {token}"}).json()
            print(f"window {window_ms} ms, {name}: {out[name]}", flush=True)
    finally:
        server.stop()
    return out


def render(res: dict) -> str:
    b, s = res["batched"], res["serial"]
    rows = ["| endpoint | server | requests/s | p50 ms | p95 ms | p99 ms | errors | requests | texts per model call |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for ep in ("classify", "embeddings"):
        for label, r in ((f"micro-batching ({res['window_ms']} ms window)", b[ep]), ("one request at a time", s[ep])):
            m = (r.get("server_stats") or {}).get("models", {}).get("intents@1" if ep == "classify" else "minilm-l6", {})
            per_call = round(m["texts"] / m["calls"], 1) if m.get("calls") else "-"
            rows.append(f"| `{'POST /classify' if ep == 'classify' else 'POST /v1/embeddings'}` | {label} | {r['rps']} "
                        f"| {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['errors']} | {r['requests']} | {per_call} |")
    speed = {ep: round(b[ep]["rps"] / s[ep]["rps"], 1) if s[ep]["rps"] else None for ep in ("classify", "embeddings")}
    lines = ["## Online load (`inhouse serve`)", "",
             f"{res['clients']} concurrent clients, each sending one text per request for {res['duration']} s per row, "
             f"to a server on loopback; model: a `head` classifier on minilm-l6 (20 banking77 intents), served "
             "through its registered int8 ONNX export (`runtime: onnx`), and minilm-l6 (sentence-transformers, "
             "PyTorch) for embeddings. The one-request-at-a-time server is the same server with `--batch-window-ms 0` "
             "(batching off, one model call at a time).", "", *rows, "",
             f"Micro-batching gives {speed['classify']}x the requests per second on classify and "
             f"{speed['embeddings']}x on embeddings. Targets on 2 cores: zero errors, p99 under 200 ms, at least 5x "
             f"the one-at-a-time server.", "",
             "What the last column shows. Classify (int8 ONNX): the model saw about two texts per call. The clients "
             "and the server's one event loop (HTTP parsing, auth, validation, JSON) share two cores that other work "
             "kept busy, so requests reach the model about as fast as a one-text call finishes (a few ms): the "
             "ceiling is Python's per-request work, not the model, and batching cannot multiply what the model never "
             "waits on. Embeddings (minilm-l6 in PyTorch): batches did form (about 24 texts per call), but the "
             "encoder is compute-bound on the share of the cores it gets, so a batch costs about as much per text as "
             "single texts do. Targets missed: throughput is within noise of the one-at-a-time server, and p99 is "
             "seconds, which with 50 clients and about 100 requests/s is queueing (Little's law), not slow calls. "
             "Two findings from these runs are in the server: online batches run in buckets of similar length "
             "(padding a batch to its longest text cost 2.5x), and online models use one torch/ONNX thread "
             "(`--model-threads`; two threads spinning beside the event loop made a 20-text batch take seconds: 11 vs "
             "52 requests/s on embeddings).", "",
             f"Machine: {res['machine']}. Date: {res['date']}. Load average (1 min) before the runs: "
             f"{res['load_before']}; the load clients run on the same cores as the server. "
             f"Command: `{res['command']}`."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per run")
    ap.add_argument("--window-ms", type=float, default=5.0)
    ap.add_argument("--no-md", action="store_true", help="do not update BENCHMARKS.md")
    ap.add_argument("--only", choices=["batched", "serial"], help="run one server only (implies --no-md)")
    ap.add_argument("--md-only", action="store_true", help="rewrite BENCHMARKS.md from bench/results/load.json")
    args = ap.parse_args()
    if args.md_only:
        write_section("load", render(json.loads((ROOT / "bench" / "results" / "load.json").read_text())))
        return
    from serverkit import create_token

    home = Path(tempfile.mkdtemp(prefix="inhouse-bench-load-"))
    try:
        texts = build_workspace(home)
        token = create_token(home, "bench", "viewer")
        load_before = round(os.getloadavg()[0], 2)
        res = {"clients": args.clients, "duration": args.duration, "window_ms": args.window_ms,
               "machine": machine(), "date": time.strftime("%Y-%m-%d"), "load_before": load_before,
               "command": "python bench/load.py " + " ".join(sys.argv[1:])}
        if args.only != "serial":
            res["batched"] = run_server(home, args.window_ms, texts, token, args.clients, args.duration)
        if args.only != "batched":
            res["serial"] = run_server(home, 0, texts, token, args.clients, args.duration)
        if args.only:
            return
    finally:
        shutil.rmtree(home, ignore_errors=True)
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "load.json").write_text(json.dumps(res, indent=2))
    text = render(res)
    print(text)
    if not args.no_md:
        write_section("load", text)


if __name__ == "__main__":
    main()
