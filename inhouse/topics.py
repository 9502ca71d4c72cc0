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

    >>> res = discover(ws, "banking77", seed=0)
    >>> res.n_topics, res.topics[0].size, res.topics[0].name
    (82, 411, 'identity, verify identity, verification')
    >>> res.topics[0].representative_texts[0]
    'What is the need to verify my identity?'

Equal inputs and seed give identical topics: every step is seeded, sorts are
stable and ties go to the lower document id.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .cluster import ClusterConfig, TopicClusterer
from .errors import InputError, NotFound, UsageError
from .models import DEFAULT_ENCODER
from .progress import task, track
from .store import Workspace, atomic_path, current_user, json_dumps, read_documents, text_hash, write_table

FORMAT_VERSION = 1
NO_GROUP = "(none)"  # the parent of documents whose --within value is empty


# ------------------------------------------------------------------ text ----

_URL = re.compile(r"https?://\S+|www\.\S+")
_HANDLE = re.compile(r"(?<![\w.])@\w+")
_ENTITIES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'"}


def clean_text(text: str) -> str:
    """Text as topics see it: links, @handles and HTML entities removed.

    They name the channel, not the subject (every airline tweet starts with
    ``@united``), and would otherwise pull documents together by addressee.

    >>> clean_text("@united my bag is lost https://example.com/x &amp; nobody helps")
    'my bag is lost & nobody helps'
    """
    out = _HANDLE.sub(" ", _URL.sub(" ", text))
    for k, v in _ENTITIES.items():
        out = out.replace(k, v)
    out = " ".join(out.split())
    return out or text.strip() or text


# -------------------------------------------------------------- keywords ----

TOKEN_PATTERN = r"(?u)\b[^\W\d_][^\W\d_']+\b"  # words of letters only: numbers and ids make poor keywords
# what is left of "hasn't", "I'm", "you've" once the apostrophe splits the word
CONTRACTIONS = {"aren", "couldn", "didn", "doesn", "don", "hadn", "hasn", "haven", "isn", "ll", "mustn", "needn",
                "shan", "shouldn", "ve", "wasn", "weren", "won", "wouldn", "im", "ive", "re", "dont", "cant", "thats"}


def stop_words() -> list[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return sorted(set(ENGLISH_STOP_WORDS) | CONTRACTIONS)


def topic_keywords(texts: list[str], labels: np.ndarray, n_topics: int, *, top: int = 10,
                   ngram_range: tuple[int, int] = (1, 2), max_features: int = 50_000,
                   per_topic: int | None = None, seed: int = 0) -> list[list[str]]:
    """The ``top`` class-based TF-IDF keywords of each topic ``0..n_topics-1``.

    Each topic's documents form one class; a term's weight is its frequency in
    the class times ``log(1 + A / f)``, with ``A`` the average class length and
    ``f`` the term's frequency over all classes (Grootendorst, 2022). At most
    ``per_topic`` documents per topic are read (a seeded sample; by default
    2,000, fewer when there are many topics, 200,000 in all), so a million
    documents cost no more than a few hundred thousand. A keyword whose words
    all appear in better keywords already chosen is skipped (``card`` after
    ``card arrive``), which keeps the list diverse.

    >>> topic_keywords(["card lost", "lost my card", "refund please", "want a refund"], np.array([0, 0, 1, 1]), 2, top=2)
    [['lost', 'card'], ['refund', 'want']]
    """
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import CountVectorizer

    labels = np.asarray(labels)
    per_topic = per_topic or min(2_000, max(300, 200_000 // max(n_topics, 1)))
    rows = _sample_per_topic(labels, n_topics, per_topic, seed)
    if len(rows) == 0:
        return [[] for _ in range(n_topics)]
    docs = [texts[i] for i in rows]
    vec = CountVectorizer(ngram_range=ngram_range, stop_words=stop_words(), token_pattern=TOKEN_PATTERN,
                          min_df=2 if len(docs) >= 200 else 1, max_features=max_features, dtype=np.float64)
    try:
        M = vec.fit_transform(docs)
    except ValueError:  # nothing but stop words and numbers
        return [[] for _ in range(n_topics)]
    vocab = vec.get_feature_names_out()
    onehot = sp.csr_matrix((np.ones(len(rows)), (labels[rows], np.arange(len(rows)))), shape=(n_topics, len(rows)))
    T = np.asarray((onehot @ M).todense())
    tf = T / np.maximum(T.sum(axis=1, keepdims=True), 1e-12)
    freq = T.sum(axis=0)
    idf = np.log(1.0 + T.sum() / max(n_topics, 1) / np.maximum(freq, 1e-12))
    W = tf * idf
    return [_diverse(vocab, W[t], top) for t in range(n_topics)]


def _sample_per_topic(labels: np.ndarray, n_topics: int, per_topic: int, seed: int) -> np.ndarray:
    """Row numbers of at most ``per_topic`` seeded-random members of each topic, in order."""
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(labels)), labels))
    starts = np.searchsorted(labels[order], np.arange(n_topics))
    ranked = labels[order]
    rank = np.arange(len(order)) - starts[np.clip(ranked, 0, max(n_topics - 1, 0))]
    return np.sort(order[(ranked >= 0) & (ranked < n_topics) & (rank < per_topic)])


