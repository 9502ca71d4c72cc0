"""Discover the topics of a dataset without labels, and keep them.

:func:`discover` embeds every document (cached), clusters the vectors with
:class:`inhouse.cluster.TopicClusterer` (the number of topics is chosen by the
data unless given), describes each topic by its c-TF-IDF keywords (words and
bigrams, stop words removed, near-duplicates dropped), its most representative
documents (closest to the topic's centre) and a short name, written by a local
generative model when ``llm`` is given, else built from the keywords.

A run stores its assignments (``doc_id → topic``) as Parquet under
``datasets/<name>/discoveries/`` and its topics table in SQLite, so that
``inhouse label --topic``, ``trends --by topic`` and ``summarize --by topic``
use the latest discovery of the dataset (or any earlier one by run id).

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> res = discover(ws, "banking77", seed=0)
    >>> res.n_topics, res.topics[0].size, res.topics[0].name
    (82, 411, 'identity, verify identity, verification')
    >>> res.topics[0].representative_texts[0]
    'What is the need to verify my identity?'

Equal inputs and seed give identical topics: every step is seeded, sorts are
stable and ties go to the lower document id.
"""

from __future__ import annotations

import time

import numpy as np

from ..errors import InputError, UsageError
from ..models.catalog import DEFAULT_ENCODER
from ..progress import task, track
from ..workspace.documents import read_documents
from ..workspace.files import text_hash
from ..workspace.store import Workspace
from .cluster import ClusterConfig, TopicClusterer
from .runs import NO_GROUP, DiscoverOptions, DiscoveryResult, Theme, Topic, save_discovery
from .text import boilerplate, clean_text, keyword_name, name_prompt, tidy_name, topic_keywords

# ------------------------------------------------------------- discover ----

def discover(ws: Workspace, dataset: str, *, within: str | None = None, model: str = DEFAULT_ENCODER,
             seed: int = 0, n_topics: int | None = None, outliers: bool = False, llm: str | None = None,
             split: str | None = None, min_topic_size: int = 10, n_keywords: int = 10,
             n_representatives: int = 5, clean: bool = True, where: str | None = None,
             confirm=None, n_themes: int | None = None, only: list[str] | None = None,
             theme_similarity: float | None = None) -> DiscoveryResult:
    """Find the topics of ``dataset`` (or of each category of ``within``) and store them.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> res = discover(ws, "banking77", within="label", seed=0)
    >>> t = res.topics[0]
    >>> res.n_topics, t.parent, t.share, t.keywords[:2]   # share of its parent category
    (538, 'card_payment_fee_charged', 0.193833, ['fees', 'payments'])

    ``where`` keeps only the documents for which a filter over the dataset's
    columns holds (e.g. ``label = 'negative'``); the run records it. ``only``
    (with ``within``) keeps the documents of those categories of ``within``,
    e.g. ``within="prediction:intents@2", only=["other"]``: the documents that
    version turned away (what :mod:`inhouse.analysis.candidates` groups).
    There, ``theme_similarity`` makes themes too: the Ward merges of topics whose
    centres are at least that alike (cosine), so one new category split into a
    few topics is one theme.

    Without ``within``, the topics are also grouped into themes (the result's
    ``themes``; each topic's ``theme``): 8-30 of them, chosen from the data
    (:mod:`inhouse.topics.themes`), or exactly ``n_themes``.

    With ``llm``, ``confirm`` (if given) is called with the
    :class:`inhouse.topics.grounding.Estimate` of the naming work once the
    number of topics is known, before any prompt; returning False stops the
    run before anything is stored. Every name is checked against its topic's
    documents (:func:`inhouse.topics.grounding.check_grounded`); the result's
    ``llm_names`` counts the accepted ones and those that fell back.
    """
    opts = DiscoverOptions(within, model, seed, n_topics, outliers, llm, split, min_topic_size,
                           n_keywords, n_representatives, clean, where, n_themes,
                           None if only is None else [str(x) for x in only], theme_similarity).validate()
    if llm:
        check_generator(ws, llm)
    t0 = time.time()
    df = read_documents(ws, dataset, columns=["doc_id", "text", "text_hash"], split=split, where=where)
    if len(df) == 0:
        scope = (f" in split {split!r}" if split else "") + (f" where {where}" if where else "")
        raise InputError(f"dataset {dataset!r} has no documents{scope} to discover topics in.",
                         fix="Check --split and --where, or add documents with: inhouse ingest FILE --dataset "
                             + dataset)
    parents = None
    if within:
        from .categories import category_values

        values, _ = category_values(ws, dataset, within, df["doc_id"].to_numpy())
        parents = np.array([NO_GROUP if v is None else v for v in values], dtype=object)
        if opts.only is not None:
            df, parents = _only(df, parents, opts, dataset)
    texts = [clean_text(t) for t in df["text"]] if clean else df["text"].tolist()
    stats: dict = {}
    X, model_sha = embed_for_topics(ws, model, texts, stats=stats)
    labels, sims, groups = _cluster_groups(X, parents, opts)
    themed = parents is None or (opts.only is not None and opts.theme_similarity is not None)
    topic_theme, tree = _theme_of_topics(X, labels, opts) if themed else (None, None)
    del X
    doc_theme = None if topic_theme is None or not len(topic_theme) else \
        np.where(labels >= 0, topic_theme[np.maximum(labels, 0)], -1)
    topics = _describe(texts, df, labels, sims, groups, opts, doc_theme)
    themes = [] if doc_theme is None else describe_themes(texts, df, doc_theme, topic_theme, topics, opts)
    llm_sha, counts = None, {}
    if llm:
        from .grounding import estimate

        est = estimate(ws, llm, "name", len(topics) + len(themes), len(df))
        if confirm is not None and not confirm(est):
            raise UsageError(f"stopped before naming topics with {llm}: {est.line()}.",
                             fix="Add --yes to run it, or leave out --llm for keyword names (seconds).")
        llm_sha, counts = _name_with_llm(ws, llm, topics, seed, texts, labels, themes, doc_theme)
    res = save_discovery(ws, dataset, opts, df["doc_id"].to_numpy(), labels, sims, parents, topics,
                         model_sha, llm_sha, t0, themes, tree)
    res.embeddings = stats
    res.llm_names = counts
    return res


