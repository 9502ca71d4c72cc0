"""What your labels miss: the documents a model turned away or was unsure of, grouped into candidate new categories.

A classifier answers its abstain label (``other``: under its abstain rule)
or one of its out-of-scope labels for documents it does not recognise. Those
documents, and the ones it answered while unsure, are where new categories
appear first. Abstention is tuned to keep answers precise (the distance rule
turns away few documents); finding what the labels miss needs recall, so the
pool is what the version turned away **or** answered with a best probability
under its stored review criterion (``abstain.review.confidence_below``: the
probability a fifth of its validation rows fall under, recorded at training;
versions made before it: the turned-away documents only).
:func:`find_candidates` reads the stored predictions of one model version on
a dataset, runs the topic discovery of :mod:`inhouse.topics.discover` on that
pool only (``within`` the version's ``review:SHA`` view, ``only`` its abstain
labels: the same clusterer, keywords, names and representatives as every
discovery), and
describes each group as a candidate: its size, its share of the turned-away
and of all documents, its growth over the periods of the dataset's time
column (the test of :func:`inhouse.analysis.trends.trends`, share of all
documents, recent window against the baseline), a name grounded in its
documents (content words and phrases; a local LLM's name only when ``llm``
is given, checked against the documents) and representative documents by the
user's ids.

The groups are a discovery run like any other (``discovery_run``), so a
candidate's documents are that run's topic: :func:`candidate_doc_ids` lists
them, and :func:`inhouse.topics.labeling.label_topic` or the labelling queue
(``candidate=RUN:CANDIDATE``) work on them.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> res = find_candidates(ws, "banking77", model="intents@1")
    >>> res.turned_away, res.unsure, len(res.candidates), res.candidates[0].name
    (412, 380, 9, 'refund, refund request, request refund')
    >>> res.candidates[0].growth["status"], res.candidates[0].representative_ids[:2]
    ('emerging', ['T-0912', 'T-1177'])

Equal stored predictions, dataset and seed give identical candidates.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import InputError, NotFound
from ..models.catalog import DEFAULT_ENCODER
from ..workspace.store import Workspace

MERGE_SIMILARITY = 0.75  # topics of the pooled documents at least this alike (cosine of centres) are one candidate
TREND_KEYS = ("counts", "shares", "share_baseline", "share_recent", "share_ratio", "abs_change", "recent_count",
              "baseline_count", "q_value", "status")


@dataclass
class Candidate:
    """One group of turned-away or unsure documents: a category the labels may be missing."""

    candidate: int  # the theme id in the discovery run (``discovery_run``): its topics at least MERGE_SIMILARITY alike
    name: str
    name_source: str  # "keywords" | the LLM that named it
    keywords: list[str]
    size: int
    share: float  # of the pool: the turned-away and unsure documents
    share_of_all: float  # of every classified document
    parent: str  # the label it was turned away with (``other``; unsure documents count as ``other``)
    representative_docs: list[int]
    representative_ids: list
    representative_texts: list[str]
    growth: dict | None = None  # counts per period, share before/after, q-value, status (None: no time column)
    turned_away: int = 0  # of its documents, the ones the version turned away (the rest it answered, unsure)
    answered_as: dict = field(default_factory=dict)  # the labels it answered the rest with: label -> documents

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CandidatesResult:
    """The candidate categories of one model version's predictions on a dataset."""

    dataset: str
    model: str
    model_sha256: str
    turned_away_labels: list[str]
    documents: int  # classified documents
    turned_away: int  # answered an abstain/out-of-scope label
    discovery_run: int | None
    id_column: str
    unsure: int = 0  # answered a label, but with a best probability under ``review.confidence_below``: also grouped
    review: dict | None = None  # the version's stored review criterion (None: made before it; turned away only)
    every: str | None = None
    periods: list[str] = field(default_factory=list)
    recent_periods: int | None = None
    growth_note: str | None = None  # why there is no growth, when there is none
    candidates: list[Candidate] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "candidates"}
        d["candidates"] = [c.to_dict() for c in self.candidates]
        return d

    def rows(self) -> list[dict]:
        """One flat row per candidate, for the Parquet/CSV output."""
        out = []
        for c in self.candidates:
            g = c.growth or {}
            out.append({"candidate": c.candidate, "name": c.name, "name_source": c.name_source, "size": c.size,
                        "share": c.share, "share_of_all": c.share_of_all, "parent": c.parent,
                        "keywords": list(c.keywords), "turned_away": c.turned_away,
                        "answered_as": json.dumps(c.answered_as), "status": g.get("status"),
                        "share_baseline": g.get("share_baseline"), "share_recent": g.get("share_recent"),
                        "share_ratio": g.get("share_ratio"), "q_value": g.get("q_value"),
                        "counts": [int(x) for x in g.get("counts") or []],
                        "representative_ids": [None if x is None else str(x) for x in c.representative_ids],
                        "representative_texts": list(c.representative_texts),
                        "discovery_run": self.discovery_run, "model": self.model, "model_sha256": self.model_sha256})
        return out


