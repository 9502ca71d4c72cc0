"""What a run cost: documents, tokens, CPU and wall seconds, peak memory, and the hosted-API equivalent.

:class:`CostMeter` measures a block of work (CPU seconds of this process and
its children, wall seconds, peak resident memory sampled every 0.1 s); the
caller adds the documents and tokens (counted with the model's own
tokenizer). :func:`record_cost` stores the result beside a run (table
``costs``), together with what the same tokens would have cost on the hosted
APIs of the price table: the defaults below, overridden per model by
``inhouse prices set`` (each price carries the date it was read).

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> with CostMeter() as m:
    ...     m.add(documents=1000, tokens=21000)
    >>> c = m.result(ws)
    >>> c["documents"], sorted(c["api"])[:1]
    (1000, ['cohere-embed-english-v3'])
"""

from __future__ import annotations

import json
import os
import resource
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import NotFound, UsageError
from .store import Workspace, current_user

# ------------------------------------------------------------- price table ----

@dataclass(frozen=True)
class Price:
    """A hosted model's list price per million tokens, and when it was read."""

    model: str
    kind: str  # "embedding" (input tokens only) | "chat" (input tokens plus a short label as output)
    input_per_1m: float
    output_per_1m: float
    currency: str
    read_on: str  # ISO date the price was read
    source: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


# List prices as known to the authors on the date given; NOT checked online (inhouse never goes online).
# Check them before quoting them: `inhouse prices set MODEL --input X --output Y --read-on YYYY-MM-DD`.
DEFAULT_PRICES: tuple[Price, ...] = (
    Price("openai-text-embedding-3-small", "embedding", 0.02, 0.0, "USD", "2024-12-01", "openai.com/api/pricing"),
    Price("cohere-embed-english-v3", "embedding", 0.10, 0.0, "USD", "2024-12-01", "cohere.com/pricing"),
    Price("openai-gpt-4o-mini", "chat", 0.15, 0.60, "USD", "2024-12-01", "openai.com/api/pricing"),
)
CHAT_OUTPUT_TOKENS_PER_DOC = 5  # a chat model asked for a label answers with a few tokens


def prices(ws: Workspace) -> list[Price]:
    """The price table: the defaults, each replaced by the user's own entry of the same name."""
    table = {p.model: p for p in DEFAULT_PRICES}
    for r in ws.db.execute("SELECT * FROM prices ORDER BY model"):
        table[r["model"]] = Price(r["model"], r["kind"], r["input_per_1m"], r["output_per_1m"], r["currency"],
                                  r["read_on"], r["source"])
    return sorted(table.values(), key=lambda p: p.model)


def set_price(ws: Workspace, model: str, *, input_per_1m: float, output_per_1m: float = 0.0,
              kind: str | None = None, read_on: str | None = None, currency: str = "USD",
              source: str | None = None) -> Price:
    """Add or change one price (``read_on`` defaults to today, UTC)."""
    import datetime as dt

    if not model or not model.strip():
        raise UsageError("a price needs a model name.", fix="e.g. inhouse prices set openai-gpt-4o-mini --input 0.15")
    if input_per_1m < 0 or output_per_1m < 0:
        raise UsageError(f"prices cannot be negative, found input {input_per_1m}, output {output_per_1m}.")
    kind = kind or ("chat" if output_per_1m > 0 else "embedding")
    if kind not in ("embedding", "chat"):
        raise UsageError(f"--kind must be 'embedding' or 'chat', found {kind!r}.")
    read_on = read_on or dt.datetime.now(dt.timezone.utc).date().isoformat()
    try:
        dt.date.fromisoformat(read_on)
    except ValueError:
        raise UsageError(f"--read-on must be a date YYYY-MM-DD, found {read_on!r}.") from None
    p = Price(model.strip(), kind, float(input_per_1m), float(output_per_1m), currency, read_on, source)
    with ws.tx() as c:
        c.execute("INSERT OR REPLACE INTO prices VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (p.model, p.kind, p.input_per_1m, p.output_per_1m, p.currency, p.read_on, p.source, time.time(),
                   current_user()))
    return p


def api_equivalent(ws: Workspace, documents: int, tokens: int) -> dict[str, dict]:
    """What ``tokens`` input tokens (and a label per document for chat models) cost on each hosted model."""
    out = {}
    for p in prices(ws):
        out_tokens = documents * CHAT_OUTPUT_TOKENS_PER_DOC if p.kind == "chat" else 0
        cost = tokens / 1e6 * p.input_per_1m + out_tokens / 1e6 * p.output_per_1m
        out[p.model] = {"cost": round(cost, 6), "currency": p.currency, "input_tokens": int(tokens),
                        "output_tokens": int(out_tokens), "price_read_on": p.read_on}
    return out


