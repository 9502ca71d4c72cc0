"""``--where EXPR``: filter a dataset's documents by their columns, safely, with DuckDB.

Every stage that reads documents (discover, train, eval, classify, summarize,
trends, label, export) takes the same filter, an SQL boolean expression over
the document's columns::

    label = 'negative'
    airline in ('Delta', 'United') and time >= '2015-02-20'
    negative_reason is not null and not (text ilike '%refund%')

The columns are those of :func:`filter_columns`: ``doc_id``, ``text``,
``split``, ``time`` (UTC), ``row``, ``source_id`` (and the dataset's own id
column name), every label column (``label``, label sets people made, the ingest
label column's name in the file) and every metadata column kept at ingest.

The expression is parsed by DuckDB's own parser (``json_serialize_sql``) as the
``WHERE`` clause of one fixed statement, and the parse tree is checked before
anything runs: only comparisons, ``and``/``or``/``not``, ``in``, ``between``,
``is [not] null``, ``like``/``ilike``, casts to plain types, literals, the
known columns and a short list of pure functions (:data:`SAFE_FUNCTIONS`) are
allowed; subqueries, other functions, ``;``, comments, ``GROUP BY``,
``UNION`` and the like are refused. The statement that runs is that same text,
so what runs is what was checked.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> matching_doc_ids(ws, "air", "label = 'negative' and airline = 'United'")[:3]
    array([ 5, 12, 13])
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from .labelsets import (
    DEFAULT_LABEL_COL,
    ingest_label_name,
    metadata_columns,
    people_label_sets,
    user_labels,
)
from .store import Workspace

TEMPLATE = "SELECT doc_id FROM docs WHERE "
MAX_LENGTH = 2_000

SAFE_FUNCTIONS = frozenset({
    "~~", "!~~", "~~*", "!~~*", "lower", "upper", "length", "trim", "ltrim", "rtrim", "contains", "starts_with",
    "ends_with", "prefix", "suffix", "regexp_matches", "strlen", "date_trunc", "year", "month", "day", "hour",
    "dayofweek", "isodow", "strftime", "+", "-", "*", "/", "%", "||", "abs", "round", "coalesce", "len",
    "list_contains", "array_contains",
})
SAFE_TYPES = frozenset({"date", "timestamp", "timestamptz", "varchar", "text", "integer", "int", "bigint",
                        "double", "float", "boolean", "bool", "decimal"})
SAFE_OPERATORS = frozenset({"OPERATOR_NOT", "OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL", "COMPARE_IN",
                            "COMPARE_NOT_IN"})


@dataclass(frozen=True)
class Column:
    name: str
    sql: str  # how the docs view computes it
    kind: str  # "document" | "label" | "metadata" | "id"


# ------------------------------------------------------------------ columns ----

def filter_columns(ws: Workspace, dataset: str) -> list[Column]:
    """The columns a ``--where`` expression of ``dataset`` may name, in the order shown to users."""
    info = ws.dataset(dataset)
    cols = [Column("doc_id", "b.doc_id", "document"), Column("text", "b.text", "document"),
            Column("split", "b.split", "document"), Column("time", "b.time", "document"),
            Column("row", "b.source_row", "document"), Column("source_id", "b.source_id", "id")]
    id_name = (info.columns or {}).get("id")
    taken = {c.name for c in cols}
    if isinstance(id_name, str) and id_name and id_name not in taken:
        cols.append(Column(id_name, "b.source_id", "id"))
    sets = people_label_sets(ws, info.id)
    cols.append(Column(DEFAULT_LABEL_COL, f"coalesce(u.{quote(DEFAULT_LABEL_COL)}, b.labels[1])", "label"))
    src = ingest_label_name(info)
    taken = {c.name for c in cols}
    if src and src not in taken:
        cols.append(Column(src, f"coalesce(u.{quote(DEFAULT_LABEL_COL)}, b.labels[1])", "label"))
    meta = metadata_columns(info)
    for m in meta:
        if m in {c.name for c in cols}:
            continue
        raw = f"nullif(json_extract_string(b.meta, {sql_string('$.' + json.dumps(m))}), '')"
        cols.append(Column(m, f"coalesce(u.{quote(m)}, {raw})" if m in sets else raw,
                           "label" if m in sets else "metadata"))
    for s in sets:
        if s not in {c.name for c in cols}:
            cols.append(Column(s, f"u.{quote(s)}", "label"))
    return cols


def quote(name: str) -> str:
    """An SQL identifier: ``negative reason`` -> ``"negative reason"``."""
    return '"' + name.replace('"', '""') + '"'


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# --------------------------------------------------------------- validation ----

def _outside_strings(expr: str) -> str:
    """``expr`` with the insides of string literals and quoted identifiers blanked out."""
    out, i, n = [], 0, len(expr)
    while i < n:
        ch = expr[i]
        if ch in "'\"":
            j = i + 1
            while j < n:
                if expr[j] == ch:
                    if j + 1 < n and expr[j + 1] == ch:  # doubled quote inside
                        j += 2
                        continue
                    break
                j += 1
            out.append(ch + " " * (j - i - 1) + (ch if j < n else ""))
            i = j + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def check_where(expr: str, columns: list[Column], dataset: str) -> str:
    """``expr`` when it is a safe filter over ``columns``, else a UsageError saying what is wrong."""
    import duckdb

    expr = (expr or "").strip()
    names = [c.name for c in columns]
    fix = f"Write a condition over the columns {names}, e.g. --where \"label = 'negative'\"."
    if not expr:
        raise UsageError("the --where expression is empty.", fix=fix)
    if len(expr) > MAX_LENGTH:
        raise UsageError(f"the --where expression is {len(expr)} characters; at most {MAX_LENGTH} are allowed.")
    bare = _outside_strings(expr)
    if bare.count("'") % 2 or bare.count('"') % 2:
        raise UsageError(f"--where {expr!r}: a quote is not closed.", fix="Close every 'string' with a quote.")
    for token, what in ((";", "a semicolon"), ("--", "a comment"), ("/*", "a comment"), ("$", "a parameter"),
                        ("?", "a parameter")):
        if token in bare:
            raise UsageError(f"--where {expr!r}: {what} ({token!r}) is not allowed in a filter.", fix=fix)
    con = duckdb.connect()
    try:
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [TEMPLATE + expr]).fetchone()[0])
    finally:
        con.close()
    if tree.get("error"):
        msg = str(tree.get("error_message") or "syntax error").split("\n")[0]
        raise UsageError(f"--where {expr!r} is not a valid condition: {msg}", fix=fix)
    statements = tree.get("statements") or []
    node = statements[0].get("node", {}) if len(statements) == 1 else {}
    if (len(statements) != 1 or node.get("type") != "SELECT_NODE" or node.get("modifiers")
            or (node.get("cte_map") or {}).get("map") or node.get("group_expressions") or node.get("having")
            or node.get("qualify") or node.get("sample") or node.get("where_clause") is None
            or (node.get("from_table") or {}).get("table_name") != "docs"):
        raise UsageError(f"--where {expr!r} must be a single condition (no ORDER BY, GROUP BY, LIMIT, UNION ...).",
                         fix=fix)
    _walk(node["where_clause"], set(names), expr, dataset, names)
    return expr


def _walk(e, known: set[str], expr: str, dataset: str, names: list[str]) -> None:
    if isinstance(e, list):
        for x in e:
            _walk(x, known, expr, dataset, names)
        return
    if not isinstance(e, dict):
        return
    cls = e.get("class")
    bad = None
    if cls == "COLUMN_REF":
        parts = e.get("column_names") or []
        if len(parts) != 1 or parts[0] not in known:
            shown = ".".join(parts)
            raise UsageError(f"--where: dataset {dataset!r} has no column {shown!r}; its columns are {names}.",
                             fix="Use one of them; quote a name with spaces as \"name\" and a text value as 'value'.")
        return
    if cls == "CONSTANT":
        return
    if cls is None or cls in ("CONJUNCTION", "COMPARISON", "BETWEEN"):  # None: a container (e.g. an argument)
        pass
    elif cls == "OPERATOR":
        if e.get("type") not in SAFE_OPERATORS:
            bad = f"the operator {e.get('type')}"
    elif cls == "CAST":
        t = ((e.get("type_expr") or {}).get("type_name") or (e.get("cast_type") or {}).get("id") or "").lower()
        if t not in SAFE_TYPES:
            bad = f"a cast to {t or 'an unknown type'}"
    elif cls == "FUNCTION":
        name = str(e.get("function_name", "")).lower()
        if (name not in SAFE_FUNCTIONS or e.get("schema") or e.get("catalog") or e.get("filter")
                or (e.get("order_bys") or {}).get("orders") or e.get("distinct")):
            bad = f"the function {name}()"
    else:
        bad = {"SUBQUERY": "a subquery", "STAR": "*", "WINDOW": "a window function",
               "PARAMETER": "a parameter", "LAMBDA": "a lambda"}.get(cls, f"a {str(cls).lower()} expression")
    if bad:
        raise UsageError(f"--where {expr!r}: {bad} is not allowed in a filter.",
                         fix="Use comparisons, and/or/not, in (...), between, is null, like/ilike and simple "
                             f"functions ({', '.join(sorted(f for f in SAFE_FUNCTIONS if f.isalpha())[:8])}, ...).")
    for k, v in e.items():
        if k in ("type_expr", "cast_type", "literal", "qualified_name", "order_bys"):
            continue
        if isinstance(v, (dict, list)):
            _walk(v, known, expr, dataset, names)


# ----------------------------------------------------------------- running ----

def documents_view(con, ws: Workspace, dataset: str, columns: list[Column] | None = None) -> list[Column]:
    """Create the temporary view ``docs`` (one row per document, the filter columns) on ``con``."""
    import pyarrow as pa

    info = ws.dataset(dataset)
    columns = columns if columns is not None else filter_columns(ws, dataset)
    parts = ws.dataset_parts(dataset)
    sets = [DEFAULT_LABEL_COL] + people_label_sets(ws, info.id)
    by_set = {s: user_labels(ws, info.id, s) for s in sets}
    ids = sorted({d for m in by_set.values() for d in m})
    table = {"doc_id": pa.array(ids, pa.int64())}
    for s, m in by_set.items():
        table[s] = pa.array([m.get(d) for d in ids], pa.string())
    con.register("user_label_sets", pa.table(table))
    select = ", ".join(f"{c.sql} AS {quote(c.name)}" for c in columns)
    if parts:
        listing = "[" + ", ".join(sql_string(str(p)) for p in parts) + "]"
        source = f"read_parquet({listing})"
    else:
        source = ("(SELECT NULL::BIGINT AS doc_id, NULL::VARCHAR AS text, NULL::VARCHAR AS split, "
                  "NULL::TIMESTAMPTZ AS time, NULL::BIGINT AS source_row, NULL::VARCHAR AS source_id, "
                  "NULL::VARCHAR[] AS labels, NULL::VARCHAR AS meta WHERE false)")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE OR REPLACE TEMP VIEW docs AS SELECT {select} FROM {source} b "
                "LEFT JOIN user_label_sets u ON u.doc_id = b.doc_id")
    return columns


def matching_doc_ids(ws: Workspace, dataset: str, where: str) -> np.ndarray:
    """The doc_ids (sorted) of the documents of ``dataset`` for which ``where`` holds.

    Raises UsageError for an unsafe or invalid expression, naming the unknown
    column and the columns there are.
    """
    import duckdb

    columns = filter_columns(ws, dataset)
    expr = check_where(where, columns, dataset)
    con = duckdb.connect()
    try:
        documents_view(con, ws, dataset, columns)
        try:
            rows = con.execute(TEMPLATE + expr + " ORDER BY doc_id").fetchnumpy()["doc_id"]
        except duckdb.Error as e:
            msg = str(e).split("\n")[0]
            raise UsageError(f"--where {expr!r} cannot be evaluated: {msg}",
                             fix="Compare text columns with 'quoted' values and time with a date such as "
                                 "'2015-02-20'; metadata columns hold text.") from None
    finally:
        con.close()
    return np.asarray(rows, dtype=np.int64)


def describe_where(where: str | None) -> str:
    """How a filter is shown in a line of output: `` where label = 'negative'`` (or nothing)."""
    return " where " + " ".join(where.split()) if where else ""