def turned_away_labels(manifest: dict) -> list[str]:
    """The labels a version answers when it does not recognise a document: its abstain label and out-of-scope ones.

    >>> turned_away_labels({"labels": ["card", "other"], "abstain": {"label": "other", "out_of_scope": ["other"]}})
    ['other']
    >>> turned_away_labels({"labels": ["a", "b"]})
    ['other']
    """
    ab = manifest.get("abstain") if isinstance(manifest.get("abstain"), dict) else {}
    out = [str(ab.get("label") or "other")]
    return out + [str(x) for x in ab.get("out_of_scope") or [] if str(x) not in out]


def find_candidates(ws: Workspace, dataset: str, *, model: str | None = None, every: str = "week",
                    recent: int | None = None, recent_from: str | None = None, until: str | None = None,
                    seed: int = 0, min_topic_size: int = 10, n_topics: int | None = None, llm: str | None = None,
                    embed_model: str = DEFAULT_ENCODER, merge: float = MERGE_SIMILARITY,
                    confirm=None) -> CandidatesResult:
    """Group the documents ``model`` turned away or was unsure of (its stored predictions on ``dataset``) into
    candidates.

    ``model``: a reference or sha256 of a version whose predictions are stored
    (``inhouse classify MODEL --dataset``, a pipeline's classify step); None:
    the dataset's newest prediction set. ``every``, ``recent``, ``recent_from``
    and ``until`` choose the periods of the growth test, as for trends.
    Discovery splits a new category into a few topics when its documents say
    it in a few ways (close / delete / leave an account); the topics whose
    centres are at least ``merge`` alike (cosine) are one candidate (a theme
    of the run: Ward merges of topic centres, :mod:`inhouse.topics.themes`),
    named from all its documents (with ``llm``: the local model's name of its
    largest topic, checked against that topic's documents, else the keyword
    name). Candidates come those with the most documents the version turned away first (then the largest):
    a group it mostly answered with its labels, unsure, is where known labels blur (card_arrival beside
    lost_or_stolen_card), less likely a category they miss; ``answered_as`` says which labels.
    """
    from .. import registry
    from ..data.predictions import find_set
    from ..topics.categories import review_values
    from ..topics.discover import discover

    t0 = time.time()
    sha = None
    if model is not None:
        from ..topics.categories import prediction_model

        sha = prediction_model(ws, f"prediction:{model}")
    pset = find_set(ws, dataset, sha)
    version = registry.resolve(ws, pset.model_sha256)
    labels = turned_away_labels(version.manifest or {})
    abstain = (version.manifest or {}).get("abstain")
    pred = pset.read(["doc_id", "label", "score"])
    _, unsure = review_values(pred["label"].tolist(), pred["score"].tolist(), abstain)
    away = int(pred["label"].isin(labels).sum())
    review = (abstain or {}).get("review") if isinstance((abstain or {}).get("review"), dict) else None
    res = CandidatesResult(dataset, version.ref, pset.model_sha256, labels, len(pred), away, None, "row",
                           unsure=int(unsure.sum()), review=review)
    pool = away + res.unsure
    if pool == 0:
        res.seconds = round(time.time() - t0, 3)
        return res
    within = f"{'review' if review else 'prediction'}:{pset.model_sha256}"
    disc = discover(ws, dataset, within=within, only=labels, model=embed_model, seed=seed, n_topics=n_topics,
                    llm=llm, min_topic_size=min_topic_size, confirm=confirm, theme_similarity=merge)
    res.discovery_run, res.id_column = disc.run_id, disc.id_column
    parent = {t.theme: t.parent for t in disc.topics}
    if llm:  # the LLM named the topics (each checked against its documents): a candidate takes its largest one's
        by_id = {t.topic: t for t in disc.topics}
        for th in disc.themes:
            big = by_id.get(th.topics[0]) if th.topics else None
            if big is not None and big.name_source != "keywords":
                th.name, th.name_source = big.name, big.name_source
    res.candidates = [Candidate(th.theme, th.name, th.name_source, list(th.keywords), th.size,
                                round(th.size / pool, 6), round(th.size / max(len(pred), 1), 6),
                                parent.get(th.theme) or labels[0], list(th.representative_docs),
                                list(th.representative_ids), list(th.representative_texts))
                      for th in disc.themes if th.size > 0]
    _add_answers(ws, res, pred, labels)
    res.candidates.sort(key=lambda c: (-c.turned_away, -c.size, c.candidate))
    _add_growth(ws, res, within, every=every, recent=recent, recent_from=recent_from, until=until)
    res.seconds = round(time.time() - t0, 3)
    return res


