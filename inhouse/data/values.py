"""Values of a row -> the fields of a document: text, labels, time, split, id and metadata.

A value that cannot be used raises :class:`BadRow` with ``(reason, detail)``;
the ingest puts that row in the quarantine.

    >>> parse_time("2024-01-05T10:00:00+02:00"), parse_time("1704448800"), parse_time("")
    (1704441600000000, 1704448800000000, None)
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

from .pii import Redactor

_META_JSON = json.JSONEncoder(ensure_ascii=False, default=str).encode


class BadRow(Exception):
    """A row that goes to the quarantine: ``args == (reason, detail)``."""


class Converter:
    """Turns a row's values into document fields, or raises BadRow(reason, detail)."""

    def __init__(self, opts: Any, redactor: Redactor | None):
        self.opts, self.redactor = opts, redactor
        self.mapped = {c for c in (opts.text_col, opts.label_col, opts.time_col, opts.id_col, opts.split_col) if c}

    def __call__(self, values: dict[str, Any]) -> tuple:
        o = self.opts
        text = _text(values.get(o.text_col), o)
        labels = _labels(values.get(o.label_col), o.label_sep) if o.label_col else []
        t = None
        if o.time_col:
            try:
                t = parse_time(values.get(o.time_col))
            except ValueError as e:
                raise BadRow("bad timestamp", f"column {o.time_col!r}: {e}") from None
        split = _opt_str(values.get(o.split_col)) if o.split_col else None
        source_id = _opt_str(values.get(o.id_col)) if o.id_col else None
        meta = {k: v for k, v in values.items() if k not in self.mapped}
        if self.redactor:
            text = self.redactor(text)
            meta = self.redactor.value(meta)
        return text, labels, t, split, source_id, _META_JSON(meta) if meta else "{}"



_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)
_NUMERIC = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_MIN_S, _MAX_S = -62135596800, 253402300799  # 0001-01-01 .. 9999-12-31


def parse_time(value: Any) -> int | None:
    """Microseconds since 1970 (UTC) from ISO 8601, a date, or epoch seconds; None when empty.

    Naive times are taken as UTC; an 8-digit number is a basic ISO date (20240105).

    >>> parse_time("2024-01-05T10:00:00+02:00"), parse_time("1704448800"), parse_time("")
    (1704441600000000, 1704448800000000, None)
    """
    if value is None:
        return None
    if isinstance(value, str):
        s = value.strip()
        if not s:
            return None
        if _NUMERIC.match(s) and not (len(s) == 8 and s.isdigit()):
            return _epoch_us(float(s))
        try:
            return _datetime_us(datetime.fromisoformat(s))
        except ValueError:
            raise ValueError(f"{value!r} is neither ISO 8601 (2024-01-05, 2024-01-05T10:00:00+02:00) "
                             "nor epoch seconds") from None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time")
    if isinstance(value, (int, float)):
        return _epoch_us(value)
    if isinstance(value, datetime):
        return _datetime_us(value)
    if isinstance(value, date):
        return _datetime_us(datetime(value.year, value.month, value.day))
    raise ValueError(f"a {type(value).__name__} is not a time")


def _epoch_us(seconds: float) -> int:
    if isinstance(seconds, float) and not math.isfinite(seconds) or not _MIN_S <= seconds <= _MAX_S:
        hint = " (milliseconds? divide by 1000)" if isinstance(seconds, (int, float)) and abs(seconds) > _MAX_S else ""
        raise ValueError(f"{seconds!r} is out of range for epoch seconds{hint}")
    return int(seconds) * 1_000_000 if float(seconds).is_integer() else round(seconds * 1_000_000)


def _datetime_us(d: datetime) -> int:
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return (d - _EPOCH) // _US


def _text(v: Any, o: Any) -> str:
    if v is None:
        raise BadRow("missing text", f"no value in column {o.text_col!r}")
    if isinstance(v, bytes):
        try:
            v = v.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadRow("undecodable bytes", f"column {o.text_col!r} is not valid utf-8 at byte {e.start}") from None
    if not isinstance(v, str):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)
        else:
            raise BadRow("text not a string", f"column {o.text_col!r} holds a {type(v).__name__}")
    if not v.strip():
        raise BadRow("empty text", f"column {o.text_col!r} is empty")
    if len(v) > o.max_chars:
        raise BadRow("text too long", f"{len(v):,} characters, over --max-chars {o.max_chars:,}")
    return v


def _labels(v: Any, sep: str | None) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        items = v.split(sep) if sep else [v]
    elif isinstance(v, (list, tuple)):
        items = ["" if x is None else str(x) for x in v]
    elif isinstance(v, (int, float, bool)):
        items = [str(v)]
    else:
        raise BadRow("bad label", f"a {type(v).__name__} is not a label or a list of labels")
    return list(dict.fromkeys(s for x in items if (s := x.strip())))


def _opt_str(v: Any) -> str | None:
    if v is None:
        return None
    s = v.strip() if isinstance(v, str) else str(v)
    return s or None
