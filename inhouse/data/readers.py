"""Read CSV, TSV, JSONL, Parquet and plain-text files as a stream of rows.

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

from ..errors import InputError
from .csvspans import MAX_RECORD_LINES, CsvReader
from .textlines import LineReader, Reader, Row, check_encoding

__all__ = ["CsvReader", "JsonlReader", "LineReader", "ParquetReader", "Reader", "Row", "TextReader",
           "check_encoding", "detect_format", "open_reader"]

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".txt": "txt"}
SUPPORTED = ".csv, .tsv, .jsonl, .ndjson, .parquet, .txt (the text formats also as .gz)"
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
    if fmt == "parquet" and compressed:
        raise InputError(f"{path.name}: gzip-compressed Parquet is not supported (Parquet compresses itself).",
                         fix=f"Decompress it first: gunzip {path.name}")
    return fmt, compressed


def open_reader(path: Path, *, encoding: str = "utf-8", line_limit: int = 8 << 20, batch_rows: int = 10_000,
                delimiter: str | None = None, max_record_lines: int = MAX_RECORD_LINES) -> Reader:
    """The reader for ``path``, chosen by its extension, with its columns read.

    ``delimiter`` and ``max_record_lines`` apply to CSV/TSV (see :mod:`inhouse.data.csvspans`).
    """
    fmt, compressed = detect_format(path)
    if fmt == "parquet":
        return ParquetReader(path, batch_rows)
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


def _one_record(batch, i: int) -> dict | Exception:
    try:
        return batch.slice(i, 1).to_pylist()[0]
    except Exception as e:
        return e