def _diverse(vocab: np.ndarray, weights: np.ndarray, top: int) -> list[str]:
    order = np.lexsort((np.arange(len(weights)), -weights))  # by weight, ties by term order
    chosen: list[str] = []
    seen: set[str] = set()
    for j in order[: top * 5]:
        if weights[j] <= 0 or len(chosen) >= top:
            break
        words = {_stem(w) for w in vocab[j].split()}
        if words <= seen:
            continue
        chosen.append(str(vocab[j]))
        seen |= words
    return chosen


def _stem(word: str) -> str:
    """Crude plural folding, only to spot near-duplicate keywords (``rate`` / ``rates``)."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def keyword_name(keywords: list[str], n: int = 3) -> str:
    """A topic's name from its first keywords: ``'card arrive, new card, delivery'``."""
    return ", ".join(keywords[:n]) if keywords else "(no keywords)"


# ----------------------------------------------------------------- names ----

_PREFIX = re.compile(r"^(title|topic|name|category|theme|answer|the (common )?topic( is| of)?)\s*[:\-–]?\s*", re.I)
_ARTICLE = re.compile(r"^(a|an|the)\s+", re.I)
_ECHO = re.compile(r"\b(title|topic|keywords?|word|words|example|message|messages|sentence|this|these)\b", re.I)
_QUESTION = re.compile(r"^(why|how|what|when|where|who|can|could|is|are|do|does|did|i|my|i'm|please|of|for|about|in|on|to|and)\b",
                       re.I)
_REFUSAL = re.compile(r"\b(sorry|cannot|can't help|as an ai|here is|here are|is|are|was|were|has|have|been|will)\b",
                      re.I)  # refusals and whole sentences


