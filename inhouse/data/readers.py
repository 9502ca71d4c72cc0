"""Read CSV, TSV, JSONL, JSON arrays, Excel (.xlsx), Parquet and plain-text files as a stream of rows.

A reader knows its columns before it reads any data (so a wrong column name
fails at once) and then yields one :class:`Row` per data row, in bounded
memory whatever the file size. Rows it cannot read (undecodable bytes, a
malformed line, a wrong field count) come back with a ``problem`` instead of
``values``, so the caller can quarantine them; nothing is skipped silently
except blank lines, which are counted in ``reader.blank``.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> r = open_reader(Path("tickets.csv"))
    >>> r.columns
    ['text', 'label']
    >>> next(iter(r.rows()))
    Row(row=1, line=2, values={'text': 'card not arrived', 'label': 'card'}, raw='card not arrived,card\\n', problem=None)
    >>> r.close()

Row numbers: ``row`` is the 1-based data row (CSV/TSV: header and blank lines
not counted; JSONL/text: the line number; Parquet: the row index + 1), ``line``
the physical line where the row starts.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, Iterator

from ..errors import InputError, MissingDependency, UsageError
from .csvspans import MAX_RECORD_LINES, CsvReader
from .headers import header_names
from .textlines import LineReader, Reader, Row, check_encoding

__all__ = ["CsvReader", "JsonArrayReader", "JsonlReader", "XlsxReader", "LineReader", "ParquetReader", "Reader", "Row", "TextReader",
           "check_encoding", "detect_format", "open_reader"]

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".txt": "txt",
           ".json": "json", ".xlsx": "xlsx"}
SUPPORTED = ".csv, .tsv, .jsonl, .ndjson, .json, .xlsx, .parquet, .txt (the text formats also as .gz)"
JSONL_SAMPLE = 1000  # lines read to learn a JSONL file's keys


def detect_format(path: Path) -> tuple[str, bool]:
    """``(format, gzip-compressed)`` from the file name; raises InputError with the fix.

    >>> detect_format(Path("a.tsv.gz"))
    ('tsv', True)
    """
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    if compressed:
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    fmt = FORMATS.get(ext)
    if fmt is None:
        found = f"extension {ext!r}" if ext else "no extension"
        raise InputError(f"{path.name}: cannot tell the format from {found}; supported are {SUPPORTED}.",
                         fix="Rename the file to the extension that matches its contents.")
    if fmt in ("parquet", "xlsx") and compressed:
        raise InputError(f"{path.name}: gzip-compressed {fmt} is not supported (it compresses itself).",
                         fix=f"Decompress it first: gunzip {path.name}")
    return fmt, compressed


def open_reader(path: Path, *, encoding: str = "utf-8", line_limit: int = 8 << 20, batch_rows: int = 10_000,
                delimiter: str | None = None, max_record_lines: int = MAX_RECORD_LINES,
                sheet: str | None = None) -> Reader:
    """The reader for ``path``, chosen by its extension, with its columns read.

    ``delimiter`` and ``max_record_lines`` apply to CSV/TSV (see :mod:`inhouse.data.csvspans`),
    ``sheet`` (a name, or a 1-based number) to .xlsx (default: the first sheet).
    """
    fmt, compressed = detect_format(path)
    if sheet is not None and fmt != "xlsx":
        raise UsageError(f"--sheet applies to .xlsx files; {path.name} is {fmt}.", fix="Leave out --sheet.")
    if fmt == "parquet":
        return ParquetReader(path, batch_rows)
    if fmt == "xlsx":
        return XlsxReader(path, sheet)
    if fmt == "json":
        try:
            return JsonArrayReader(path, compressed, encoding)
        except _JsonLines:  # one object per line, saved as .json: read as JSON Lines
            return JsonlReader(path, "jsonl", compressed, encoding, line_limit)
    if fmt in ("csv", "tsv"):
        return CsvReader(path, fmt, compressed, encoding, line_limit, delimiter=delimiter,
                         max_record_lines=max_record_lines)
    cls = {"jsonl": JsonlReader, "txt": TextReader}[fmt]
    return cls(path, fmt, compressed, encoding, line_limit)


class JsonlReader(LineReader):
    """One JSON object per line.

    The columns are the keys seen so far: those of the first 1,000 lines when
    the reader opens (``sample_complete`` says whether that was the whole
    file), growing as later lines bring new keys, so a key that first appears
    at line 5,000 is kept like any other.
    """

    def __init__(self, *args: Any):
        super().__init__(*args)
        self._seen: dict[str, Any] = {}
        self._rows = self._parse()
        self._sample = list(itertools.islice(self._rows, JSONL_SAMPLE))
        self.sample_complete = len(self._sample) < JSONL_SAMPLE
        self.sample_columns = list(self._seen)
        self.sampled_objects = sum(r.values is not None for r in self._sample)

    @property
    def columns(self) -> list[str]:
        return list(self._seen)

    def _parse(self) -> Iterator[Row]:
        seen = self._seen
        for line, (text, problem) in enumerate(self.lines(), start=1):
            if problem:
                yield Row(line, line, None, text, problem)
                continue
            if not text.strip():
                self.blank += 1
                continue
            try:
                obj = json.loads(text)
            except ValueError as e:
                yield Row(line, line, None, text, ("malformed row", f"not valid JSON: {e}"))
                continue
            if not isinstance(obj, dict):
                kind = type(obj).__name__
                yield Row(line, line, None, text, ("malformed row", f"expected a JSON object, found a {kind}"))
                continue
            if len(obj) > len(seen) or not seen.keys() >= obj.keys():
                seen.update(dict.fromkeys(obj))
            yield Row(line, line, obj, text, None)

    def rows(self) -> Iterator[Row]:
        sample, self._sample = self._sample, []
        yield from sample
        yield from self._rows


class TextReader(LineReader):
    """Plain text: every non-blank line is one document, in the column ``text``."""

    columns = ["text"]

    def rows(self) -> Iterator[Row]:
        for line, (text, problem) in enumerate(self.lines(), start=1):
            if problem:
                yield Row(line, line, None, text, problem)
                continue
            text = text.rstrip("\r\n")
            if not text.strip():
                self.blank += 1
                continue
            yield Row(line, line, {"text": text}, text, None)


class ParquetReader(Reader):
    """Parquet, read batch by batch; values keep their types (lists, timestamps)."""

    unit = "row"

    def __init__(self, path: Path, batch_rows: int):
        import pyarrow.parquet as pq

        self.path, self.batch_rows = path, batch_rows
        try:
            self._pf = pq.ParquetFile(path)
        except Exception as e:  # pyarrow raises ArrowInvalid / OSError with its own words
            raise InputError(f"{path.name}: not a readable Parquet file ({e}).",
                             fix="Check that the export finished, or use CSV/JSONL.") from None
        self.columns = list(self._pf.schema_arrow.names)
        self._done = 0

    @property
    def total(self) -> int:
        return self._pf.metadata.num_rows

    def position(self) -> int:
        return self._done

    def close(self) -> None:
        self._pf.close()

    def rows(self) -> Iterator[Row]:
        row = 0
        for batch in self._pf.iter_batches(batch_size=self.batch_rows):
            try:
                records = batch.to_pylist()
            except Exception:  # a bad value somewhere in the batch: find it row by row
                records = [_one_record(batch, i) for i in range(batch.num_rows)]
            for rec in records:
                row += 1
                self._done = row
                if isinstance(rec, Exception):
                    yield Row(row, None, None, f"<row {row} could not be read>", ("malformed row", str(rec)))
                else:
                    yield Row(row, None, rec, None, None)


class _JsonLines(Exception):
    """A .json file that holds one object per line."""


class JsonArrayReader(Reader):
    """A JSON file holding an array of objects (or an object whose one list holds them, as APIs export).

    A .json file with one object per line is read as JSON Lines instead.

    The whole file is parsed at once (JSON arrays cannot be read in pieces
    with the standard library): for files of millions of rows, use JSONL.
    Columns are the keys in order of first appearance.
    """

    unit = "row"

    def __init__(self, path: Path, compressed: bool, encoding: str):
        import gzip

        self.path = path
        opener = gzip.open if compressed else open
        try:
            with opener(path, "rt", encoding=encoding) as f:
                data = json.load(f)
        except json.JSONDecodeError as e:
            if e.msg == "Extra data" and e.doc[:e.pos].lstrip().startswith("{"):
                raise _JsonLines() from None
            raise InputError(f"{path.name}: not a readable JSON file ({e}).",
                             fix="Check that the export finished; for one object per line, name the file .jsonl.") from None
        except (ValueError, OSError) as e:
            raise InputError(f"{path.name}: not a readable JSON file ({e}).",
                             fix="Check that the export finished; for one object per line, name the file .jsonl.") from None
        if isinstance(data, dict):
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise InputError(f"{path.name}: expected a JSON array of objects, found an object with keys "
                                 f"{list(data)[:10]}.", fix="Export the rows as a JSON array: [{...}, {...}]")
            data = lists[0]
        if not isinstance(data, list):
            raise InputError(f"{path.name}: expected a JSON array of objects, found a {type(data).__name__}.",
                             fix="Export the rows as a JSON array: [{...}, {...}]")
        self._items = data
        self.columns = list(dict.fromkeys(k for o in data if isinstance(o, dict) for k in o))
        self._done = 0

    @property
    def total(self) -> int:
        return len(self._items)

    def position(self) -> int:
        return self._done

    def rows(self) -> Iterator[Row]:
        for i, obj in enumerate(self._items, start=1):
            self._done = i
            if isinstance(obj, dict):
                yield Row(i, None, obj, None, None)
            else:
                raw = json.dumps(obj, ensure_ascii=False, default=str)
                yield Row(i, None, None, raw, ("malformed row", f"expected a JSON object, found a {type(obj).__name__}"))


class XlsxReader(Reader):
    """One sheet of an Excel workbook (openpyxl, read-only): the first row names the columns.

    Cells keep their types (dates are datetimes, numbers numbers); empty rows
    count as blank lines; ``row`` is the sheet's row number minus the header.
    """

    unit = "row"

    def __init__(self, path: Path, sheet: str | None):
        try:
            import openpyxl
        except ImportError:
            raise MissingDependency("openpyxl", "excel", "reading .xlsx files") from None
        self.path = path
        try:
            self._wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as e:  # zipfile.BadZipFile, KeyError, InvalidFileException: openpyxl's own words
            raise InputError(f"{path.name}: not a readable .xlsx workbook ({type(e).__name__}: {e}).",
                             fix="Open it in Excel or LibreOffice and save it again as .xlsx (or as CSV).") from None
        names = self._wb.sheetnames
        if sheet is None:
            ws = self._wb[names[0]]
        elif sheet in names:
            ws = self._wb[sheet]
        elif sheet.isdigit() and 1 <= int(sheet) <= len(names):
            ws = self._wb[names[int(sheet) - 1]]
        else:
            self._wb.close()
            raise InputError(f"{path.name}: no sheet {sheet!r}; its sheets are {names}.",
                             fix="Use --sheet with one of them (or its number, 1 for the first).")
        self.sheet = ws.title
        self._rows = ws.iter_rows(values_only=True)
        header = next(self._rows, None)
        while header is not None and all(v is None for v in header):
            header = next(self._rows, None)
        if header is None:
            self._wb.close()
            raise InputError(f"{path.name}: sheet {self.sheet!r} is empty.", fix="Use --sheet to pick the sheet with the rows.")
        while header and header[-1] is None:
            header = header[:-1]
        self.original_columns = ["" if v is None else str(v) for v in header]
        self.columns, self.header_renames = header_names(self.original_columns)
        self._done = 0

    def position(self) -> int:
        return self._done

    def close(self) -> None:
        self._wb.close()

    def rows(self) -> Iterator[Row]:
        n, row = len(self.columns), 0
        for cells in self._rows:
            if all(v is None or (isinstance(v, str) and not v.strip()) for v in cells):
                self.blank += 1
                continue
            row += 1
            self._done = row
            extra = [v for v in cells[n:] if v is not None]
            if extra:
                raw = json.dumps(list(cells), ensure_ascii=False, default=str)
                yield Row(row, None, None, raw, ("wrong field count", f"{len(extra)} filled cells right of the "
                                                 f"{n} named columns {self.columns}"))
                continue
            values = dict(zip(self.columns, list(cells[:n]) + [None] * (n - len(cells))))
            yield Row(row, None, values, None, None)


def _one_record(batch, i: int) -> dict | Exception:
    try:
        return batch.slice(i, 1).to_pylist()[0]
    except Exception as e:
        return e
