"""One summary per category: a label, a discovered topic, or any column.

Extractive by default: the category's keywords (c-TF-IDF against the other
categories) and ``n_docs`` documents that are both representative and
different from each other, chosen by maximal marginal relevance around the
category's centre (``score = λ·sim(doc, centre) − (1−λ)·max sim(doc, chosen)``).
With ``llm`` (a local GGUF model such as ``smollm2-135m``), the model writes
a one-sentence summary from those documents and keywords; an answer that is
junk falls back to the extractive summary. Every summary is stored in SQLite
with the run id and the name and sha256 of the model that wrote it.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> out = summarize(ws, "banking77", by="label", n_docs=2)
    >>> out[0].category, out[0].keywords[:3], out[0].kind
    ('card_payment_fee_charged', ['fee', 'charged', 'using card'], 'extractive')
    >>> print(out[0].summary)
    - How come I was charged an extra fee when paying with the card?
    - Is there a reason I was charged a fee for using my card as payment? I've never had an extra fee before.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import InputError, UsageError
from ..models.catalog import DEFAULT_ENCODER
from ..progress import track
from ..topics.categories import category_values
from ..topics.discover import check_generator, embed_for_topics
from ..topics.runs import load_discovery
from ..topics.text import clean_text, topic_keywords
from ..workspace.documents import ROW_COLUMN, id_column, read_documents
from ..workspace.files import json_dumps
from ..workspace.store import Workspace


@dataclass
class Summary:
    """What one category is about."""

    category: str
    name: str
    by: str
    size: int
    share: float
    keywords: list[str]
    doc_ids: list[int]
    texts: list[str]
    summary: str
    kind: str  # "extractive" | "abstractive"
    model: str | None = None
    model_sha256: str | None = None
    run_id: int | None = None
    notes: list[str] = field(default_factory=list)
    ids: list = field(default_factory=list)  # the user's ids of doc_ids (their --id-col), or source rows
    id_column: str = ROW_COLUMN  # what ``ids`` are: the dataset's id column name, or "row"
    sentences_kept: int = 0  # the model's sentences that passed the check against the documents
    sentences_dropped: int = 0  # ... and those that did not (a word or number found in none of them)

    def to_dict(self) -> dict:
        return asdict(self)


def mmr(X: np.ndarray, centre: np.ndarray, k: int, *, diversity: float = 0.3, keys: list | None = None) -> list[int]:
    """Rows of ``X`` (unit vectors) that are close to ``centre`` and unlike each other.

    Ties go to the lower row; rows whose ``keys`` (e.g. text hashes) were already
    chosen are skipped, so a repeated text is shown once.

    >>> X = np.array([[1.0, 0.0], [0.99, 0.14], [0.6, 0.8]])
    >>> mmr(X, np.array([0.9, 0.44]), 2, diversity=0.5)
    [1, 2]
    """
    rel = X @ centre
    chosen: list[int] = []
    seen: set = set()
    best_sim = np.full(len(X), -np.inf)
    alive = np.ones(len(X), dtype=bool)
    while len(chosen) < k and alive.any():
        score = (1 - diversity) * rel - diversity * np.where(np.isfinite(best_sim), best_sim, 0.0)
        score[~alive] = -np.inf
        i = int(np.argmax(score))
        alive[i] = False
        if keys is not None and keys[i] in seen:
            continue
        chosen.append(i)
        if keys is not None:
            seen.add(keys[i])
        best_sim = np.maximum(best_sim, X @ X[i])
    return chosen


def summarize(ws: Workspace, dataset: str, by: str = "label", *, llm: str | None = None, n_docs: int = 5,
              model: str | None = None, run: int | None = None, split: str | None = None,
              categories: list[str] | None = None, diversity: float = 0.3, max_tokens: int = 80,
              seed: int = 0, where: str | None = None, confirm=None) -> list[Summary]:
    """Summarise each category of ``by`` (largest first) and store the summaries.

    A category's keywords and summary do not depend on which other ``categories``
    were asked for: keywords are always weighed against every category.
    ``where`` keeps only the documents for which a filter holds. With ``llm``,
    ``confirm`` gets the :class:`inhouse.topics.grounding.Estimate` before any
    prompt (False stops the run), and every generated sentence is checked
    against the category's documents (:func:`check_sentence`: each of its
    content words and numbers must appear in them); failing sentences are
    dropped, and a summary left with none falls back to the extractive one
    (``notes`` says why; :func:`counts` tallies kept and fell back).

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> s = summarize(ws, "banking77", by="label", llm="smollm2-135m", categories=["card_payment_fee_charged"])[0]
    >>> s.kind, s.model, s.summary
    ('abstractive', 'smollm2-135m', 'These messages are about the fees charged when using a card, the reason for the fee, and the solution to the issue.')
    """
    if n_docs < 1:
        raise UsageError(f"--n-docs must be at least 1, found {n_docs}.")
    if llm:
        check_generator(ws, llm)
    t0 = time.time()
    df = read_documents(ws, dataset, columns=["doc_id", "text", "text_hash", "source_id", "source_row"], split=split,
                        where=where)
    id_name = id_column(ws, dataset)
    keys = (df["source_id"] if id_name else df["source_row"]).tolist()
    cats, names = category_values(ws, dataset, by, df["doc_id"].to_numpy(), run=run)
    keep = np.array([c is not None for c in cats], dtype=bool)
    n_valid = int(keep.sum())
    # keywords against every category, so a category's keywords do not depend on which others were asked for
    valid = np.flatnonzero(keep)
    all_cats = np.array([cats[i] for i in valid], dtype=object).astype(str)
    all_order, all_inverse = np.unique(all_cats, return_inverse=True) if len(valid) else (np.array([]), np.array([]))
    all_kws = topic_keywords([clean_text(df["text"][i]) for i in valid], all_inverse, len(all_order), top=10,
                             seed=seed) if len(valid) else []
    kw_of = {str(c): k for c, k in zip(all_order, all_kws)}
    if categories is not None:
        wanted = {str(c) for c in categories}
        unknown = sorted(wanted - set(cats))
        if unknown:
            raise InputError(f"{by} {unknown} not found in dataset {dataset!r}; there are {len(set(cats) - {None})}.",
                             fix=f"See them with: inhouse summarize --dataset {dataset} --by {by}")
        keep &= np.array([c in wanted for c in cats])
    if not keep.any():
        raise InputError(f"no document of dataset {dataset!r} has a {by!r} value.",
                         fix="Label documents, run inhouse discover, or choose another --by column.")
    df = df[keep].reset_index(drop=True)
    keys = [k for k, kept in zip(keys, keep) if kept]
    cats = np.array([c for c, k in zip(cats, keep) if k], dtype=object)
    discovery = load_discovery(ws, dataset, run, texts=False) if by == "topic" else None
    model = model or (discovery.model if discovery else DEFAULT_ENCODER)
    texts = [clean_text(t) for t in df["text"]]
    X, _ = embed_for_topics(ws, model, texts)
    order, inverse, counts = np.unique(cats.astype(str), return_inverse=True, return_counts=True)
    ranked = sorted(range(len(order)), key=lambda i: (-counts[i], order[i]))
    kws = [kw_of.get(str(c), []) for c in order]
    if discovery:  # the discovery's keywords, computed against all topics, not only those summarised
        known = {str(t.topic): t.keywords for t in discovery.topics}
        kws = [known.get(str(c), k) for c, k in zip(order, kws)]
    out = []
    for i in track(ranked, "summarising", unit="category"):
        rows = np.flatnonzero(inverse == i)
        picks = _pick(X[rows], df["text_hash"].to_numpy()[rows], n_docs, diversity)
        chosen = rows[picks]
        docs = [df["text"][j] for j in chosen]
        out.append(Summary(str(order[i]), names.get(str(order[i]), str(order[i])), by, int(counts[i]),
                           round(counts[i] / n_valid, 6), kws[i], [int(df["doc_id"][j]) for j in chosen], docs,
                           extractive_text(docs), "extractive", ids=[_key(keys[j]) for j in chosen],
                           id_column=id_name or ROW_COLUMN))
    if llm:
        from ..topics.grounding import estimate

        est = estimate(ws, llm, "summary", len(out), int(len(df)))
        if confirm is not None and not confirm(est):
            raise UsageError(f"stopped before summarising with {llm}: {est.line()}.",
                             fix="Add --yes to run it, or leave out --llm for extractive summaries (seconds).")
        # the documents as written, which the model reads: cleaning drops @mentions and links, and a summary
        # that names the airline every tweet of the category addresses (@SouthwestAir) was refused for it
        raw = df["text"].tolist()
        sources = {str(order[i]): [raw[j] for j in np.flatnonzero(inverse == i)] for i in range(len(order))}
        _abstract(ws, llm, out, max_tokens, seed, sources)
    params = {"llm": llm, "n_docs": n_docs, "model": model, "split": split, "diversity": diversity,
              "categories": categories, "where": where}
    _save(ws, dataset, by, discovery.run_id if discovery else None, out, t0, params)
    return out


def _key(v):
    """A user id as stored (a string), or a row number as an int; None when missing."""
    if v is None or (isinstance(v, float) and v != v):
        return None
    return v if isinstance(v, str) else int(v)


def _pick(X: np.ndarray, hashes: np.ndarray, k: int, diversity: float, pool: int = 50) -> np.ndarray:
    """MMR over the ``pool`` documents closest to the centre (ties by position)."""
    centre = X.sum(axis=0, dtype=np.float64)
    centre = (centre / max(np.linalg.norm(centre), 1e-12)).astype(np.float32)
    sims = X @ centre
    near = np.lexsort((np.arange(len(X)), -sims))[: max(pool, k * 4)]
    picked = mmr(X[near], centre, k, diversity=diversity, keys=list(hashes[near]))
    return near[picked]


def extractive_text(docs: list[str], width: int = 240) -> str:
    """The chosen documents as a bullet list, each cut to ``width`` characters."""
    return "\n".join("- " + (d if len(d) <= width else d[: width - 1].rstrip() + "…") for d in docs)


# ---------------------------------------------------------- abstractive ----

NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")


def sentences(text: str) -> list[str]:
    """``text`` cut after . ! or ? followed by a space (so ``3.5`` and ``v5.2`` stay whole).

    >>> sentences("Fees rose 3.5 percent. Why? Ask v5.2 users")
    ['Fees rose 3.5 percent.', 'Why?', 'Ask v5.2 users']
    """
    return [x.strip() for x in re.split(r"(?<=[.!?])\s+", text) if x.strip()]


def _root(word: str) -> str:
    """A word folded for comparison (:func:`inhouse.topics.grounding.root_word`), as topic names are checked."""
    from ..topics.grounding import root_word

    return root_word(word)


def source_index(texts: list[str]) -> tuple[set[str], set[str]]:
    """The folded words and the numbers of a category's documents, for :func:`check_sentence`."""
    words, numbers = set(), set()
    for t in texts:
        low = str(t).lower()
        words.update(_root(w) for w in re.findall(r"[^\W\d_]+", low))
        numbers.update(NUMBER.findall(low))
    return words, numbers


