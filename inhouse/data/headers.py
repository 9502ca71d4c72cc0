"""Column names from people's files -> names every command, filter, export and screen can use.

Exports carry headers that no query language likes: the unnamed index column
pandas writes (``,Text,Date``), blank or whitespace-padded names, the same
name twice, or names that clash with the columns every dataset has (``text``,
``time``, ``label``, ``row``, ...). They are renamed, deterministically (the
same header always gives the same names), and every rename is reported:

    >>> names, renames = unique_names(["", " Text ", "Date", "date", "label"], reserved=("label",))
    >>> names
    ['column_1', 'Text', 'Date', 'date_2', 'label_2']
    >>> [r["why"] for r in renames]
    ['blank', 'padded with spaces', 'clashes with column 3 (case-insensitive)', 'a built-in column name']

Names are compared case-insensitively, as DuckDB (which runs every ``--where``)
compares identifiers.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..workspace.labelsets import DEFAULT_LABEL_COL, RESERVED_COLUMNS

__all__ = ["BUILTIN_NAMES", "MetaNames", "header_names", "unique_names"]

# names a metadata column may not take: the document columns, the filter aliases and the default label column
BUILTIN_NAMES = tuple(dict.fromkeys((*RESERVED_COLUMNS, DEFAULT_LABEL_COL, "labels", "source_id")))


def unique_names(names: Iterable[Any], *, reserved: Iterable[str] = (), fold: bool = True
                 ) -> tuple[list[str], list[dict]]:
    """``(names, renames)``: each name stripped, blank ones ``column_<position>``, clashes ``<name>_2``, ``_3``...

    ``fold``: names that differ only in case clash too. ``renames`` lists
    ``{"column": position (1-based), "from": original, "to": new, "why": reason}``.
    """
    key = str.casefold if fold else str
    taken = {key(str(r)) for r in reserved}
    reserved_set = set(taken)
    out, renames, first_at = [], [], {}
    for i, raw in enumerate(names, start=1):
        orig = "" if raw is None else str(raw)
        base = orig.strip() or f"column_{i}"
        why = "blank" if not orig.strip() else ("padded with spaces" if base != orig else None)
        name = base
        if key(name) in taken:
            k = 2
            while key(f"{base}_{k}") in taken:
                k += 1
            name = f"{base}_{k}"
            why = ("a built-in column name" if key(base) in reserved_set else
                   f"clashes with column {first_at.get(key(base), '?')}"
                   + ("" if base in out else " (case-insensitive)"))
        taken.add(key(name))
        first_at.setdefault(key(name), i)
        first_at.setdefault(key(base), i)
        out.append(name)
        if name != orig:
            renames.append({"column": i, "from": orig, "to": name, "why": why})
    return out, renames


def header_names(header: list[Any]) -> tuple[list[str], list[dict]]:
    """A file's header made usable as dict keys: blank, padded and repeated names renamed (see :func:`unique_names`).

    Names differing only in case stay apart here; :class:`MetaNames` parts them when they are stored.
    """
    return unique_names(header, fold=False)


class MetaNames:
    """The stored name of each metadata column, assigned on first sight (JSON keys may appear late).

    ``mapped`` are the file columns that became text, label, time, id or split:
    their names are taken too (a label column ``intent`` and a metadata column
    ``Intent`` would be one column to DuckDB).

    >>> m = MetaNames(["Text"])
    >>> m("row"), m("Date"), m(" text"), m.renames[0]["why"]
    ('row_2', 'Date', 'text_2', 'a built-in column name')
    """

    def __init__(self, mapped: Iterable[str] = (), reserved: Iterable[str] = BUILTIN_NAMES):
        self._reserved = {r.casefold() for r in reserved}
        self._taken = self._reserved | {m.casefold() for m in mapped if m}
        self._names: dict[str, str] = {}
        self.renames: list[dict] = []

    def __call__(self, key: str) -> str:
        got = self._names.get(key)
        if got is not None:
            return got
        base = key.strip() or f"column_{len(self._names) + 1}"
        why = "blank" if not key.strip() else ("padded with spaces" if base != key else None)
        name = base
        if name.casefold() in self._taken:
            k = 2
            while f"{base}_{k}".casefold() in self._taken:
                k += 1
            name = f"{base}_{k}"
            why = "a built-in column name" if base.casefold() in self._reserved else "clashes with a mapped column"
        self._taken.add(name.casefold())
        self._names[key] = name
        if name != key:
            self.renames.append({"from": key, "to": name, "why": why})
        return name

    def stored(self) -> list[str]:
        """Every name given so far, in order of first sight."""
        return list(self._names.values())
