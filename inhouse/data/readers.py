"""Read CSV, TSV, JSONL, Parquet and plain-text files as a stream of rows.

A reader knows its columns before it reads any data (so a wrong column name
fails at once) and then yields one :class:`Row` per data row, in bounded
memory whatever the file size. Rows it cannot read (undecodable bytes, a
malformed line, a wrong field count) come back with a ``problem`` instead of
``values``, so the caller can quarantine them; nothing is skipped silently
except blank lines, which are counted in ``reader.blank``.

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

import codecs
import csv
import gzip
import itertools
import json
import zlib
from pathlib import Path
from typing import Any, Iterator, NamedTuple

from ..errors import InputError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".txt": "txt"}
SUPPORTED = ".csv, .tsv, .jsonl, .ndjson, .parquet, .txt (the text formats also as .gz)"
JSONL_SAMPLE = 1000  # lines read to learn a JSONL file's keys


class Row(NamedTuple):
    row: int
    line: int | None
    values: dict[str, Any] | None
    raw: str | None  # the source text of the row, for the quarantine (None: use values)
    problem: tuple[str, str] | None  # (reason, detail) when the row could not be read


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
    if fmt == "parquet" and compressed:
        raise InputError(f"{path.name}: gzip-compressed Parquet is not supported (Parquet compresses itself).",
                         fix=f"Decompress it first: gunzip {path.name}")
    return fmt, compressed


def open_reader(path: Path, *, encoding: str = "utf-8", line_limit: int = 8 << 20,
                batch_rows: int = 10_000) -> "Reader":
    """The reader for ``path``, chosen by its extension, with its columns read."""
    fmt, compressed = detect_format(path)
    if fmt == "parquet":
        return ParquetReader(path, batch_rows)
    cls = {"csv": CsvReader, "tsv": CsvReader, "jsonl": JsonlReader, "txt": TextReader}[fmt]
    return cls(path, fmt, compressed, encoding, line_limit)


class Reader:
    """Base: ``columns``, ``rows()``, ``position()`` (progress) and ``close()``."""

    columns: list[str]
    unit = "B"
    blank = 0

    def rows(self) -> Iterator[Row]:  # pragma: no cover - interface
        raise NotImplementedError

    def position(self) -> int:
        return 0

    @property
    def total(self) -> int | None:
        return None

    def close(self) -> None:
        pass


class _LineReader(Reader):
    """Reads a (possibly gzipped) text file line by line, in bytes, decoding each line."""

    def __init__(self, path: Path, fmt: str, compressed: bool, encoding: str, line_limit: int):
        self.path, self.fmt, self.encoding, self.line_limit = path, fmt, encoding, line_limit
        self._size = path.stat().st_size
        self._raw = open(path, "rb")
        self._fh = gzip.GzipFile(fileobj=self._raw, mode="rb") if compressed else self._raw
        self._first = True

    @property
    def total(self) -> int:
        return self._size

    def position(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self._fh.close()
        self._raw.close()

    def _readline(self) -> bytes:
        try:
            return self._fh.readline(self.line_limit)
        except (OSError, EOFError, zlib.error) as e:
            raise InputError(f"{self.path.name}: the compressed data is damaged ({e}).",
                             fix="Compress the file again, or ingest it uncompressed.") from None

    def lines(self) -> Iterator[tuple[str, tuple[str, str] | None]]:
        """Yield ``(text, problem)`` for each physical line, line ending included."""
        enc, limit = self.encoding, self.line_limit
        while True:
            b = self._readline()
            if not b:
                return
            problem = None
            if len(b) >= limit and not b.endswith(b"\n"):
                size = len(b)
                while (more := self._readline()) and not more.endswith(b"\n"):
                    size += len(more)
                size += len(more)
                problem = ("line too long", f"the line has {size:,} bytes, over the {limit:,}-byte limit")
                text = b[:2000].decode(enc, "backslashreplace") + "..."
            else:
                try:
                    text = b.decode(enc)
                except UnicodeDecodeError as e:
                    text = b.decode(enc, "backslashreplace")
                    problem = ("undecodable bytes", f"bytes that are not valid {enc} at byte {e.start} of the line")
            if self._first:
                self._first = False
                if text.startswith("\ufeff"):
                    text = text[1:]
            yield text, problem


class CsvReader(_LineReader):
    """CSV or TSV with a header line; quoted fields may span lines."""

    def __init__(self, *args: Any):
        super().__init__(*args)
        self._buf: list[str] = []
        self._problem: tuple[str, str] | None = None
        self._line = 0
        field_limit = max(self.line_limit, 1 << 17)
        if csv.field_size_limit() < field_limit:
            csv.field_size_limit(field_limit)
        delimiter = "\t" if self.fmt == "tsv" else ","
        self._reader = csv.reader(self._feed(), delimiter=delimiter, strict=True)
        try:
            header = next(self._reader)
        except StopIteration:
            raise InputError(f"{self.path.name}: the file has no header line (it is empty).",
                             fix="Check that the export finished, then ingest it again.") from None
        except csv.Error as e:
            raise InputError(f"{self.path.name}: the header line is malformed ({e}).",
                             fix="The first line must name the columns, e.g. text,label") from None
        if self._problem:
            raise InputError(f"{self.path.name}: the header line has {self._problem[1]}.",
                             fix="Save the file as UTF-8, or pass --encoding (e.g. --encoding cp1252).")
        dupes = sorted({c for c in header if header.count(c) > 1})
        if dupes:
            raise InputError(f"{self.path.name}: the header names {dupes} more than once; columns are {header}.",
                             fix="Give every column a distinct name.")
        self.columns = header
        self._buf.clear()

    def _feed(self) -> Iterator[str]:
        for text, problem in self.lines():
            self._line += 1
            self._buf.append(text)
            if problem and self._problem is None:
                self._problem = problem
            yield "\n" if problem and problem[0] == "line too long" else text

    def rows(self) -> Iterator[Row]:
        n, header, buf = len(self.columns), self.columns, self._buf
        row = 0
        while True:
            try:
                rec = next(self._reader)
                error = None
            except StopIteration:
                return
            except csv.Error as e:
                rec, error = None, ("malformed row", f"{e} (an unbalanced quote?)")
            raw = "".join(buf)
            line = self._line - len(buf) + 1
            buf.clear()
            problem, self._problem = self._problem, None
            if error is None and problem is None and not raw.strip():
                self.blank += 1
                continue
            row += 1
            problem = problem or error
            if problem is None and len(rec) != n:
                problem = ("wrong field count", f"expected {n} fields {header}, found {len(rec)}")
            if problem:
                yield Row(row, line, None, raw, problem)
            else:
                yield Row(row, line, dict(zip(header, rec)), raw, None)


class JsonlReader(_LineReader):
    """One JSON object per line; the columns are the keys of the first lines."""

    def __init__(self, *args: Any):
        super().__init__(*args)
        self._rows = self._parse()
        self._sample = list(itertools.islice(self._rows, JSONL_SAMPLE))
        keys: dict[str, None] = {}
        for r in self._sample:
            if r.values:
                keys.update(dict.fromkeys(r.values))
        self.columns = list(keys)
        self.sampled_objects = sum(r.values is not None for r in self._sample)

    def _parse(self) -> Iterator[Row]:
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
            yield Row(line, line, obj, text, None)

    def rows(self) -> Iterator[Row]:
        sample, self._sample = self._sample, []
        yield from sample
        yield from self._rows


class TextReader(_LineReader):
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


def _one_record(batch, i: int) -> dict | Exception:
    try:
        return batch.slice(i, 1).to_pylist()[0]
    except Exception as e:
        return e


def check_encoding(encoding: str) -> str:
    """The codec's canonical name, if it can be read line by line (ASCII-compatible)."""
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r}.", fix="Use e.g. utf-8, cp1252 or latin-1.") from None
    if info.name == "utf-8-sig":
        return "utf-8"  # a leading byte-order mark is dropped anyway
    if "\n,\t\"{}".encode(info.name) != b"\n,\t\"{}":
        raise InputError(f"encoding {encoding!r} is not ASCII-compatible, so lines cannot be split safely.",
                         fix=f"Convert the file first: iconv -f {encoding} -t utf-8 FILE > FILE.utf8.csv")
    return info.name
