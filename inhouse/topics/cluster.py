"""Topic clustering that picks the number of topics and gives the same answer every run.

:class:`TopicClusterer` turns document vectors into topics in four steps:

1. **Micro-clusters.** Spherical k-means (our own, seeded, in numpy) cuts the
   space into ``m`` small convex cells (about one per 8 documents, at most
   ``max_micro``). Above ``pca_above`` documents the vectors are first projected
   with PCA to ``pca_dims`` dimensions, and k-means is fitted on a sample; every
   document is then assigned to its nearest cell in one pass.
2. **Neighbour graph.** Each document of a sample (at most ``graph_sample``)
   links to its ``n_neighbors`` nearest neighbours in the sample; the links are
   summed per pair of cells, giving a small weighted graph of cells.
3. **Communities.** Louvain modularity (resolution 1, seeded) groups the cells
   into topics, so the number of topics is the one the neighbour structure
   supports; ``n_topics`` forces an exact number (greedy modularity merging).
4. **Small topics** (under ``min_topic_size`` documents) join the topic they
   share most links with, or, with ``outliers=True``, become topic ``-1``
   together with documents that lie beyond the Tukey fence (Q1 - 1.5 IQR) of
   their topic's similarity to its centre.
5. **Refinement.** A few spherical k-means steps from the community centres.
   Where the neighbour graph supports the topics (at least ``vote_purity`` of
   the sampled documents' neighbour links stay inside a community: intent
   data, 0.94 on banking77, against 0.59-0.64 on question types, emotions
   and complaint reasons), a document's score for a topic also counts
   ``vote`` times the share of its neighbours in it, so topics that are not
   round (one intent, many phrasings) stay whole; elsewhere the centres alone
   decide. ``neighbour_purity_`` and ``voted_`` record what was chosen.

Topics are numbered by size (largest first, ties by first document), so equal
inputs and seed give identical labels. Memory stays near the input's size: one
million 64-dimensional float32 vectors are 256 MB.

    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(c, 0.1, (100, 8)) for c in np.eye(8)[:3]])
    >>> TopicClusterer(seed=0).fit(X).n_topics_
    3
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

CHUNK = 4096


@dataclass
class ClusterConfig:
    """How :class:`TopicClusterer` works; serialised into every discovery run."""

    n_topics: int | None = None  # None: chosen by modularity
    seed: int = 0
    outliers: bool = False
    min_topic_size: int = 10
    n_neighbors: int = 10
    resolution: float = 1.0
    docs_per_micro: int = 8
    max_micro: int = 1000
    graph_sample: int = 20_000
    kmeans_sample: int = 100_000
    pca_above: int = 50_000
    pca_dims: int = 64
    micro_iter: int = 10  # Lloyd iterations of the micro-clusters
    refine: int = 10  # Lloyd iterations from the community centres (0: keep the communities as they are)
    vote: float = 0.15  # weight of the neighbours' votes in the refinement, where the graph supports the topics
    vote_purity: float = 0.8  # share of neighbour links inside communities from which votes count (> 1: never)
    copy: bool = True  # False: normalise the caller's float32 array in place (saves its size in memory)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("copy")  # how memory is used, not what is computed
        return d


def normalize(X: np.ndarray, *, inplace: bool = False) -> np.ndarray:
    """Rows scaled to unit length, as float32 (in place when asked and ``X`` is float32 already)."""
    X = np.asarray(X, dtype=np.float32)
    norms = np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    return np.divide(X, norms, out=X) if inplace else X / norms


def nearest(X: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of and cosine similarity to the nearest row of ``C`` for each row of ``X``."""
    idx = np.empty(len(X), dtype=np.int32)
    sim = np.empty(len(X), dtype=np.float32)
    for i in range(0, len(X), CHUNK):
        S = X[i:i + CHUNK] @ C.T
        j = S.argmax(axis=1)
        idx[i:i + CHUNK] = j
        sim[i:i + CHUNK] = S[np.arange(len(j)), j]
    return idx, sim


class PCA:
    """Principal components from the exact covariance of a sample (deterministic)."""

    def __init__(self, dims: int):
        self.dims = dims

    def fit(self, X: np.ndarray) -> "PCA":
        X = np.asarray(X, dtype=np.float64)
        self.mean_ = X.mean(axis=0)
        cov = np.cov((X - self.mean_).T)
        w, V = np.linalg.eigh(cov)
        order = np.argsort(-w, kind="stable")[: self.dims]
        V = V[:, order]
        V *= np.where(V[np.abs(V).argmax(axis=0), np.arange(V.shape[1])] < 0, -1.0, 1.0)  # fixed signs
        self.components_ = V.astype(np.float32)
        self.explained_ = float(w[order].sum() / max(w.sum(), 1e-12))
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        out = np.empty((len(X), self.components_.shape[1]), dtype=np.float32)
        mean = self.mean_.astype(np.float32)
        for i in range(0, len(X), CHUNK * 16):
            out[i:i + CHUNK * 16] = (X[i:i + CHUNK * 16] - mean) @ self.components_
        return normalize(out)


