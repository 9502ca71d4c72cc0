"""How topics read text: cleaning, c-TF-IDF keywords, and names from keywords or a small model."""

from __future__ import annotations

import re

import numpy as np

from ..models.embeddings import prepare_text

# ------------------------------------------------------------------ text ----

def clean_text(text: str) -> str:
    """Text as topics see it: links, @handles and HTML entities removed.

    The same text every stage embeds (:func:`inhouse.models.embeddings.prepare_text`),
    so topics reuse the vectors of ``inhouse embed``.

    >>> clean_text("@united my bag is lost https://example.com/x &amp; nobody helps")
    'my bag is lost & nobody helps'
    """
    return prepare_text(text)


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
                   per_topic: int | None = None, seed: int = 0,
                   demote: dict[str, float] | None = None) -> list[list[str]]:
    """The ``top`` class-based TF-IDF keywords of each topic ``0..n_topics-1``.

    Each topic's documents form one class; a term's weight is its frequency in
    the class times ``log(1 + A / f)``, with ``A`` the average class length and
    ``f`` the term's frequency over all classes (Grootendorst, 2022). At most
    ``per_topic`` documents per topic are read (a seeded sample; by default
    2,000, fewer when there are many topics, 200,000 in all), so a million
    documents cost no more than a few hundred thousand. A keyword whose words
    all appear in better keywords already chosen is skipped (``card`` after
    ``card arrive``), which keeps the list diverse.

    Words spread over most groups of documents (greetings, sign-offs,
    boilerplate: "hello", "thanks") are demoted by :func:`spread_penalty`:
    ``demote`` (from :func:`boilerplate`, e.g. over the themes or categories of
    the whole corpus) gives the factor per word; by default it is counted over
    these topics. A phrase takes the lowest factor of its words, and phrases
    (bigrams) get :data:`PHRASE_BONUS`, so a name reads "lost card" rather than
    "lost, card".

    >>> topic_keywords(["card lost", "lost my card", "refund please", "want a refund"], np.array([0, 0, 1, 1]), 2, top=2)
    [['card lost'], ['want refund']]
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
    if demote is None:
        penalty = spread_penalty(M, labels[rows])
    else:
        penalty = np.array([demote.get(str(w), 1.0) for w in vocab])
    W = tf * idf * _phrase_penalty(vocab, penalty)
    W *= np.where(np.char.count(vocab.astype(str), " ") > 0, PHRASE_BONUS, 1.0)
    return [_diverse(vocab, W[t], top) for t in range(n_topics)]


KEEP_SHARE = 0.05  # a keyword weighs at least this share of the topic's best (demoted boilerplate stays out)
PHRASE_BONUS = 1.5  # a bigram's weight is multiplied by this: phrases read better than single words
SPREAD_FREE = 0.4  # a word found in up to this share of the groups keeps its full weight
MIN_GROUPS = 4  # with fewer groups nothing is "spread over most of them"


def boilerplate(texts: list[str], groups: np.ndarray, *, per_group: int = 5_000,
                seed: int = 0) -> dict[str, float] | None:
    """``{word: factor < 1}`` for the words spread over most ``groups`` (one id per text), to pass to
    :func:`topic_keywords` as ``demote``; None with fewer than :data:`MIN_GROUPS` groups.

    >>> texts = [f"hello {w} please" for w in ["card", "card", "refund", "refund", "pin", "pin", "fee", "fee"]]
    >>> boilerplate(texts, np.array([0, 0, 1, 1, 2, 2, 3, 3]))
    {'hello': 0.02}
    """
    from sklearn.feature_extraction.text import CountVectorizer

    ids, g = np.unique(np.asarray(groups), return_inverse=True)
    if len(ids) < MIN_GROUPS:
        return None
    rows = _sample_per_topic(g, len(ids), per_group, seed)
    vec = CountVectorizer(stop_words=stop_words(), token_pattern=TOKEN_PATTERN, min_df=2, binary=True)
    try:
        M = vec.fit_transform([texts[i] for i in rows])
    except ValueError:
        return None
    penalty = spread_penalty(M, g[rows])
    vocab = vec.get_feature_names_out()
    return {str(vocab[j]): round(float(penalty[j]), 4) for j in np.flatnonzero(penalty < 1.0)}


def _phrase_penalty(vocab: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """A phrase takes the lowest penalty of its words ("hi money" is as boilerplate as "hi")."""
    index = {str(w): i for i, w in enumerate(vocab)}
    out = penalty.copy()
    for j, term in enumerate(vocab):
        words = str(term).split()
        if len(words) > 1:
            out[j] = min([penalty[j], *(penalty[index[w]] for w in words if w in index)])
    return out


def spread_penalty(M, groups: np.ndarray) -> np.ndarray:
    """Weight factor (0.02..1) per term: 1 for a term found in at most :data:`SPREAD_FREE` of the
    groups, falling linearly to 0.02 for a term found in every group.

    A term is found in a group when at least 2 of its documents and 2 % of them
    contain it. This is document frequency across topics rather than a hand-made
    list: "hello" and "thanks" open and close messages of every kind, so they are
    found everywhere, while "card" or "refund" belong to a few groups.

    >>> import scipy.sparse as sp
    >>> M = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [1, 0, 1], [1, 0, 1], [1, 0, 0], [1, 0, 0],
    ...                              [1, 0, 0], [1, 0, 0]]))
    >>> spread_penalty(M, np.array([0, 0, 1, 1, 2, 2, 3, 3])).round(2).tolist()
    [0.02, 1.0, 1.0]
    """
    import scipy.sparse as sp

    ids, g = np.unique(groups, return_inverse=True)
    if len(ids) < MIN_GROUPS:
        return np.ones(M.shape[1])
    onehot = sp.csr_matrix((np.ones(len(g)), (g, np.arange(len(g)))), shape=(len(ids), len(g)))
    docs = np.asarray((onehot @ (M > 0).astype(np.float64)).todense())
    sizes = np.bincount(g, minlength=len(ids))[:, None]
    found = (docs >= 2) & (docs >= 0.02 * sizes)
    share = found.mean(axis=0)
    return np.clip(1 - (share - SPREAD_FREE) / (1 - SPREAD_FREE), 0.02, 1.0)


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
    floor = KEEP_SHARE * weights[order[0]] if len(order) else 0.0
    for j in order[: top * 5]:
        if weights[j] <= max(floor, 0) or len(chosen) >= top:
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


fold_plural = _stem  # the public name, for checking model outputs against documents


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


def tidy_name(raw: str, context: list[str] | None = None, max_words: int = 4, min_words: int = 2) -> str | None:
    """A tiny model's answer made into a topic name of ``min_words``-``max_words`` words, or None when it is junk.

    Junk is an answer that echoes the prompt, asks a question, refuses, is
    mostly not letters, shares no word with ``context`` (the topic's keywords
    and documents) — a 135M-parameter model often invents one — or has fewer
    than ``min_words`` words once cut to ``max_words`` and stripped of
    trailing stop words (a name does not end in "and" or "of").

    >>> tidy_name('Title: "The Lost Card." More text', ["lost card", "card"])
    'Lost Card'
    >>> tidy_name("A Night of the Dead", ["pin", "blocked"]) is None
    True
    >>> tidy_name("Refunds", ["refund"]) is None
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
    words = words[:max_words]
    stops = set(stop_words())
    while words and words[-1].lower().strip(" ,'-–") in stops:
        words.pop()
    if len(words) < min_words:
        return None
    name = " ".join(words).strip(" ,'-–")
    letters = sum(ch.isalpha() for ch in name)
    if letters < 3 or letters < 0.7 * len(name.replace(" ", "")):
        return None
    if context is not None and not content_words(name) & {w for c in context for w in content_words(c)}:
        return None
    return name[0].upper() + name[1:]


def content_words(text: str) -> set[str]:
    stops = set(stop_words())
    return {_stem(w) for w in re.findall(r"[^\W\d_]+", text.lower()) if w not in stops and len(w) > 1}


def name_prompt(keywords: list[str], texts: list[str]) -> str:
    """A short prompt: tiny models name a topic best from its keywords alone."""
    return f"Keywords: {', '.join(keywords[:6])}\nWrite a 3-word title for the topic described by these keywords."