def _only(df, parents: np.ndarray, opts: DiscoverOptions, dataset: str):
    """The rows whose ``within`` value is one of ``opts.only``; an input error when there are none."""
    keep = np.isin(parents.astype(str), np.array(opts.only, dtype=str))
    if not keep.any():
        raise InputError(f"dataset {dataset!r} has no document whose {opts.within} is one of {opts.only}.",
                         fix=f"Check the values of {opts.within} (inhouse datasets show {dataset}).")
    return df[keep].reset_index(drop=True), parents[keep]


def embed_for_topics(ws: Workspace, model: str, texts: list[str], chunk: int = 20_000,
                     stats: dict | None = None) -> tuple[np.ndarray, str]:
    """Vectors of ``texts`` and the model's sha256: cached vectors are streamed straight into one
    float32 array (no model is loaded when all are cached); missing ones are computed and cached.

    ``texts`` are embedded as given (callers pass :func:`clean_text` of each document, the text
    ``inhouse embed`` embeds too); ``stats`` receives ``computed`` (distinct texts the encoder
    had to embed) and ``reused``."""
    from ..models.catalog import EMBEDDING_KINDS, get_model
    from ..models.embeddings import EmbeddingCache, embed_texts
    from ..models.encoders import load_encoder

    info = get_model(ws, model)
    if info.kind not in EMBEDDING_KINDS:
        raise UsageError(f"model {model!r} is a {info.kind} model and cannot embed text.",
                         fix=f"Use an embedding model such as {DEFAULT_ENCODER!r} or 'wordllama'.")
    hashes = [text_hash(t) for t in texts]
    X, have = _read_cached(EmbeddingCache(ws, info.sha256), hashes)
    missing = np.flatnonzero(~have)
    if stats is not None:
        stats.update(computed=len({hashes[j] for j in missing}), reused=len(set(hashes)) - len({hashes[j] for j in missing}))
    if len(missing):
        encoder = load_encoder(ws, model)
        for i in range(0, len(missing), chunk):
            rows = missing[i:i + chunk]
            V = embed_texts(ws, encoder, [texts[j] for j in rows], [hashes[j] for j in rows])
            if X is None:
                X = np.zeros((len(texts), V.shape[1]), dtype=np.float32)
            X[rows] = V
    return X, info.sha256