# ------------------------------------------------------------------ meter ----

def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # not Linux: the process's lifetime peak
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class CostMeter:
    """Measures one block of work; :meth:`add` counts documents and tokens as they are done.

    Thread-safe; the memory sampler is a daemon thread that stops with the block.
    """

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.documents = 0
        self.tokens = 0
        self.reused = 0  # documents (or texts) answered from stored results: shown, never billed as work
        self.extra_cpu = 0.0  # CPU seconds spent elsewhere (e.g. Ray workers) and reported back
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._peak = 0
        self._thread: threading.Thread | None = None
        self.started = self.wall = self.cpu = 0.0

    def __enter__(self) -> "CostMeter":
        self.started = time.time()
        self._t0, self._cpu0 = time.monotonic(), _cpu_seconds()
        self._peak = _rss_bytes()
        self._thread = threading.Thread(target=self._sample, name="inhouse-cost-meter", daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, _rss_bytes())

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self._thread is not None and not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, _rss_bytes())
            self.wall = time.monotonic() - self._t0
            self.cpu = _cpu_seconds() - self._cpu0

    def add(self, documents: int = 0, tokens: int = 0, reused: int = 0) -> None:
        """Count work done: ``documents`` computed with ``tokens``; ``reused`` ones taken from stored results."""
        with self._lock:
            self.documents += int(documents)
            self.tokens += int(tokens)
            self.reused += int(reused)

    def result(self, ws: Workspace | None = None) -> dict[str, Any]:
        """The cost block: documents (computed), reused (not computed, not billed), tokens, cpu_seconds, wall_seconds, docs_per_second, peak_rss_mb, api."""
        self.stop()
        wall = self.wall or (time.monotonic() - self._t0)
        out = {"documents": self.documents, "reused": self.reused, "tokens": self.tokens,
               "cpu_seconds": round(self.cpu + self.extra_cpu, 3), "wall_seconds": round(wall, 3),
               "docs_per_second": round(self.documents / wall, 1) if wall > 0 else None,
               "peak_rss_mb": round(self._peak / (1 << 20), 1)}
        if ws is not None:
            out["api"] = api_equivalent(ws, self.documents, self.tokens)
        return out


def record_cost(ws: Workspace, run_id: int, kind: str, cost: dict) -> None:
    """Keep a run's cost block (shown by ``inhouse runs list|show`` and the pipeline report)."""
    ws.db.execute("INSERT OR REPLACE INTO costs (run_id, kind, cost, created_at) VALUES (?, ?, ?, ?)",
                  (run_id, kind, json.dumps(cost, sort_keys=True), time.time()))


def run_cost(ws: Workspace, run_id: int) -> dict | None:
    row = ws.db.execute("SELECT cost FROM costs WHERE run_id = ?", (run_id,)).fetchone()
    return json.loads(row[0]) if row else None


def list_runs(ws: Workspace, kind: str | None = None, limit: int = 20) -> list[dict]:
    """The latest runs (newest first), each with its cost block when one was recorded."""
    where, params = ("WHERE r.kind = ?", [kind]) if kind else ("", [])
    rows = ws.db.execute(f"SELECT r.*, c.cost FROM runs r LEFT JOIN costs c ON c.run_id = r.id {where} "
                         "ORDER BY r.id DESC LIMIT ?", [*params, limit]).fetchall()
    return [_run_dict(r) for r in rows]


def get_run(ws: Workspace, run_id: int) -> dict:
    r = ws.db.execute("SELECT r.*, c.cost FROM runs r LEFT JOIN costs c ON c.run_id = r.id WHERE r.id = ?",
                      (run_id,)).fetchone()
    if r is None:
        raise NotFound(f"run {run_id} not found in {ws.home}.", fix="List runs with: inhouse runs list")
    return _run_dict(r)


def _run_dict(r) -> dict:
    return {"id": r["id"], "kind": r["kind"], "status": r["status"], "started_at": r["started_at"],
            "finished_at": r["finished_at"], "model": r["model"], "model_sha256": r["model_sha256"],
            "user": r["user"], "params": json.loads(r["params"] or "{}"), "result": json.loads(r["result"] or "{}"),
            "cost": json.loads(r["cost"]) if r["cost"] else None}
