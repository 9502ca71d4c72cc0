"""The fast inference engine: a pinned version's ONNX graph (int8 by default) behind one call.

:func:`load_predictor` gives a :class:`Predictor` for a version: the cached
ONNX graph (:mod:`inhouse.pipeline.onnxcache`, int8 when it agrees with the
torch model, else fp32) run by ONNX Runtime on every core, or the torch
classifier when the version has no graph. :func:`predict_unique` is the one
function every engine (local and Ray) applies to a chunk's distinct texts, so
both give identical outputs: texts are tokenized once with the model's own
fast tokenizer, sorted by token length so that batches pad little, and cut
into batches of a token budget.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> p = load_predictor(ws, registry.resolve(ws, "intents@production"))
    >>> cols, tokens = predict_unique(p, ["I lost my card", "where is my refund"], top_k=2)
    >>> cols["label"], p.backend
    (['lost_or_stolen_card', 'Refund_not_showing_up'], 'onnx-int8')
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import registry
from ..classifiers.base import DecisionRule
from ..errors import InhouseError, MissingDependency, UsageError
from ..workspace.store import Workspace

BACKENDS = ("auto", "onnx", "torch")


@dataclass(frozen=True)
class EngineOptions:
    """How the engine runs: batch shape and threads (None: every core)."""

    batch_tokens: int = 2048  # padded tokens per ONNX Runtime call
    max_batch: int = 128
    threads: int | None = None  # cores ONNX Runtime uses: this many batches run at once, one core each
    cascade: bool = True  # load_fast_predictor: the version's prepared cascade answers the texts it is sure of

    def validate(self) -> "EngineOptions":
        if self.batch_tokens < 16 or self.max_batch < 1 or (self.threads is not None and self.threads < 1):
            raise UsageError("batch_tokens must be at least 16, max_batch and threads at least 1.")
        return self


class Predictor(ABC):
    """Probabilities for texts, and how many tokens they were (the model's own tokenizer)."""

    backend = "?"

    def __init__(self, version: registry.Version):
        m = version.manifest
        self.version = version
        self.rule = DecisionRule(m)  # abstention, text preparation, label choice: as every classifier does it
        self.labels: list[str] = list(m.get("labels") or [])
        self.multi_label = bool(m.get("multi_label"))
        self.threshold = float(m.get("threshold", 0.5))

    @property
    def sha256(self) -> str:
        return self.version.sha256

    concurrent_chunks = 1  # how many chunks may be computed at once (threads calling scores)

    def proba(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """``(probabilities (len(texts), labels) float32, tokens)``."""
        probs, _, tokens = self.scores(texts)
        return probs, tokens

    @abstractmethod
    def scores(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None, int]:
        """``(probabilities (len(texts), labels) float32, distance (len(texts),) or None, tokens)``: the
        distance to the training rows is there for versions that abstain by it (``rule.needs_distance``)."""

    def close(self) -> None:
        """Release threads this predictor started (none by default)."""

    def info(self) -> dict:
        return {"backend": self.backend}


class OnnxPredictor(Predictor):
    """ONNX Runtime over a graph folder (``model.onnx`` + ``tokenizer.json``), length-bucketed batches."""

    def __init__(self, version: registry.Version, folder: Path, *, max_length: int, precision: str,
                 options: EngineOptions = EngineOptions(), manifest: dict | None = None):
        super().__init__(version)
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as e:  # pragma: no cover - depends on the install
            raise MissingDependency("onnxruntime", "onnx", "The fast classify engine") from e
        self.folder, self.precision, self.options = Path(folder), precision, options
        self.manifest = manifest or {}
        self.backend = f"onnx-{precision}"
        self.max_length = int(max_length)
        tok = self.folder / "tokenizer.json"
        if not tok.is_file():
            raise UsageError(f"{version.ref}: the ONNX folder {self.folder} has no tokenizer.json (a fast tokenizer).")
        self.tokenizer = Tokenizer.from_file(str(tok))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length)
        self.pad_id = self._pad_id()
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        # Each Run is single-threaded and ``workers`` batches run at once on the one session (Run is
        # thread-safe and releases the GIL): no thread hand-off inside the ~100 small ops of a short-text
        # batch, and the Python work between batches (tokenizing, the cascade, writing) overlaps inference.
        # A batch's probabilities do not depend on the threads that computed it.
        self.workers = options.threads or max(1, len(os.sched_getaffinity(0)))
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.folder / "model.onnx"), opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = ["probabilities"] + (["distance"] if self.rule.needs_distance else [])
        if self.rule.needs_distance and "distance" not in {o.name for o in self.session.get_outputs()}:
            raise UsageError(f"{version.ref} abstains by distance, but the ONNX graph in {self.folder} has no "
                             "'distance' output.", fix="Remove that folder; the next classify builds it again.")
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="inhouse-onnx") if self.workers > 1 else None

    concurrent_chunks = 2  # scores may be called from two threads at once (LocalRunner overlaps chunks)

    def close(self) -> None:
        pool, self._pool = self._pool, None  # a later call runs its batches in the calling thread
        if pool is not None:
            pool.shutdown(wait=True)

    def _pad_id(self) -> int:
        pad = self.tokenizer.padding
        if pad and pad.get("pad_id") is not None:
            return int(pad["pad_id"])
        for t in ("[PAD]", "<pad>", "<|endoftext|>"):
            i = self.tokenizer.token_to_id(t)
            if i is not None:
                return int(i)
        return 0

    def scores(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None, int]:
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        dist = np.zeros(len(texts), dtype=np.float32) if self.rule.needs_distance else None
        if not texts:
            return out, dist, 0
        encs = self.tokenizer.encode_batch(self.rule.prepare(list(texts)), add_special_tokens=True)
        ids = [e.ids for e in encs]
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))

        def run(rows: np.ndarray) -> None:
            width = int(lengths[rows[-1]])
            input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, k in enumerate(rows):
                n = lengths[k]
                input_ids[r, :n] = ids[k]
                mask[r, :n] = 1
            feeds = {"input_ids": input_ids, "attention_mask": mask}
            got = self.session.run(self.outputs, {k: feeds[k] for k in self.inputs})
            out[rows] = got[0]
            if dist is not None:
                dist[rows] = got[1]

        batches = length_batches(lengths, self.options.batch_tokens, self.options.max_batch)
        pool = self._pool
        if pool is None or len(batches) == 1:
            for rows in batches:
                run(rows)
        else:
            for f in [pool.submit(run, rows) for rows in batches]:
                f.result()
        return out, dist, int(lengths.sum())

    prepared: str | None = None
    cascade_note: str | None = None

    def info(self) -> dict:
        parity = self.manifest.get("parity") or {}
        verdict = self.manifest.get("verdict") or {}
        return {"backend": self.backend, "precision": self.precision, "onnx_folder": str(self.folder),
                "agreement_with_torch": parity.get("agreement"), "parity_texts": parity.get("texts"),
                "verdict": verdict.get("rule"), "validation": verdict.get("chosen"),
                "fallback": self.manifest.get("fallback"), "prepared": self.prepared,
                **({"cascade": self.cascade_note} if self.cascade_note else {})}