def _read_cached(cache, hashes: list[str]) -> tuple[np.ndarray | None, np.ndarray]:
    """The cached vectors of ``hashes`` in order (rows not found stay zero) and a found-mask."""
    have = np.zeros(len(hashes), dtype=bool)
    parts = cache.parts()
    if not parts or not hashes:
        return None, have
    import duckdb
    import pyarrow as pa

    con = duckdb.connect()
    X = None
    try:
        con.register("wanted", pa.table({"h": pa.array(hashes, pa.string()),
                                         "pos": pa.array(np.arange(len(hashes)), pa.int64())}))
        files = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in parts) + "]"
        reader = con.sql(f"SELECT w.pos, p.vector FROM read_parquet({files}) p JOIN wanted w ON p.text_hash = w.h"
                         ).to_arrow_reader(65_536)
        for batch in reader:
            if batch.num_rows == 0:
                continue
            pos = batch.column(0).to_numpy()
            flat = batch.column(1).flatten().to_numpy(zero_copy_only=False)
            dim = len(flat) // batch.num_rows
            if X is None:
                X = np.zeros((len(hashes), dim), dtype=np.float32)
            X[pos] = flat.reshape(-1, dim)
            have[pos] = True
    finally:
        con.close()
    return X, have


def _group_order(parents: np.ndarray | None) -> list[tuple[str | None, np.ndarray]]:
    """Groups of rows, largest first (ties by name), the empty value last."""
    if parents is None:
        return [(None, None)]
    names, inverse, counts = np.unique(parents.astype(str), return_inverse=True, return_counts=True)
    order = sorted(range(len(names)), key=lambda i: (names[i] == NO_GROUP, -counts[i], names[i]))
    return [(str(names[i]), np.flatnonzero(inverse == i)) for i in order]


def _cluster_groups(X: np.ndarray, parents: np.ndarray | None, opts: DiscoverOptions):
    """Topic ids over all documents (numbered group after group), similarities and group spans."""
    cfg = ClusterConfig(n_topics=opts.n_topics, seed=opts.seed, outliers=opts.outliers,
                        min_topic_size=opts.min_topic_size, copy=False)
    labels = np.full(len(X), -1, dtype=np.int64)
    sims = np.zeros(len(X), dtype=np.float32)
    groups, offset = [], 0
    order = _group_order(parents)
    with task("discovering topics", total=len(X), unit="doc") as t:
        for name, rows in order:
            c = TopicClusterer(cfg).fit(X if rows is None else X[rows])  # no copy of all the vectors
            rows = np.arange(len(X)) if rows is None else rows
            labels[rows] = np.where(c.labels_ >= 0, c.labels_ + offset, -1)
            sims[rows] = c.similarity_
            groups.append((name, rows, offset, c.n_topics_))
            offset += c.n_topics_
            t.advance(len(rows), topics=offset)
    return labels, sims, groups


def _theme_of_topics(X: np.ndarray, labels: np.ndarray, opts: DiscoverOptions) -> tuple[np.ndarray, list]:
    """The theme of each topic (Ward merges of the topic centres, cut at the chosen or given count) and the
    merges themselves, stored with the run so that it can be regrouped later without the vectors."""
    from .cluster import normalize, topic_sums
    from .themes import cut_themes, similar_merges, theme_tree

    k = int(labels.max()) + 1 if len(labels) and labels.max() >= 0 else 0
    if k == 0:
        return np.zeros(0, dtype=np.int64), []
    sizes = np.bincount(labels[labels >= 0], minlength=k)
    sums = topic_sums(X, labels, k)
    tree = theme_tree(normalize(sums), sizes)
    n = opts.n_themes
    if opts.theme_similarity is not None and n is None:
        n = k - similar_merges(tree, sums, opts.theme_similarity)
    return cut_themes(tree, k, n_themes=n), tree