def tidy_name(raw: str, context: list[str] | None = None, max_words: int = 5) -> str | None:
    """A tiny model's answer made into a topic name, or None when it is junk.

    Junk is an answer that echoes the prompt, asks a question, refuses, is
    mostly not letters, or shares no word with ``context`` (the topic's
    keywords and documents) — a 135M-parameter model often invents one.

    >>> tidy_name('Title: "The Lost Card." More text', ["lost card", "card"])
    'Lost Card'
    >>> tidy_name("A Night of the Dead", ["pin", "blocked"]) is None
    True
    """
    line = next((ln for ln in raw.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"[*_#`\"“”‘’«»()\[\]]", "", line).strip()
    line = _PREFIX.sub("", line.lstrip("-•> ")).strip()
    line = re.split(r"[:;.!?|]|\s[-–—]\s|->", line)[0].strip(" ,'-–")
    line = _ARTICLE.sub("", line)
    words = line.split()
    if not words or len(words) > 8 or "," in line or _QUESTION.match(line) or _ECHO.search(line) or _REFUSAL.search(line):
        return None
    name = " ".join(words[:max_words]).strip(" ,'-–")
    letters = sum(ch.isalpha() for ch in name)
    if letters < 3 or letters < 0.7 * len(name.replace(" ", "")):
        return None
    if context is not None and not _content_words(name) & {w for c in context for w in _content_words(c)}:
        return None
    return name[0].upper() + name[1:]


def _content_words(text: str) -> set[str]:
    stops = set(stop_words())
    return {_stem(w) for w in re.findall(r"[^\W\d_]+", text.lower()) if w not in stops and len(w) > 1}


def name_prompt(keywords: list[str], texts: list[str]) -> str:
    """A short prompt: tiny models name a topic best from its keywords alone."""
    return f"Keywords: {', '.join(keywords[:6])}\nWrite a 3-word title for the topic described by these keywords."


# ------------------------------------------------------------- results -----

@dataclass
class Topic:
    """One discovered topic; ``share`` is of its parent category under ``--within``."""

    topic: int
    size: int
    share: float
    keywords: list[str]
    name: str
    name_source: str  # "keywords" | the model that wrote it
    representative_docs: list[int]
    representative_texts: list[str] = field(default_factory=list)
    parent: str | None = None
    share_of_all: float | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.parent is None and self.share_of_all == self.share:
            d.pop("share_of_all")
        return d


@dataclass
class DiscoveryResult:
    """A discovery run: its settings, topics and (lazily) its assignments."""

    run_id: int
    dataset: str
    model: str
    model_sha256: str
    seed: int
    within: str | None
    split: str | None
    n_documents: int
    n_topics: int
    n_outliers: int
    config: dict
    llm: str | None
    llm_sha256: str | None
    seconds: float
    created_at: float
    assignments_path: str
    topics: list[Topic]

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "topics"}
        d["topics"] = [t.to_dict() for t in self.topics]
        return d

    def topic(self, topic: int) -> Topic:
        for t in self.topics:
            if t.topic == topic:
                return t
        raise NotFound(f"topic {topic} not found in discovery run {self.run_id} of {self.dataset!r}; "
                       f"topics are 0..{self.n_topics - 1}.", fix="See them with: inhouse discover --dataset "
                       f"{self.dataset} --run {self.run_id}")

    def assignments(self):
        """DataFrame ``doc_id, topic, parent, similarity`` (one row per document of the run)."""
        import pandas as pd

        return pd.read_parquet(self.assignments_path)


# ------------------------------------------------------------- discover ----

@dataclass
class DiscoverOptions:
    """What a discovery run was asked to do; stored with the run."""

    within: str | None = None
    model: str = DEFAULT_ENCODER
    seed: int = 0
    n_topics: int | None = None
    outliers: bool = False
    llm: str | None = None
    split: str | None = None
    min_topic_size: int = 10
    n_keywords: int = 10
    n_representatives: int = 5
    clean: bool = True

    def validate(self) -> "DiscoverOptions":
        if self.n_topics is not None and self.n_topics < 1:
            raise UsageError(f"--n-topics must be at least 1, found {self.n_topics}.",
                             fix="Leave it out to let the data choose the number of topics.")
        if self.min_topic_size < 1 or self.n_keywords < 1 or self.n_representatives < 1:
            raise UsageError("--min-topic-size, keyword and representative counts must be at least 1.")
        return self


def discover(ws: Workspace, dataset: str, *, within: str | None = None, model: str = DEFAULT_ENCODER,
             seed: int = 0, n_topics: int | None = None, outliers: bool = False, llm: str | None = None,
             split: str | None = None, min_topic_size: int = 10, n_keywords: int = 10,
             n_representatives: int = 5, clean: bool = True) -> DiscoveryResult:
    """Find the topics of ``dataset`` (or of each category of ``within``) and store them.

    >>> res = discover(ws, "banking77", within="label", seed=0)
    >>> t = res.topics[0]
    >>> res.n_topics, t.parent, t.share, t.keywords[:2]   # share of its parent category
    (538, 'card_payment_fee_charged', 0.193833, ['fees', 'payments'])
    """
    opts = DiscoverOptions(within, model, seed, n_topics, outliers, llm, split, min_topic_size,
                           n_keywords, n_representatives, clean).validate()
    if llm:
        check_generator(ws, llm)
    t0 = time.time()
    df = read_documents(ws, dataset, columns=["doc_id", "text", "text_hash"], split=split)
    if len(df) == 0:
        where = f" in split {split!r}" if split else ""
        raise InputError(f"dataset {dataset!r} has no documents{where} to discover topics in.",
                         fix="Check --split, or add documents with: inhouse ingest FILE --dataset " + dataset)
    parents = None
    if within:
        values, _ = category_values(ws, dataset, within, df["doc_id"].to_numpy())
        parents = np.array([NO_GROUP if v is None else v for v in values], dtype=object)
    texts = [clean_text(t) for t in df["text"]] if clean else df["text"].tolist()
    X, model_sha = embed_for_topics(ws, model, texts)
    labels, sims, groups = _cluster_groups(X, parents, opts)
    del X
    topics = _describe(texts, df, labels, sims, groups, opts)
    llm_sha = _name_with_llm(ws, llm, topics, seed) if llm else None
    return _save(ws, dataset, opts, df["doc_id"].to_numpy(), labels, sims, parents, topics,
                 model_sha, llm_sha, t0)