class TorchPredictor(Predictor):
    """The version's own classifier (torch), for versions without an ONNX graph."""

    backend = "torch"

    def __init__(self, ws: Workspace, version: registry.Version, reason: str | None = None):
        from ..classifiers.load import load_classifier

        super().__init__(version)
        self.clf = load_classifier(ws, version)
        self.reason = reason
        self._tokenizer = None
        try:
            module = self.clf.encoder_module() if hasattr(self.clf, "encoder_module") else None
            self._tokenizer = getattr(module, "tokenizer", None)
        except InhouseError:
            self._tokenizer = None

    def scores(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None, int]:
        probs, dist = self.clf.predict_scores(list(texts))
        probs = np.asarray(probs, dtype=np.float32)
        if self._tokenizer is not None:
            tokens = sum(len(x) for x in self._tokenizer(list(texts), truncation=True)["input_ids"])
        else:  # no subword tokenizer (static embeddings): words
            tokens = sum(len(t.split()) for t in texts)
        return probs, dist, int(tokens)

    def info(self) -> dict:
        return {"backend": "torch", "fallback": self.reason}


def load_predictor(ws: Workspace, version: registry.Version, *, backend: str = "auto", sample: list[str] | None = None,
                   options: EngineOptions = EngineOptions()) -> Predictor:
    """The fastest faithful predictor for a verified version.

    ``auto``: the cached ONNX graph (int8 when its verdict holds, else fp32),
    torch when the version has no graph; ``onnx``: the graph or an error;
    ``torch``: the version's own classifier. The graph is prepared when the
    version is saved or promoted; when it is missing it is built here once and
    :meth:`Predictor.info` says so (``prepared``). The cascade in front of it is
    :func:`inhouse.pipeline.cascade.load_fast_predictor`'s. ``sample`` texts top
    up the parity check of a graph built here.
    """
    from .onnxcache import ensure_onnx

    if backend not in BACKENDS:
        raise UsageError(f"--backend must be one of {list(BACKENDS)}, found {backend!r}.")
    if not version.manifest.get("labels"):
        raise UsageError(f"{version.ref} is not a classifier (its manifest lists no labels).",
                         fix="Use a version made by: inhouse train")
    if backend == "torch":
        return TorchPredictor(ws, version, "asked for --backend torch")
    try:
        art = ensure_onnx(ws, version, sample=sample)
    except UsageError as e:
        if backend == "onnx":
            raise
        return TorchPredictor(ws, version, f"no ONNX graph: {e.message}")
    p = OnnxPredictor(version, art.path, max_length=int(art.manifest.get("max_length") or 256),
                      precision=art.precision, options=options.validate(), manifest=art.manifest)
    p.prepared = ("at save" if not art.built_now else
                  f"not prepared when the version was saved: ONNX graph built now, before the first row "
                  f"({art.manifest.get('seconds')} s); run: inhouse models prepare {version.ref}")
    return p