def describe_themes(texts, df, doc_theme, topic_theme, topics: list[Topic], opts: DiscoverOptions) -> list[Theme]:
    """Keywords, name, sub-topics and representatives of every theme.

    A theme's representatives are those of its sub-topics taken in turn, largest
    sub-topic first, so they show the theme's breadth."""
    n_themes = int(topic_theme.max()) + 1 if len(topic_theme) else 0
    kws = topic_keywords(texts, doc_theme, n_themes, top=opts.n_keywords, seed=opts.seed,
                         demote=boilerplate(texts, doc_theme, seed=opts.seed))
    raw = df["text"].tolist()
    pos = {int(d): i for i, d in enumerate(df["doc_id"].to_numpy())}
    n = len(doc_theme)
    themes = []
    for j in range(n_themes):
        subs = sorted((t for t in topics if t.theme == j), key=lambda t: (-t.size, t.topic))
        for t in subs:
            t.theme = j
        size = sum(t.size for t in subs)
        reps, seen = [], set()
        for r in range(max((len(t.representative_docs) for t in subs), default=0)):
            for t in subs:
                if r < len(t.representative_docs) and len(reps) < opts.n_representatives:
                    d = t.representative_docs[r]
                    if raw[pos[d]] not in seen:
                        seen.add(raw[pos[d]])
                        reps.append(d)
        themes.append(Theme(theme=j, size=size, share=round(size / max(n, 1), 6), keywords=kws[j],
                            name=keyword_name(kws[j]), name_source="keywords", topics=[t.topic for t in subs],
                            representative_docs=reps, representative_texts=[raw[pos[d]] for d in reps]))
    return themes


def _describe(texts, df, labels, sims, groups, opts: DiscoverOptions, doc_theme=None) -> list[Topic]:
    """Keywords, representatives, sizes and shares of every topic (words spread over most themes demoted)."""
    doc_ids = df["doc_id"].to_numpy()
    hashes = df["text_hash"].to_numpy()
    raw = df["text"].tolist()
    n = len(labels)
    order = np.lexsort((np.arange(n), -sims, labels))  # by topic, then closest to the centre, then document
    starts = np.searchsorted(labels[order], np.arange(labels.max() + 2 if n else 1))
    topics: list[Topic] = []
    # boilerplate: words found across most themes, or across most categories under --within
    spread = doc_theme if doc_theme is not None else np.array([g for g, rows, _, _ in groups for _ in rows])[
        np.argsort(np.concatenate([rows for _, rows, _, _ in groups]), kind="stable")]
    demote = boilerplate(texts, spread, seed=opts.seed)
    for name, rows, offset, k in track(groups, "describing topics", unit="group"):
        local = labels[rows] - offset
        local = np.where(labels[rows] >= 0, local, -1)
        kws = topic_keywords([texts[i] for i in rows], local, k, top=opts.n_keywords, seed=opts.seed,
                             demote=demote)
        for j in range(k):
            t = offset + j
            members = order[starts[t]:starts[t + 1]]
            reps = _representatives(members, hashes, opts.n_representatives, texts=texts, keywords=kws[j], sims=sims)
            size = len(members)
            topics.append(Topic(
                topic=t, size=size, share=round(size / max(len(rows), 1), 6), keywords=kws[j],
                name=keyword_name(kws[j]), name_source="keywords",
                representative_docs=[int(doc_ids[i]) for i in reps],
                representative_texts=[raw[i] for i in reps], parent=None if name == NO_GROUP else name,
                share_of_all=round(size / max(n, 1), 6),
                theme=None if doc_theme is None or size == 0 else int(doc_theme[members[0]])))
    return topics


KEYWORD_WEIGHT = 0.15  # how much agreeing with the topic's keywords counts beside closeness to the centre


