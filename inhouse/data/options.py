"""How to read a file (:class:`IngestOptions`), and matching the options to what the file holds.

:func:`resolve_columns` lets ``--text-col " Text "`` or ``--text-col Text``
find a header cell written ``" Text "``, and a repeated name's later copies
by their new names (``body_2``); :func:`check_columns` fails at once on a
column the file does not have; :func:`time_parser` settles the day/month
order of the time column from the file before any row is stored.

    >>> IngestOptions(text_col=["subject", "body"], dayfirst=True).validate().text_col
    ['subject', 'body']
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import ColumnNotFound, UsageError
from .csvspans import MAX_RECORD_LINES, DelimiterMismatch, parse_delimiter
from .dates import DayOrder, TimeParser
from .readers import Reader
from .revise import POLICIES
from .textlines import check_encoding
from .values import text_columns

__all__ = ["IngestOptions", "check_columns", "resolve_columns", "time_parser"]


@dataclass
class IngestOptions:
    """How to read a file; stored with every ingest so it can be repeated."""

    text_col: str | list[str] = "text"
    label_col: str | None = None
    time_col: str | None = None
    id_col: str | None = None
    split_col: str | None = None
    redact_pii: bool = False
    max_chars: int = 100_000
    label_sep: str | None = None
    chunk_rows: int = 100_000
    encoding: str = "utf-8"
    delimiter: str | None = None
    max_record_lines: int = MAX_RECORD_LINES
    on_duplicate_id: str = "quarantine"
    max_quarantine_share: float = 0.10
    time_format: str | None = None
    dayfirst: bool | None = None
    sheet: str | None = None
    unescape_html: bool = False
    speaker: list[str] | None = None

    def validate(self) -> "IngestOptions":
        cols = text_columns(self.text_col)
        if not cols or not all(isinstance(c, str) and c for c in cols):
            raise UsageError("--text-col must name a column.")
        if len(set(cols)) != len(cols):
            raise UsageError(f"--text-col names a column twice: {cols}.")
        self.text_col = cols[0] if len(cols) == 1 else cols
        if self.max_chars < 1:
            raise UsageError(f"--max-chars must be at least 1, got {self.max_chars}.")
        if self.chunk_rows < 1:
            raise UsageError(f"--chunk-rows must be at least 1, got {self.chunk_rows}.")
        if self.label_sep == "":
            raise UsageError("--label-sep must not be empty.", fix="Use e.g. --label-sep '|'.")
        if self.max_record_lines < 1:
            raise UsageError(f"--max-record-lines must be at least 1, got {self.max_record_lines}.")
        if self.on_duplicate_id not in POLICIES:
            raise UsageError(f"--on-duplicate-id must be one of {list(POLICIES)}, got {self.on_duplicate_id!r}.")
        if not 0.0 <= self.max_quarantine_share <= 1.0:
            raise UsageError(f"--max-quarantine-share must be between 0 and 1, got {self.max_quarantine_share}.",
                             fix="Use e.g. 0.1 for 10%, or 1.0 to never fail on quarantined rows.")
        if self.time_format is not None and "%" not in self.time_format:
            raise UsageError(f"--time-format {self.time_format!r} has no strftime code.",
                             fix="Use codes like --time-format '%d.%m.%Y %H:%M' (see `man strftime`).")
        if self.time_format is not None and self.dayfirst is not None:
            raise UsageError("--time-format already fixes the day/month order; leave out --dayfirst/--monthfirst.")
        self.speaker = [s for s in (self.speaker or []) if s] or None
        self.delimiter = parse_delimiter(self.delimiter)
        self.encoding = check_encoding(self.encoding)
        return self

    def flags(self) -> dict[str, str]:
        """Column option -> the CLI flag that sets it."""
        return {"text_col": "--text-col", "label_col": "--label-col", "time_col": "--time-col",
                "id_col": "--id-col", "split_col": "--split-col"}


def resolve_columns(opts: IngestOptions, reader: Reader) -> IngestOptions:
    """``opts`` with each column name matched to the reader's (renamed) columns where it differs only by renaming."""
    have = set(reader.columns)
    by_original: dict[str, str] = {}
    for r in reader.header_renames:
        by_original.setdefault(r["from"], r["to"])
        by_original.setdefault(r["from"].strip(), r["to"])

    def one(col: str | None) -> str | None:
        if col is None or col in have:
            return col
        return by_original.get(col) or by_original.get(col.strip()) or (col.strip() if col.strip() in have else col)

    changes = {attr: one(getattr(opts, attr)) for attr in opts.flags() if attr != "text_col"}
    cols = [one(c) for c in text_columns(opts.text_col)]
    return replace(opts, text_col=cols[0] if len(cols) == 1 else cols, **changes)


def check_columns(reader: Reader, path: Path, opts: IngestOptions) -> list[tuple[str, str]]:
    """Fail at once on a column the file does not have; return JSONL columns to look for in the rest of the file.

    A JSONL key may first appear after the lines the reader sampled: a mapped
    column other than the text missing from the sample is looked for while
    reading, and the ingest fails (nothing stored) if no line has it.
    """
    if getattr(reader, "sampled_objects", None) == 0:
        return []  # JSONL whose first lines are all unreadable: every row will be quarantined with its reason
    deferred = []
    for attr, flag in opts.flags().items():
        for col in text_columns(getattr(opts, attr)) if attr == "text_col" else [getattr(opts, attr)]:
            if col is None or col in reader.columns:
                continue
            if getattr(reader, "sample_complete", True) is False and attr != "text_col":
                deferred.append((col, flag))
            elif reader.delimiter_hint:
                raise DelimiterMismatch(path.name, col, reader.columns, flag, reader.delimiter, reader.delimiter_hint)
            else:
                raise ColumnNotFound(path.name, col, reader.columns, flag)
    return deferred


def time_parser(opts: IngestOptions, reopen, source: str) -> TimeParser:
    """The parser of the time column; without an order given, the file's values settle day/month first.

    ``reopen()`` gives a fresh reader of the same file: it is read until a
    numeric date shows its order (or 1,000 values without one). When the file
    holds only dates like 05/06/2011, raises UsageError asking for the order.
    """
    if not opts.time_col or opts.time_format or opts.dayfirst is not None:
        return TimeParser(opts.time_format, opts.dayfirst, "given" if opts.dayfirst is not None else "")
    reader = reopen()
    try:
        rows = ((r.row, r.values.get(opts.time_col)) for r in reader.rows() if r.values is not None)
        order = DayOrder().settle(rows, source, opts.time_col)
    finally:
        reader.close()
    return TimeParser(None, order.dayfirst, order.settled_by)
