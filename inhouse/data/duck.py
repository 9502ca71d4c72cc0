"""DuckDB connections for queries over a workspace's Parquet files.

Paths never go into SQL text by string formatting: settings and file lists are
passed as prepared parameters, and where SQL must hold a literal (a view's file
list) it is quoted with :func:`sql_string`. A workspace folder named
``/home/o'brien/inhouse`` works like any other.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> con = connect(ws)
    >>> con.execute("SELECT COUNT(*) FROM read_parquet(?)", [[str(p) for p in ws.dataset_parts("d")]]).fetchone()
    (13083,)
"""

from __future__ import annotations

from ..workspace.store import Workspace


def connect(ws: Workspace, memory_limit: str = "1GB"):
    """An in-memory DuckDB connection that spills to ``ws/tmp`` and stays under ``memory_limit``."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET temp_directory = ?", [str(ws.dir("tmp"))])
        con.execute("SET memory_limit = ?", [memory_limit])
    except BaseException:
        con.close()
        raise
    return con


def sql_string(value: str) -> str:
    """``value`` as a SQL string literal: ``it's`` -> ``'it''s'``.

    >>> sql_string("/data/o'brien")
    "'/data/o''brien'"
    """
    return "'" + str(value).replace("'", "''") + "'"


def sql_list(values: list[str]) -> str:
    """A SQL list literal of strings, for the few places parameters are not allowed (views)."""
    return "[" + ", ".join(sql_string(v) for v in values) + "]"
