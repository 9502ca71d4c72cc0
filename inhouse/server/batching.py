"""Online inference: one loaded model per version, requests micro-batched onto it.

Requests for the same model version arrive from many threads; each puts its
texts on that model's :class:`MicroBatcher` and waits. One thread per model
runs a request that finds the model idle at once, and everything that arrived
while a model call ran as the next single call, handing every request its
rows. On a small CPU under load this turns fifty one-text forward passes into
one fifty-text pass, and costs a lone request nothing.

A trained version that has an ONNX export registered (a version whose
manifest says ``derived_from`` this one's sha256) is served through ONNX
Runtime; the answer still names the requested version and its sha256.

Texts longer than the model reads are truncated by its tokenizer; the answer
says so per text (``truncated``), never an error.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> served = models.classifier("intents@production")
    >>> served.classify(["where is my card"])[0]["label"]
    'card_arrival'
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .. import registry
from ..cache import ModelCache
from ..errors import UsageError
from ..models.catalog import EMBEDDING_KINDS, get_model
from ..models.encoders import load_encoder
from ..workspace.store import Workspace, current_user
from .errors import ApiError

MAX_TEXT_CHARS = 100_000  # longer texts are cut before tokenizing (the model reads far less anyway)
BUCKET = 16  # texts per model call inside a batch, grouped by length so little is padding


def by_length(fn: Callable[[list[str]], np.ndarray], texts: list[str], bucket: int = BUCKET) -> np.ndarray:
    """``fn`` over ``texts`` in buckets of similar length (padding to the longest text of a whole batch
    would spend most of the work on padding), rows back in input order."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = None
    for i in range(0, len(texts), bucket):
        idx = order[i:i + bucket]
        rows = np.asarray(fn([texts[j] for j in idx]))
        if out is None:
            out = np.zeros((len(texts), rows.shape[1]), dtype=np.float32)
        out[idx] = rows
    return out


class _Request:
    """One call's items, answered when every slice of it has run."""

    __slots__ = ("items", "fut", "rows", "left")

    def __init__(self, items: list, fut: Future, slices: int):
        self.items, self.fut, self.rows, self.left = items, fut, [None] * len(items), slices