def _representatives(members: np.ndarray, hashes: np.ndarray, k: int, *, texts: list[str] | None = None,
                     keywords: list[str] | None = None, sims: np.ndarray | None = None, pool: int = 50) -> list[int]:
    """The ``k`` most typical members with distinct texts.

    Typical: near the topic's centre (``members`` come sorted by closeness) and
    agreeing with its keywords: among the ``pool`` closest, each scores its
    similarity plus :data:`KEYWORD_WEIGHT` x the share of the topic's first five
    keywords found in its text, so a document that sits near the centre but
    shares none of the topic's words is not shown first.
    """
    if texts is not None and keywords and sims is not None and len(members) > k:
        from .text import content_words

        kw = [content_words(w) for w in keywords[:5]]
        kw = [w for w in kw if w]
        near = members[:max(pool, k * 4)]
        if kw:
            agree = np.array([sum(w <= content_words(texts[i]) for w in kw) / len(kw) for i in near])
            score = sims[near] + KEYWORD_WEIGHT * agree
            members = np.concatenate([near[np.lexsort((np.arange(len(near)), -score))], members[len(near):]])
    out, seen = [], set()
    for i in members:
        if hashes[i] in seen:
            continue
        seen.add(hashes[i])
        out.append(int(i))
        if len(out) == k:
            break
    return out


def check_generator(ws: Workspace, name: str) -> None:
    """Fail before the long work when ``name`` is not a generative model this workspace has."""
    from ..models.catalog import DEFAULT_GENERATOR, get_model

    if get_model(ws, name).kind != "gguf":
        raise UsageError(f"model {name!r} is not a generative GGUF model.",
                         fix=f"Use --llm {DEFAULT_GENERATOR} or register a .gguf file with: inhouse models add NAME PATH")


def _name_with_llm(ws: Workspace, llm: str, topics: list[Topic], seed: int, texts: list[str],
                   labels: np.ndarray, themes: list[Theme] = (), doc_theme: np.ndarray | None = None) -> tuple[str, dict]:
    """Ask the local model for a 2-4-word name of each topic and theme; keep the keyword name when its answer
    is junk or mentions a content word found in none of the group's own documents. Returns (model sha256,
    counts: accepted, fell_back, junk, ungrounded over topics and themes together, and each rejected answer)."""
    from ..models.generators import load_generator
    from .grounding import record_speed

    gen = load_generator(ws, llm)
    counts = {"accepted": 0, "fell_back": 0, "junk": 0, "ungrounded": 0, "rejected": []}
    t0 = time.time()
    # one bar over topics and themes: the themes' names took minutes unreported with a 1.5B model
    with task(f"naming topics and themes with {llm}", total=len(topics) + len(themes), unit="name") as bar:
        for t in topics:
            _llm_name(gen, llm, t, seed, [texts[i] for i in np.flatnonzero(labels == t.topic)], counts,
                      {"topic": t.topic})
            bar.advance()
        for th in themes:
            _llm_name(gen, llm, th, seed, [texts[i] for i in np.flatnonzero(doc_theme == th.theme)], counts,
                      {"theme": th.theme})
            bar.advance()
    record_speed(ws, llm, gen.sha256, "name", len(topics) + len(themes), time.time() - t0)
    return gen.sha256, counts


def _llm_name(gen, llm: str, item, seed: int, docs: list[str], counts: dict, which: dict) -> None:
    """One topic's or theme's name from the model, kept only when tidy and grounded in ``docs``."""
    from .grounding import check_grounded, words_of

    raw = gen.generate(name_prompt(item.keywords, item.representative_texts), max_tokens=16, temperature=0.0,
                       seed=seed)
    name = tidy_name(raw, item.keywords + item.representative_texts)
    if name:
        ok, why = check_grounded(name, words_of(docs), kind="name")
        if ok:
            item.name, item.name_source = name, llm
            counts["accepted"] += 1
            return
        counts["ungrounded"] += 1
        counts["rejected"].append({**which, "answer": name, "why": why})
    else:
        counts["junk"] += 1
    counts["fell_back"] += 1
