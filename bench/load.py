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
    python bench/load.py --home /tmp/lh --model-costs      # CPU ms per model call by batch size (no server)
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

from benchutil import machine, perturb, write_section  # noqa: E402

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
    run("train", "--dataset", "b20", "--name", "intents", "--method", "head")  # prepares its ONNX graph at save
    from serverkit import create_token

    (home / "bench-token").write_text(create_token(home, "bench", "viewer"))


def test_texts(n: int = 0) -> list[str]:
    """Every distinct banking77 text, test split first; with ``n``, extended to ``n`` distinct texts by perturbed
    copies (words added, dropped, swapped, typos), so no text is sent twice in a run: the server remembers
    answers, and a repeated text would measure its memory, not the model."""
    import pandas as pd

    df = pd.read_csv(SHARED / "banking77" / "banking77.csv").sort_values("split", key=lambda c: c != "test",
                                                                         kind="stable")
    base = list(dict.fromkeys(df["text"]))
    out = dict.fromkeys(base)
    seed = 0
    while len(out) < n:
        seed += 1
        out.update(dict.fromkeys(perturb(base, n - len(out), seed)[0]))
    return list(out)[:n] if n else base


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


def loop_seconds(pid: int) -> float:
    """CPU seconds of the main thread of ``pid`` and of its children (uvicorn's worker processes): the event
    loops, which hold the GIL for every request's HTTP, auth and JSON work (the model lanes are other threads)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, pids = 0.0, [pid]
    while pids:
        p = pids.pop()
        try:
            fields = Path(f"/proc/{p}/task/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                pids += [int(k) for k in (task / "children").read_text().split()]
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


RUNTIMES = {"default": (MODEL, []), "torch": (MODEL, ["--no-onnx"])}


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
        loop0 = loop_seconds(server.proc.pid)
        out = asyncio.run(drive(server.port, token, texts, clients, duration, model))
        cpu, mine = cpu_seconds(server.proc.pid) - cpu0, time.process_time() - mine0
        loop = loop_seconds(server.proc.pid) - loop0
        n = max(1, out["requests"] + out["errors"])
        out.update(workers=workers, clients=clients, server_args=" ".join(server_args), runtime=runtime, model=model,
                   load_before=round(load0, 2), load_after=round(os.getloadavg()[0], 2),
                   server_cpu_ms=round(cpu * 1000 / n, 2), client_cpu_ms=round(mine * 1000 / n, 2),
                   loop_cpu_ms=round(loop * 1000 / n, 2))
        if workers == 1:
            stats = httpx.get(server.url + "/stats", headers={"Authorization": f"Bearer {token}"}).json()
            m = stats.get("models", {}).get(model, {})
            out["texts_per_call"] = round(m["texts"] / m["calls"], 2) if m.get("calls") else None
            out["remembered"] = m.get("remembered")
            out["backend"] = m.get("backend")
    finally:
        server.stop()
    return out


def model_costs(home: Path, texts: list[str], sizes=(1, 4, 16, 32, 64), repeats: int = 3) -> list[dict]:
    """CPU ms of the served model per call by batch size, as the server runs it (the version's prepared graph, one
    thread, calls of at most CALL_TOKENS padded tokens) and as one ONNX Runtime call of the whole batch: thread
    CPU time of the calling thread, the least of ``repeats`` rounds, so a busy machine inflates it little. With
    the request path's CPU per request, it predicts what two quiet cores serve."""
    from inhouse import registry
    from inhouse.pipeline.engine import EngineOptions, OnnxPredictor
    from inhouse.pipeline.onnxcache import prepared_onnx
    from inhouse.server.batching import CALL_TOKENS
    from inhouse.workspace.store import Workspace

    ws = Workspace.open(home)
    v = registry.resolve(ws, MODEL)
    graph = prepared_onnx(ws, v, verify=True)
    assert graph is not None, f"{MODEL} has no prepared ONNX graph (inhouse models prepare {MODEL})"
    texts = list(np.random.default_rng(0).permutation(np.array(texts[:4000], dtype=object)))
    ways = {f"calls of <= {CALL_TOKENS} tokens": CALL_TOKENS, "one call": 1 << 20}
    predictors = {k: OnnxPredictor(v, graph.path, max_length=int(graph.manifest.get("max_length") or 256),
                                   precision=graph.precision, options=EngineOptions(threads=1, batch_tokens=b,
                                                                                    max_batch=1 << 20))
                  for k, b in ways.items()}
    best: dict[tuple[str, int], float] = {}
    k = 0
    for _ in range(repeats):
        for n in sizes:
            for name, p in predictors.items():
                calls = max(4, 256 // n)
                t0 = time.thread_time()
                for _ in range(calls):
                    p.proba(texts[k % 3500:k % 3500 + n])
                    k += n
                ms = (time.thread_time() - t0) * 1000 / calls
                best[(name, n)] = min(best.get((name, n), ms), ms)
    return [{"way": name, "batch": n, "cpu_ms_per_call": round(ms, 2), "cpu_ms_per_text": round(ms / n, 2),
             "precision": graph.precision} for (name, n), ms in best.items()]


def line(r: dict) -> str:
    extra = f" [{r['server_args']}]" if r["server_args"] else ""
    per_call = f"  texts/call {r['texts_per_call']}" if r.get("texts_per_call") else ""
    kinds = f" {r['error_kinds']}" if r["error_kinds"] else ""
    return (f"{r['runtime']}{' (' + r['backend'] + ')' if r.get('backend') else ''} workers={r['workers']}{extra}  {r['clients']} clients {r['seconds']} s: {r['rps']} req/s  "
            f"p50 {r['p50_ms']}  p95 {r['p95_ms']}  p99 {r['p99_ms']}  max {r['max_ms']} ms  "
            f"errors {r['errors']}{kinds}{per_call}  remembered {r.get('remembered')}  CPU/request: server {r['server_cpu_ms']} ms (event loop "
            f"{r.get('loop_cpu_ms')}), clients "
            f"{r['client_cpu_ms']} ms  load {r['load_before']}->{r['load_after']}")


def render(res: dict) -> str:
    rows = ["| server | requests/s | p50 ms | p95 ms | p99 ms | max ms | errors | requests | answered from memory "
            "| texts per model call | server CPU ms per request (event loop) | load avg before → after |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in res["runs"]:
        name = (f"{r['runtime']}{' (' + r['backend'] + ')' if r.get('backend') else ''}, `--workers {r['workers']}`"
                + (f" `{r['server_args']}`" if r["server_args"] else ""))
        rows.append(f"| {name} | {r['rps']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['max_ms']} | "
                    f"{r['errors']} | {r['requests']} | {r.get('remembered', '-')} | {r.get('texts_per_call') or '-'} | {r['server_cpu_ms']} "
                    f"({r.get('loop_cpu_ms', '-')}) | {r['load_before']} → {r['load_after']} |")
    return "\n".join([
        "## Online load (`inhouse serve`, issue 19 §2)", "",
        f"{res['clients']} concurrent clients for {res['duration']} s per row, each sending one banking77 test text "
        "per `POST /v1/classifications` and the next as soon as its answer is in (closed loop, keep-alive), "
        + (f"every text sent once ({res['distinct']:,} distinct: banking77's, then perturbed copies, so the server's "
           "memory of recent answers is not what is measured), " if res.get("distinct") else "") + "to "
        "`inhouse serve` on loopback with default settings (plus `--workers`); model: a `head` version on minilm-l6 "
        "(20 banking77 intents). *default*: as a user runs it, nothing but `--workers` set (the version's ONNX "
        "graph prepared when it was trained, int8 when its verdict kept it); *torch*: the version as trained "
        "(`--no-onnx`). Every answer is checked. *Server CPU per request*: user + system CPU seconds of the "
        "server's processes over the run, per answer; *event loop*: of that, the main threads' (HTTP, auth and "
        "JSON under the GIL; the model runs on other threads). Target: p99 < 200 ms and 0 errors on 2 cores.", "", *rows, "",
        res.get("notes", ""), "",
        f"Machine: {res['machine']}. Date: {res['date']}. The clients run on the same two cores as the server"
        f"{res.get('shared', '')}. Command: `{res['command']}`."])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds per server configuration")
    ap.add_argument("--workers", default="1", help="comma-separated: one run per value of inhouse serve --workers")
    ap.add_argument("--runtime", default="default", help="comma-separated, of: " + ", ".join(RUNTIMES) +
                    " (default: the head version with default settings, as a user runs it: its ONNX graph prepared "
                    "at save; torch: the version as trained, --no-onnx)")
    ap.add_argument("--server-args", default="", help="more inhouse serve options, e.g. '--batch-window-ms 0'")
    ap.add_argument("--texts", type=int, default=0, help="send only this many distinct banking77 texts, again and "
                    "again (the server remembers answers, so a few texts measure the request path without the model)")
    ap.add_argument("--distinct", type=int, default=200_000, help="distinct texts to send when --texts is not given "
                    "(banking77's 13,000, then perturbed copies): no text is sent twice, as a stream of new "
                    "questions would arrive (default: 200,000)")
    ap.add_argument("--home", help="a workspace folder to build once and reuse (default: a temporary one)")
    ap.add_argument("--md", action="store_true", help="write the table into BENCHMARKS.md (and bench/results/load.json)")
    ap.add_argument("--notes", default="", help="a paragraph written under the table with --md")
    ap.add_argument("--md-only", action="store_true", help="rewrite BENCHMARKS.md from bench/results/load.json "
                    "(with --notes, if given)")
    ap.add_argument("--model-costs", action="store_true", help="print the served model's CPU ms per call by batch "
                    "size (no server, load-independent) and exit")
    args = ap.parse_args()
    if args.model_costs:
        home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="inhouse-bench-load-"))
        if not (home / "bench-token").exists():
            build_workspace(home)
        for r in model_costs(home, test_texts()):
            print(f"{r['precision']} {r['way']:>24}: batch {r['batch']:3d}  {r['cpu_ms_per_call']:7.2f} ms CPU a call, "
                  f"{r['cpu_ms_per_text']:5.2f} ms a text", flush=True)
        return
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
        texts = test_texts()[:args.texts] if args.texts else test_texts(args.distinct)
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
               "distinct": 0 if args.texts else len(texts),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "notes": args.notes,
               "command": "python bench/load.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])}
        (ROOT / "bench" / "results").mkdir(exist_ok=True)
        (ROOT / "bench" / "results" / "load.json").write_text(json.dumps(res, indent=2))
        write_section("load", render(res))


if __name__ == "__main__":
    main()