def check_sentence(sentence: str, index: tuple[set[str], set[str]]) -> str | None:
    """Why ``sentence`` is not grounded in the documents of ``index`` (:func:`source_index`), or None when it is.

    Every content word (not a stop word, not one of the describing words of
    :data:`inhouse.topics.grounding.GENERIC`) and every number must appear in the
    documents.

    >>> idx = source_index(["why was I charged a fee of $45 for a withdrawal", "what are the fees abroad"])
    >>> check_sentence("These messages ask about fees charged for a withdrawal.", idx) is None
    True
    >>> print(check_sentence("Fees charged by various countries.", idx))
    'countries' is in none of the documents
    >>> print(check_sentence("A fee of $50 was charged.", idx))
    the number 50 is in none of the documents
    """
    from ..topics.grounding import GENERIC
    from ..topics.text import stop_words

    words, numbers = index
    for n in NUMBER.findall(sentence.lower()):
        if n.rstrip(".,") not in numbers:
            return f"the number {n.rstrip('.,')} is in none of the documents"
    stops = set(stop_words())
    for w in re.findall(r"[^\W\d_]+", sentence):
        low = w.lower()
        if low in stops or low in GENERIC or len(low) < 3 or _root(low) in {_root(g) for g in GENERIC}:
            continue
        if _root(low) not in words:
            return f"{low!r} is in none of the documents"
    return None