class MicroBatcher:
    """Runs ``fn`` once on the items of every call that arrived while the previous model call ran.

    A call that finds the model idle runs at once (no window to wait out); calls that arrive while the
    model is busy queue up and go together into the next call, as soon as the running one ends. So a
    quiet server answers a lone text in one model call's time, and a busy one batches as much as its
    load brings. ``window > 0`` also waits up to that long for more items before each call (worth it
    only for compute-bound models under steady load); ``batching=False``: each call runs alone, one at
    a time.

    Fair between clients (the acting user, or ``client``): a call's items are cut into slices of at most
    ``slice`` items, and each model call takes at most ``slice`` items per client, round robin, so one
    client's big batch runs as several model calls with everyone else's requests in between instead of
    holding the model for its whole length.

    ``close()`` stops taking new batches once what is queued has run; a call that arrives after it still
    runs (on its own thread), so a model dropped from the cache never fails a request that already holds it.
    """

    def __init__(self, fn: Callable[[list], list], *, window: float = 0.0, max_batch: int = 128, name: str = "",
                 slice: int | None = None, batching: bool = True):
        self.fn, self.window, self.max_batch, self.batching = fn, max(0.0, window), max_batch, batching
        self.slice = max(1, slice or BUCKET)  # a slice is one of by_length's buckets: no forward pass is lost
        self._cv = threading.Condition()
        self._queues: dict[str, deque[tuple[_Request, int, int]]] = {}  # client -> slices, in arrival order
        self._closed = False
        self._serial = threading.Lock()
        self.batches = 0
        self.items = 0
        if batching:
            threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True).start()

    def __call__(self, items: list, client: str | None = None) -> list:
        """Run ``items`` (in a batch with whatever else arrives) and wait for their rows."""
        if not self.batching or not items:
            return self._run_serial(items)
        return self.submit(items, client).result()

    def _run_serial(self, items: list) -> list:
        with self._serial:
            self.batches += 1
            self.items += len(items)
            return self.fn(items) if items else []

    def submit(self, items: list, client: str | None = None) -> Future:
        """Queue ``items`` for the next batches; the future gets their rows."""
        fut: Future = Future()
        if not items:
            fut.set_result([])
            return fut
        client = client if client is not None else current_user()
        step = self.slice
        with self._cv:
            if not self._closed:
                req = _Request(items, fut, (len(items) + step - 1) // step)
                self._queues.setdefault(client, deque()).extend(
                    (req, i, min(i + step, len(items))) for i in range(0, len(items), step))
                self._cv.notify()
                return fut

        def late() -> None:  # closed: the model is still loaded for whoever holds it
            try:
                fut.set_result(self._run_serial(items))
            except BaseException as e:
                fut.set_exception(e)
        threading.Thread(target=late, name="batcher-late", daemon=True).start()
        return fut

    async def run(self, items: list, client: str | None = None) -> list:
        """From async code: wait for the batch without holding a thread (serial mode uses one)."""
        if not self.batching or not items:
            from starlette.concurrency import run_in_threadpool

            return await run_in_threadpool(self, items)
        import asyncio

        return await asyncio.wrap_future(self.submit(items, client))

    def queued(self) -> int:
        return sum(b - a for q in self._queues.values() for _, a, b in q)

    def _take(self) -> list[tuple[_Request, int, int]]:
        with self._cv:
            while not self._queues and not self._closed:
                self._cv.wait()
            if not self._queues:
                return []
            deadline = time.monotonic() + self.window
            while self.window > 0 and not self._closed and self.queued() < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)
            taken, n = [], 0
            for client in list(self._queues):  # round robin: each client's turn, then it goes to the back
                q, mine = self._queues.pop(client), 0
                while q and q[0][0].fut.done():  # its request already failed
                    q.popleft()
                while q and n < self.max_batch and (mine == 0 or mine + q[0][2] - q[0][1] <= self.slice):
                    req, a, b = q.popleft()
                    taken.append((req, a, b))
                    mine, n = mine + b - a, n + b - a
                if q:
                    self._queues[client] = q
                if n >= self.max_batch:
                    break
            return taken

    def _loop(self) -> None:
        while True:
            taken = self._take()
            if not taken:
                if self._closed:
                    return
                continue
            flat = [x for req, a, b in taken for x in req.items[a:b]]
            try:
                out = self.fn(flat)
                self.batches += 1
                self.items += len(flat)
            except BaseException as e:  # every waiting request gets the error, the thread lives on
                for req, _, _ in taken:
                    if not req.fut.done():
                        req.fut.set_exception(e)
                continue
            i = 0
            for req, a, b in taken:
                req.rows[a:b] = out[i:i + b - a]
                i += b - a
                req.left -= 1
                if req.left == 0 and not req.fut.done():
                    req.fut.set_result(req.rows)

    def close(self) -> None:
        """Take no new batches; what is queued still runs (and later calls run on their own threads)."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()


# ------------------------------------------------------------- tokens ----

def token_limit(tokenizer, max_length: int | None) -> Callable[[list[str]], list[bool]] | None:
    """A function telling, per text, whether the tokenizer would cut it at ``max_length``."""
    if tokenizer is None or not max_length:
        return None

    def over(texts: list[str]) -> list[bool]:
        ids = tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]
        return [len(x) > max_length for x in ids]
    return over


def cut(texts: list[str]) -> tuple[list[str], list[bool]]:
    return [t[:MAX_TEXT_CHARS] for t in texts], [len(t) > MAX_TEXT_CHARS for t in texts]


# -------------------------------------------------------- classifiers ----

class RowCache:
    """The rows of texts one loaded model answered lately (LRU, bounded, locked): a model version is fixed,
    so a text it saw again gets the same row without a model call. Long texts are not kept."""

    def __init__(self, size: int = 20_000, max_chars: int = 1_000):
        self.size, self.max_chars = size, max_chars
        self._rows: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, text: str):
        with self._lock:
            row = self._rows.get(text)
            if row is not None:
                self._rows.move_to_end(text)
                self.hits += 1
            return row

    def put(self, text: str, row) -> None:
        if len(text) > self.max_chars:
            return
        with self._lock:
            self._rows[text] = row
            self._rows.move_to_end(text)
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)


@dataclass
class ServedClassifier:
    """A version ready for online requests: the loaded classifier behind a micro-batcher."""

    version: registry.Version  # what was asked for
    served_by: registry.Version  # what runs (an ONNX export of it, or itself)
    runtime: str
    labels: list[str]
    multi_label: bool
    batcher: MicroBatcher
    max_tokens: int = 512  # what the model reads of one text
    max_work: int | None = None  # tokens one request may ask for (texts x tokens); None: no bound
    rule: Any = None  # the version's DecisionRule: abstention ("other") as every other path applies it
    # rows of texts seen lately (online requests of a few texts only): probabilities and, for the distance
    # rule, the distance, so a remembered answer is decided (abstention included) as a fresh one
    memo: RowCache | None = None

    MEMO_TEXTS = 32  # requests of at most this many texts are remembered (a stream's chunks would flush it)

    def classify(self, texts: list[str], top_k: int = 3, *, bounded: bool = True) -> list[dict]:
        texts, chars_cut = cut([str(t) for t in texts])
        if bounded:
            self.check_work(texts)
        rows, missing = self._remembered(texts)
        if missing:
            self._fill(texts, rows, missing, self.batcher([texts[i] for i in missing]))
        return self.shape(rows, chars_cut, top_k)

    async def aclassify(self, texts: list[str], top_k: int = 3, *, bounded: bool = True) -> list[dict]:
        texts, chars_cut = cut([str(t) for t in texts])
        if bounded:
            self.check_work(texts)
        rows, missing = self._remembered(texts)
        if missing:
            self._fill(texts, rows, missing, await self.batcher.run([texts[i] for i in missing]))
        return self.shape(rows, chars_cut, top_k)

    def _remembered(self, texts: list[str]) -> tuple[list, list[int]]:
        """(rows known from the cache or None, indices still to compute)."""
        if self.memo is None or len(texts) > self.MEMO_TEXTS:
            return [None] * len(texts), list(range(len(texts)))
        rows = [self.memo.get(t) for t in texts]
        return rows, [i for i, r in enumerate(rows) if r is None]

    def _fill(self, texts: list[str], rows: list, missing: list[int], computed: list) -> None:
        keep = self.memo is not None and len(texts) <= self.MEMO_TEXTS
        for i, row in zip(missing, computed):
            rows[i] = row
            if keep:
                self.memo.put(texts[i], row)

    def work(self, texts: list[str]) -> int:
        """Model work a request asks for, in tokens: per text about one token per 4 characters (plus the
        two special ones), never more than the model reads."""
        return sum(min(self.max_tokens, len(t) // 4 + 2) for t in texts)

    def check_work(self, texts: list[str]) -> None:
        """Refuse (413) a request whose texts x tokens is over ``max_work``: it would hold the model for long."""
        if self.max_work is None:
            return
        work = self.work(texts)
        if work > self.max_work:
            raise ApiError(413, f"{len(texts)} texts of about {work:,} tokens in all (the model reads up to "
                           f"{self.max_tokens} per text); one request may ask for at most {self.max_work:,} tokens "
                           "(inhouse serve --max-request-tokens).",
                           fix="Send fewer or shorter texts per request, stream them to POST /classify/stream, or "
                               "classify a whole dataset as a job: POST /classify/jobs", kind="too_large")

    def shape(self, rows: list, chars_cut: list[bool], top_k: int) -> list[dict]:
        k = max(1, min(top_k, len(self.labels)))
        n = len(self.labels)
        out = []
        for (scores, over), char_cut in zip(rows, chars_cut):
            probs = scores[:n]  # then the distance, for versions that abstain by it
            order = np.argsort(-probs, kind="stable")[:k]
            r = {"label": self.labels[order[0]], "score": round(float(probs[order[0]]), 6),
                 "top": [{"label": self.labels[j], "score": round(float(probs[j]), 6)} for j in order],
                 "truncated": bool(over or char_cut)}
            if self.rule is not None and not self.multi_label:  # the version's own rule, as classify jobs apply it
                dist = scores[n:n + 1] if self.rule.needs_distance else None
                r["abstained"] = bool(self.rule.abstains(probs[None], dist)[0])
                j, best = self.rule.best_in_scope(probs[None])
                r["label"] = self.rule.other_label if r["abstained"] else self.labels[int(j[0])]
                r["score"] = round(float(best[0]), 6)
            if self.multi_label:
                r["labels"] = [self.labels[j] for j in np.flatnonzero(probs >= self.threshold)]
            out.append(r)
        return out

    @property
    def threshold(self) -> float:
        return float(self.served_by.manifest.get("threshold", 0.5))

    def describe(self) -> dict:
        """Which version made the answer: the one asked for (its number and hash) and what ran it."""
        return {"model": self.version.ref, "version": self.version.version, "sha256": self.version.sha256,
                "runtime": self.runtime, "served_by": self.served_by.ref}


def onnx_export_of(ws: Workspace, v: registry.Version) -> registry.Version | None:
    """A registered ONNX version made from ``v`` (newest), if any."""
    if v.manifest.get("format") == "onnx":
        return None
    hits = [w for w in registry.versions(ws) if w.manifest.get("format") == "onnx"
            and (w.manifest.get("derived_from") or {}).get("sha256") == v.sha256]
    return hits[-1] if hits else None


def _proba_fn(ws: Workspace, clf) -> Callable[[list[str]], np.ndarray]:
    """Probabilities (then the distance, for versions that abstain by it) without the on-disk caches
    (one Parquet part per request would flood them)."""
    def rows(probs, dist):
        return probs if dist is None else np.concatenate([probs, np.asarray(dist, np.float32)[:, None]], axis=1)

    if getattr(clf, "method", None) == "head" and getattr(clf, "head", None) is not None and clf.base:
        base = get_model(ws, clf.base)
        if base.kind in EMBEDDING_KINDS:
            enc = load_encoder(ws, clf.base)
            return lambda texts: rows(*clf.scores_of(enc.encode(texts)))
    return lambda texts: rows(*clf.predict_scores(texts))


def _max_tokens(clf) -> int:
    """Tokens the model reads of one text (ONNX's max_length, the manifest's encoder max_length, else 512)."""
    n = getattr(clf, "max_length", None) or (getattr(clf, "manifest", None) or {}).get("encoder", {}).get("max_length")
    return int(n or 512)


def _limit_fn(ws: Workspace, clf) -> Callable[[list[str]], list[bool]] | None:
    tok = getattr(clf, "tokenizer", None)
    if tok is not None:  # ONNX
        return token_limit(tok, getattr(clf, "max_length", None))
    if getattr(clf, "method", None) == "head" and clf.base:
        st = getattr(load_encoder(ws, clf.base), "st", None) if get_model(ws, clf.base).kind in EMBEDDING_KINDS else None
        if st is not None:
            return token_limit(st.tokenizer, st.max_seq_length)
        return None
    module = clf.encoder_module() if hasattr(clf, "encoder_module") else None
    if module is not None:
        return token_limit(getattr(module, "tokenizer", None), getattr(module, "max_length", None))
    return None


def registry_state(ws: Workspace) -> tuple:
    """A fingerprint of what references resolve to: versions saved or removed, aliases set, moved or removed.

    One read of two small tables (a WAL reader never waits for a writer): the served table compares it per
    request, so a saved version or a moved alias is seen by the very next request, in every server process.
    """
    return tuple(ws.db.execute(
        "SELECT (SELECT COUNT(*) FROM model_versions), (SELECT COALESCE(MAX(id), 0) FROM model_versions), "
        "(SELECT COUNT(removed_at) FROM model_versions), (SELECT COUNT(*) FROM aliases), "
        "(SELECT COALESCE(MAX(set_at), 0) FROM aliases), (SELECT TOTAL(version) FROM aliases)").fetchone())


class OnlineModels:
    """The server's loaded models for online requests: bounded, locked, one batcher per version.

    A loaded model is keyed by what runs (the version's hash and its ONNX export's, if any), never by a
    reference: saving a version or moving an alias changes what the next request resolves to, and never
    unloads a model a request in flight or in a queue already holds (a dropped model's batcher finishes
    its queue; see :class:`MicroBatcher`).
    """

    def __init__(self, ws: Workspace, *, window: float = 0.0, max_batch: int = 128, prefer_onnx: bool = True,
                 model_threads: int | None = None, max_request_tokens: int | None = None, batching: bool = True):
        self.ws, self.window, self.max_batch, self.prefer_onnx = ws, window, max_batch, prefer_onnx
        self.batching = batching
        self.model_threads, self.max_request_tokens = model_threads, max_request_tokens
        self._threads_set = False
        self._classifiers = ModelCache("served classifiers", on_evict=lambda s: s.batcher.close())
        self._encoders = ModelCache("served encoders", on_evict=lambda s: s[1].close())
        self._recent: dict[tuple[str, str], tuple[Any, Any]] = {}  # (kind, ref) -> (registry state or time, served)
        self._state_memo = threading.local()  # per thread (each has its own connection): (mark, registry state)

    REFRESH = 1.0  # seconds a resolved base model name is reused (base models are not versioned)

    def recent(self, kind: str, ref: str):
        """The model served for ``ref`` if nothing it resolves through changed since (no thread hop)."""
        hit = self._recent.get((kind, ref))
        if hit is None:
            return None
        if kind == "encoder":
            return hit[1] if time.monotonic() - hit[0] < self.REFRESH else None
        return hit[1] if hit[0] == self.registry_state() else None

    def registry_state(self) -> tuple:
        """:func:`registry_state`, read again only when the database changed since this thread last read it.

        ``PRAGMA data_version`` changes when another connection (thread or process) commits, the
        connection's ``total_changes`` when it writes itself: while neither moves, nothing can have moved
        an alias, and a request costs no query of the registry tables.
        """
        db = self.ws.db
        mark = (db.execute("PRAGMA data_version").fetchone()[0], db.total_changes)
        memo = getattr(self._state_memo, "value", None)
        if memo is None or memo[0] != mark:
            memo = (mark, registry_state(self.ws))
            self._state_memo.value = memo
        return memo[1]

    def _remember(self, kind: str, ref: str, value, state=None):
        if len(self._recent) > 10_000:
            self._recent.clear()
        self._recent[(kind, ref)] = (time.monotonic() if state is None else state, value)
        return value

    def _set_threads(self) -> None:
        """Torch threads for online models (the server process only; job workers keep their own).

        On a small machine the event loop needs a core too: two torch threads spinning beside it made a
        batch of 20 texts take seconds.
        """
        if self.model_threads and not self._threads_set:
            import torch

            torch.set_num_threads(self.model_threads)
            self._threads_set = True

    def classifier(self, ref: str) -> ServedClassifier:
        from ..classifiers.load import load_classifier

        self._set_threads()
        state = self.registry_state()  # read before resolving: a change after it is seen next time
        v = registry.resolve(self.ws, ref)
        target = (onnx_export_of(self.ws, v) if self.prefer_onnx else None) or v

        def build() -> ServedClassifier:
            if target.manifest.get("format") == "onnx" and self.model_threads:
                from ..classifiers.onnx import OnnxClassifier

                # its own session with the server's thread count (the shared one uses every core)
                clf = OnnxClassifier(registry.verify(target), ws=self.ws, threads=self.model_threads)
            else:
                clf = load_classifier(self.ws, target)  # verifies the files once, here
            proba, over = _proba_fn(self.ws, clf), _limit_fn(self.ws, clf)

            def run(texts: list[str]) -> list[tuple[np.ndarray, bool]]:
                probs = by_length(proba, texts)
                flags = over(texts) if over else [False] * len(texts)
                return list(zip(probs, flags))

            return ServedClassifier(v, target, "onnx" if target.manifest.get("format") == "onnx" else "torch",
                                    list(clf.labels), clf.multi_label,
                                    MicroBatcher(run, window=self.window, max_batch=self.max_batch, name=v.ref,
                                                 batching=self.batching),
                                    max_tokens=_max_tokens(clf), max_work=self.max_request_tokens, rule=clf,
                                    memo=RowCache())

        served = self._classifiers.get_or_load((v.sha256, target.sha256), build, size=lambda s: 64 << 20)
        if served.version.ref != v.ref:  # the same files saved under another name or number: name this one
            served = dataclasses.replace(served, version=v)
        return self._remember("classifier", ref, served, state)

    def encoder(self, name: str) -> tuple[Any, MicroBatcher, Callable | None]:
        """(encoder, batcher of texts -> (vector, truncated), ...) for a base embedding model."""
        model = get_model(self.ws, name)
        if model.kind not in EMBEDDING_KINDS:
            raise UsageError(f"model {name!r} is a {model.kind} model and cannot embed text.",
                             fix="Use an embedding model, e.g. minilm-l6 or wordllama (GET /v1/models).")

        def build():
            self._set_threads()
            enc = load_encoder(self.ws, name)
            st = getattr(enc, "st", None)
            over = token_limit(st.tokenizer, st.max_seq_length) if st is not None else None

            def run(texts: list[str]):
                vecs = by_length(enc.encode, texts)
                flags = over(texts) if over else [False] * len(texts)
                return list(zip(vecs, flags))

            return enc, MicroBatcher(run, window=self.window, max_batch=self.max_batch, name=name,
                                     batching=self.batching), over

        return self._remember("encoder", name, self._encoders.get_or_load(model.sha256, build,
                                                                          size=lambda s: s[0].approx_bytes()))

    def stats(self) -> dict:
        """Per loaded model: model calls and texts so far (texts / calls is the mean batch)."""
        out = {}
        for key in self._classifiers.keys():
            s = self._classifiers.get(key)
            if s is not None:
                out[s.version.ref] = {"runtime": s.runtime, "calls": s.batcher.batches, "texts": s.batcher.items,
                                      "remembered": s.memo.hits if s.memo else 0}
        for key in self._encoders.keys():
            e = self._encoders.get(key)
            if e is not None:
                out[e[0].name] = {"runtime": "encoder", "calls": e[1].batches, "texts": e[1].items}
        return {"batching": self.batching, "batch_window_ms": self.window * 1000, "models": out}

    async def aclassifier(self, ref: str) -> ServedClassifier:
        from starlette.concurrency import run_in_threadpool

        return self.recent("classifier", ref) or await run_in_threadpool(self.classifier, ref)

    async def aencoder(self, name: str):
        from starlette.concurrency import run_in_threadpool

        return self.recent("encoder", name) or await run_in_threadpool(self.encoder, name)

    def close(self) -> None:
        self._recent.clear()
        self._classifiers.clear()
        self._encoders.clear()
