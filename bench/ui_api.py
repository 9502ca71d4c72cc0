"""What a person in the web UI waits for: the API calls behind each screen, on a dataset of N documents.

Builds a workspace with N generated contact-center messages (the demo's
generator: time, channel, intent for 70% of rows), starts ``inhouse serve`` on
a free loopback port and times, one request at a time as one person's browser
would send them, the calls the Overview, Explore, a document's page and the
Label screen make. Reports the median and the slowest of ``--repeat`` tries per
call, and the size of the UI's own files (what the first visit downloads).

Writes ``bench/results/ui_api.json`` and the table between the ``ui`` markers
in BENCHMARKS.md.

    nice python bench/ui_api.py                 # N = 200,000
    python bench/ui_api.py --n 20000 --no-md    # a quick look
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchutil import machine, write_section  # noqa: E402


def build(home: Path, n: int) -> None:
    from inhouse.data.ingest import ingest
    from inhouse.demo.data import write_csv
    from inhouse.workspace.store import Workspace

    csv = write_csv(home / "calls.csv", n=n, seed=5)
    ws = Workspace.open(home)
    ingest(ws, csv, "calls", label_col="intent", time_col="timestamp", id_col="message_id", split_col="split")
    ws.close()
    csv.unlink()


def timed(client, path: str, params: dict | None, repeat: int) -> dict:
    seconds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.get(path, params=params)
        seconds.append(time.perf_counter() - t0)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return {"median_ms": round(statistics.median(seconds) * 1000, 1), "max_ms": round(max(seconds) * 1000, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-md", action="store_true")
    a = ap.parse_args()

    from serverkit import Server, create_token

    with tempfile.TemporaryDirectory(prefix="inhouse-bench-ui-") as tmp:
        home = Path(tmp)
        t0 = time.perf_counter()
        build(home, a.n)
        built = time.perf_counter() - t0
        token = create_token(home, "bench", "viewer")
        server = Server(home)
        try:
            with server.client(token) as c:
                some = c.get("/datasets/calls/documents", params={"limit": 1}).json()["documents"][0]
                calls = [
                    ("Overview", "/datasets", None),
                    ("Explore: the dataset's header", "/datasets/calls", None),
                    ("Explore: first page of documents", "/datasets/calls/documents", {"limit": 25}),
                    ("Explore: full-text search", "/datasets/calls/documents", {"q": "refund", "limit": 25}),
                    ("Explore: label + time range", "/datasets/calls/documents",
                     {"label": "card_lost", "time_from": "2026-07-01", "time_to": "2026-08-01", "limit": 25}),
                    ("Explore: a page deep in the list", "/datasets/calls/documents", {"offset": a.n // 2, "limit": 25}),
                    ("A document's page", f"/datasets/calls/documents/{some['doc_id']}", None),
                    ("Label: the next documents (diversity)", "/datasets/calls/queue",
                     {"strategy": "diversity", "limit": 20}),
                    ("Label: batches", "/datasets/calls/labels", None),
                ]
                rows = [{"screen": s, "call": p, "params": q, **timed(c, p, q, a.repeat)} for s, p, q in calls]
        finally:
            server.stop()
    static = ROOT / "inhouse" / "ui" / "static"
    files = [f for f in static.rglob("*") if f.is_file()]
    result = {"n": a.n, "repeat": a.repeat, "build_seconds": round(built, 1), "calls": rows,
              "ui_files": len(files), "ui_bytes": sum(f.stat().st_size for f in files),
              "machine": machine(), "date": date.today().isoformat()}
    out = ROOT / "bench" / "results" / "ui_api.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    text = render(result)
    print(text)
    if not a.no_md:
        write_section("ui", text)


def render(r: dict) -> str:
    lines = [f"## The web UI's API calls on {r['n']:,} documents",
             "",
             f"{r['date']} · {r['machine']} · `python bench/ui_api.py --n {r['n']}` (one request at a time, "
             f"median and slowest of {r['repeat']})",
             "",
             "| screen | call | median | slowest |",
             "|---|---|---:|---:|"]
    for c in r["calls"]:
        q = "?" + "&".join(f"{k}={v}" for k, v in c["params"].items()) if c["params"] else ""
        lines.append(f"| {c['screen']} | `GET {c['call']}{q}` | {c['median_ms']:,.0f} ms | {c['max_ms']:,.0f} ms |")
    lines += ["", f"The UI itself is {r['ui_files']} files, {r['ui_bytes'] / 1024:,.0f} KiB in all (no third-party code), "
              "fetched once and revalidated."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