def counts(out: list[Summary]) -> dict:
    """How the model's summaries fared: categories whose generated summary was kept, that fell back, sentences."""
    tried = [s for s in out if s.model]
    return {"generated_kept": sum(s.kind == "abstractive" for s in tried),
            "fell_back": sum(s.kind != "abstractive" for s in tried),
            "sentences_kept": sum(s.sentences_kept for s in out),
            "sentences_dropped": sum(s.sentences_dropped for s in out)}


def summary_prompt(name: str, keywords: list[str], docs: list[str]) -> str:
    examples = "\n".join(f"- {d[:200]}" for d in docs[:5])
    return (f"Messages:\n{examples}\nKeywords: {', '.join(keywords[:6])}\n"
            "In one sentence, what are these messages about?")


def tidy_summary(raw: str, context: list[str] | None = None, max_sentences: int = 2) -> str | None:
    """A tiny model's answer cut to its first distinct sentences, or None when it is junk.

    Junk: assistant talk ("I'm not sure..."), a loop that repeats a word, mostly
    not letters, no word in common with ``context`` (keywords and documents), or
    the prompt echoed back ("Messages: - ...": the documents quoted, no summary).
    A sentence that is mostly a run of :data:`QUOTE_WORDS` or more words of one
    ``context`` document, in order, is left out: a quote is not a summary.

    >>> tidy_summary("These messages are about lost cards. They ask how to block one. More.", ["lost card"])
    'These messages are about lost cards. They ask how to block one.'
    >>> tidy_summary("I'm not sure what to share, but I'm here to help.") is None
    True
    >>> tidy_summary("What kind of animal is Babar? - What makes a tornado turn?",
    ...              ["What kind of animal is Babar ?", "what makes a tornado turn ?"]) is None
    True
    """
    from ..topics.text import content_words

    text = " ".join(raw.replace("*", "").split())
    if re.match(r"(messages|keywords)\s*:", text, re.I):  # smollm2-135m's echo of summary_prompt
        return None
    text = re.sub(r"^(summary|answer)\s*:\s*", "", text, flags=re.I).lstrip("-• ").strip()
    docs = [t for t in map(_tokens, context or []) if len(t) >= QUOTE_WORDS]
    kept: list[str] = []
    for sentence in sentences(text):
        sentence = sentence.lstrip("-• ").strip()
        if _quotes(sentence, docs):  # a document copied, not summarised
            continue
        if sentence and sentence not in kept and len(kept) < max_sentences:
            kept.append(sentence)
    text = " ".join(kept)
    letters = sum(ch.isalpha() for ch in text)
    if letters < 15 or letters < 0.6 * len(text.replace(" ", "")):
        return None
    if re.search(r"\b(i'm|i am|i can't|i cannot|as an ai|here to help|sorry)\b", text, re.I):
        return None
    if _loops(text):
        return None
    if context is not None and not content_words(text) & {w for c in context for w in content_words(c)}:
        return None
    return text