def embed_for_topics(ws: Workspace, model: str, texts: list[str], chunk: int = 20_000) -> tuple[np.ndarray, str]:
    """Vectors of ``texts`` and the model's sha256: cached vectors are streamed straight into one
    float32 array (no model is loaded when all are cached); missing ones are computed and cached."""
    from .embed import EmbeddingCache, embed_texts, load_encoder
    from .models import EMBEDDING_KINDS, get_model

    info = get_model(ws, model)
    if info.kind not in EMBEDDING_KINDS:
        raise UsageError(f"model {model!r} is a {info.kind} model and cannot embed text.",
                         fix=f"Use an embedding model such as {DEFAULT_ENCODER!r} or 'wordllama'.")
    hashes = [text_hash(t) for t in texts]
    X, have = _read_cached(EmbeddingCache(ws, info.sha256), hashes)
    missing = np.flatnonzero(~have)
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


def _describe(texts, df, labels, sims, groups, opts: DiscoverOptions) -> list[Topic]:
    """Keywords, representatives, sizes and shares of every topic."""
    doc_ids = df["doc_id"].to_numpy()
    hashes = df["text_hash"].to_numpy()
    raw = df["text"].tolist()
    n = len(labels)
    order = np.lexsort((np.arange(n), -sims, labels))  # by topic, then closest to the centre, then document
    starts = np.searchsorted(labels[order], np.arange(labels.max() + 2 if n else 1))
    topics: list[Topic] = []
    for name, rows, offset, k in track(groups, "describing topics", unit="group"):
        local = labels[rows] - offset
        local = np.where(labels[rows] >= 0, local, -1)
        kws = topic_keywords([texts[i] for i in rows], local, k, top=opts.n_keywords, seed=opts.seed)
        for j in range(k):
            t = offset + j
            members = order[starts[t]:starts[t + 1]]
            reps = _representatives(members, hashes, opts.n_representatives)
            size = len(members)
            topics.append(Topic(
                topic=t, size=size, share=round(size / max(len(rows), 1), 6), keywords=kws[j],
                name=keyword_name(kws[j]), name_source="keywords",
                representative_docs=[int(doc_ids[i]) for i in reps],
                representative_texts=[raw[i] for i in reps], parent=None if name == NO_GROUP else name,
                share_of_all=round(size / max(n, 1), 6)))
    return topics


def _representatives(members: np.ndarray, hashes: np.ndarray, k: int) -> list[int]:
    """The first ``k`` members (already sorted by closeness) with distinct texts."""
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
    from .models import DEFAULT_GENERATOR, get_model

    if get_model(ws, name).kind != "gguf":
        raise UsageError(f"model {name!r} is not a generative GGUF model.",
                         fix=f"Use --llm {DEFAULT_GENERATOR} or register a .gguf file with: inhouse models add NAME PATH")


def _name_with_llm(ws: Workspace, llm: str, topics: list[Topic], seed: int) -> str:
    """Ask the local model for each topic's name; keep the keyword name when its answer is junk."""
    from .models import load_generator

    gen = load_generator(ws, llm)
    for t in track(topics, f"naming topics with {llm}", unit="topic"):
        raw = gen.generate(name_prompt(t.keywords, t.representative_texts), max_tokens=16, temperature=0.0,
                           seed=seed)
        name = tidy_name(raw, t.keywords + t.representative_texts)
        if name:
            t.name, t.name_source = name, llm
    return gen.sha256


# ----------------------------------------------------------- persistence ----

