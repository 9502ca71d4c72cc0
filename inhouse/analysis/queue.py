"""Which documents to label next: the ones a model is least sure of, or a spread of the data when there is none.

* **uncertainty**: the current model's probabilities on unlabelled documents;
  the smallest margin between the top two classes comes first, measured as
  ``log p1 − log p2``: a confident model (a full fine-tune says 0.9999… for
  nearly everything) rounds ``p1 − p2`` to exactly 1.0 in float32 for most
  documents, so that difference could not order them and the queue showed
  documents at 100 % confidence; the log ratio still tells them apart.
* **diversity**: farthest-first traversal (k-means++'s deterministic cousin)
  over document vectors, so the queue covers the data instead of one corner:
  the embeddings the workspace already holds (from the latest discovery's
  encoder), else cheap hashed word counts.
* **auto**: uncertainty when a model is given or one was trained on the
  dataset, else diversity; the result says which and why.

At most ``MAX_CANDIDATES`` unlabelled documents are considered (a seeded
sample), so a queue costs the same on a large dataset. The same seed gives the
same queue.

    >>> import numpy as np
    >>> uncertainty_order(np.array([[0.9, 0.1], [0.55, 0.45], [0.7, 0.3]]), 2).tolist()
    [1, 2]
    >>> saturated = np.array([[1.0, 1e-11], [1.0, 2e-8], [1.0, 1e-13]], dtype=np.float32)
    >>> margins(saturated).tolist(), uncertainty_order(saturated, 3).tolist()
    ([1.0, 1.0, 1.0], [1, 0, 2])
    >>> farthest_first(np.array([[1.0, 0], [0.99, 0.14], [0, 1.0]]), 2, seed=0).tolist()
    [0, 2]

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> q = suggest(ws, "banking77", limit=5)
    >>> q.strategy, q.reason
    ('diversity', 'no trained model for this dataset yet: diversity (documents spread over the data)')
"""

from __future__ import annotations

import re
import zlib
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import NotFound, UsageError
from ..workspace.store import Workspace

STRATEGIES = ("auto", "uncertainty", "diversity")
MAX_CANDIDATES = 3000
MAX_LIMIT = 200
HASH_DIM = 512
_WORD = re.compile(r"\w+")


