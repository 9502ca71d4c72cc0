"""Rows, the reader interface, and reading a text file line by line in any encoding.

:class:`LineReader` reads a (possibly gzipped) text file one physical line at a
time in bounded memory and decodes each line on its own, so a line with bad
bytes becomes one quarantined row, not a failed file. Before it reads, it
sniffs the first megabyte (:func:`sniff_encoding`) so that a file in the
wrong encoding fails at once with the exact ``--encoding`` to use, instead of
quarantining most of its rows:

* a UTF-16/UTF-32 byte-order mark, or the NUL bytes of BOM-less UTF-16, when
  the file is read as an ASCII-compatible encoding;
* most lines of the sample not decoding (a cp1252/latin-1 export read as
  utf-8). A few bad lines in an otherwise valid file are still just
  quarantined, each with a hint of what the bytes would read as in cp1252.

Encodings that are not ASCII-compatible (UTF-16, UTF-32) are read by decoding
the stream (lines are split on decoded newlines), so ``--encoding utf-16`` works.
"""

from __future__ import annotations

import codecs
import gzip
import io
import zlib
from pathlib import Path
from typing import Any, Iterator, NamedTuple

from ..errors import InputError

SNIFF_BYTES = 1 << 20  # bytes looked at to tell the encoding
_MARK = "\udcff"  # stands for an undecodable sequence while decoding non-ASCII-compatible text


class Row(NamedTuple):
    row: int
    line: int | None
    values: dict[str, Any] | None
    raw: str | None  # the source text of the row, for the quarantine (None: use values)
    problem: tuple[str, str] | None  # (reason, detail) when the row could not be read


class Reader:
    """Base: ``columns``, ``rows()``, ``position()`` (progress) and ``close()``."""

    columns: list[str]
    unit = "B"
    blank = 0
    delimiter_hint: str | None = None
    header_renames: tuple[dict, ...] | list[dict] = ()  # {"column", "from", "to", "why"}: header names made usable

    def rows(self) -> Iterator[Row]:  # pragma: no cover - interface
        raise NotImplementedError

    def position(self) -> int:
        return 0

    @property
    def total(self) -> int | None:
        return None

    def close(self) -> None:
        pass


def _mark_undecodable(err: UnicodeDecodeError) -> tuple[str, int]:
    return _MARK, err.end


codecs.register_error("inhouse.mark", _mark_undecodable)


def ascii_compatible(encoding: str) -> bool:
    """Whether newlines, commas, tabs, quotes and braces are single ASCII bytes in ``encoding``."""
    return "\n,\t\"{}".encode(encoding) == b"\n,\t\"{}"


def check_encoding(encoding: str) -> str:
    """The codec's canonical name (``utf-8-sig`` is read as ``utf-8``: a BOM is dropped anyway).

    >>> check_encoding("UTF8"), check_encoding("latin1"), check_encoding("utf16")
    ('utf-8', 'iso8859-1', 'utf-16')
    """
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r}.", fix="Use e.g. utf-8, cp1252, latin-1 or utf-16.") from None
    if info.name == "utf-8-sig":
        return "utf-8"
    try:
        codecs.getincrementaldecoder(info.name)
    except LookupError:  # pragma: no cover - every text codec has one
        raise InputError(f"encoding {encoding!r} cannot be read as a stream.", fix="Convert the file to utf-8 first.")
    return info.name