QUOTE_WORDS = 4  # a run of at least this many words of one document, in order, making up
QUOTE_SHARE = 0.6  # at least this share of a sentence's words: the sentence quotes that document


def _tokens(text: str) -> list[str]:
    """``text`` as its lower-case words and numbers."""
    return re.findall(r"[a-z0-9]+", text.lower())


def _quotes(sentence: str, docs: list[list[str]]) -> bool:
    """Whether ``sentence`` is mostly copied from ``docs``: its list items (split at " - ") that are each mostly
    one run of :data:`QUOTE_WORDS` or more words of one document, in order, hold :data:`QUOTE_SHARE` of its words.

    >>> doc = [_tokens("What was the first Lifesaver flavor ?")]
    >>> _quotes("A film - What was the first Lifesaver flavor?", doc), _quotes("Need a flavor - What was the first?", doc)
    (True, False)
    >>> _quotes("These are questions about the first Lifesaver flavor.", doc)
    False
    """
    items = [_tokens(x) for x in re.split(r"\s[-•]\s", sentence)]
    total = sum(len(x) for x in items)
    copied = sum(len(x) for x in items if _longest_run(x, docs) >= max(QUOTE_WORDS, QUOTE_SHARE * len(x)))
    return total >= QUOTE_WORDS and copied >= QUOTE_SHARE * total


