"""CSV and TSV: quoted fields may span lines, but a stray quote costs one row, not the file.

Python's ``csv`` module (strict mode) parses the records; it is fed one
physical line at a time through a :class:`LineFeed` that remembers which lines
the current record took. A record spanning several lines is a real multi-line
text (a message with newlines inside quotes) unless it shows the signs of a
*stray* quote, a quote that opens a field and is never meant to close it:

* it is still open after ``max_record_lines`` lines (``--max-record-lines``);
* it runs to the end of the file, or into a line where the quoting breaks;
* its inner lines each read, on their own, as a complete record with the
  header's number of fields (>= 2 such lines, >= 3 for a two-column file):
  rows swallowed by the quote, even though a second stray quote closed it.

Then only the first line of the span, the one whose quote never closes, is
quarantined (reason ``unclosed quote``, with how far the quote ran), and the
lines after it are read again as records of their own. Every record keeps its
true row number: ``row`` is the 1-based data row as the file's author sees it
(header and blank lines not counted; a real multi-line record is one row).

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> r = CsvReader(Path("tickets.csv"), "csv", False, "utf-8", 8 << 20)
    >>> [(x.row, x.problem and x.problem[0]) for x in r.rows()][8:12]
    [(9, None), (10, 'unclosed quote'), (11, None), (12, None)]
"""

from __future__ import annotations

import csv
from collections import deque
from pathlib import Path
from typing import Iterator, NamedTuple

from ..errors import ColumnNotFound, InputError
from .headers import header_names
from .textlines import LineReader, Row

MAX_RECORD_LINES = 1000  # default: lines one quoted field may span before its quote is taken as stray
_DELIMITER_NAMES = {"\t": "'\\t'", ",": "','", ";": "';'", "|": "'|'"}


class SpanTooLong(Exception):
    """Raised through the csv reader when one record would take more lines (or bytes) than allowed."""


class Line(NamedTuple):
    number: int
    text: str
    problem: tuple[str, str] | None


class LineFeed:
    """The csv reader's input: lines pushed back first, then the file; records the lines a record takes."""

    def __init__(self, lines: Iterator[tuple[str, tuple[str, str] | None]], max_lines: int, max_chars: int):
        self._lines, self.max_lines, self.max_chars = lines, max_lines, max_chars
        self.back: deque[Line] = deque()
        self.taken: list[Line] = []
        self.chars = 0
        self.number = 0

    def start(self) -> None:
        self.taken = []
        self.chars = 0

    def __iter__(self) -> "LineFeed":
        return self

    def __next__(self) -> str:
        taken = self.taken
        if taken and (len(taken) >= self.max_lines or self.chars >= self.max_chars):
            raise SpanTooLong
        if self.back:
            line = self.back.popleft()
            text, problem = line.text, line.problem
        else:
            text, problem = next(self._lines)  # StopIteration ends the csv input
            self.number += 1
            line = tuple.__new__(Line, (self.number, text, problem))  # Line(...) without its slower __new__
        taken.append(line)
        self.chars += len(text)
        return "\n" if problem is not None and problem[0] == "line too long" else text


