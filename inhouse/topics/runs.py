"""Discovery runs as they are kept: topics in SQLite, assignments (doc_id -> topic) in Parquet.

``inhouse label --topic``, ``trends --by topic`` and ``summarize --by topic``
read the latest run of a dataset (or any earlier one by run id).

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> load_discovery(ws, "banking77").n_topics
    82
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import NotFound, UsageError
from ..models.catalog import DEFAULT_ENCODER
from ..workspace.documents import ROW_COLUMN, doc_keys, id_column, id_output_name, read_documents, write_table
from ..workspace.files import atomic_path, json_dumps
from ..workspace.store import Workspace, current_user
from .cluster import ClusterConfig

FORMAT_VERSION = 1
NO_GROUP = "(none)"  # the parent of documents whose --within value is empty


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
    where: str | None = None  # a filter over the dataset's columns: discover among these documents only
    n_themes: int | None = None  # None: chosen from the data (8-30); themes are made without --within only
    only: list[str] | None = None  # with within: discover in these categories of it only (e.g. the abstain label)
    theme_similarity: float | None = None  # themes of topics at least this alike (cosine of centres); with only=

    def validate(self) -> "DiscoverOptions":
        if self.n_topics is not None and self.n_topics < 1:
            raise UsageError(f"--n-topics must be at least 1, found {self.n_topics}.",
                             fix="Leave it out to let the data choose the number of topics.")
        if self.n_themes is not None and self.n_themes < 1:
            raise UsageError(f"--n-themes must be at least 1, found {self.n_themes}.",
                             fix="Leave it out to let the data choose the number of themes (8-30).")
        if self.min_topic_size < 1 or self.n_keywords < 1 or self.n_representatives < 1:
            raise UsageError("--min-topic-size, keyword and representative counts must be at least 1.")
        if self.theme_similarity is not None and not 0 < self.theme_similarity <= 1:
            raise UsageError(f"theme_similarity must be in (0, 1], found {self.theme_similarity}.")
        if self.only is not None and not self.within:
            raise UsageError("only= picks categories of within=; give within too.",
                             fix="e.g. within='prediction', only=['other']")
        return self


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
    representative_ids: list = field(default_factory=list)  # the user's ids (or rows) of representative_docs
    merged_into: int | None = None  # a person merged this topic into that one (see inhouse.topics.edits)
    merged: list[int] = field(default_factory=list)  # topics merged into this one (its size includes theirs)
    theme: int | None = None  # the theme this topic belongs to (None under --within)

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.parent is None and self.share_of_all == self.share:
            d.pop("share_of_all")
        return d


@dataclass
class Theme:
    """A group of whole topics, sized for a person to read (see :mod:`inhouse.topics.themes`)."""

    theme: int
    size: int
    share: float
    keywords: list[str]
    name: str
    name_source: str
    topics: list[int]  # its sub-topics, largest first
    representative_docs: list[int] = field(default_factory=list)
    representative_texts: list[str] = field(default_factory=list)
    representative_ids: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Theme":
        return cls(**{k: d[k] for k in ("theme", "size", "share", "keywords", "name", "name_source", "topics",
                                         "representative_docs")})


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
    id_column: str = ROW_COLUMN  # what representative_ids are: the dataset's --id-col, or "row"
    embeddings: dict = field(default_factory=dict)  # {"computed": n, "reused": m}: vectors this run had to compute
    where: str | None = None
    llm_names: dict = field(default_factory=dict)  # accepted / fell_back counts of --llm names
    merges: dict = field(default_factory=dict)  # {topic: the topic it was merged into}, chains resolved
    themes: list[Theme] = field(default_factory=list)  # the coarse level (empty under --within)
    themes_chosen: int | None = None  # the number of themes the data chooses (set when regrouped)

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("topics", "themes")}
        d["n_themes"] = len(self.themes)
        d["themes"] = [t.to_dict() for t in self.themes]
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

        df = pd.read_parquet(self.assignments_path)
        if self.merges:
            df["topic"] = df["topic"].map(lambda t: self.merges.get(int(t), int(t))).astype("int32")
        return df


# ----------------------------------------------------------- persistence ----

def save_discovery(ws: Workspace, dataset: str, opts: DiscoverOptions, doc_ids, labels, sims, parents,
          topics: list[Topic], model_sha: str, llm_sha: str | None, t0: float,
          themes: list[Theme] | None = None, tree: list | None = None) -> DiscoveryResult:
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
    themes = themes or []
    with atomic_path(themes_path(path)) as tmp:
        Path(tmp).write_text(json_dumps({"format": THEMES_FORMAT, "themes": [t.to_dict() for t in themes],
                                         "topic_theme": {str(t.topic): t.theme for t in topics},
                                         "merges": [[int(a), int(b), float(h)] for a, b, h in tree or []]}))
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
    res = DiscoveryResult(run_id, dataset, opts.model, model_sha, opts.seed, opts.within, opts.split,
                          len(labels), len(topics), n_out, {**asdict(opts), "cluster": cluster}, opts.llm,
                          llm_sha, seconds, time.time(), str(path), topics, where=opts.where, themes=themes)
    add_representative_ids(ws, res)
    return res


THEMES_FORMAT = 1


def themes_path(assignments: str | Path) -> Path:
    """The run's themes file, beside its assignments: ``discovery-<ns>.themes.json``."""
    p = Path(assignments)
    return p.with_name(p.stem + ".themes.json")


