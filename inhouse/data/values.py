"""Values of a row -> the fields of a document: text, labels, time, split, id and metadata.

Times are read by :mod:`inhouse.data.dates`, conversations by
:mod:`inhouse.data.conversations`, metadata names made safe by :mod:`inhouse.data.headers`.

A value that cannot be used raises :class:`BadRow` with ``(reason, detail)``;
the ingest puts that row in the quarantine.

    >>> parse_time("2024-01-05T10:00:00+02:00"), parse_time("1704448800"), parse_time("")
    (1704441600000000, 1704448800000000, None)
"""

from __future__ import annotations

import json
from typing import Any

from .conversations import conversation, is_conversation
from .dates import AmbiguousDate, TimeParser, parse_time
from .headers import MetaNames
from .markup import has_entities, unescape_html
from .pii import Redactor

__all__ = ["BadRow", "Converter", "parse_time", "text_columns"]

_META_JSON = json.JSONEncoder(ensure_ascii=False, default=str).encode


class BadRow(Exception):
    """A row that goes to the quarantine: ``args == (reason, detail)``."""


class Converter:
    """Turns a row's values into document fields, or raises BadRow(reason, detail).

    Several text columns are joined with a line break; a text cell holding a
    list of turns is a conversation (:mod:`inhouse.data.conversations`).
    Metadata keys get the names :class:`MetaNames` gives them (``renames``);
    ``entities`` counts texts holding HTML entities when they are not unescaped.
    """

    def __init__(self, opts: Any, redactor: Redactor | None, times: TimeParser | None = None):
        self.opts, self.redactor = opts, redactor
        self.text_cols = text_columns(opts.text_col)
        self.mapped = {c for c in (*self.text_cols, opts.label_col, opts.time_col, opts.id_col, opts.split_col) if c}
        self.times = times or TimeParser(getattr(opts, "time_format", None), getattr(opts, "dayfirst", None))
        self.names = MetaNames([c for c in (opts.label_col, opts.id_col) if c])
        self.speakers = tuple(getattr(opts, "speaker", None) or ())
        self.unescape = bool(getattr(opts, "unescape_html", False))
        self.entities = self.conversations = 0

    @property
    def renames(self) -> list[dict]:
        return self.names.renames

    def __call__(self, values: dict[str, Any]) -> tuple:
        o = self.opts
        text, extra = self._text(values)
        labels = _labels(values.get(o.label_col), o.label_sep) if o.label_col else []
        t = None
        if o.time_col:
            try:
                t = self.times(values.get(o.time_col))
            except ValueError as e:
                raise BadRow("ambiguous date" if isinstance(e, AmbiguousDate) else "bad timestamp",
                             f"column {o.time_col!r}: {e}") from None
        split = _opt_str(values.get(o.split_col)) if o.split_col else None
        source_id = _opt_str(values.get(o.id_col)) if o.id_col else None
        meta = {self.names(k): v for k, v in values.items() if k not in self.mapped}
        meta.update((self.names(k), v) for k, v in extra.items())
        if self.redactor:
            text = self.redactor(text)
            meta = self.redactor.value(meta)
        return text, labels, t, split, source_id, _META_JSON(meta) if meta else "{}"

    def _text(self, values: dict[str, Any]) -> tuple[str, dict]:
        o, parts, extra = self.opts, [], {}
        for col in self.text_cols:
            v = values.get(col)
            if is_conversation(v):
                try:
                    v, extra = conversation(v, self.speakers, self.times)
                except ValueError as e:
                    raise BadRow("bad conversation", f"column {col!r}: {e}") from None
                self.conversations += 1
                if not v.strip():
                    who = f" by {list(self.speakers)}" if self.speakers else ""
                    raise BadRow("empty text", f"column {col!r}: no turns{who} with text")
            if len(self.text_cols) > 1 and (v is None or isinstance(v, str) and not v.strip()):
                continue
            parts.append(_text(v, col, o.max_chars if len(self.text_cols) == 1 else 1 << 62))
        if not parts:
            raise BadRow("empty text", f"columns {self.text_cols} are all empty")
        text = "\n".join(parts)
        if self.unescape:
            text = unescape_html(text)
            if not text.strip():
                raise BadRow("empty text", f"column {self.text_cols[0]!r} holds only markup")
        elif has_entities(text):
            self.entities += 1
        if len(text) > o.max_chars:
            raise BadRow("text too long", f"{len(text):,} characters, over --max-chars {o.max_chars:,}")
        return text, extra


def text_columns(text_col: str | list[str] | tuple[str, ...]) -> list[str]:
    """``--text-col`` as a list (it may be given several times)."""
    return [text_col] if isinstance(text_col, str) else list(text_col)


def _text(v: Any, col: str, max_chars: int) -> str:
    if v is None:
        raise BadRow("missing text", f"no value in column {col!r}")
    if isinstance(v, bytes):
        try:
            v = v.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadRow("undecodable bytes", f"column {col!r} is not valid utf-8 at byte {e.start}") from None
    if not isinstance(v, str):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)
        else:
            raise BadRow("text not a string", f"column {col!r} holds a {type(v).__name__}")
    if not v.strip():
        raise BadRow("empty text", f"column {col!r} is empty")
    if len(v) > max_chars:
        raise BadRow("text too long", f"{len(v):,} characters, over --max-chars {max_chars:,}")
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
