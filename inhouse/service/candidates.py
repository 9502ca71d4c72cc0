"""Candidate new categories (what a model turned away) and the one action that makes a candidate a label.

Every door goes through these functions: ``inhouse discover --within
prediction``, the pipeline's ``candidates`` step, ``GET /pipelines/{id}``
(the dashboard's candidates), ``POST /datasets/{name}/candidates/{run}/{candidate}/label``
and the labelling queue's ``candidate=RUN:CANDIDATE``.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> res = find(ws, "banking77", model="intents@1")
    >>> a = label_candidate(ws, "banking77", res.discovery_run, res.candidates[0].candidate, label_col="new_intents")
    >>> a["label"], a["documents"], a["queue"]
    ('refund, refund request', 52, '/datasets/banking77/queue?candidate=14:0&label_col=new_intents')
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlencode

from ..errors import UsageError
from ..workspace.store import Workspace

CANDIDATE_OPTIONS = ("model", "every", "recent", "recent_from", "until", "seed", "min_topic_size", "n_topics", "llm",
                     "embed_model", "merge")


def find(ws: Workspace, dataset: str, *, confirm=None, **options):
    """The candidates of a version's stored predictions (:func:`inhouse.analysis.candidates.find_candidates`);
    ``None`` options take its defaults."""
    from ..analysis.candidates import find_candidates

    unknown = sorted(set(options) - set(CANDIDATE_OPTIONS))
    if unknown:
        raise UsageError(f"candidates: unknown options {unknown}; options are {list(CANDIDATE_OPTIONS)}.")
    return find_candidates(ws, dataset, confirm=confirm, **{k: v for k, v in options.items() if v is not None})


def parse_candidate(value: str) -> tuple[int, int]:
    """``RUN:CANDIDATE`` as two integers.

    >>> parse_candidate("14:3")
    (14, 3)
    """
    m = re.fullmatch(r"\s*(\d{1,12})\s*:\s*(\d{1,9})\s*", value or "")
    if not m:
        raise UsageError(f"a candidate is RUN:CANDIDATE (its discovery run and number), found {str(value)[:40]!r}.",
                         fix="e.g. candidate=14:3 (see the candidates of a pipeline run: GET /pipelines/ID)")
    return int(m.group(1)), int(m.group(2))


def candidate_docs(ws: Workspace, dataset: str, candidate: str) -> list[int]:
    """The doc ids of ``candidate`` (``RUN:CANDIDATE``)."""
    from ..analysis.candidates import candidate_doc_ids

    run, topic = parse_candidate(candidate)
    return candidate_doc_ids(ws, dataset, run, topic).tolist()


def label_candidate(ws: Workspace, dataset: str, run: int, candidate: int, *, label_col: str,
                    label: str | None = None) -> dict:
    """Make candidate ``candidate`` of discovery run ``run`` a label: ``label`` (default: the candidate's name)
    in the label set ``label_col`` (created when new), and the labelling queue on its documents.

    Nothing is labelled yet: a person confirms the documents one at a time in the queue this returns
    (``queue``: the REST query; ``ui``: the Label screen's address). The action is recorded (a run of
    kind ``candidate-label``, and the audit log), so the label set knows the label before its first document.
    """
    from ..analysis.candidates import candidate_doc_ids
    from ..topics.runs import load_discovery
    from ..workspace.labelsets import resolve_label_col

    col = resolve_label_col(ws, dataset, (label_col or "").strip() or None, create=True)
    ids = candidate_doc_ids(ws, dataset, run, candidate)  # NotFound naming the candidates there are
    disc = load_discovery(ws, dataset, run, texts=False)
    name = " ".join((label if label is not None else next(t.name for t in disc.themes if t.theme == candidate)).split())
    if not name or len(name) > 200:
        raise UsageError(f"a label is 1-200 characters, found {len(name)}.", fix="Give the label a short name.")
    ref, ds = f"{run}:{candidate}", quote(dataset, safe="")
    out = {"dataset": dataset, "label_col": col.name, "label": name, "discovery_run": run, "candidate": candidate,
           "documents": len(ids),
           "queue": f"/datasets/{ds}/queue?" + urlencode({"candidate": ref, "label_col": col.name}),
           "ui": f"#/datasets/{ds}/label?" + urlencode({"col": col.name, "mode": "docs", "candidate": ref, "new": name})}
    action = ws.record_run("candidate-label", {"dataset": dataset, "discovery_run": run, "candidate": candidate,
                                               "label_col": col.name, "label": name}, {"documents": len(ids)})
    ws.audit("candidate-label", dataset, run=run, candidate=candidate, label_col=col.name, label=name)
    return {"action_id": action, **out}


def candidate_labels(ws: Workspace, dataset: str, label_col: str | None = None) -> list[dict]:
    """The labels made from candidates on ``dataset`` (of ``label_col``, or all), newest first."""
    import json

    out = []
    for r in ws.db.execute("SELECT id, params, result, started_at, user FROM runs WHERE kind = 'candidate-label' "
                           "ORDER BY id DESC LIMIT 500"):
        p = json.loads(r["params"] or "{}")
        if p.get("dataset") == dataset and (label_col is None or p.get("label_col") == label_col):
            out.append({"action_id": r["id"], **p, **json.loads(r["result"] or "{}"), "at": r["started_at"],
                        "user": r["user"]})
    return out
