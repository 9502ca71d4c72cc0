"""Coarser or finer themes of a stored discovery run, without clustering again.

A run keeps the Ward merges of its topic centres (the themes file's
``merges``), so any number of themes is one cut of that tree away: the
topics and their documents stay as they are, only the grouping above them
changes. :func:`regroup` cuts the tree at ``n_themes`` and describes the new
themes as :func:`inhouse.topics.discover.discover` does (keywords over the
run's documents with boilerplate demoted, a keyword name, representatives
taken from the sub-topics in turn). Nothing is stored: the run's own themes
stay those it was made with, and names written by an LLM are not redone
(the regrouped themes carry keyword names).

    Illustrative (needs a workspace with a discovery run; not run as a doctest):
    >>> res = regroup(ws, "banking77", 3, n_themes=20)
    >>> len(res.themes), res.themes_chosen
    (20, 10)
"""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np

from ..errors import UsageError
from ..workspace.documents import read_documents
from ..workspace.store import Workspace
from .runs import DiscoverOptions, DiscoveryResult, add_representative_ids, load_discovery, themes_path
from .themes import MAX_THEMES, MIN_THEMES, choose_count, cut_themes


def regroup(ws: Workspace, dataset: str, run: int | None, *, n_themes: int | None) -> DiscoveryResult:
    """Run ``run`` (latest when None) of ``dataset`` with its topics grouped into ``n_themes`` themes
    (``None``: the count the data chooses). ``themes_chosen`` on the result is that automatic count."""
    res = load_discovery(ws, dataset, run)
    if res.within:
        raise UsageError(f"discovery run {res.run_id} of {dataset!r} found sub-topics within {res.within!r}: its "
                         "categories are the top level, so it has no themes to regroup.",
                         fix=f"Discover over the whole dataset to get themes: inhouse discover --dataset {dataset}")
    merges = _merges(res)
    k = res.n_topics
    res.themes_chosen = choose_count(merges, k, min_themes=MIN_THEMES, max_themes=MAX_THEMES)
    if n_themes is None or not k:
        return res
    if n_themes < 1:
        raise UsageError(f"n_themes must be at least 1, found {n_themes}.",
                         fix="Leave it out for the number of themes the data chooses.")
    topic_theme = cut_themes(merges, k, n_themes=n_themes)
    opts = DiscoverOptions(**{f.name: res.config[f.name] for f in fields(DiscoverOptions) if f.name in res.config})
    opts.n_themes = n_themes
    texts, df, labels = _run_documents(ws, res, opts)
    from .discover import describe_themes

    doc_theme = np.where(labels >= 0, topic_theme[np.maximum(labels, 0)], -1)
    for t in res.topics:
        t.theme = int(topic_theme[t.topic])
    res.themes = describe_themes(texts, df, doc_theme, topic_theme, res.topics, opts)
    add_representative_ids(ws, res)
    return res


def _merges(res: DiscoveryResult) -> list[tuple[int, int, float]]:
    path = themes_path(res.assignments_path)
    data = json.loads(path.read_text()) if path.is_file() else {}
    if "merges" not in data and res.n_topics > 1:
        raise UsageError(f"discovery run {res.run_id} of {res.dataset!r} was made before runs kept their theme tree, "
                         "so it cannot be regrouped.",
                         fix=f"Discover again (the cached vectors make it quick): inhouse discover --dataset {res.dataset}")
    return [(int(a), int(b), float(h)) for a, b, h in data.get("merges", [])]


def _run_documents(ws: Workspace, res: DiscoveryResult, opts: DiscoverOptions):
    """The run's documents in its order: texts as clustered, the frame (doc_id, text), topic per document
    (as found, before any merge a person made)."""
    import pandas as pd

    from .text import clean_text

    df = read_documents(ws, res.dataset, columns=["doc_id", "text"], split=opts.split, where=opts.where)
    a = pd.read_parquet(res.assignments_path, columns=["doc_id", "topic"])
    df = df.merge(a, on="doc_id", how="inner", sort=False).reset_index(drop=True)
    texts = [clean_text(t) for t in df["text"]] if opts.clean else df["text"].tolist()
    return texts, df, df["topic"].to_numpy(dtype=np.int64)
