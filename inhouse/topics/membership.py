"""Which topics a document belongs to, across the discovery runs of its dataset.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> doc_topics(ws, "banking77", 12)[0]
    {'run_id': 3, 'topic': 5, 'name': 'card arrival', 'parent': None, 'similarity': 0.81, 'within': None, ...}
"""

from __future__ import annotations

import json

from ..workspace.store import Workspace

__all__ = ["doc_topics", "topic_documents"]


def doc_topics(ws: Workspace, dataset: str, doc_id: int, *, runs: int = 5) -> list[dict]:
    """The topic of ``doc_id`` in each of the latest ``runs`` discovery runs (newest first; -1 is an outlier)."""
    import pyarrow.parquet as pq

    info = ws.dataset(dataset)
    out = []
    for r in ws.db.execute("SELECT run_id, within, assignments_path, created_at FROM discoveries WHERE dataset_id = ?"
                           " ORDER BY run_id DESC LIMIT ?", (info.id, runs)).fetchall():
        path = ws.home / r["assignments_path"]
        if not path.is_file():
            continue
        t = pq.read_table(path, filters=[("doc_id", "=", int(doc_id))]).to_pylist()
        if not t:
            continue
        a = t[0]
        row = ws.db.execute("SELECT name, keywords, size FROM topics WHERE run_id = ? AND topic = ? AND "
                            "(parent IS ? OR parent = ?)", (r["run_id"], a["topic"], a["parent"], a["parent"])).fetchone()
        out.append({"run_id": r["run_id"], "within": r["within"], "topic": a["topic"], "parent": a["parent"],
                    "similarity": None if a["similarity"] is None else round(float(a["similarity"]), 4),
                    "name": row["name"] if row else ("outliers" if a["topic"] < 0 else None),
                    "keywords": json.loads(row["keywords"])[:5] if row else [],
                    "size": row["size"] if row else None})
    return out


def topic_documents(ws: Workspace, dataset: str, run: int, topic: int, *, limit: int = 50, offset: int = 0) -> dict:
    """The documents of ``topic`` in discovery run ``run``, most typical first (by similarity), one page of them.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> topic_documents(ws, "banking77", 3, 5, limit=2)["documents"][0]
    {'doc_id': 812, 'similarity': 0.93, 'text': 'my card has not arrived yet', 'label': 'card_arrival', ...}
    """
    import pyarrow.parquet as pq

    from ..workspace.documents import read_documents
    from .runs import load_discovery

    res = load_discovery(ws, dataset, run, texts=False)
    if topic != -1:
        res.topic(topic)  # NotFound naming the run's topics
    a = pq.read_table(res.assignments_path, filters=[("topic", "=", int(topic))]).to_pandas()
    a = a.sort_values(["similarity", "doc_id"], ascending=[False, True], kind="stable")
    page = a.iloc[offset:offset + limit]
    ids = [int(d) for d in page["doc_id"]]
    docs = {}
    if ids:
        df = read_documents(ws, dataset, columns=["doc_id", "text", "label", "time", "split"],
                            where=f"doc_id IN ({', '.join(str(d) for d in ids)})")
        docs = {int(r["doc_id"]): r for r in df.to_dict("records")}
    out = []
    for d, sim, parent in zip(ids, page["similarity"], page["parent"]):
        r = docs.get(d, {})
        t = r.get("time")
        out.append({"doc_id": d, "similarity": None if sim is None else round(float(sim), 4), "parent": parent,
                    "text": r.get("text"), "label": r.get("label") if isinstance(r.get("label"), str) else None,
                    "time": None if t is None or str(t) == "NaT" else t.isoformat(),
                    "split": r.get("split") if isinstance(r.get("split"), str) else None})
    return {"dataset": dataset, "run_id": res.run_id, "topic": topic, "total": len(a), "limit": limit,
            "offset": offset, "documents": out}