def _longest_run(words: list[str], docs: list[list[str]]) -> int:
    """The most words of ``words`` found one after another, in order, in one of ``docs``."""
    best = 0
    for doc in docs:
        run = [0] * (len(doc) + 1)  # longest common run ending at each word of doc (dynamic programming)
        for w in words:
            prev = 0
            for j, d in enumerate(doc, 1):
                prev, run[j] = run[j], (prev + 1 if w == d else 0)
                best = max(best, run[j])
    return best


def _loops(text: str) -> bool:
    """Whether a model's answer repeats itself: one word of 4+ letters at least 3 times and a quarter of such
    words, or the same three words 3 times. A list that names its subject at each item is not a loop.

    >>> _loops("the app crashes the app crashes the app crashes the app crashes")
    True
    >>> _loops("Depression, anxiety, sadness, loneliness, loneliness, loneliness.")
    True
    >>> _loops("These messages are about fees related to transferring money, fees for withdrawals, "
    ...        "fees for using a card in another country and fees for sending money abroad.")
    False
    """
    words = re.findall(r"[a-z]{4,}", text.lower())
    if words and max(words.count(w) for w in set(words)) >= max(3, len(words) / 4):
        return True
    tokens = re.findall(r"[a-z0-9]+", text.lower())
    grams = [tuple(tokens[i:i + 3]) for i in range(len(tokens) - 2)]
    return bool(grams) and max(grams.count(g) for g in set(grams)) >= 3


def _abstract(ws: Workspace, llm: str, out: list[Summary], max_tokens: int, seed: int,
              sources: dict[str, list[str]]) -> None:
    """Each category's summary by ``llm``, kept only when it is usable and grounded in the category's
    documents; the extractive summary stays otherwise (a note says why). The quotes stay either way."""
    from ..models.generators import load_generator
    from ..topics.grounding import record_speed

    gen = load_generator(ws, llm)
    t0 = time.time()
    for s in track(out, f"summarising with {llm}", unit="category"):
        raw = gen.generate(summary_prompt(s.name, s.keywords, s.texts), max_tokens=max_tokens, temperature=0.0,
                           seed=seed)
        text = tidy_summary(raw, s.keywords + s.texts)
        s.model, s.model_sha256 = gen.name, gen.sha256
        if not text:
            s.notes.append(f"{llm} gave no usable summary ({raw[:60]!r}); kept the extractive one")
            continue
        ground_summary(s, text, sources.get(s.category, s.texts), llm)
    record_speed(ws, llm, gen.sha256, "summary", len(out), time.time() - t0)


def ground_summary(s: Summary, text: str, sources: list[str], llm: str) -> None:
    """Keep the sentences of ``text`` grounded in ``sources``; with none left, ``s`` stays extractive (a note says why)."""
    index = source_index(sources)
    kept, why = [], []
    for sentence in sentences(text):
        problem = check_sentence(sentence, index)
        if problem:
            why.append(f"{problem}: {sentence[:80]!r}")
        else:
            kept.append(sentence)
    s.sentences_kept, s.sentences_dropped = len(kept), len(why)
    if why:
        s.notes.append(f"{llm}: dropped {len(why)} sentence{'s' if len(why) > 1 else ''} not in the documents ("
                       + "; ".join(why) + ")")
    if kept:
        s.summary, s.kind = " ".join(kept), "abstractive"
    else:
        s.notes.append(f"{llm}'s summary fell back to the extractive one (the representative documents)")


def _save(ws: Workspace, dataset: str, by: str, run: int | None, out: list[Summary], t0: float,
          params: dict) -> None:
    info = ws.dataset(dataset)
    llm = next((s for s in out if s.model), None)
    now = time.time()
    with ws.tx() as c:
        run_id = ws.record_run("summarize", {"dataset": dataset, "by": by, "run": run, **params},
                               {"categories": len(out), "abstractive": sum(s.kind == "abstractive" for s in out),
                                **counts(out)},
                               model=llm.model if llm else None, model_sha256=llm.model_sha256 if llm else None,
                               started_at=t0)
        for s in out:
            s.run_id = run_id
        c.executemany(
            "INSERT INTO summaries (run_id, dataset_id, by_column, category, name, size, share, kind, summary,"
            " keywords, doc_ids, model, model_sha256, discovery_run_id, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(run_id, info.id, by, s.category, s.name, s.size, s.share, s.kind, s.summary, json_dumps(s.keywords),
              json_dumps(s.doc_ids), s.model, s.model_sha256, run, now) for s in out])
