"""Label columns of a dataset: the one from ingest, label sets people made, and metadata columns.

A dataset can hold several sets of labels side by side, each in a named
*label column*:

- ``label``: the column given as ``ingest --label-col`` (also known by its name
  in the file, e.g. ``sentiment``), overlaid by labels people set into it;
- a label set people made with ``inhouse label ... --into COLUMN`` (created on
  first use), stored only in the ``labels`` table, with its own undo history;
- a metadata column kept at ingest (e.g. ``negative_reason``), overlaid by
  labels people set into it.

The ``labels`` table records the column of every label (``label_col``), so a
label set never touches another.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> resolve_label_col(ws, "air", "complaint")
    LabelColumn(name='complaint', kind='people', key='complaint')
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from .store import DatasetInfo, Workspace

DEFAULT_LABEL_COL = "label"


@dataclass(frozen=True)
class LabelColumn:
    """A label column: ``kind`` is ``ingest`` (the dataset's ``label``), ``people`` or ``metadata``."""

    name: str
    kind: str
    key: str  # the value of labels.label_col: "label" for the ingest column, else the name


def user_labels(ws: Workspace, dataset_id: int, label_col: str = DEFAULT_LABEL_COL) -> dict[int, str]:
    """doc_id -> the label a person set last into ``label_col`` (undone labels are skipped)."""
    rows = ws.db.execute(
        "SELECT doc_id, label FROM labels WHERE dataset_id = ? AND label_col = ? AND undone_at IS NULL ORDER BY id",
        (dataset_id, label_col),
    )
    return {r[0]: r[1] for r in rows}


def overlay_people_labels(con, ws: Workspace, dataset_id: int, label_col: str = DEFAULT_LABEL_COL, *,
                          base: str = "d.labels", doc: str = "d.doc_id", name: str = "people") -> tuple[str, str]:
    """The one overlay of people's labels on a document's own labels, for a DuckDB query on ``con``.

    Registers the last label people set into ``label_col`` per document as the
    relation ``name`` and returns ``(join, labels)``: the ``LEFT JOIN`` to add
    after the documents' ``FROM`` (whose doc id is ``doc``) and the expression
    of the effective labels, a list: ``[the person's label]`` where a person set
    one, else ``base`` (the file's labels, ``[]`` when none). Every reader of
    labels (:func:`inhouse.workspace.documents.read_documents`, Explore's search,
    a dataset's label counts) lays them over the same way through this function.

    >>> import duckdb
    >>> con = duckdb.connect()
    >>> class _Ws:  # the labels table of a workspace, reduced to what is read here
    ...     class db:
    ...         execute = staticmethod(lambda q, args: [(1, "refund")])
    >>> join, labels = overlay_people_labels(con, _Ws, 1)
    >>> con.execute(f"SELECT d.doc_id, {labels} FROM (VALUES (0, ['card']), (1, ['card'])) d(doc_id, labels) "
    ...             f"{join} ORDER BY 1").fetchall()
    [(0, ['card']), (1, ['refund'])]
    """
    import pyarrow as pa

    people = user_labels(ws, dataset_id, label_col)
    con.register(name, pa.table({"doc_id": pa.array(list(people), pa.int64()),
                                 "label": pa.array(list(people.values()), pa.string())}))
    labels = (f"CASE WHEN {name}.label IS NOT NULL THEN [{name}.label] "
              f"ELSE COALESCE({base}, []::VARCHAR[]) END")
    return f"LEFT JOIN {name} ON {name}.doc_id = {doc}", labels


def people_label_sets(ws: Workspace, dataset_id: int) -> list[str]:
    """Names of the label columns people wrote into (besides ``label``), in order of first use."""
    rows = ws.db.execute("SELECT label_col, MIN(id) AS first FROM labels WHERE dataset_id = ? AND label_col != ?"
                         " GROUP BY label_col ORDER BY first", (dataset_id, DEFAULT_LABEL_COL))
    return [r[0] for r in rows]


def metadata_columns(info: DatasetInfo) -> list[str]:
    """The file's other columns kept at ingest (as ``meta``)."""
    return [c for c in (info.columns or {}).get("meta") or [] if isinstance(c, str)]


def ingest_label_name(info: DatasetInfo) -> str | None:
    """The name the ingest's label column had in the file (``ingest --label-col``), or None."""
    name = (info.columns or {}).get("label")
    return name if isinstance(name, str) and name else None


def label_columns(ws: Workspace, dataset: str) -> list[LabelColumn]:
    """Every label column of ``dataset``: ``label``, the people's sets, then metadata columns."""
    info = ws.dataset(dataset)
    out = [LabelColumn(DEFAULT_LABEL_COL, "ingest", DEFAULT_LABEL_COL)]
    meta = metadata_columns(info)
    out += [LabelColumn(s, "metadata" if s in meta else "people", s) for s in people_label_sets(ws, info.id)]
    taken = {c.name for c in out}
    out += [LabelColumn(m, "metadata", m) for m in meta if m not in taken]
    return out


def resolve_label_col(ws: Workspace, dataset: str, name: str | None, *, create: bool = False) -> LabelColumn:
    """The label column ``name`` of ``dataset`` (``label`` when None).

    The ingest's own name for its label column means ``label``. With
    ``create=True`` an unknown name is a new label set (for ``label --into``);
    otherwise it is an InputError naming the label columns there are.
    """
    info = ws.dataset(dataset)
    name = (name or DEFAULT_LABEL_COL).strip()
    if not name:
        raise InputError("the label column name is empty.", fix="Give one, e.g. --into complaint.")
    if name == DEFAULT_LABEL_COL or name == ingest_label_name(info):
        return LabelColumn(DEFAULT_LABEL_COL, "ingest", DEFAULT_LABEL_COL)
    for c in label_columns(ws, dataset):
        if c.name == name:
            return c
    if create:
        if name in RESERVED_COLUMNS:
            raise InputError(f"{name!r} is a built-in column of every dataset and cannot hold labels.",
                             fix="Choose another name for the label set, e.g. --into complaint.")
        return LabelColumn(name, "people", name)
    known = [c.name for c in label_columns(ws, dataset)]
    raise InputError(f"dataset {dataset!r}: label column {name!r} not found; its label columns are {known}.",
                     fix="Use --label-col with one of them, or create a label set with: inhouse label ... --into "
                         f"{name}")


# columns every dataset has (besides label columns); a label set cannot take these names
RESERVED_COLUMNS = ("doc_id", "text", "text_hash", "labels", "time", "split", "source_id", "source_row", "row",
                    "ingest_id", "meta", "topic", "prediction")
