"""Online load: N concurrent clients, one short text per request, on a real ``inhouse serve`` (issue 19 §2).

Builds (or reuses, ``--home``) a workspace with a ``head`` version (20 banking77
intents, 30 training texts each, on minilm-l6), starts ``inhouse serve`` on a
free loopback port with default settings (plus ``--workers N``), and drives it
with ``--clients`` concurrent keep-alive connections for ``--duration`` seconds,
each sending one banking77 test text per ``POST /v1/classifications`` and
sending the next as soon as the answer is in (a closed loop, no think time).
Every answer is checked (status 200, one classification of a known label).

The clients are plain asyncio sockets speaking HTTP/1.1 in this process (not
httpx): a client library's own CPU would be taken from the server's two cores.
They still share the machine with the server, so read the numbers with that
in mind; on a shared box, run it ``nice`` and note the load average it prints.

One line per server configuration:

    workers=1  50 clients 30 s: 412.3 req/s  p50 101.2  p95 140.1  p99 180.3 ms  errors 0  load 1.2->2.3

    python bench/load.py                                  # 50 clients, 30 s, --workers 1
    python bench/load.py --workers 1,2 --md               # both, and the table in BENCHMARKS.md
    python bench/load.py --home /tmp/lh --duration 10     # reuse a workspace (trained once) for quick looks
    python bench/load.py --server-args="--batch-window-ms 0"   # any other serve option
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
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
MODEL = "intents@1"


def build_workspace(home: Path, intents: int = 20, per_label: int = 30) -> None:
    """A head version ``intents@1`` on 20 banking77 intents; a viewer token in ``home/bench-token``."""
    import pandas as pd

    from inhouse.cli import main as cli_main

    df = pd.read_csv(SHARED / "banking77" / "banking77.csv")
    labels = sorted(df["label"].unique())[:intents]
    train = df[(df["split"] == "train") & df["label"].isin(labels)].groupby("label").head(per_label)
    csv = home / "slice.csv"
    train.to_csv(csv, index=False)

    def run(*args):
        try:
            cli_main(["--home", str(home), *map(str, args)])
        except SystemExit as e:
            if e.code:
                raise

    run("ingest", csv, "--dataset", "b20", "--label-col", "label")
    run("train", "--dataset", "b20", "--name", "intents", "--method", "head")
    for q in ("fp32", "int8"):  # ONNX exports, registered under other names: --onnx picks which one serves
        out = home / f"onnx-{q}"
        run("models", "export", MODEL, "--out", out, "--format", "onnx", *(["--quantize", q] if q == "int8" else []))
        run("models", "import", out, "--name", f"intents-{q}")
    from serverkit import create_token

    (home / "bench-token").write_text(create_token(home, "bench", "viewer"))


def test_texts() -> list[str]:
    """Every distinct banking77 text, test split first (the server remembers texts it answered lately, so
    the clients send a text again only after all 13,000 have been sent)."""
    import pandas as pd

    df = pd.read_csv(SHARED / "banking77" / "banking77.csv").sort_values("split", key=lambda c: c != "test",
                                                                         kind="stable")
    return list(dict.fromkeys(df["text"]))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live children (uvicorn's worker processes)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                kids = (task / "children").read_text().split()
                pids += [int(k) for k in kids]
        except (OSError, IndexError, ValueError):
            continue
    return total


def request_bytes(port: int, token: str, text: str, model: str = MODEL) -> bytes:
    body = json.dumps({"model": model, "input": text}).encode()
    return (f"POST /v1/classifications HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def one(reader, writer, req: bytes) -> tuple[int, bytes]:
    writer.write(req)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    return status, await reader.readexactly(length)


async def drive(port: int, token: str, texts: list[str], clients: int, duration: float, model: str = MODEL) -> dict:
    """``clients`` connections, each sending its next text as soon as the last answer is in."""
    lat: list[float] = []
    errors: dict[str, int] = {}
    reqs = [request_bytes(port, token, t, model) for t in texts]
    order = np.random.default_rng(0).permutation(len(reqs))
    stop = time.monotonic() + duration

    def fail(key: str) -> None:
        errors[key] = errors.get(key, 0) + 1

    async def client(i: int) -> None:
        k, conn = i, None
        while time.monotonic() < stop:
            req = reqs[order[k % len(order)]]
            k += clients
            t0 = time.perf_counter()
            try:
                if conn is None:
                    conn = await asyncio.open_connection("127.0.0.1", port)
                status, body = await asyncio.wait_for(one(*conn, req), 30)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
                fail(type(e).__name__)
                if conn is not None:
                    conn[1].close()
                conn = None
                continue
            if status != 200:
                fail(str(status))
                continue
            data = json.loads(body)["data"]
            if len(data) != 1 or not data[0].get("label"):
                fail("bad answer")
                continue
            lat.append(time.perf_counter() - t0)
        if conn is not None:
            conn[1].close()

    t0 = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(clients)))
    wall = time.monotonic() - t0
    ms = np.array(lat) * 1000 if lat else np.array([float("nan")])
    return {"requests": len(lat), "errors": sum(errors.values()), "error_kinds": errors, "seconds": round(wall, 1),
            "rps": round(len(lat) / wall, 1), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "max_ms": round(float(ms.max()), 1)}


RUNTIMES = {"torch": (MODEL, ["--no-onnx"]), "onnx-fp32": ("intents-fp32@1", []), "onnx-int8": ("intents-int8@1", [])}


def measure(home: Path, workers: int, runtime: str, server_args: list[str], texts, clients: int,
            duration: float) -> dict:
    from serverkit import Server

    import httpx

    token = (home / "bench-token").read_text().strip()
    model, flags = RUNTIMES[runtime]
    server = Server(home, "--workers", str(workers), *flags, *server_args)
    try:
        warm = time.monotonic() + 180  # every worker process loads its model on its first request: wait for all
        while asyncio.run(drive(server.port, token, texts[::-1], 4 * workers, 3, model))["max_ms"] > 2000 \
                and time.monotonic() < warm:
            pass
        load0, cpu0, mine0 = os.getloadavg()[0], cpu_seconds(server.proc.pid), time.process_time()
        out = asyncio.run(drive(server.port, token, texts, clients, duration, model))
        cpu, mine = cpu_seconds(server.proc.pid) - cpu0, time.process_time() - mine0
        n = max(1, out["requests"] + out["errors"])
        out.update(workers=workers, clients=clients, server_args=" ".join(server_args), runtime=runtime, model=model,
                   load_before=round(load0, 2), load_after=round(os.getloadavg()[0], 2),
                   server_cpu_ms=round(cpu * 1000 / n, 2), client_cpu_ms=round(mine * 1000 / n, 2))
        if workers == 1:
            stats = httpx.get(server.url + "/stats", headers={"Authorization": f"Bearer {token}"}).json()
            m = stats.get("models", {}).get(model, {})
            out["texts_per_call"] = round(m["texts"] / m["calls"], 2) if m.get("calls") else None
            out["remembered"] = m.get("remembered")
    finally:
        server.stop()
    return out


def line(r: dict) -> str:
    extra = f" [{r['server_args']}]" if r["server_args"] else ""
    per_call = f"  texts/call {r['texts_per_call']}" if r.get("texts_per_call") else ""
    kinds = f" {r['error_kinds']}" if r["error_kinds"] else ""
    return (f"{r['runtime']} workers={r['workers']}{extra}  {r['clients']} clients {r['seconds']} s: {r['rps']} req/s  "
            f"p50 {r['p50_ms']}  p95 {r['p95_ms']}  p99 {r['p99_ms']}  max {r['max_ms']} ms  "
            f"errors {r['errors']}{kinds}{per_call}  CPU/request: server {r['server_cpu_ms']} ms, clients "
            f"{r['client_cpu_ms']} ms  load {r['load_before']}->{r['load_after']}")


def render(res: dict) -> str:
    rows = ["| server | requests/s | p50 ms | p95 ms | p99 ms | max ms | errors | requests | texts per model call "
            "| server CPU ms per request | load avg before → after |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in res["runs"]:
        name = f"{r['runtime']}, `--workers {r['workers']}`" + (f" `{r['server_args']}`" if r["server_args"] else "")
        rows.append(f"| {name} | {r['rps']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['max_ms']} | "
                    f"{r['errors']} | {r['requests']} | {r.get('texts_per_call') or '-'} | {r['server_cpu_ms']} | "
                    f"{r['load_before']} → {r['load_after']} |")
    return "\n".join([
        "## Online load (`inhouse serve`, issue 19 §2)", "",
        f"{res['clients']} concurrent clients for {res['duration']} s per row, each sending one banking77 test text "
        "per `POST /v1/classifications` and the next as soon as its answer is in (closed loop, keep-alive), to "
        "`inhouse serve` on loopback with default settings (plus `--workers`); model: a `head` version on minilm-l6 "
        "(20 banking77 intents). *torch*: the version as trained (`--no-onnx`); *onnx-int8*: its int8 ONNX "
        "export, registered (`inhouse models export --format onnx --quantize int8`, then `models import`). Every "
        "answer is checked. *Server CPU per request*: user + system CPU seconds of the server's processes over "
        "the run, per answer. Target: p99 < 200 ms and 0 errors on 2 cores.", "", *rows, "",
        res.get("notes", ""), "",
        f"Machine: {res['machine']}. Date: {res['date']}. The clients run on the same two cores as the server"
        f"{res.get('shared', '')}. Command: `{res['command']}`."])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds per server configuration")
    ap.add_argument("--workers", default="1", help="comma-separated: one run per value of inhouse serve --workers")
    ap.add_argument("--runtime", default="torch", help="comma-separated, of: " + ", ".join(RUNTIMES) +
                    " (torch: the version as trained; onnx-*: its ONNX export, registered as intents-fp32/-int8)")
    ap.add_argument("--server-args", default="", help="more inhouse serve options, e.g. '--batch-window-ms 0'")
    ap.add_argument("--texts", type=int, default=0, help="send only this many distinct texts (the server remembers "
                    "answers, so a few texts measure the request path without the model); default: all 13,000")
    ap.add_argument("--home", help="a workspace folder to build once and reuse (default: a temporary one)")
    ap.add_argument("--md", action="store_true", help="write the table into BENCHMARKS.md (and bench/results/load.json)")
    ap.add_argument("--notes", default="", help="a paragraph written under the table with --md")
    ap.add_argument("--md-only", action="store_true", help="rewrite BENCHMARKS.md from bench/results/load.json "
                    "(with --notes, if given)")
    args = ap.parse_args()
    if args.md_only:
        res = json.loads((ROOT / "bench" / "results" / "load.json").read_text())
        res["notes"] = args.notes or res.get("notes", "")
        (ROOT / "bench" / "results" / "load.json").write_text(json.dumps(res, indent=2))
        write_section("load", render(res))
        return

    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="inhouse-bench-load-"))
    try:
        home.mkdir(parents=True, exist_ok=True)
        if not (home / "bench-token").exists():
            build_workspace(home)
        texts = test_texts()[:args.texts] if args.texts else test_texts()
        runs = []
        for rt in args.runtime.split(","):
            for w in [int(x) for x in args.workers.split(",")]:
                r = measure(home, w, rt, shlex.split(args.server_args), texts, args.clients, args.duration)
                print(line(r), flush=True)
                runs.append(r)
    finally:
        if not args.home:
            shutil.rmtree(home, ignore_errors=True)
    if args.md:
        res = {"clients": args.clients, "duration": args.duration, "machine": machine(), "runs": runs,
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "notes": args.notes,
               "command": "python bench/load.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])}
        (ROOT / "bench" / "results").mkdir(exist_ok=True)
        (ROOT / "bench" / "results" / "load.json").write_text(json.dumps(res, indent=2))
        write_section("load", render(res))


if __name__ == "__main__":
    main()
