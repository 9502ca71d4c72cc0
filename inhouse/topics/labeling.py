"""Turn a discovered topic into a label in one action.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> b = label_topic(ws, "banking77", 4, "change_pin")   # topic 4: "pin, change pin, card pin"
    >>> b.count, b.source
    (314, 'topic:1:4')
"""

from __future__ import annotations

import numpy as np

from ..data.labels import LabelBatch, label_docs
from ..errors import Conflict
from ..workspace.store import Workspace


def label_topic(ws: Workspace, dataset: str, topic: int, label: str, *, run: int | None = None,
                into: str | None = None, overwrite: bool = False, where: str | None = None) -> LabelBatch:
    """Set ``label`` on every document of a discovered topic (latest discovery, or ``run``).

    ``into`` names the label column (see :func:`inhouse.data.labels.label_docs`); ``where`` keeps only the
    topic's documents for which the filter holds.
    """
    from .runs import load_discovery

    res = load_discovery(ws, dataset, run, texts=False)
    t = res.topic(topic)  # raises NotFound naming the topics there are
    if t.merged_into is not None:
        raise Conflict(f"topic {topic} of run {res.run_id} was merged into topic {t.merged_into}; its documents "
                       f"are labelled with that topic.", fix=f"Label topic {t.merged_into}, or unmerge topic {topic} "
                       "first.")
    a = res.assignments()
    ids = a.loc[a["topic"] == topic, "doc_id"].astype(np.int64).tolist()
    if where:
        from ..workspace.filters import matching_doc_ids

        ids = sorted(set(ids) & set(matching_doc_ids(ws, dataset, where).tolist()))
    return label_docs(ws, dataset, ids, label, source=f"topic:{res.run_id}:{topic}", into=into, overwrite=overwrite)
