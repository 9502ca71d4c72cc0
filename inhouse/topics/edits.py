"""A person's edits of a discovery run: a name for a topic, and merges of one topic into another.

Edits are kept in the ``topic_edits`` table beside the run; the discovered
topics and assignments are never rewritten. :func:`inhouse.topics.runs.load_discovery`
applies them: a renamed topic shows the person's name (``name_source`` becomes
``person:<user>``), and a topic merged into another joins it everywhere the
run's assignments are read (``label --topic``, ``trends --by topic``, summaries):
its documents count as the other topic's. Every edit can be undone
(:func:`unmerge_topic`, or renaming again), and the history stays.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> rename_topic(ws, "banking77", 1, 4, "change_pin")["name"]
    'change_pin'
    >>> merge_topics(ws, "banking77", 1, topic=7, into=4)["into"]
    4
    >>> unmerge_topic(ws, "banking77", 1, 7)["undone"]
    True
"""

from __future__ import annotations

import time

from ..errors import Conflict, NotFound, UsageError
from ..workspace.store import Workspace, current_user
from .runs import load_discovery, resolve_merges, topic_edits

__all__ = ["rename_topic", "merge_topics", "unmerge_topic", "topic_edits", "resolve_merges"]

MAX_NAME = 200


def _run(ws: Workspace, dataset: str, run: int):
    return load_discovery(ws, dataset, run, texts=False)


def rename_topic(ws: Workspace, dataset: str, run: int, topic: int, name: str) -> dict:
    """Give ``topic`` of discovery run ``run`` a person's name (shown, and prefilled as its label)."""
    name = " ".join((name or "").split())
    if not name:
        raise UsageError("the topic's new name is empty.", fix="Give a name, e.g. card_arrival.")
    if len(name) > MAX_NAME:
        raise UsageError(f"the topic's name is {len(name)} characters; at most {MAX_NAME}.", fix="Shorten it.")
    res = _run(ws, dataset, run)
    before = res.topic(topic)  # NotFound naming the topics there are
    now, user = time.time(), current_user()
    with ws.tx() as c:
        c.execute("INSERT INTO topic_edits (run_id, topic, kind, name, user, created_at) VALUES (?, ?, 'name', ?, ?, ?)",
                  (res.run_id, topic, name, user, now))
        ws.audit("topic.rename", dataset, run=res.run_id, topic=topic, name=name, previous=before.name)
    return {"dataset": dataset, "run": res.run_id, "topic": topic, "name": name, "previous": before.name,
            "user": user, "created_at": now}


def merge_topics(ws: Workspace, dataset: str, run: int, *, topic: int, into: int) -> dict:
    """Merge ``topic`` into ``into`` within run ``run``: from now on they are one topic, ``into``."""
    res = _run(ws, dataset, run)
    if topic == into:
        raise UsageError(f"cannot merge topic {topic} into itself.", fix="Choose two different topics.")
    res.topic(topic)
    res.topic(into)
    _, merges = topic_edits(ws, res.run_id)
    if topic in merges:
        raise Conflict(f"topic {topic} is already merged into topic {merges[topic]} in run {res.run_id}.",
                       fix=f"Unmerge it first: POST /datasets/{dataset}/topics/{res.run_id}/unmerge")
    if into in merges:
        root = resolve_merges(merges)[into]
        raise Conflict(f"topic {into} was merged into topic {root}; merge into that topic instead.",
                       fix=f"Merge topic {topic} into topic {root}.")
    now, user = time.time(), current_user()
    with ws.tx() as c:
        c.execute("INSERT INTO topic_edits (run_id, topic, kind, into_topic, user, created_at) "
                  "VALUES (?, ?, 'merge', ?, ?, ?)", (res.run_id, topic, into, user, now))
        ws.audit("topic.merge", dataset, run=res.run_id, topic=topic, into=into)
    return {"dataset": dataset, "run": res.run_id, "topic": topic, "into": into, "user": user, "created_at": now}


def unmerge_topic(ws: Workspace, dataset: str, run: int, topic: int) -> dict:
    """Undo the merge of ``topic``: it is a topic of its own again."""
    res = _run(ws, dataset, run)
    res.topic(topic)
    row = ws.db.execute("SELECT id, into_topic FROM topic_edits WHERE run_id = ? AND topic = ? AND kind = 'merge' "
                        "AND undone_at IS NULL ORDER BY id DESC LIMIT 1", (res.run_id, topic)).fetchone()
    if row is None:
        raise NotFound(f"topic {topic} of run {res.run_id} is not merged into another topic.",
                       fix=f"See the run's merges with: GET /datasets/{dataset}/topics/{res.run_id}")
    now = time.time()
    with ws.tx() as c:
        c.execute("UPDATE topic_edits SET undone_at = ? WHERE id = ?", (now, row["id"]))
        ws.audit("topic.unmerge", dataset, run=res.run_id, topic=topic, was_into=row["into_topic"])
    return {"dataset": dataset, "run": res.run_id, "topic": topic, "was_into": int(row["into_topic"]), "undone": True}