def spherical_kmeans(X: np.ndarray, k: int, *, seed: int = 0, max_iter: int = 10,
                     tol: float = 1e-5) -> np.ndarray:
    """Centres (unit vectors) of ``k`` spherical k-means clusters of the rows of ``X``.

    >>> X = normalize(np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]]))
    >>> spherical_kmeans(X, 2).shape
    (2, 2)
    """
    import scipy.sparse as sp

    k = max(1, min(k, len(X)))
    rng = np.random.default_rng(seed)
    C = X[np.sort(rng.choice(len(X), k, replace=False))].copy()  # random rows: fine for small cells
    prev = -np.inf
    for _ in range(max_iter):
        labels, sims = nearest(X, C)
        member = sp.csr_matrix((np.ones(len(X), np.float32), (labels, np.arange(len(X)))), shape=(len(C), len(X)))
        sums = np.asarray(member @ X)
        filled = np.asarray(member.sum(axis=1)).ravel() > 0
        C = normalize(np.where(filled[:, None], sums, C))
        score = float(sims.astype(np.float64).mean())
        if score - prev < tol:
            break
        prev = score
    labels, _ = nearest(X, C)
    return C[np.unique(labels)]


def topic_sums(X: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Sum of the rows of ``X`` per topic ``0..k-1``; rows labelled ``-1`` are left out."""
    import scipy.sparse as sp

    inside = np.flatnonzero(labels >= 0)
    member = sp.csr_matrix((np.ones(len(inside), np.float32), (labels[inside], inside)), shape=(k, len(X)))
    return np.asarray(member @ X)


def knn(X: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` nearest other rows of each row of ``X`` (cosine), shape (n, k)."""
    k = min(k, len(X) - 1)
    out = np.empty((len(X), max(k, 0)), dtype=np.int64)
    if k <= 0:
        return out
    top = _topk()
    for i in range(0, len(X), CHUNK // 2):
        S = X[i:i + CHUNK // 2] @ X.T
        rows = np.arange(S.shape[0])
        S[rows, rows + i] = -np.inf
        out[i:i + CHUNK // 2] = top(S, k)
    return out


def _topk():
    """Column indices of the ``k`` largest entries per row: torch's topk (20x faster) or numpy's."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return lambda S, k: np.argpartition(-S, k - 1, axis=1)[:, :k]
    return lambda S, k: torch.topk(torch.from_numpy(S), k, dim=1).indices.numpy()


def cell_graph(neighbours: np.ndarray, cells: np.ndarray, n_cells: int):
    """Symmetric weights between cells: how many neighbour links join them."""
    import scipy.sparse as sp

    n, k = neighbours.shape
    rows = np.repeat(cells, k)
    cols = cells[neighbours.ravel()]
    W = sp.csr_matrix((np.ones(n * k, np.float64), (rows, cols)), shape=(n_cells, n_cells))
    return (W + W.T).tocsr()


def neighbour_purity(neighbours: np.ndarray, labels: np.ndarray) -> float:
    """Share of neighbour links (row -> its neighbours) whose two ends have the same label ``>= 0``,
    among links whose two ends have a label; 0 when there are none.

    >>> round(neighbour_purity(np.array([[1], [0], [3], [1]]), np.array([0, 0, 1, 1])), 2)
    0.75
    """
    if neighbours.size == 0:
        return 0.0
    mine = np.repeat(labels, neighbours.shape[1])
    theirs = labels[neighbours.ravel()]
    both = (mine >= 0) & (theirs >= 0)
    return float((mine[both] == theirs[both]).mean()) if both.any() else 0.0


def communities(W, *, resolution: float, seed: int, n_topics: int | None) -> np.ndarray:
    """Community id of each node of the weighted graph ``W`` (Louvain, or exactly ``n_topics``)."""
    import networkx as nx

    G = nx.from_scipy_sparse_array(W)
    if n_topics is None:
        parts = nx.community.louvain_communities(G, weight="weight", resolution=resolution, seed=seed)
    else:
        parts = _exact_communities(G, W, n_topics)
    labels = np.empty(W.shape[0], dtype=np.int64)
    for c, members in enumerate(sorted(parts, key=min)):
        labels[sorted(members)] = c
    return labels


def _exact_communities(G, W, n_topics: int) -> list[set]:
    """Greedy modularity merging down to ``n_topics``; disconnected leftovers join by weight."""
    import networkx as nx

    n_topics = min(n_topics, W.shape[0])
    parts = [set(p) for p in nx.community.greedy_modularity_communities(
        G, weight="weight", cutoff=n_topics, best_n=n_topics)]
    while len(parts) > n_topics:  # components that share no edge: merge the smallest into its nearest
        parts.sort(key=lambda p: (len(p), min(p)))
        small = parts.pop(0)
        parts[0] |= small
    return parts


class TopicClusterer:
    """Document vectors → topic ids; see the module docstring for the method.

    Fitted attributes: ``labels_`` (topic per row, ``-1`` for outliers),
    ``similarity_`` (cosine to the topic centre), ``centroids_`` (unit vectors,
    one per topic), ``n_topics_``, ``cells_`` and ``cell_topic_`` (the
    micro-clusters and their topics, for :meth:`predict`), ``pca_`` (or None),
    ``neighbour_purity_`` (share of the sampled neighbour links inside one
    community) and ``voted_`` (whether the refinement counted neighbours' votes).
    """

    def __init__(self, config: ClusterConfig | None = None, **overrides):
        base = asdict(config) if config else {}
        self.config = ClusterConfig(**{**base, **overrides})

    def fit(self, X: np.ndarray) -> "TopicClusterer":
        cfg = self.config
        X = normalize(X, inplace=not cfg.copy)
        n = len(X)
        if n == 0:
            raise ValueError("no documents to cluster")
        rng = np.random.default_rng(cfg.seed)
        self.pca_ = None
        if n > cfg.pca_above and X.shape[1] > cfg.pca_dims:
            sample = np.sort(rng.choice(n, min(n, cfg.kmeans_sample), replace=False))
            self.pca_ = PCA(cfg.pca_dims).fit(X[sample])
            X = self.pca_.transform(X)
        G = X  # the space of micro-clusters and the neighbour graph
        m = int(min(cfg.max_micro, max(1, n // cfg.docs_per_micro)))
        fit_rows = np.sort(rng.choice(n, cfg.kmeans_sample, replace=False)) if n > cfg.kmeans_sample else None
        self.cells_ = spherical_kmeans(G if fit_rows is None else G[fit_rows], m, seed=cfg.seed,
                                       max_iter=cfg.micro_iter)
        cell, _ = nearest(G, self.cells_)
        g_rows = np.sort(rng.choice(n, cfg.graph_sample, replace=False)) if n > cfg.graph_sample else np.arange(n)
        neighbours = knn(G[g_rows], cfg.n_neighbors)
        W = cell_graph(neighbours, cell[g_rows], len(self.cells_))
        cell_topic = communities(W, resolution=cfg.resolution, seed=cfg.seed, n_topics=cfg.n_topics)
        sizes = np.bincount(cell_topic[cell], minlength=cell_topic.max() + 1)
        cell_topic = self._absorb_small(W, cell_topic, sizes, cell, G)
        del G
        doc_topic = cell_topic[cell]
        self.neighbour_purity_ = neighbour_purity(neighbours, doc_topic[g_rows])
        self.voted_ = bool(cfg.refine and cfg.vote > 0 and self.neighbour_purity_ >= cfg.vote_purity)
        if cfg.refine:
            doc_topic = self._refine(X, doc_topic, (g_rows, neighbours) if self.voted_ else None)
        self._finish(X, doc_topic, cell)
        return self

    def _refine(self, X: np.ndarray, doc_topic: np.ndarray, graph=None) -> np.ndarray:
        """A few spherical k-means steps that start from the communities (outliers stay out); with
        ``graph`` (the sampled rows and their neighbours) those rows also count their neighbours' votes."""
        inside = np.flatnonzero(doc_topic >= 0)
        ids, lab = np.unique(doc_topic[inside], return_inverse=True)
        Xi = X[inside]
        if graph is not None:
            g_rows, neighbours = graph
            pos = np.minimum(np.searchsorted(inside, g_rows), len(inside) - 1)
            voter = inside[pos] == g_rows  # sampled rows inside a topic
            full = np.full(len(X), -1, dtype=np.int64)
        for _ in range(self.config.refine):
            C = normalize(topic_sums(Xi, lab, len(ids)))
            new, _ = nearest(Xi, C)
            if graph is not None:
                full[inside] = lab
                new[pos[voter]] = self._voted(Xi[pos[voter]], C, full[g_rows], neighbours, voter)
            if np.array_equal(new, lab):
                break
            lab = new
        out = doc_topic.copy()
        out[inside] = ids[lab]
        return out

    def _voted(self, Xv: np.ndarray, C: np.ndarray, g_lab: np.ndarray, neighbours: np.ndarray,
               voter: np.ndarray) -> np.ndarray:
        """Best topic of the ``voter`` rows of the sample: similarity to the centre plus ``vote`` times the
        share of the row's neighbours in the topic (neighbours outside every topic do not vote)."""
        import scipy.sparse as sp

        k = neighbours.shape[1]
        rows = np.repeat(np.arange(len(g_lab)), k)
        theirs = g_lab[neighbours.ravel()]
        ok = theirs >= 0
        votes = sp.csr_matrix((np.full(int(ok.sum()), self.config.vote / k, np.float32), (rows[ok], theirs[ok])),
                              shape=(len(g_lab), len(C)))[np.flatnonzero(voter)]
        out = np.empty(len(Xv), dtype=np.int64)
        for i in range(0, len(Xv), CHUNK):
            S = Xv[i:i + CHUNK] @ C.T + votes[i:i + CHUNK].toarray()
            out[i:i + CHUNK] = S.argmax(axis=1)
        return out

    def _absorb_small(self, W, cell_topic, sizes, cell, X) -> np.ndarray:
        """Cells of topics under ``min_topic_size`` move to their best-linked big topic (or -1)."""
        cfg = self.config
        floor = min(cfg.min_topic_size, max(2, len(X) // 20))
        big = sizes >= floor
        if cfg.n_topics is not None or big.all() or not big.any():
            return cell_topic
        cell_topic = cell_topic.copy()
        small_cells = np.flatnonzero(~big[cell_topic])
        if cfg.outliers:
            cell_topic[small_cells] = -1
            return cell_topic
        big_ids = np.flatnonzero(big)
        onehot = np.zeros((len(cell_topic), len(big_ids)))
        is_big = big[cell_topic]
        onehot[np.flatnonzero(is_big), np.searchsorted(big_ids, cell_topic[is_big])] = 1.0
        links = np.asarray(W[small_cells] @ onehot)
        centres = normalize(np.stack([self.cells_[cell_topic == t].mean(axis=0) for t in big_ids]))
        near, _ = nearest(self.cells_[small_cells], centres)
        choice = np.where(links.max(axis=1) > 0, links.argmax(axis=1), near)
        cell_topic[small_cells] = big_ids[choice]
        return cell_topic

    def _finish(self, X: np.ndarray, doc_topic: np.ndarray, cell: np.ndarray) -> None:
        """Number topics by size, compute centres, similarities and (optionally) outliers."""
        ids, first, sizes = np.unique(doc_topic, return_index=True, return_counts=True)
        keep = ids >= 0
        ids, first, sizes = ids[keep], first[keep], sizes[keep]
        order = ids[np.lexsort((first, -sizes))]  # largest first, ties by first document
        remap = np.full(int(ids.max()) + 2 if len(ids) else 1, -1, dtype=np.int64)
        remap[order] = np.arange(len(order))
        labels = np.where(doc_topic >= 0, remap[doc_topic], -1)
        self.centroids_ = normalize(topic_sums(X, labels, len(order)))
        sim = np.zeros(len(X), dtype=np.float32)
        inside = labels >= 0
        sim[inside] = np.einsum("ij,ij->i", X[inside], self.centroids_[labels[inside]])
        if self.config.outliers:
            labels = self._fence(labels, sim)
        self.labels_, self.similarity_, self.n_topics_ = labels, sim, len(order)
        votes = np.zeros((len(self.cells_), len(order) + 1))
        np.add.at(votes, (cell, labels + 1), 1.0)
        self.cell_topic_ = votes.argmax(axis=1) - 1  # the majority topic of each micro-cluster

    @staticmethod
    def _fence(labels: np.ndarray, sim: np.ndarray) -> np.ndarray:
        """Documents below their topic's Tukey fence (Q1 - 1.5 IQR of similarity) become -1."""
        labels = labels.copy()
        order = np.lexsort((sim, labels))
        bounds = np.searchsorted(labels[order], np.arange(labels.max() + 2))
        for t in range(labels.max() + 1):
            rows = order[bounds[t]:bounds[t + 1]]
            if len(rows) < 4:
                continue
            q1, q3 = np.percentile(sim[rows], [25, 75])
            labels[rows[sim[rows] < q1 - 1.5 * (q3 - q1)]] = -1
        return labels

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Topic of new vectors: the nearest topic centre (as after refinement)."""
        X = normalize(X)
        if self.pca_ is not None:
            X = self.pca_.transform(X)
        return nearest(X, self.centroids_)[0].astype(np.int64)