_BOMS = [(codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")]


def sniff_encoding(name: str, sample: bytes, encoding: str, *, complete: bool = False) -> None:
    """Raise InputError with the exact ``--encoding`` when ``sample`` (the file's first bytes) is not in ``encoding``.

    ``complete`` says the sample is the whole file (its last line is whole).

    >>> sniff_encoding("a.csv", "text\\ncafé\\n".encode("utf-16"), "utf-8")
    Traceback (most recent call last):
    ...
    inhouse.errors.InputError: a.csv: expected utf-8 text, found a UTF-16 byte-order mark ... Use --encoding utf-16
    """
    wide = not ascii_compatible(encoding)
    for bom, family in _BOMS:
        if sample.startswith(bom):
            if family == "utf-8" and not wide and encoding in ("utf-8", "ascii"):
                return
            if family.startswith("utf-") and encoding.replace("_", "-").startswith(family):
                return
            raise InputError(f"{name}: expected {encoding} text, found a {family.upper()} byte-order mark "
                             f"(bytes {bom.hex(' ')}) at the start of the file.", fix=f"Use --encoding {family}")
    if wide or not sample:
        return
    nuls = sample.count(b"\0")
    if nuls >= max(2, len(sample) // 10):
        even = sample[0::2].count(b"\0")
        guess = "utf-16-le" if nuls - even > even else "utf-16-be"
        raise InputError(f"{name}: expected {encoding} text, found {nuls:,} NUL bytes in the first {len(sample):,} "
                         f"bytes, the pattern of {guess.upper()} text without a byte-order mark.",
                         fix=f"Use --encoding {guess}")
    lines = sample.split(b"\n")
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # the last one may be cut in the middle of a character
    bad, total, first_bad = 0, 0, None
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        total += 1
        try:
            line.decode(encoding)
        except UnicodeDecodeError:
            bad += 1
            first_bad = first_bad or (i, line)
    if bad and bad * 2 > total:
        guess = guess_encoding(sample)
        line_no, line = first_bad
        shown = line[:80].decode(guess, "replace").rstrip("\r")
        raise InputError(f"{name}: expected {encoding} text, but {bad:,} of the first {total:,} lines are not valid "
                         f"{encoding}; the bytes look like {guess} (line {line_no} reads {shown!r} in {guess}).",
                         fix=f"Use --encoding {guess}")


def guess_encoding(data: bytes) -> str:
    """The likeliest single-byte encoding of ``data`` that is not utf-8: cp1252, else latin-1.

    cp1252 (Windows Western European, what Excel saves as "CSV") is a superset of
    latin-1's printable characters; only its five unused bytes rule it out.
    """
    try:
        data.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def decode_hint(b: bytes) -> str:
    """What a line that is not utf-8 would read as in its likeliest encoding, for the quarantine detail."""
    guess = guess_encoding(b)
    return f"; in {guess} it reads {b[:60].decode(guess, 'replace').rstrip(chr(13) + chr(10))!r}"


class LineReader(Reader):
    """Reads a (possibly gzipped) text file line by line, decoding each line."""

    def __init__(self, path: Path, fmt: str, compressed: bool, encoding: str, line_limit: int):
        self.path, self.fmt, self.encoding, self.line_limit = path, fmt, encoding, line_limit
        self._size = path.stat().st_size
        self._raw = open(path, "rb")
        try:
            self._fh = gzip.GzipFile(fileobj=self._raw, mode="rb") if compressed else self._raw
            sample = self._read(self._fh.read, SNIFF_BYTES)
            self._fh.seek(0)
            sniff_encoding(path.name, sample, encoding, complete=len(sample) < SNIFF_BYTES)
            self._wide = not ascii_compatible(encoding)
            self._text = (io.TextIOWrapper(self._fh, encoding=encoding, errors="inhouse.mark", newline="")
                          if self._wide else None)
        except BaseException:
            self._raw.close()
            raise
        self._first = True

    @property
    def total(self) -> int:
        return self._size

    def position(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        if self._text is not None:
            self._text.detach()
        self._fh.close()
        self._raw.close()

    def _read(self, read, limit: int):
        try:
            return read(limit)
        except (OSError, EOFError, zlib.error) as e:
            raise InputError(f"{self.path.name}: the compressed data is damaged ({e}).",
                             fix="Compress the file again, or ingest it uncompressed.") from None
        except UnicodeDecodeError as e:  # pragma: no cover - the error handler marks bad bytes instead
            raise InputError(f"{self.path.name}: not valid {self.encoding} ({e}).",
                             fix="Check --encoding.") from None

    def lines(self) -> Iterator[tuple[str, tuple[str, str] | None]]:
        """Yield ``(text, problem)`` for each physical line, line ending included."""
        source = self._wide_lines() if self._wide else self._byte_lines()
        for text, problem in source:
            if self._first:
                self._first = False
                if text.startswith("\ufeff"):
                    text = text[1:]
            yield text, problem

    def _byte_lines(self) -> Iterator[tuple[str, tuple[str, str] | None]]:
        enc, limit, read = self.encoding, self.line_limit, self._fh.readline
        while True:
            b = self._read(read, limit)
            if not b:
                return
            problem = None
            if len(b) >= limit and not b.endswith(b"\n"):
                size = len(b)
                while (more := self._read(read, limit)) and not more.endswith(b"\n"):
                    size += len(more)
                size += len(more)
                problem = ("line too long", f"the line has {size:,} bytes, over the {limit:,}-byte limit")
                text = b[:2000].decode(enc, "backslashreplace") + "..."
            else:
                try:
                    text = b.decode(enc)
                except UnicodeDecodeError as e:
                    text = b.decode(enc, "backslashreplace")
                    problem = ("undecodable bytes", f"bytes that are not valid {enc} at byte {e.start} of the line"
                               + (decode_hint(b) if enc == "utf-8" else ""))
            yield text, problem

    def _wide_lines(self) -> Iterator[tuple[str, tuple[str, str] | None]]:
        limit, read = self.line_limit, self._text.readline
        while True:
            text = self._read(read, limit)
            if not text:
                return
            problem = None
            if len(text) >= limit and not text.endswith("\n"):
                size = len(text)
                while (more := self._read(read, limit)) and not more.endswith("\n"):
                    size += len(more)
                size += len(more)
                problem = ("line too long", f"the line has {size:,} characters, over the {limit:,} limit")
                text = text[:2000].replace(_MARK, "\ufffd") + "..."
            elif _MARK in text:
                problem = ("undecodable bytes", f"bytes that are not valid {self.encoding} in the line "
                                                "(shown as \ufffd)")
                text = text.replace(_MARK, "\ufffd")
            yield text, problem