def parse_delimiter(value: str | None) -> str | None:
    """``--delimiter`` as one character; ``\\t``, ``tab`` and a real tab all mean tab.

    >>> parse_delimiter(";"), parse_delimiter("\\\\t"), parse_delimiter("tab")
    (';', '\\t', '\\t')
    """
    if value is None:
        return None
    v = {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(value, value)
    if len(v) != 1 or v in "\"\r\n" or v.isalnum():
        raise InputError(f"--delimiter must be one character other than a quote, newline, letter or digit; "
                         f"got {value!r}.", fix="Use e.g. --delimiter ';' or --delimiter '\\t'.")
    return v


def delimiter_flag(d: str) -> str:
    return f"--delimiter {_DELIMITER_NAMES.get(d, repr(d))}"


def delimiter_hint(header: list[str], delimiter: str) -> str | None:
    """The likelier delimiter when the header came out as one column holding ``;``, a tab, ``|`` or ``,``."""
    if len(header) != 1:
        return None
    counts = {c: header[0].count(c) for c in (";", "\t", "|", ",") if c != delimiter}
    best = max(counts, key=lambda c: counts[c])
    return best if counts[best] else None


class DelimiterMismatch(ColumnNotFound):
    """A column is not found because the file is separated by another character than the one used."""

    def __init__(self, source: str, column: str, columns: list[str], flag: str, used: str, likely: str):
        self.column, self.columns = column, list(columns)
        name = "tabs" if likely == "\t" else f"{likely!r}s"
        used_name = "tab" if used == "\t" else repr(used)
        InputError.__init__(
            self, f"{source}: column {column!r} not found; the header reads as one column {columns[0]!r}, which "
                  f"holds {name}: the file is probably separated by {name}, not by {used_name}.",
            fix=f"Use {delimiter_flag(likely)} (and {flag} with one of the columns it gives).")


class CsvReader(LineReader):
    """CSV or TSV with a header line; quoted fields may span lines (see the module docstring)."""

    def __init__(self, path: Path, fmt: str, compressed: bool, encoding: str, line_limit: int, *,
                 delimiter: str | None = None, max_record_lines: int = MAX_RECORD_LINES):
        super().__init__(path, fmt, compressed, encoding, line_limit)
        self.delimiter = delimiter or ("\t" if fmt == "tsv" else ",")
        self.max_record_lines = max_record_lines
        field_limit = max(self.line_limit, 1 << 17)
        if csv.field_size_limit() < field_limit:
            csv.field_size_limit(field_limit)
        self._feed = LineFeed(self.lines(), max_record_lines, line_limit)
        self._reader = csv.reader(self._feed, delimiter=self.delimiter, strict=True)
        self._feed.start()
        try:
            header = next(self._reader)
        except StopIteration:
            raise InputError(f"{self.path.name}: the file has no header line (it is empty).",
                             fix="Check that the export finished, then ingest it again.") from None
        except (csv.Error, SpanTooLong) as e:
            why = str(e) or f"a quote opens on it and is still open {len(self._feed.taken):,} lines later"
            raise InputError(f"{self.path.name}: the header line is malformed ({why}).",
                             fix="The first line must name the columns, e.g. text,label") from None
        problem = next((ln.problem for ln in self._feed.taken if ln.problem), None)
        if problem:
            raise InputError(f"{self.path.name}: the header line has {problem[1]}.",
                             fix="Save the file as UTF-8, or pass --encoding (e.g. --encoding cp1252).")
        self.original_columns = header
        self.columns, self.header_renames = header_names(header)  # blank, padded and repeated names renamed
        self.delimiter_hint = delimiter_hint(header, self.delimiter)

    def rows(self) -> Iterator[Row]:
        n, header, feed = len(self.columns), self.columns, self._feed
        row = 0
        while True:
            feed.start()
            try:
                rec: list[str] | None = next(self._reader)
                error: str | None = None
            except StopIteration:
                return
            except SpanTooLong:
                rec, error = None, "too long"
            except csv.Error as e:
                rec, error = None, str(e)
            taken = feed.taken
            if len(taken) > 1 and (error is not None or self._swallows_rows(taken, n)):
                row += 1
                yield Row(row, taken[0].number, None, taken[0].text, ("unclosed quote", self._span_detail(taken, error)))
                feed.back.extendleft(reversed(taken[1:]))  # read them again, each as a record of its own
                continue
            raw = "".join(ln.text for ln in taken)
            problem = next((ln.problem for ln in taken if ln.problem), None)
            if error is None and problem is None and not raw.strip():
                self.blank += 1
                continue
            row += 1
            if problem is None and error is not None:
                if "unexpected end of data" in error:
                    problem = ("unclosed quote", "a quoted field opens on this line and the file ends before it closes")
                else:
                    problem = ("malformed row", f"{error} (an unbalanced quote?)")
            if problem is None and len(rec) != n:
                problem = ("wrong field count", f"expected {n} fields {header}, found {len(rec)}"
                           + (f"; is the delimiter {delimiter_flag(self.delimiter_hint)}?"
                              if self.delimiter_hint else ""))
            if problem:
                yield Row(row, taken[0].number, None, raw, problem)
            else:
                yield Row(row, taken[0].number, dict(zip(header, rec)), raw, None)

    def _swallows_rows(self, taken: list[Line], n: int) -> bool:
        """Whether a complete multi-line record looks like rows swallowed between two stray quotes."""
        inner = taken[1:-1]
        if n < 2 or len(inner) < (3 if n == 2 else 2):
            return False
        for ln in inner:
            if ln.problem or not ln.text.strip():
                return False
            try:
                fields = next(csv.reader([ln.text], delimiter=self.delimiter, strict=True))
            except (csv.Error, StopIteration):
                return False
            if len(fields) != n:
                return False
        return True

    def _span_detail(self, taken: list[Line], error: str | None) -> str:
        first, last, k = taken[0].number, taken[-1].number, len(taken)
        head = "a quoted field opens on this line and "
        if error == "too long":
            why = (f"is still open {k:,} lines later (line {last:,}), past --max-record-lines "
                   f"{self.max_record_lines:,}" if k >= self.max_record_lines else
                   f"is still open after {self._feed.chars:,} characters (line {last:,})")
            fix = "; if this really is one text over that many lines, raise --max-record-lines"
        elif error is not None and "unexpected end of data" in error:
            why, fix = f"is never closed: it runs to the end of the file (line {last:,})", ""
        elif error is not None:
            why, fix = f"runs on to line {last:,}, where the quoting breaks ({error})", ""
        else:
            why = (f"would swallow lines {first + 1:,}-{last:,}, which read as rows of their own "
                   f"({len(self.columns)} fields each) until a second stray quote on line {last:,}")
            fix = ""
        return f"{head}{why}; the {k - 1:,} lines after it were read again as rows of their own{fix}"