def _load_themes(res: "DiscoveryResult") -> None:
    """The run's themes and each topic's theme, from its themes file (runs older than themes have none)."""
    path = themes_path(res.assignments_path)
    if not path.is_file():
        return
    data = json.loads(path.read_text())
    if data.get("format") != THEMES_FORMAT:
        raise UsageError(f"{path}: themes file format {data.get('format')!r}, this inhouse reads {THEMES_FORMAT}.",
                         fix="Run the discovery again with this version of inhouse.")
    res.themes = [Theme.from_dict(d) for d in data["themes"]]
    of = {int(k): v for k, v in data.get("topic_theme", {}).items()}
    for t in res.topics:
        t.theme = of.get(t.topic)


def add_representative_ids(ws: Workspace, res: DiscoveryResult) -> None:
    """Each topic's representative documents by the user's id (or source row when there is none)."""
    name = id_column(ws, res.dataset)
    res.id_column = name or ROW_COLUMN
    keys = doc_keys(ws, res.dataset, [d for t in [*res.topics, *res.themes] for d in t.representative_docs])
    for t in [*res.topics, *res.themes]:
        t.representative_ids = [keys.get(int(d), (None, None))[0 if name else 1] for d in t.representative_docs]


def load_discovery(ws: Workspace, dataset: str, run: int | None = None, *, texts: bool = True) -> DiscoveryResult:
    """The latest discovery run of ``dataset``, or run ``run``.

    Illustrative (needs a workspace with data; not run as a doctest):
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
    res = DiscoveryResult(row["run_id"], dataset, row["model"], row["model_sha256"], opts.get("seed", 0),
                          row["within"], row["split"], row["n_documents"], row["n_topics"], row["n_outliers"],
                          opts, row["llm"], row["llm_sha256"],
                          round((started["finished_at"] or 0) - started["started_at"], 3) if started else 0.0,
                          row["created_at"], str(ws.home / row["assignments_path"]), topics, where=opts.get("where"))
    _load_themes(res)
    if texts and res.themes:
        found = doc_texts(ws, dataset, [d for t in res.themes for d in t.representative_docs])
        for t in res.themes:
            t.representative_texts = [found.get(d, "") for d in t.representative_docs]
    _apply_edits(ws, res)
    if texts:
        add_representative_ids(ws, res)
    return res


def _apply_edits(ws: Workspace, res: DiscoveryResult) -> None:
    """A person's names and merges of this run's topics (inhouse.topics.edits), over the discovered ones."""
    names, merges = topic_edits(ws, res.run_id)
    by_id = {t.topic: t for t in res.topics}
    for topic, (name, user) in names.items():
        if topic in by_id:
            by_id[topic].name, by_id[topic].name_source = name, f"person:{user}"
    res.merges = {t: into for t, into in resolve_merges(merges).items() if t in by_id and into in by_id}
    for t, into in sorted(res.merges.items()):
        src, dst = by_id[t], by_id[into]
        src.merged_into = into
        dst.merged.append(t)
        dst.size += src.size
        dst.share = round(dst.share + src.share, 6)
        if dst.share_of_all is not None and src.share_of_all is not None:
            dst.share_of_all = round(dst.share_of_all + src.share_of_all, 6)


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


def write_assignments(result: DiscoveryResult, path: str | Path, *, ws: Workspace) -> Path:
    """One row per document as CSV, Parquet or JSON Lines by the file's extension, written atomically.

    Columns: the dataset's own id column (``ingest --id-col``, e.g. ``ticket_id``)
    when it has one, ``row`` (the 1-based data row of the ingested file),
    ``doc_id`` (the internal id, for ``inhouse label --doc-id``), ``topic``,
    ``name``, and ``parent`` under ``--within``.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> write_assignments(load_discovery(ws, "tickets"), "topics.csv", ws=ws)  # ticket_id,row,doc_id,topic,name
    PosixPath('topics.csv')
    """
    import pandas as pd

    df = result.assignments()
    names = {t.topic: t.name for t in result.topics}
    docs = read_documents(ws, result.dataset, columns=["doc_id", "source_id", "source_row"]).set_index("doc_id")
    ids = df["doc_id"].astype("int64")
    cols = ["topic", "name"] + (["parent"] if result.within else [])
    id_name = id_output_name(id_column(ws, result.dataset), cols)
    out = pd.DataFrame(index=range(len(df)))
    if id_name:
        out[id_name] = docs["source_id"].reindex(ids).to_numpy()
    out[ROW_COLUMN] = pd.array(docs["source_row"].reindex(ids).to_numpy(), dtype="Int64")
    out["doc_id"] = ids.to_numpy()
    out["topic"] = df["topic"].to_numpy()
    out["name"] = [names.get(int(t), "outliers") for t in df["topic"]]
    if result.within:
        out["parent"] = df["parent"].to_numpy()
    return write_table(out, Path(path), what="topics")


# ------------------------------------------------- a person's edits ----

def topic_edits(ws: Workspace, run_id: int) -> tuple[dict[int, tuple[str, str]], dict[int, int]]:
    """The run's standing edits: ``{topic: (name, user)}`` and merges ``{topic: into}``."""
    names: dict[int, tuple[str, str]] = {}
    merges: dict[int, int] = {}
    for r in ws.db.execute("SELECT topic, kind, name, into_topic, user FROM topic_edits WHERE run_id = ? "
                           "AND undone_at IS NULL ORDER BY id", (run_id,)):
        if r["kind"] == "name":
            names[int(r["topic"])] = (r["name"], r["user"])
        else:
            merges[int(r["topic"])] = int(r["into_topic"])
    return names, merges


def resolve_merges(merges: dict[int, int]) -> dict[int, int]:
    """Each merged topic mapped to the topic it finally belongs to (chains followed, never looping).

    >>> resolve_merges({3: 1, 1: 0, 5: 2})
    {3: 0, 1: 0, 5: 2}
    """
    out = {}
    for t in merges:
        seen, cur = {t}, merges[t]
        while cur in merges and merges[cur] not in seen:
            seen.add(cur)
            cur = merges[cur]
        out[t] = cur
    return out
