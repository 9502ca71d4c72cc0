"""Discovering topics and labelling documents, one function each, for ``inhouse discover|label`` and REST.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> res = discover(ws, "air", where="label = 'negative'")
    >>> label(ws, "air", "cancelled", topic=3, into="complaint").count
    214
"""

from __future__ import annotations

from ..errors import UsageError
from ..models.catalog import DEFAULT_ENCODER as DEFAULT_MODEL  # noqa: F401  (the CLI's --model default)
from ..workspace.store import Workspace

DISCOVER_OPTIONS = ("within", "model", "seed", "n_topics", "outliers", "llm", "split", "min_topic_size", "where",
                    "n_themes", "only")


def discover(ws: Workspace, dataset: str, *, confirm=None, **options):
    """Run topic discovery on ``dataset``; ``options`` are :func:`inhouse.topics.discover.discover`'s
    (within, model, seed, n_topics, outliers, llm, split, min_topic_size, where); ``None`` means its default."""
    from ..topics.discover import discover as discover_topics

    unknown = sorted(set(options) - set(DISCOVER_OPTIONS))
    if unknown:
        raise UsageError(f"discover: unknown options {unknown}; options are {list(DISCOVER_OPTIONS)}.")
    opts = {k: v for k, v in options.items() if v is not None}
    return discover_topics(ws, dataset, confirm=confirm, **opts)


def regroup(ws: Workspace, dataset: str, run: int | None, n_themes: int | None):
    """Run ``run`` of ``dataset`` with its topics grouped into ``n_themes`` themes, coarser or finer (a cut of
    the run's stored theme tree; nothing is clustered again or stored): :func:`inhouse.topics.regroup.regroup`."""
    from ..topics.regroup import regroup as regroup_themes

    return regroup_themes(ws, dataset, run, n_themes=n_themes)


def label(ws: Workspace, dataset: str, label: str, *, topic: int | None = None, run: int | None = None,
          docs: list[str] | None = None, doc_ids: list[int] | None = None, where: str | None = None,
          into: str | None = None, overwrite: bool = False):
    """Label, as one undoable batch, a topic of a discovery run, documents by your ids (``docs``) or by
    doc_id (``doc_ids``), or every document for which ``where`` holds (with the others: only those of
    them for which it holds). Returns the :class:`LabelBatch`."""
    from ..data import labels as labels_api

    if topic is not None and (docs or doc_ids):
        raise UsageError("give --topic or --doc/--doc-id, not both.")
    if topic is None and not (docs or doc_ids or where):
        raise UsageError("say what to label: a topic, documents or a filter (where).",
                         fix="e.g. inhouse label --dataset D --topic 3 --as refund_request")
    if topic is not None:
        from ..topics.labeling import label_topic

        return label_topic(ws, dataset, topic, label, run=run, into=into, overwrite=overwrite, where=where)
    found = labels_api.find_docs(ws, dataset, list(docs)) if docs else []
    found += labels_api.find_docs(ws, dataset, list(doc_ids), internal=True) if doc_ids else []
    if where:
        from ..workspace.filters import matching_doc_ids

        matched = matching_doc_ids(ws, dataset, where).tolist()
        found = [d for d in found if d in set(matched)] if (docs or doc_ids) else matched
        if not found:
            raise UsageError(f"no document of {dataset!r} matches --where {where!r}; nothing was labelled.",
                             fix="Check the filter with: inhouse datasets export " + dataset +
                                 " --where ... --output sample.csv")
    return labels_api.label_docs(ws, dataset, found, label, into=into, overwrite=overwrite,
                                 source=f"where:{where}" if where and not (docs or doc_ids) else "manual")


def rename_topic(ws: Workspace, dataset: str, run_id: int, topic: int, name: str) -> dict:
    """A person's name for a topic of a discovery run (replaces the discovered one)."""
    from ..topics.edits import rename_topic as rename

    return rename(ws, dataset, run_id, topic, name)


def merge_topics(ws: Workspace, dataset: str, run_id: int, *, topic: int, into: int) -> dict:
    """Merge ``topic`` into ``into`` within a discovery run (undo: :func:`unmerge_topic`)."""
    from ..topics.edits import merge_topics as merge

    return merge(ws, dataset, run_id, topic=topic, into=into)


def unmerge_topic(ws: Workspace, dataset: str, run_id: int, topic: int) -> dict:
    from ..topics.edits import unmerge_topic as unmerge

    return unmerge(ws, dataset, run_id, topic)


def suggest(ws: Workspace, dataset: str, **options):
    """The unlabelled documents most worth labelling next (:func:`inhouse.analysis.queue.suggest`)."""
    from ..analysis.queue import suggest as queue

    return queue(ws, dataset, **options)


def write_assignments(ws: Workspace, result, output) -> None:
    """One row per document of a discovery result (your id, row, doc_id, topic, name) to .csv/.parquet/.jsonl."""
    from ..topics.runs import write_assignments as write

    write(result, output, ws=ws)


def label_batches(ws: Workspace, dataset: str | None = None, *, limit: int | None = 50) -> list:
    """Labelling batches (of ``dataset``, or all), newest first."""
    from ..data.labels import list_batches

    return list_batches(ws, dataset, limit=limit)


def undo(ws: Workspace, batch: str):
    """Undo a labelling batch: its labels no longer count."""
    from ..data.labels import undo as undo_batch

    return undo_batch(ws, batch)


def undo_last(ws: Workspace, dataset: str | None = None):
    """Undo the newest labelling batch (of ``dataset``, if given)."""
    from ..data.labels import undo_last as undo_newest

    return undo_newest(ws, dataset)
