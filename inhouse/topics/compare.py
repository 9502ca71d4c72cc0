"""Topics against what you already know: the crosstab of a discovery run with any column.

"Does this topic match a known reason, or is it new?" For each topic: its size,
the majority value of the column among its documents and that value's share
(the topic's purity), how many documents have no value, and the whole row of
counts; overall, the normalised mutual information and the adjusted Rand index
between topics and values (over the documents that have a value).

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> c = compare_topics(ws, "air", "negative_reason")
    >>> c.nmi, c.rows[0].majority, c.rows[0].purity
    (0.31, 'Late Flight', 0.82)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..workspace.documents import write_table
from ..workspace.store import Workspace
from .categories import category_values
from .runs import DiscoveryResult, load_discovery

NEW_BELOW = 0.5  # a topic whose majority value holds under this share of it matches no known value


@dataclass
class CompareRow:
    topic: int
    name: str
    size: int
    with_value: int
    majority: str | None
    majority_count: int
    purity: float  # majority_count / with_value
    counts: dict[str, int] = field(default_factory=dict)
    parent: str | None = None

    @property
    def verdict(self) -> str:
        if not self.with_value:
            return "no value"
        return "matches" if self.purity >= NEW_BELOW else "mixed / new"


@dataclass
class Comparison:
    dataset: str
    run_id: int
    column: str
    values: list[str]
    rows: list[CompareRow]
    nmi: float | None
    ari: float | None
    documents: int
    with_value: int
    output: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        for r, row in zip(d["rows"], self.rows):
            r["verdict"] = row.verdict
        return d

    def frame(self):
        """The crosstab as a DataFrame: one row per topic, one column per value, plus the summary columns."""
        import pandas as pd

        out = pd.DataFrame({"topic": [r.topic for r in self.rows], "name": [r.name for r in self.rows],
                            "size": [r.size for r in self.rows], "majority": [r.majority for r in self.rows],
                            "purity": [round(r.purity, 4) for r in self.rows],
                            "verdict": [r.verdict for r in self.rows]})
        for v in self.values:
            out[v] = [r.counts.get(v, 0) for r in self.rows]
        out["(no value)"] = [r.size - r.with_value for r in self.rows]
        return out


def compare_topics(ws: Workspace, dataset: str, column: str, *, run: int | None = None,
                   result: DiscoveryResult | None = None, output: str | Path | None = None) -> Comparison:
    """The crosstab of a discovery run (the latest, ``run``, or ``result``) against ``column``.

    Writes it to ``output`` (.csv, .parquet or .jsonl) when given.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    res = result or load_discovery(ws, dataset, run, texts=False)
    a = res.assignments()
    doc_ids = a["doc_id"].to_numpy()
    topics = a["topic"].to_numpy()
    values, _ = category_values(ws, dataset, column, doc_ids)
    vals = np.array(["" if v is None else str(v) for v in values], dtype=object)
    has = vals != ""
    names = {t.topic: t.name for t in res.topics}
    parents = {t.topic: t.parent for t in res.topics}
    all_values = sorted({v for v in vals[has]}, key=lambda v: (-int((vals == v).sum()), v))
    rows = []
    for t in sorted(set(topics.tolist()), key=lambda t: (t < 0, t)):
        m = topics == t
        sub = vals[m & has]
        uniq, cnt = np.unique(sub, return_counts=True) if len(sub) else (np.array([]), np.array([]))
        order = sorted(range(len(uniq)), key=lambda i: (-cnt[i], uniq[i]))
        counts = {str(uniq[i]): int(cnt[i]) for i in order}
        top = order[0] if order else None
        rows.append(CompareRow(int(t), names.get(int(t), "outliers"), int(m.sum()), int(len(sub)),
                               None if top is None else str(uniq[top]), 0 if top is None else int(cnt[top]),
                               0.0 if top is None else round(float(cnt[top]) / len(sub), 6), counts,
                               parents.get(int(t))))
    nmi = ari = None
    if has.sum() >= 2 and len(all_values) >= 1:
        nmi = round(float(normalized_mutual_info_score(vals[has], topics[has])), 4)
        ari = round(float(adjusted_rand_score(vals[has], topics[has])), 4)
    comp = Comparison(dataset, res.run_id, column, all_values, rows, nmi, ari, int(len(doc_ids)), int(has.sum()))
    if output:
        comp.output = str(write_table(comp.frame(), output, what="crosstab"))
    return comp
