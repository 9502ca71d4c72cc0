"""Which topics a document belongs to, across the discovery runs of its dataset.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> doc_topics(ws, "banking77", 12)[0]
    {'run_id': 3, 'topic': 5, 'name': 'card arrival', 'parent': None, 'similarity': 0.81, 'within': None, ...}
"""

from __future__ import annotations

import json

from ..workspace.store import Workspace

__all__ = ["doc_topics"]


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