def _save(ws: Workspace, dataset: str, opts: DiscoverOptions, doc_ids, labels, sims, parents,
          topics: list[Topic], model_sha: str, llm_sha: str | None, t0: float) -> DiscoveryResult:
    import pyarrow as pa
    import pyarrow.parquet as pq

    info = ws.dataset(dataset)
    folder = ws.dir("datasets", dataset, "discoveries")
    path = folder / f"discovery-{time.time_ns()}.parquet"
    table = pa.table({
        "doc_id": pa.array(doc_ids, pa.int64()), "topic": pa.array(labels, pa.int32()),
        "parent": pa.nulls(len(labels), pa.string()) if parents is None
        else pa.array([None if p == NO_GROUP else p for p in parents], pa.string()),
        "similarity": pa.array(sims, pa.float32())})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    cluster = ClusterConfig(n_topics=opts.n_topics, seed=opts.seed, outliers=opts.outliers,
                            min_topic_size=opts.min_topic_size).to_dict()
    n_out = int((labels < 0).sum())
    seconds = round(time.time() - t0, 3)
    rel = str(path.relative_to(ws.home))
    with ws.tx() as c:
        run_id = ws.record_run("discover", {"dataset": dataset, **asdict(opts), "cluster": cluster},
                               {"topics": len(topics), "documents": len(labels), "outliers": n_out,
                                "seconds": seconds}, model=opts.model, model_sha256=model_sha, started_at=t0)
        c.execute("INSERT INTO discoveries (run_id, dataset_id, created_at, model, model_sha256, within, split,"
                  " n_documents, n_topics, n_outliers, assignments_path, options, llm, llm_sha256, user)"
                  " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (run_id, info.id, time.time(), opts.model, model_sha, opts.within, opts.split,
                   len(labels), len(topics), n_out, rel, json_dumps({**asdict(opts), "cluster": cluster}),
                   opts.llm, llm_sha, current_user()))
        c.executemany(
            "INSERT INTO topics (run_id, topic, parent, size, share, share_of_all, keywords, name, name_source,"
            " representative_docs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(run_id, t.topic, t.parent, t.size, t.share, t.share_of_all, json_dumps(t.keywords), t.name,
              t.name_source, json_dumps(t.representative_docs)) for t in topics])
        ws.audit("discover", dataset, run=run_id, topics=len(topics), within=opts.within)
    return DiscoveryResult(run_id, dataset, opts.model, model_sha, opts.seed, opts.within, opts.split,
                           len(labels), len(topics), n_out, {**asdict(opts), "cluster": cluster}, opts.llm,
                           llm_sha, seconds, time.time(), str(path), topics)


def load_discovery(ws: Workspace, dataset: str, run: int | None = None, *, texts: bool = True) -> DiscoveryResult:
    """The latest discovery run of ``dataset``, or run ``run``.

    >>> load_discovery(ws, "banking77").n_topics
    82
    """
    info = ws.dataset(dataset)
    q = "SELECT * FROM discoveries WHERE dataset_id = ?" + (" AND run_id = ?" if run is not None else "")
    row = ws.db.execute(q + " ORDER BY run_id DESC LIMIT 1", (info.id, *([run] if run is not None else []))).fetchone()
    if row is None:
        runs = [r[0] for r in ws.db.execute("SELECT run_id FROM discoveries WHERE dataset_id = ? ORDER BY run_id",
                                            (info.id,))]
        if run is None or not runs:
            raise NotFound(f"dataset {dataset!r} has no topic discovery yet.",
                           fix=f"Run one with: inhouse discover --dataset {dataset}")
        raise NotFound(f"discovery run {run} not found for dataset {dataset!r}; its runs are {runs}.",
                       fix="Leave out --run to use the latest.")
    topics = [Topic(r["topic"], r["size"], r["share"], json.loads(r["keywords"]), r["name"], r["name_source"],
                    json.loads(r["representative_docs"]), [], r["parent"], r["share_of_all"])
              for r in ws.db.execute("SELECT * FROM topics WHERE run_id = ? ORDER BY topic", (row["run_id"],))]
    if texts:
        found = doc_texts(ws, dataset, [d for t in topics for d in t.representative_docs])
        for t in topics:
            t.representative_texts = [found.get(d, "") for d in t.representative_docs]
    opts = json.loads(row["options"])
    started = ws.db.execute("SELECT started_at, finished_at FROM runs WHERE id = ?", (row["run_id"],)).fetchone()
    return DiscoveryResult(row["run_id"], dataset, row["model"], row["model_sha256"], opts.get("seed", 0),
                           row["within"], row["split"], row["n_documents"], row["n_topics"], row["n_outliers"],
                           opts, row["llm"], row["llm_sha256"],
                           round((started["finished_at"] or 0) - started["started_at"], 3) if started else 0.0,
                           row["created_at"], str(ws.home / row["assignments_path"]), topics)


