"""Online inference: one loaded model per version, requests micro-batched onto it.

Requests for the same model version arrive from many threads; each puts its
texts on that model's :class:`MicroBatcher` and waits. One thread per model
collects what arrives within a few milliseconds (``window``) into one batch,
runs the model once and hands every request its rows. On a small CPU this
turns fifty one-text forward passes into one fifty-text pass.

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

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .. import registry
from ..cache import ModelCache
from ..errors import UsageError
from ..models.catalog import EMBEDDING_KINDS, get_model
from ..models.encoders import load_encoder
from ..workspace.store import Workspace

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


class MicroBatcher:
    """Collects calls for ``window`` seconds (or ``max_batch`` items) and runs ``fn`` once on all of them.

    ``window == 0`` turns batching off: each call runs alone, one at a time.
    """

    def __init__(self, fn: Callable[[list], list], *, window: float = 0.005, max_batch: int = 128, name: str = ""):
        self.fn, self.window, self.max_batch = fn, window, max_batch
        self._cv = threading.Condition()
        self._queue: list[tuple[list, Future]] = []
        self._closed = False
        self._serial = threading.Lock()
        self.batches = 0
        self.items = 0
        if window > 0:
            threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True).start()

    def __call__(self, items: list) -> list:
        """Run ``items`` (in a batch with whatever else arrives) and wait for their rows."""
        if self.window <= 0 or not items:
            with self._serial:
                self.batches += 1
                self.items += len(items)
                return self.fn(items) if items else []
        return self.submit(items).result()

    def submit(self, items: list) -> Future:
        """Queue ``items`` for the next batch; the future gets their rows."""
        fut: Future = Future()
        with self._cv:
            if self._closed:
                raise UsageError("this model was unloaded while the request waited.", fix="Send the request again.")
            self._queue.append((items, fut))
            self._cv.notify()
        return fut

    async def run(self, items: list) -> list:
        """From async code: wait for the batch without holding a thread (serial mode uses one)."""
        if self.window <= 0 or not items:
            from starlette.concurrency import run_in_threadpool

            return await run_in_threadpool(self, items)
        import asyncio

        return await asyncio.wrap_future(self.submit(items))

    def _take(self) -> list[tuple[list, Future]]:
        with self._cv:
            while not self._queue and not self._closed:
                self._cv.wait()
            if self._closed:
                return []
            deadline = time.monotonic() + self.window
            while sum(len(i) for i, _ in self._queue) < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)
            taken, n = [], 0
            while self._queue and (not taken or n + len(self._queue[0][0]) <= self.max_batch):
                items, fut = self._queue.pop(0)
                taken.append((items, fut))
                n += len(items)
            return taken

    def _loop(self) -> None:
        while True:
            taken = self._take()
            if not taken:
                if self._closed:
                    return
                continue
            flat = [x for items, _ in taken for x in items]
            try:
                out = self.fn(flat)
                self.batches += 1
                self.items += len(flat)
            except BaseException as e:  # every waiting request gets the error, the thread lives on
                for _, fut in taken:
                    fut.set_exception(e)
                continue
            i = 0
            for items, fut in taken:
                fut.set_result(out[i:i + len(items)])
                i += len(items)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            pending, self._queue = self._queue, []
            self._cv.notify_all()
        for _, fut in pending:
            fut.set_exception(UsageError("the model was unloaded.", fix="Send the request again."))


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

@dataclass
class ServedClassifier:
    """A version ready for online requests: the loaded classifier behind a micro-batcher."""

    version: registry.Version  # what was asked for
    served_by: registry.Version  # what runs (an ONNX export of it, or itself)
    runtime: str
    labels: list[str]
    multi_label: bool
    batcher: MicroBatcher

    def classify(self, texts: list[str], top_k: int = 3) -> list[dict]:
        texts, chars_cut = cut([str(t) for t in texts])
        return self.shape(self.batcher(texts), chars_cut, top_k)

    async def aclassify(self, texts: list[str], top_k: int = 3) -> list[dict]:
        texts, chars_cut = cut([str(t) for t in texts])
        return self.shape(await self.batcher.run(texts), chars_cut, top_k)

    def shape(self, rows: list, chars_cut: list[bool], top_k: int) -> list[dict]:
        k = max(1, min(top_k, len(self.labels)))
        out = []
        for (probs, over), char_cut in zip(rows, chars_cut):
            order = np.argsort(-probs, kind="stable")[:k]
            r = {"label": self.labels[order[0]], "score": round(float(probs[order[0]]), 6),
                 "top": [{"label": self.labels[j], "score": round(float(probs[j]), 6)} for j in order],
                 "truncated": bool(over or char_cut)}
            if self.multi_label:
                r["labels"] = [self.labels[j] for j in np.flatnonzero(probs >= self.threshold)]
            out.append(r)
        return out

    @property
    def threshold(self) -> float:
        return float(self.served_by.manifest.get("threshold", 0.5))

    def describe(self) -> dict:
        return {"model": self.version.ref, "sha256": self.version.sha256, "runtime": self.runtime,
                "served_by": self.served_by.ref}


def onnx_export_of(ws: Workspace, v: registry.Version) -> registry.Version | None:
    """A registered ONNX version made from ``v`` (newest), if any."""
    if v.manifest.get("format") == "onnx":
        return None
    hits = [w for w in registry.versions(ws) if w.manifest.get("format") == "onnx"
            and (w.manifest.get("derived_from") or {}).get("sha256") == v.sha256]
    return hits[-1] if hits else None


def _proba_fn(ws: Workspace, clf) -> Callable[[list[str]], np.ndarray]:
    """Probabilities without the on-disk caches (one Parquet part per request would flood them)."""
    if getattr(clf, "method", None) == "head" and getattr(clf, "head", None) is not None and clf.base:
        base = get_model(ws, clf.base)
        if base.kind in EMBEDDING_KINDS:
            enc = load_encoder(ws, clf.base)
            return lambda texts: clf.head.proba(enc.encode(texts))
    return lambda texts: clf.predict_proba(texts)


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


class OnlineModels:
    """The server's loaded models for online requests: bounded, locked, one batcher per version."""

    def __init__(self, ws: Workspace, *, window: float = 0.005, max_batch: int = 128, prefer_onnx: bool = True,
                 model_threads: int | None = None):
        self.ws, self.window, self.max_batch, self.prefer_onnx = ws, window, max_batch, prefer_onnx
        self.model_threads = model_threads
        self._threads_set = False
        self._classifiers = ModelCache("served classifiers", on_evict=lambda s: s.batcher.close())
        self._encoders = ModelCache("served encoders", on_evict=lambda s: s[1].close())
        self._versions_seen = -1
        self._lock = threading.Lock()
        self._recent: dict[tuple[str, str], tuple[float, Any]] = {}  # (kind, ref) -> (when, served)

    REFRESH = 1.0  # seconds a resolved reference is reused: an alias move takes effect within this

    def recent(self, kind: str, ref: str):
        """The model served for ``ref`` if it was resolved less than REFRESH s ago (no database, no thread hop)."""
        hit = self._recent.get((kind, ref))
        if hit is not None and time.monotonic() - hit[0] < self.REFRESH:
            return hit[1]
        return None

    def _remember(self, kind: str, ref: str, value):
        if len(self._recent) > 10_000:
            self._recent.clear()
        self._recent[(kind, ref)] = (time.monotonic(), value)
        return value

    def _registry_changed(self) -> None:
        """A new or removed version may bring an ONNX export: drop the served table's choices."""
        n = self.ws.db.execute("SELECT COUNT(*), COALESCE(MAX(id), 0), COUNT(removed_at) FROM model_versions").fetchone()
        key = hash(tuple(n))
        with self._lock:
            if key != self._versions_seen:
                if self._versions_seen != -1:
                    self._classifiers.clear()
                self._versions_seen = key

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
        self._registry_changed()
        v = registry.resolve(self.ws, ref)

        def build() -> ServedClassifier:
            target = (onnx_export_of(self.ws, v) if self.prefer_onnx else None) or v
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
                                    MicroBatcher(run, window=self.window, max_batch=self.max_batch, name=v.ref))

        return self._remember("classifier", ref, self._classifiers.get_or_load(v.sha256, build, size=lambda s: 64 << 20))

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

            return enc, MicroBatcher(run, window=self.window, max_batch=self.max_batch, name=name), over

        return self._remember("encoder", name, self._encoders.get_or_load(model.sha256, build,
                                                                          size=lambda s: s[0].approx_bytes()))

    def stats(self) -> dict:
        """Per loaded model: model calls and texts so far (texts / calls is the mean batch)."""
        out = {}
        for key in self._classifiers.keys():
            s = self._classifiers.get(key)
            if s is not None:
                out[s.version.ref] = {"runtime": s.runtime, "calls": s.batcher.batches, "texts": s.batcher.items}
        for key in self._encoders.keys():
            e = self._encoders.get(key)
            if e is not None:
                out[e[0].name] = {"runtime": "encoder", "calls": e[1].batches, "texts": e[1].items}
        return {"batch_window_ms": self.window * 1000, "models": out}

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
