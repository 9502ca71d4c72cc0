"""Themes: the fine topics of a discovery merged into a few groups a person can read.

A discovery finds fine topics (often 50-150 on real data); a team lead wants
to read 8-30. :func:`theme_tree` merges topic centres bottom-up by size-weighted
Ward linkage (the merge that least increases the spread of documents around
their centres goes first; ties to the lower topic number), so every topic
belongs to exactly one theme and a theme is a set of whole topics.

The number of themes is chosen from the merge heights: the cut sits where
going one theme coarser would cost most compared with the merges before it
(the largest relative jump of the Ward height), searched between
``min_themes`` and ``max_themes``. Equal inputs give equal themes.

    >>> rng = np.random.default_rng(0)
    >>> C = np.repeat(np.eye(4, 16), 3, axis=0) + 0.05 * rng.normal(size=(12, 16))
    >>> tree = theme_tree(C, np.full(12, 10))
    >>> int(cut_themes(tree, 12, min_themes=2, max_themes=8).max()) + 1
    4
"""

from __future__ import annotations

import numpy as np

MIN_THEMES, MAX_THEMES = 8, 30


def theme_tree(centroids: np.ndarray, sizes: np.ndarray) -> list[tuple[int, int, float]]:
    """Ward merges of the topics ``0..k-1``: ``(kept, absorbed, height)`` in merge order.

    ``centroids`` are the topics' mean vectors (unit vectors are fine) and
    ``sizes`` their document counts; the height of a merge is the rise of the
    within-theme sum of squares, ``n_a n_b / (n_a + n_b) ||c_a - c_b||^2``.
    """
    C = np.asarray(centroids, dtype=np.float64).copy()
    n = np.asarray(sizes, dtype=np.float64).copy()
    k = len(C)
    if k < 2:
        return []
    sq = (C * C).sum(axis=1)
    D = np.maximum(sq[:, None] + sq[None, :] - 2 * C @ C.T, 0.0)
    cost = (n[:, None] * n[None, :] / np.maximum(n[:, None] + n[None, :], 1e-12)) * D
    alive = np.ones(k, dtype=bool)
    np.fill_diagonal(cost, np.inf)
    merges = []
    for _ in range(k - 1):
        flat = int(np.argmin(cost))  # row-major: ties go to the lowest (a, b)
        a, b = divmod(flat, k)
        a, b = min(a, b), max(a, b)
        merges.append((a, b, float(cost[a, b])))
        na, nb = n[a], n[b]
        C[a] = (na * C[a] + nb * C[b]) / (na + nb)
        n[a] = na + nb
        alive[b] = False
        d = ((C - C[a]) ** 2).sum(axis=1)
        row = n * n[a] / np.maximum(n + n[a], 1e-12) * d
        row[~alive] = np.inf
        row[a] = np.inf
        cost[a, :] = row
        cost[:, a] = row
        cost[b, :] = np.inf
        cost[:, b] = np.inf
    return merges


def cut_themes(merges: list[tuple[int, int, float]], k: int, *, n_themes: int | None = None,
               min_themes: int = MIN_THEMES, max_themes: int = MAX_THEMES) -> np.ndarray:
    """Theme of each topic ``0..k-1`` after cutting the tree at ``n_themes`` (or the chosen count).

    Themes are numbered by their smallest topic, so topic 0's theme is 0.
    """
    if n_themes is None:
        n_themes = choose_count(merges, k, min_themes=min_themes, max_themes=max_themes)
    n_themes = max(1, min(n_themes, k))
    parent = np.arange(k)
    for a, b, _ in merges[: k - n_themes]:
        parent[parent == b] = a
    _, themes = np.unique(parent, return_inverse=True)
    first = np.full(themes.max() + 1, k)
    np.minimum.at(first, themes, np.arange(k))
    rank = np.argsort(np.argsort(first, kind="stable"), kind="stable")
    return rank[themes].astype(np.int64)


def choose_count(merges: list[tuple[int, int, float]], k: int, *, min_themes: int = MIN_THEMES,
                 max_themes: int = MAX_THEMES) -> int:
    """The number of themes between the bounds where one merge more would cost most.

    Going from ``t`` themes to ``t - 1`` costs the height of merge ``k - t``;
    the count kept is the ``t`` whose next merge is highest relative to the
    mean of the three merges before it (a knee in the dendrogram).

    >>> choose_count([(0, 1, 1.0), (2, 3, 1.0), (0, 2, 9.0)], 4, min_themes=1, max_themes=4)
    2
    """
    if k <= min_themes:
        return k
    hi = min(max_themes, k)
    heights = np.array([h for _, _, h in merges])
    best, best_t = -np.inf, hi
    for t in range(hi, min_themes - 1, -1):
        step = k - t  # index of the merge that would take t themes to t - 1
        if step >= len(heights):
            break
        if step == 0:
            continue  # no merge before it to compare with
        before = heights[:step]
        base = before[-3:].mean()
        score = heights[step] / max(base, 1e-12)
        if score > best + 1e-9:
            best, best_t = score, t
    return best_t


def similar_merges(merges: list[tuple[int, int, float]], sums: np.ndarray, min_similarity: float) -> int:
    """How many of the first ``merges`` join groups whose mean vectors are at least ``min_similarity`` alike
    (cosine): cutting the tree after them keeps apart what is less alike (``cut_themes(n_themes=k - n)``).

    ``sums`` are the topics' summed vectors (their mean times their size).

    >>> C = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> tree = theme_tree(C, np.ones(3))
    >>> similar_merges(tree, C, 0.9), similar_merges(tree, C, 0.0)
    (1, 2)
    """
    s = np.asarray(sums, dtype=np.float64).copy()
    for i, (a, b, _) in enumerate(merges):
        na, nb = np.linalg.norm(s[a]), np.linalg.norm(s[b])
        if na == 0 or nb == 0 or float(s[a] @ s[b]) / (na * nb) < min_similarity:
            return i
        s[a] += s[b]
    return len(merges)