def doc_texts(ws: Workspace, dataset: str, doc_ids: list[int]) -> dict[int, str]:
    """doc_id → text for a few documents, read without loading the whole dataset."""
    parts = ws.dataset_parts(dataset)
    if not doc_ids or not parts:
        return {}
    import duckdb

    con = duckdb.connect()
    try:
        rows = con.execute("SELECT doc_id, text FROM read_parquet(?) WHERE doc_id IN (SELECT unnest(?))",
                           [[str(p) for p in parts], sorted({int(d) for d in doc_ids})]).fetchall()
    finally:
        con.close()
    return {int(d): t for d, t in rows}


def write_assignments(result: DiscoveryResult, path: str | Path) -> Path:
    """One row per document (``id``, ``topic``, ``name``, and ``parent`` under --within) as
    CSV, Parquet or JSON Lines by the file's extension, written atomically."""
    df = result.assignments()
    names = {t.topic: t.name for t in result.topics}
    out = df.rename(columns={"doc_id": "id"})[["id", "topic"] + (["parent"] if result.within else [])]
    out.insert(2, "name", [names.get(int(t), "outliers") for t in out["topic"]])
    return write_table(out, Path(path), what="topics")


# ------------------------------------------------------------ categories ----

BUILTIN_COLUMNS = ("label", "topic", "split", "source_id")


def category_values(ws: Workspace, dataset: str, column: str, doc_ids: np.ndarray, *,
                    run: int | None = None) -> tuple[list[str | None], dict[str, str]]:
    """The value of ``column`` for each of ``doc_ids``, and a display name per value.

    ``column`` is ``label`` (the effective label), ``topic`` (the latest discovery,
    or ``run``), ``split``, ``source_id``, the file's own name for one of them, or
    any other column kept from the ingested file (metadata).

    >>> values, names = category_values(ws, "tweets", "negative_reason", np.array([0, 1]))
    >>> values
    ['Late Flight', None]
    """
    import pandas as pd

    info = ws.dataset(dataset)
    cols = info.columns or {}
    original = {v: k for k, v in cols.items() if isinstance(v, str) and k in ("label", "split", "id")}
    key = original.get(column, column)
    key = "source_id" if key == "id" else key
    meta = cols.get("meta") or []
    if key == "topic":
        res = load_discovery(ws, dataset, run, texts=False)
        a = res.assignments()
        by_doc = dict(zip(a["doc_id"].tolist(), a["topic"].tolist()))
        values = [None if by_doc.get(int(d)) is None else str(by_doc[int(d)]) for d in doc_ids]
        names = {str(t.topic): t.name for t in res.topics}
        names["-1"] = "outliers"
        return values, names
    if key == "time" or column == cols.get("time"):
        raise UsageError(f"{column!r} is the time column; group by a category instead.",
                         fix="Use --every day|week|month for time.")
    if key in ("label", "split", "source_id"):
        df = read_documents(ws, dataset, columns=["doc_id", key])
        series = df.set_index("doc_id")[key]
    elif column in meta:
        df = read_documents(ws, dataset, columns=["doc_id", "meta"])
        series = pd.Series([_meta_value(m, column) for m in df["meta"]], index=df["doc_id"])
    else:
        known = list(BUILTIN_COLUMNS) + [c for c in meta if c not in BUILTIN_COLUMNS]
        raise InputError(f"dataset {dataset!r} has no column {column!r}; columns are {known}.",
                         fix="Use one of them (the file's other columns are kept at ingest).")
    values = series.reindex(doc_ids).tolist()
    values = [None if v is None or (isinstance(v, float) and np.isnan(v)) or v == "" else str(v) for v in values]
    return values, {v: v for v in set(values) if v is not None}


def _meta_value(meta: str | None, column: str) -> Any:
    if not meta:
        return None
    try:
        return json.loads(meta).get(column)
    except (ValueError, AttributeError):
        return None
