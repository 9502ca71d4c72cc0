"""The cascade: a static-embedding model answers the texts it is sure of, the version's transformer the rest.

Built once per version when it is saved or promoted (:mod:`inhouse.pipeline.prepare`),
kept under ``derived/cascade/<version sha256>/`` (``head.npz`` + ``manifest.json``):
a logistic-regression head on wordllama vectors (weights inside the wheel, tens
of thousands of texts a second) trained on the version's own training rows, and
the confidence over which it answers. That threshold is chosen on the
validation rows, walking down from the cascade's surest row for as long as the
mix (cascade where sure, transformer elsewhere) stays within half of
:data:`~inhouse.pipeline.verdict.MAX_ACCURACY_LOSS` of the transformer alone,
on all rows and on each half, the highest of the three kept. The loss is also estimated out of fold (the
threshold picked on one half is scored on the other, both ways), and the
cascade is used only when both losses are within the bound; the manifest records share, agreement and accuracy either way.
Where the cascade defers, the answer is the transformer's own; it also defers
wherever the version's own rule would abstain on its probabilities, so the
transformer alone decides what is ``other``. For a version of the distance
rule (abstaining far from its training rows in the transformer's space, which
the cascade never computes) it answers only texts near its training rows in
wordllama space, under a distance chosen on pseudo-out-of-scope classes so that
it (almost) never answers a text the version would turn away
(:mod:`inhouse.pipeline.cascade_gate`, recorded as ``distance_gate``).

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> c = load_cascade(ws, version)
    >>> c.use, round(c.manifest["validation"]["share"], 2)
    (True, 0.55)
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import registry
from ..errors import InhouseError
from ..workspace.files import atomic_dir
from ..workspace.store import Workspace
from ..classifiers.distance import Distance
from .cascade_gate import softmax
from .engine import EngineOptions, OnnxPredictor, Predictor, load_predictor
from .verdict import MAX_ACCURACY_LOSS, LabelledRows

FORMAT = "inhouse.cascade.v1"
ENCODER = "wordllama"
MANIFEST = "manifest.json"


def cascade_dir(ws: Workspace, sha256: str) -> Path:
    return ws.home / "derived" / "cascade" / sha256


@dataclass(frozen=True)
class Cascade:
    """The static-embedding head of a version and the confidence over which it answers."""

    W: np.ndarray
    b: np.ndarray
    threshold: float
    manifest: dict
    embed: object  # texts -> L2-normalised vectors (the wordllama model)
    distance: Distance | None = None  # the training rows in wordllama space (versions of the distance rule)

    @property
    def use(self) -> bool:
        return bool(self.manifest.get("use"))

    @property
    def tau(self) -> float:
        """The wordllama distance under which it may answer (versions of the distance rule; else inf)."""
        g = self.manifest.get("distance_gate") or {}
        return float(g["tau"]) if g.get("tau") is not None else float("inf")

    def vectors(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The texts' wordllama vectors and the cascade's probabilities for them."""
        V = self.embed(texts)
        return V, softmax(V @ self.W.T + self.b).astype(np.float32)

    def scores(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and (versions of the distance rule) the wordllama distance to the nearest training row."""
        V, probs = self.vectors(texts)
        return probs, self.distance.score(V) if self.distance is not None else None

    def proba(self, texts: list[str]) -> np.ndarray:
        return self.scores(texts)[0]


def _embedder(ws: Workspace):
    """texts -> L2-normalised wordllama vectors, embedded in order of length (batches pad little: ~2x faster)."""
    from ..models.encoders import load_encoder

    wl = load_encoder(ws, ENCODER).wl

    def embed(texts: list[str]) -> np.ndarray:
        order = np.argsort(np.fromiter((len(t) for t in texts), np.int64, len(texts)), kind="stable")
        out = np.empty((len(texts), 0), np.float32)
        if len(texts):
            vecs = np.asarray(wl.embed([texts[i] for i in order], norm=True, batch_size=128), dtype=np.float32)
            out = np.empty_like(vecs)
            out[order] = vecs
        return out

    return embed


def read_cascade(ws: Workspace, sha256: str) -> dict | None:
    try:
        return json.loads((cascade_dir(ws, sha256) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def load_cascade(ws: Workspace, version: registry.Version) -> Cascade | None:
    """The prepared cascade of ``version``, or None when it was not prepared (nothing is built here)."""
    m = read_cascade(ws, version.sha256)
    if m is None or m.get("format") != FORMAT:
        return None
    if not m.get("use"):
        return Cascade(np.zeros((0, 0)), np.zeros(0), 1.0, m, None)
    try:
        with np.load(cascade_dir(ws, version.sha256) / "head.npz") as z:
            W, b = z["W"].astype(np.float32), z["b"].astype(np.float32)
            dist = Distance(z["reference"]) if "reference" in z.files else None
        if m.get("distance_gate") and dist is None:
            return None  # a gate without its reference: not this cascade (rebuilt by prepare)
        return Cascade(W, b, float(m["threshold"]), m, _embedder(ws), dist)
    except (OSError, KeyError, ValueError, InhouseError):
        return None


# ------------------------------------------------------------------ build ----

def _fit_head(X: np.ndarray, y: np.ndarray, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=10.0, max_iter=300).fit(X, y)
    W = np.zeros((n_labels, X.shape[1]), np.float32)
    b = np.full(n_labels, -30.0, np.float32)  # labels never seen in training: never chosen
    W[lr.classes_], b[lr.classes_] = lr.coef_, lr.intercept_
    return W, b


def choose_threshold(conf: np.ndarray, cas: np.ndarray, tra: np.ndarray, gold: np.ndarray,
                     max_loss: float = MAX_ACCURACY_LOSS) -> float:
    """The lowest confidence down to which the cascade may answer, walking down from its surest row, with the
    mix never more than ``max_loss`` less accurate than the transformer on the way (1.0: nowhere safe).

    >>> choose_threshold(np.array([.9, .8, .7, .6]), np.array([1, 1, 0, 0]), np.array([1, 1, 1, 1]),
    ...                  np.array([1, 1, 1, 1]), 0.0)
    0.8
    """
    o = np.argsort(-conf, kind="stable")
    gain = np.cumsum((cas[o] == gold[o]).astype(int) - (tra[o] == gold[o]).astype(int)) / max(len(gold), 1)
    bad = np.flatnonzero(gain < -max_loss - 1e-12)
    k = min(bad[0] if len(bad) else len(o), int((conf >= 0).sum()))  # rows answered (never a negative conf)
    return float(conf[o[k - 1]]) if k > 0 else 1.0


def _figures(conf, cas, tra, gold, t) -> dict:
    sure = conf >= t
    mix = np.where(sure, cas, tra)
    return {"texts": int(len(gold)), "share": float(sure.mean()), "agreement": float((mix == tra).mean()),
            "accuracy": float((mix == gold).mean()), "accuracy_transformer": float((tra == gold).mean()),
            "accuracy_loss": float((tra == gold).mean() - (mix == gold).mean()),
            "answered_accuracy": float((cas[sure] == gold[sure]).mean()) if sure.any() else None}


def evaluate(conf, cas, tra, gold, max_loss: float = MAX_ACCURACY_LOSS, seed: int = 0, floor: float = 0.0) -> dict:
    """The threshold (the highest of those chosen with half of ``max_loss`` on all validation rows and on
    each half, and ``floor``), and the loss out of fold (each half scored at the threshold chosen on the
    other): used only when both losses are within ``max_loss`` and it answers something."""
    idx = np.random.default_rng(seed).permutation(len(gold))
    halves = [idx[: len(idx) // 2], idx[len(idx) // 2:]]
    oof = np.zeros(len(gold), bool)  # cascade answers, out of fold
    inner = max_loss / 2  # chosen with half the bound, judged (out of fold) with all of it
    chosen = [choose_threshold(conf, cas, tra, gold, inner)]
    for a, b in (halves, halves[::-1]):
        chosen.append(max(floor, choose_threshold(conf[a], cas[a], tra[a], gold[a], inner)))
        oof[b] = conf[b] >= chosen[-1]
    mix = np.where(oof, cas, tra)
    out_of_fold = {"share": float(oof.mean()), "agreement": float((mix == tra).mean()),
                   "accuracy": float((mix == gold).mean()),
                   "accuracy_loss": float((tra == gold).mean() - (mix == gold).mean())}
    t = max(chosen + [floor])  # the most careful of the three
    summary = _figures(conf, cas, tra, gold, t)
    use = (out_of_fold["accuracy_loss"] <= max_loss + 1e-12 and summary["accuracy_loss"] <= max_loss + 1e-12
           and summary["share"] > 0)
    return {"threshold": t, "use": bool(use), "validation": summary,
            "out_of_fold": out_of_fold, "max_accuracy_loss": max_loss}


def build_cascade(ws: Workspace, version: registry.Version, transformer: Predictor,
                  rows: LabelledRows | None) -> dict:
    """Train the static head on the training rows, choose and judge its threshold on the validation rows."""
    t0 = time.time()
    folder = cascade_dir(ws, version.sha256)
    base = {"format": FORMAT, "encoder": ENCODER, "source": {"ref": version.ref, "sha256": version.sha256},
            "transformer": transformer.backend}
    train_texts, y_train = rows.part(False) if rows is not None else ([], None)
    val_texts, gold = rows.part(True) if rows is not None else ([], None)
    if version.manifest.get("multi_label") or len(val_texts) < 20 or len(set(y_train.tolist())) < 2:
        m = {**base, "use": False, "reason": "needs a single-label version with labelled validation rows (20 or more)"}
    else:
        embed, rule = _embedder(ws), transformer.rule
        V = embed(rows.texts)
        is_val = rows.is_val.astype(bool)
        W, b = _fit_head(V[~is_val], rows.y[~is_val], len(transformer.labels))
        cas_p = softmax(V[is_val] @ W.T + b)
        t_probs, t_dist, _ = transformer.scores(val_texts)
        tra = t_probs.argmax(1)
        conf = np.where(rule.abstains(cas_p, _no_distance(rule, cas_p)), -1.0, cas_p.max(1))  # never where it abstains
        m = {**base, **evaluate(conf, cas_p.argmax(1), tra, gold)}
        if m["use"] and rule.needs_distance:  # and only near its training rows (inhouse.pipeline.cascade_gate)
            from .cascade_gate import distance_gate

            g, d_val, reference = distance_gate(version, rows, V, cas_p, t_probs, t_dist, rule, m["threshold"],
                                                _fit_head)
            m = {**base, **evaluate(np.where(d_val < (g["tau"] or 0.0), conf, -1.0), cas_p.argmax(1), tra, gold,
                                    floor=m["threshold"]), "distance_gate": g}
            m["use"] = m["use"] and g["use"]
            if not g["use"]:
                m["reason"] = (f"the cascade would answer {g.get('leak_out_of_fold', 0):.2%} of rows the version turns "
                               f"away (out of fold), over {MAX_ACCURACY_LOSS:.1%}")
        if not m["use"] and "reason" not in m:
            m["reason"] = (f"out of fold the cascade lost {m['out_of_fold']['accuracy_loss']:.2%} of accuracy, "
                           f"over {MAX_ACCURACY_LOSS:.1%} (or no confidence was safe)")
    m.update(created_at=time.time(), seconds=round(time.time() - t0, 2))
    with atomic_dir(folder) as tmp:
        if m.get("use"):
            np.savez(tmp / "head.npz", W=W, b=b, **({"reference": reference} if "distance_gate" in m else {}))
        (tmp / MANIFEST).write_text(json.dumps(m, indent=2, sort_keys=True), encoding="utf-8")
    return m


def gated_cascade(ws: Workspace, version: registry.Version, transformer: Predictor, rows: LabelledRows,
                  threshold: float) -> Cascade:
    """The cascade of a version of the distance rule at ``threshold`` with its distance gate, whatever its
    verdict (the steps of :func:`build_cascade`, nothing written: for benchmarks and tests)."""
    from .cascade_gate import distance_gate

    embed, is_val = _embedder(ws), rows.is_val.astype(bool)
    V = embed(rows.texts)
    W, b = _fit_head(V[~is_val], rows.y[~is_val], len(transformer.labels))
    t_probs, t_dist, _ = transformer.scores(rows.part(True)[0])
    g, _, ref = distance_gate(version, rows, V, softmax(V[is_val] @ W.T + b), t_probs, t_dist, transformer.rule,
                              threshold, _fit_head)
    return Cascade(W, b, threshold, {"use": True, "threshold": threshold, "distance_gate": g}, embed, Distance(ref))


def _no_distance(rule, probs: np.ndarray) -> np.ndarray | None:
    """A distance of 0 for each row (the distance rule's probability part alone), None for other rules."""
    return np.zeros(len(probs), np.float32) if rule.needs_distance else None


# -------------------------------------------------------------- predictor ----

def load_fast_predictor(ws: Workspace, version: registry.Version, *, backend: str = "auto",
                        sample: list[str] | None = None, options: EngineOptions = EngineOptions()) -> Predictor:
    """:func:`inhouse.pipeline.engine.load_predictor`, with the version's cascade in front when
    ``options.cascade``, the graph is ONNX and the cascade was prepared and passed its verdict."""
    p = load_predictor(ws, version, backend=backend, sample=sample, options=options)
    return with_cascade(ws, version, p) if options.cascade and isinstance(p, OnnxPredictor) else p


def with_cascade(ws: Workspace, version: registry.Version, p: OnnxPredictor) -> Predictor:
    """``p`` behind the prepared cascade; ``p`` itself (with a note why) when there is none or it may not answer."""
    c = load_cascade(ws, version)
    if c is None:
        p.cascade_note = f"no cascade prepared (transformer only); run: inhouse models prepare {version.ref}"
        return p
    if not c.use:
        p.cascade_note = f"cascade not used: {c.manifest.get('reason')}"
        return p
    return CascadePredictor(version, p, c)


class CascadePredictor(Predictor):
    """The cascade's probabilities where it is sure, the transformer's (``inner``) everywhere else."""

    def __init__(self, version: registry.Version, inner: Predictor, cascade: Cascade):
        super().__init__(version)
        self.inner, self.cascade = inner, cascade
        self.backend = f"cascade({ENCODER})+{inner.backend}"
        self.answered = self.seen = 0
        self.concurrent_chunks = inner.concurrent_chunks
        self._count = threading.Lock()  # chunks may be computed in two threads at once

    def close(self) -> None:
        self.inner.close()

    def sure(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The cascade's probabilities and where it answers: sure enough, and not where the version's own
        rule would abstain on them (the transformer decides those, so the cascade never adds an ``other``)."""
        if not texts:
            return np.zeros((0, len(self.labels)), np.float32), np.zeros(0, bool)
        V, probs = self.cascade.vectors(list(texts))
        sure = (probs.max(axis=1) >= self.cascade.threshold) & ~self.rule.abstains(probs, _no_distance(self.rule, probs))
        if self.rule.needs_distance:  # and near its training rows, where the version would not turn it away
            if self.cascade.distance is None:
                sure[:] = False
            else:  # measured only where it could answer: the nearest-row search is most of the cascade's CPU
                rows = np.flatnonzero(sure)
                if len(rows):
                    sure[rows] = self.cascade.distance.score(V[rows]) < self.cascade.tau
        with self._count:
            self.answered += int(sure.sum())
            self.seen += len(texts)
        return probs, sure

    def scores(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None, int]:
        """Where the cascade answers, its probabilities and (distance rule) a distance of 0: it answers only
        rows the version would not turn away, so the rule must not turn them away for lack of a distance."""
        probs, sure = self.sure(texts)
        dist = np.zeros(len(texts), np.float32) if self.rule.needs_distance else None
        rest = np.flatnonzero(~sure)
        tokens = 0
        if len(rest):
            inner, d, tokens = self.inner.scores([texts[i] for i in rest])
            probs[rest] = inner
            if dist is not None:
                dist[rest] = d
        return probs, dist, tokens

    def info(self) -> dict:
        v = self.cascade.manifest.get("validation") or {}
        return {**self.inner.info(), "backend": self.backend, "cascade": {
            "encoder": ENCODER, "threshold": self.cascade.threshold, "answered": self.answered,
            "share": round(self.answered / self.seen, 4) if self.seen else None,
            "validation_share": v.get("share"), "validation_agreement": v.get("agreement"),
            "validation_accuracy": v.get("accuracy"), "validation_accuracy_transformer": v.get("accuracy_transformer"),
            "out_of_fold": self.cascade.manifest.get("out_of_fold"),
            **({"distance_gate": self.cascade.manifest["distance_gate"]}
               if self.cascade.manifest.get("distance_gate") else {})}}