def _add_answers(ws: Workspace, res: CandidatesResult, pred, labels: list[str]) -> None:
    """Each candidate's documents the version turned away, and the labels it answered the others with."""
    from ..topics.runs import load_discovery

    run = load_discovery(ws, res.dataset, res.discovery_run, texts=False)
    theme = {t.topic: t.theme for t in run.topics}
    a = run.assignments()
    a = a.assign(theme=a["topic"].map(theme)).merge(pred[["doc_id", "label"]], on="doc_id", how="left")
    for c in res.candidates:
        got = a.loc[a["theme"] == c.candidate, "label"]
        away = got.isin(labels)
        c.turned_away = int(away.sum())
        c.answered_as = {str(k): int(v) for k, v in got[~away].value_counts().items()}


def _add_growth(ws: Workspace, res: CandidatesResult, within: str, **window) -> None:
    """Each candidate's counts per period and its recent-versus-baseline test (share of all documents)."""
    from .trends import trends

    if not (ws.dataset(res.dataset).columns or {}).get("time"):
        res.growth_note = "the dataset has no time column"
        return
    try:
        tr = trends(ws, res.dataset, by="theme", within=within, run=res.discovery_run, **window)
    except InputError as e:  # a single period, no document with a time...: say so, keep the candidates
        res.growth_note = e.message
        return
    res.every, res.periods, res.recent_periods = tr.every, tr.periods, tr.recent_periods
    by_topic = {c.category: c for c in tr.categories}
    for c in res.candidates:
        t = by_topic.get(str(c.candidate))
        if t is not None:
            c.growth = {k: getattr(t, k) for k in TREND_KEYS}


def candidate_doc_ids(ws: Workspace, dataset: str, run: int, candidate: int) -> np.ndarray:
    """The doc ids of one candidate (theme ``candidate`` of discovery run ``run``), sorted.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> candidate_doc_ids(ws, "banking77", 14, 0)[:3].tolist()
    [17, 40, 211]
    """
    from ..topics.runs import load_discovery

    disc = load_discovery(ws, dataset, run, texts=False)
    if not disc.config.get("only"):
        raise NotFound(f"discovery run {run} of {dataset!r} is not a candidates run (it did not group turned-away "
                       "or unsure documents).",
                       fix=f"Find candidates with: inhouse discover --dataset {dataset} --within prediction")
    topics = [t.topic for t in disc.topics if t.theme == int(candidate)]
    if not topics:
        raise NotFound(f"candidate {candidate} not found in run {run} of {dataset!r}; candidates are "
                       f"0..{len(disc.themes) - 1}.", fix="See them with: inhouse discover --dataset "
                       f"{dataset} --within prediction")
    a = disc.assignments()
    return np.sort(a.loc[a["topic"].isin(topics), "doc_id"].to_numpy(dtype=np.int64))