def length_batches(lengths: np.ndarray, budget: int, cap: int) -> list[np.ndarray]:
    """Row indices in batches of similar token length: sorted by length (stable), each batch at most ``cap``
    rows and ``budget`` padded tokens (a longer text alone when over it). The batches decide the
    probabilities of int8 graphs (activations are quantized per batch), so they depend on the texts only.

    >>> [b.tolist() for b in length_batches(np.array([5, 2, 9, 2, 3]), budget=8, cap=3)]
    [[1, 3], [4], [0], [2]]
    """
    order = np.argsort(lengths, kind="stable")
    batches, i = [], 0
    while i < len(order):
        j = i + 1
        while j < len(order) and j - i < cap and (j - i + 1) * lengths[order[j]] <= budget:
            j += 1
        batches.append(order[i:j])
        i = j
    return batches


# ----------------------------------------------------------- chunk work ----

def predict_unique(predictor: Predictor, texts: list[str], *, top_k: int = 3, abstain: bool = True
                   ) -> tuple[dict[str, list], int]:
    """Label, score, top-k (and labels for multi-label models) of distinct ``texts``; the tokens they were.

    The one computation of every engine: a chunk's distinct texts in first-seen
    order go in whole, so the local and Ray engines give identical outputs.
    """
    probs, distance, tokens = predictor.scores(texts)
    return decide(predictor, probs, top_k, abstain=abstain, distance=distance), tokens


def decide(predictor: Predictor, probs: np.ndarray, top_k: int, *, abstain: bool = True,
           distance: np.ndarray | None = None) -> dict[str, list]:
    """Columns of the answers: ``label`` (the version's own rule: ``other`` where it abstains, unless
    ``abstain=False``), ``best_label`` (the most likely in-scope label), ``score`` (its probability),
    ``abstained``, and the top-k labels and scores."""
    k = max(1, min(top_k, len(predictor.labels)))
    labels = predictor.labels
    rule = predictor.rule
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    rows = np.arange(len(probs))[:, None]
    top_p = probs[rows, top].astype(np.float64)
    if predictor.multi_label or not len(probs):
        best = [labels[r[0]] for r in top]
        score = top_p[:, 0].tolist() if len(top_p) else []
        abstained = [False] * len(probs)
    else:
        j, p = rule.best_in_scope(probs)
        best, score = [labels[x] for x in j], [float(x) for x in p]
        abstained = rule.abstains(probs, distance).tolist() if abstain else [False] * len(probs)
    out = {"label": [rule.other_label if a else b for a, b in zip(abstained, best)], "best_label": best,
           "score": score, "abstained": [bool(a) for a in abstained],
           "top_labels": [[labels[j] for j in r] for r in top], "top_scores": np.round(top_p, 6).tolist()}
    if predictor.multi_label:
        out["labels"] = [[labels[j] for j in np.flatnonzero(p >= predictor.threshold)] for p in probs]
    return out
