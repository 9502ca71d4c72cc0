"""Labels set by people: a whole discovered topic at once, or single documents.

Every call writes one *batch* of rows to the ``labels`` table with who set them
and when; :func:`undo` marks a batch undone (nothing is deleted, so the history
stays), and the label a document had before comes back.
:func:`inhouse.store.read_documents` overlays these labels on the file's.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> b = label_docs(ws, "banking77", [12, 40], "change_pin")
    >>> b.count, b.source
    (2, 'manual')
    >>> undo(ws, b.batch).undone_at is not None
    True

Documents are named to :func:`label_docs` by their internal ``doc_id``;
:func:`find_docs` turns the user's own ids (the ``--id-col`` given at ingest,
e.g. ``ticket_id``) into doc_ids first:

    >>> label_docs(ws, "tickets", find_docs(ws, "tickets", ["T-0012"]), "refund").count
    1
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass

from ..errors import Conflict, InputError, NotFound, UsageError
from ..workspace.documents import id_column
from ..workspace.labelsets import resolve_label_col, user_labels
from ..workspace.store import Workspace, current_user


@dataclass
class LabelBatch:
    """One labelling action."""

    batch: str
    dataset: str
    label: str
    count: int
    source: str  # "topic:<run>:<topic>" | "manual" | "where:<expr>"
    user: str
    created_at: float
    undone_at: float | None = None
    column: str = "label"  # the label column written into (``--into``)
    replaced_ingest_labels: int = 0  # labels from ingest this batch changed (needs ``overwrite``)

    def to_dict(self) -> dict:
        return asdict(self)


def _check_label(label: str) -> str:
    label = (label or "").strip()
    if not label:
        raise UsageError("the label is empty.", fix="Give one with --as LABEL.")
    return label


def label_docs(ws: Workspace, dataset: str, doc_ids: list[int], label: str, *, source: str = "manual",
               into: str | None = None, overwrite: bool = False) -> LabelBatch:
    """Set ``label`` on the documents ``doc_ids`` of ``dataset``, as one batch, in label column ``into``.

    ``into`` (default ``label``, the ingest's label column) names the label
    column: a new name creates a label set of its own, so labels from ingest
    and other sets stay as they are. Writing over labels that came from the
    file (the ingest's column, or a metadata column) changes data nobody set by
    hand: it raises Conflict saying how many would change unless ``overwrite``.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> label_docs(ws, "banking77", [12, 40], "change_pin").count
    2
    >>> label_docs(ws, "air", [5, 9], "cancelled_flight", into="complaint").column
    'complaint'
    """
    label = _check_label(label)
    info = ws.dataset(dataset)
    target = resolve_label_col(ws, dataset, into, create=True)
    ids = sorted({int(d) for d in doc_ids})
    if not ids:
        raise UsageError("no documents to label.", fix="Name them with --doc ID or a topic with --topic T.")
    missing = sorted(set(ids) - _existing(ws, dataset, ids))
    if missing:
        raise NotFound(f"dataset {dataset!r} has no document{'s' if len(missing) > 1 else ''} "
                       f"{missing[:10]}{' ...' if len(missing) > 10 else ''}; doc_ids are integers "
                       f"{_doc_id_range(ws, dataset)}.",
                       fix="Use the doc_id column of `inhouse discover --output` or `inhouse classify --dataset`.")
    changed = _ingest_labels_changed(ws, dataset, target, ids, label)
    if changed and not overwrite:
        where = "its labels from ingest" if target.kind == "ingest" else f"the values of its column {target.name!r}"
        raise Conflict(f"labelling {len(ids)} documents of {dataset!r} as {label!r} in column {target.name!r} would "
                       f"change {changed} of {where}, which came from the file.",
                       fix="Write into a label set of your own with --into COLUMN (e.g. --into complaint; "
                           "train with --label-col COLUMN), or replace them on purpose with --overwrite.")
    batch = f"lb-{uuid.uuid4().hex[:10]}"
    now, user = time.time(), current_user()
    with ws.tx() as c:
        c.executemany("INSERT INTO labels (dataset_id, doc_id, label, source, batch, user, created_at, label_col)"
                      " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      [(info.id, d, label, source, batch, user, now, target.key) for d in ids])
        ws.audit("label", dataset, batch=batch, label=label, count=len(ids), source=source, column=target.name,
                 replaced_ingest_labels=changed)
    return LabelBatch(batch, dataset, label, len(ids), source, user, now, None, target.name, changed)


def _ingest_labels_changed(ws: Workspace, dataset: str, target, ids: list[int], label: str) -> int:
    """How many of ``ids`` hold a label from the file in ``target`` (not since set by a person) other than ``label``."""
    if target.kind == "people":
        return 0
    from ..workspace.documents import read_documents

    info = ws.dataset(dataset)
    people = user_labels(ws, info.id, target.key)
    df = read_documents(ws, dataset, columns=["doc_id", "labels"], label_col=target.name)
    df = df[df["doc_id"].isin(ids) & ~df["doc_id"].isin(list(people))]
    return int(sum(1 for ls in df["labels"] if ls and list(ls) != [label]))


def find_docs(ws: Workspace, dataset: str, ids: list, *, internal: bool = False) -> list[int]:
    """The doc_ids of the documents the user names by ``ids``, in order, without repeats.

    ``ids`` are the dataset's own ids: the values of the column given as
    ``--id-col`` at ingest (e.g. ``ticket_id``; every document with that id).
    A dataset ingested without ``--id-col`` has no ids of its own, so there, and
    with ``internal=True``, ``ids`` are internal doc_ids (the ``doc_id`` column
    of ``classify --dataset`` and ``discover --output``). Raises NotFound naming
    the ids that match nothing and what ids look like.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> find_docs(ws, "tickets", ["T-0012", "T-0040"]), find_docs(ws, "tickets", [12], internal=True)
    ([11, 39], [12])
    """
    name = None if internal else id_column(ws, dataset)
    ws.dataset(dataset)  # NotFound for an unknown dataset
    if name is None:
        return _internal_ids(ws, dataset, ids, internal)
    wanted = list(dict.fromkeys(str(i).strip() for i in ids))
    found = _by_source_id(ws, dataset, wanted)
    missing = [i for i in wanted if i not in found]
    if missing:
        sample = _sample_ids(ws, dataset)
        shown = ", ".join(repr(m) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise NotFound(f"dataset {dataset!r} has no document with {name} {shown}; ids look like "
                       f"{', '.join(repr(x) for x in sample) or '(no document has one)'}.",
                       fix=f"Use --doc with {name} values (the {name} column of `inhouse classify --dataset` or "
                           "`inhouse discover --output`), or --doc-id with internal doc_ids.")
    return list(dict.fromkeys(d for i in wanted for d in found[i]))


def _internal_ids(ws: Workspace, dataset: str, ids: list, explicit: bool) -> list[int]:
    out = []
    for i in ids:
        try:
            out.append(int(str(i).strip()))
        except ValueError:
            why = "--doc-id takes" if explicit else (f"dataset {dataset!r} was ingested without --id-col, "
                                                        "so --doc takes")
            raise UsageError(f"{why} internal doc_ids (integers {_doc_id_range(ws, dataset)}); found {str(i)!r}.",
                             fix="Use the doc_id column of `inhouse classify --dataset` or "
                                 "`inhouse discover --output`.") from None
    return list(dict.fromkeys(out))


def _query(ws: Workspace, dataset: str, sql: str, params: list) -> list[tuple]:
    parts = ws.dataset_parts(dataset)
    if not parts:
        return []
    import duckdb

    con = duckdb.connect()
    try:
        return con.execute(sql, [[str(p) for p in parts], *params]).fetchall()
    finally:
        con.close()


def _by_source_id(ws: Workspace, dataset: str, ids: list[str]) -> dict[str, list[int]]:
    rows = _query(ws, dataset, "SELECT source_id, doc_id FROM read_parquet(?) WHERE source_id IN (SELECT unnest(?))"
                               " ORDER BY doc_id", [ids])
    found: dict[str, list[int]] = {}
    for s, d in rows:
        found.setdefault(s, []).append(int(d))
    return found


def _sample_ids(ws: Workspace, dataset: str, n: int = 3) -> list[str]:
    return [r[0] for r in _query(ws, dataset, "SELECT source_id FROM read_parquet(?) WHERE source_id IS NOT NULL"
                                              f" ORDER BY doc_id LIMIT {int(n)}", [])]


def _doc_id_range(ws: Workspace, dataset: str) -> str:
    rows = _query(ws, dataset, "SELECT MIN(doc_id), MAX(doc_id) FROM read_parquet(?)", [])
    if not rows or rows[0][0] is None:
        return "(the dataset has no documents)"
    return f"from {rows[0][0]} to {rows[0][1]}"


def _existing(ws: Workspace, dataset: str, ids: list[int]) -> set[int]:
    parts = ws.dataset_parts(dataset)
    if not parts:
        return set()
    import duckdb

    con = duckdb.connect()
    try:
        rows = con.execute("SELECT doc_id FROM read_parquet(?) WHERE doc_id IN (SELECT unnest(?))",
                           [[str(p) for p in parts], ids]).fetchall()
    finally:
        con.close()
    return {int(r[0]) for r in rows}


def _batches(ws: Workspace, where: str = "", params: tuple = (), limit: int | None = None) -> list[LabelBatch]:
    q = ("SELECT l.batch, d.name, l.label, COUNT(*) AS n, l.source, l.user, MIN(l.created_at) AS at,"
         " MAX(l.undone_at) AS undone, l.label_col FROM labels l JOIN datasets d ON d.id = l.dataset_id"
         f" {where} GROUP BY l.batch, d.name, l.label, l.source, l.user, l.label_col ORDER BY at DESC, l.batch DESC")
    if limit:
        q += f" LIMIT {int(limit)}"
    return [LabelBatch(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]) for r in ws.db.execute(q, params)]


def list_batches(ws: Workspace, dataset: str | None = None, *, limit: int | None = 50) -> list[LabelBatch]:
    """Labelling batches, newest first (of one dataset, or all).

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> [(b.batch, b.label, b.count) for b in list_batches(ws, "banking77")]
    [('lb-9f2c41d0aa', 'change_pin', 314)]
    """
    if dataset is None:
        return _batches(ws, limit=limit)
    return _batches(ws, "WHERE l.dataset_id = ?", (ws.dataset(dataset).id,), limit)


def undo(ws: Workspace, batch: str) -> LabelBatch:
    """Undo a batch: its labels stop counting, and the earlier ones come back."""
    found = _batches(ws, "WHERE l.batch = ?", (batch,))
    if not found:
        recent = [b.batch for b in _batches(ws, limit=5)]
        raise NotFound(f"label batch {batch!r} not found; recent batches are {recent}.",
                       fix="See them all with: inhouse label --list")
    if found[0].undone_at is not None:
        raise Conflict(f"label batch {batch!r} was already undone at {time.ctime(found[0].undone_at)}.")
    now = time.time()
    with ws.tx() as c:
        c.execute("UPDATE labels SET undone_at = ? WHERE batch = ? AND undone_at IS NULL", (now, batch))
        ws.audit("label.undo", found[0].dataset, batch=batch, count=found[0].count)
    b = found[0]
    b.undone_at = now
    return b


def undo_last(ws: Workspace, dataset: str | None = None) -> LabelBatch:
    """Undo the newest batch that is not undone yet (of ``dataset``, or any)."""
    where, params = "WHERE l.undone_at IS NULL", ()
    if dataset is not None:
        where, params = where + " AND l.dataset_id = ?", (ws.dataset(dataset).id,)
    last = _batches(ws, where, params, limit=1)
    if not last:
        scope = f" of dataset {dataset!r}" if dataset else ""
        raise InputError(f"there is no label batch{scope} left to undo.", fix="See them with: inhouse label --list")
    return undo(ws, last[0].batch)