@dataclass
class QueueResult:
    """The suggested documents, best first, and how they were chosen."""

    dataset: str
    strategy: str  # "uncertainty" | "diversity"
    reason: str
    model: str | None
    label_col: str
    unlabelled: int  # unlabelled documents (before exclude)
    candidates: int  # of them, how many were scored
    vectors: str | None  # diversity: "embeddings:<model>" | "hashed-words"
    seed: int
    items: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def margins(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per row (1.0 for a single class)."""
    if probs.shape[1] < 2:
        return np.ones(len(probs), dtype=np.float32)
    top = np.sort(probs, axis=1)
    return (top[:, -1] - top[:, -2]).astype(np.float32)


def log_margins(probs: np.ndarray) -> np.ndarray:
    """``log p1 − log p2`` of the top two probabilities per row (inf for a single class): unlike ``p1 − p2``
    it does not round to 1.0 for a confident model."""
    if probs.shape[1] < 2:
        return np.full(len(probs), np.inf)
    top = np.sort(probs.astype(np.float64), axis=1)
    tiny = np.finfo(np.float64).tiny
    return np.log(np.maximum(top[:, -1], tiny)) - np.log(np.maximum(top[:, -2], tiny))


def uncertainty_order(probs: np.ndarray, limit: int) -> np.ndarray:
    """Row indices of the ``limit`` smallest top-2 margins (in log space), smallest first (ties by row order)."""
    return np.argsort(log_margins(probs), kind="stable")[:limit]


def farthest_first(vectors: np.ndarray, limit: int, *, seed: int = 0) -> np.ndarray:
    """``limit`` row indices, each the farthest (cosine) from those picked before; the first is seeded."""
    n = len(vectors)
    if n == 0 or limit <= 0:
        return np.zeros(0, dtype=np.int64)
    v = vectors.astype(np.float32)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    first = int(np.random.default_rng(seed).integers(n))
    picked = [first]
    dist = 1.0 - v @ v[first]
    dist[first] = -np.inf
    while len(picked) < min(limit, n):
        nxt = int(np.argmax(dist))
        picked.append(nxt)
        dist = np.minimum(dist, 1.0 - v @ v[nxt])
        dist[picked] = -np.inf
    return np.asarray(picked, dtype=np.int64)


def hashed_vectors(texts: list[str], dim: int = HASH_DIM) -> np.ndarray:
    """Bag-of-words counts hashed into ``dim`` buckets (stable across runs), L2-normalised."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in _WORD.findall((t or "").lower()):
            out[i, zlib.crc32(w.encode("utf-8")) % dim] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def trained_on(ws: Workspace, dataset: str) -> str | None:
    """The newest classifier version trained on ``dataset`` (a ref like ``intents@3``), or None."""
    from .. import registry

    found = [v for v in registry.versions(ws) if v.manifest.get("labels")
             and (v.manifest.get("dataset") or {}).get("name") == dataset]
    if not found:
        return None
    best = max(found, key=lambda v: (v.manifest.get("created_at") or 0, v.version))
    return best.ref


def _stored_embeddings(ws: Workspace, dataset: str, texts: list[str]) -> tuple[np.ndarray | None, str | None]:
    """Vectors of ``texts`` from the embedding cache of the latest discovery's encoder, when all are there."""
    from ..models.embeddings import EmbeddingCache, prepare_text
    from ..workspace.files import text_hash

    info = ws.dataset(dataset)
    row = ws.db.execute("SELECT model, model_sha256 FROM discoveries WHERE dataset_id = ? ORDER BY run_id DESC LIMIT 1",
                        (info.id,)).fetchone()
    if row is None or not texts:
        return None, None
    hashes = [text_hash(prepare_text(t)) for t in texts]
    found = EmbeddingCache(ws, row["model_sha256"]).get(hashes)
    if any(h not in found for h in hashes):
        return None, None
    return np.stack([found[h] for h in hashes]), row["model"]


def suggest(ws: Workspace, dataset: str, *, model: str | None = None, strategy: str = "auto", limit: int = 20,
            exclude: list[int] | None = None, seed: int = 0, label_col: str | None = None,
            among: list[int] | None = None) -> QueueResult:
    """The next ``limit`` unlabelled documents of ``dataset`` worth labelling (see the module docstring).

    ``among``: only these doc ids (e.g. a candidate category's documents, to confirm them one at a time);
    ``unlabelled`` then counts those of them without a label."""
    from ..data.search import documents_by_id, matching_ids
    from ..workspace.documents import read_documents
    from ..workspace.labelsets import label_columns, resolve_label_col

    if strategy not in STRATEGIES:
        raise UsageError(f"strategy {strategy!r} is unknown; expected one of {list(STRATEGIES)}.",
                         fix="Use auto (uncertainty with a model, else diversity).")
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"limit must be 1..{MAX_LIMIT}, found {limit}.")
    col = resolve_label_col(ws, dataset, label_col, create=True)  # a new label set: nothing labelled in it yet
    fresh = col.kind == "people" and col.name not in {c.name for c in label_columns(ws, dataset)}
    ref, reason = model, ""
    if strategy == "diversity":
        ref, reason = None, "diversity was asked for: documents spread over the data"
    elif model is not None:
        reason = f"uncertainty with model {model}: the documents it is least sure of (smallest top-2 margin)"
    else:
        ref = trained_on(ws, dataset)
        if ref is None and strategy == "uncertainty":
            raise NotFound(f"uncertainty sampling needs a model, and no model was trained on {dataset!r} yet.",
                           fix="Pass model=NAME@VERSION, train one first, or use strategy=diversity.")
        reason = (f"newest model trained on this dataset, {ref}: the documents it is least sure of "
                  "(smallest top-2 margin)" if ref else
                  "no trained model for this dataset yet: diversity (documents spread over the data)")
    clf = None
    if ref is not None:
        from ..classifiers.load import load_classifier

        clf = load_classifier(ws, ref)  # NotFound for a ref that names no version
    # the ids (and labels) of every document, but the texts of the sampled candidates only: a million
    # documents' texts are seconds to read, three thousand are milliseconds
    if fresh:
        ids_all = matching_ids(ws, dataset)
    elif col.kind == "ingest":  # the dataset's own label column: found in DuckDB, people's labels laid over
        ids_all = matching_ids(ws, dataset, unlabelled=True)
    else:
        df = read_documents(ws, dataset, columns=["doc_id", "label"], label_col=col.name)
        ids_all = df.loc[df["label"].isna(), "doc_id"].to_numpy(dtype=np.int64)
    if among is not None:
        ids_all = ids_all[np.isin(ids_all, np.asarray(list(among), dtype=np.int64))]
    unlabelled = len(ids_all)
    if exclude:
        ids_all = ids_all[~np.isin(ids_all, [int(x) for x in exclude])]
    if len(ids_all) > MAX_CANDIDATES:
        ids_all = ids_all[np.sort(np.random.default_rng(seed).choice(len(ids_all), MAX_CANDIDATES, replace=False))]
    df = documents_by_id(ws, dataset, ids_all.tolist())
    texts = df["text"].tolist()
    ids = df["doc_id"].astype(np.int64).tolist()
    out = QueueResult(dataset, "uncertainty" if clf else "diversity", reason, clf.version.ref if clf else None, col.name,
                      unlabelled, len(df), None, seed)
    if not ids:
        return out
    if clf is not None:
        from ..classifiers.predict import cached_proba

        probs = cached_proba(clf, texts, df["text_hash"].tolist())
        order = uncertainty_order(probs, limit)
        m, lm = margins(probs), log_margins(probs)
        for i in order:
            top = np.argsort(-probs[i], kind="stable")[:3]
            out.items.append({"doc_id": ids[i], "text": texts[i], "score": round(float(m[i]), 6),
                              "log_margin": round(float(lm[i]), 4),
                              "predicted": clf.labels[int(top[0])],
                              "top": [{"label": clf.labels[int(k)], "p": round(float(probs[i, k]), 6)} for k in top]})
        return out
    vecs, enc = _stored_embeddings(ws, dataset, texts)
    out.vectors = f"embeddings:{enc}" if vecs is not None else "hashed-words"
    if vecs is None:
        vecs = hashed_vectors(texts)
    for rank, i in enumerate(farthest_first(vecs, limit, seed=seed)):
        out.items.append({"doc_id": ids[i], "text": texts[i], "score": rank, "predicted": None, "top": []})
    return out
