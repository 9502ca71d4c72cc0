"""``models diff`` as one operation: the CLI, ``POST /diff/jobs`` (its job worker) and a small ``GET /diff``
all call :func:`diff`.

A diff classifies the same documents with two versions; on a real dataset that
is tens of seconds (51 s was seen inside one request), so the server runs it
as a job with progress (``kind: "diff"``) and answers ``GET /diff`` inline only
for at most :data:`INLINE_DOCUMENTS` documents.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> d = diff(ws, "intents@1", "intents@2", "banking77", split="test")
    >>> d["agreement"], d["flipped"]
    (0.964, 110)
"""

from __future__ import annotations

from ..analysis.diff import diff_versions
from ..errors import Conflict
from ..pipeline.classify import count_docs
from ..progress import task
from ..workspace.store import Workspace

INLINE_DOCUMENTS = 2_000  # GET /diff compares at most this many documents inside a request


def diff(ws: Workspace, old: str, new: str, dataset: str, *, split: str | None = None, limit: int | None = None,
         examples: int = 10, label_col: str | None = None) -> dict:
    """Compare versions ``old`` and ``new`` on ``dataset`` (see :func:`inhouse.analysis.diff.diff_versions`)."""
    with task(f"comparing {old} and {new} on {dataset}", total=1, unit="diff") as t:
        out = diff_versions(ws, old, new, dataset, split=split, limit=limit, examples=examples, label_col=label_col)
        t.advance(1)
    name_candidates(ws, out)
    return out


def name_candidates(ws: Workspace, d: dict) -> None:
    """Each of the diff's ``new_labels`` gets ``candidate``: the candidate it was made from (the newest
    "Make a label" of that label in the label set the new version learnt, on its training dataset), else None."""
    from .. import registry
    from .candidates import candidate_labels

    if not d.get("new_labels"):
        return
    trained = registry.resolve(ws, d["new"]["ref"]).manifest.get("dataset") or {}
    made: dict = {}
    if trained.get("name") and trained.get("label_col"):
        for m in candidate_labels(ws, trained["name"], trained["label_col"]):  # newest first
            made.setdefault(m["label"], m)
    for row in d["new_labels"]:
        m = made.get(row["label"])
        row["candidate"] = None if m is None else {k: m.get(k) for k in ("dataset", "discovery_run", "candidate",
                                                                             "documents", "action_id", "user", "at")}


def documents_to_compare(ws: Workspace, dataset: str, split: str | None, limit: int | None) -> int:
    """How many documents a diff of ``dataset`` (``split``, at most ``limit``) classifies twice."""
    n = count_docs(ws, dataset, split)
    return min(n, limit) if limit else n


def inline_diff(ws: Workspace, old: str, new: str, dataset: str, *, split: str | None = None,
                limit: int | None = None, examples: int = 10, label_col: str | None = None) -> dict:
    """:func:`diff` inside a request, refused (409) beyond :data:`INLINE_DOCUMENTS` documents: that is a job."""
    ws.dataset(dataset)
    n = documents_to_compare(ws, dataset, split, limit)
    if n > INLINE_DOCUMENTS:
        raise Conflict(f"comparing {old} and {new} on {n:,} documents of {dataset!r} is long work; a request "
                       f"compares at most {INLINE_DOCUMENTS:,}.",
                       fix=f"Start it as a job and follow its progress: POST /diff/jobs {{\"old\": \"{old}\", "
                           f"\"new\": \"{new}\", \"dataset\": \"{dataset}\"}} (or pass limit <= {INLINE_DOCUMENTS}).")
    return diff(ws, old, new, dataset, split=split, limit=limit, examples=examples, label_col=label_col)
