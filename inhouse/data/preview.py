"""A look at a file before it is ingested: its columns, first rows, and a guessed column mapping.

:func:`preview_file` reads only the first rows (``sample`` for the guesses,
``n`` of them returned) with the same readers as the ingest, so what the
preview shows is what the ingest will read. :func:`guess_mapping` proposes
which column holds the text, label, time, id and split, with a note saying
why for each guess (or why nothing was guessed), and :func:`guess_dataset_name`
turns a file name into an allowed dataset name.

    >>> rows = [{"message_id": "M1", "body": "my card is lost", "intent": "card", "created": "2026-01-02"},
    ...         {"message_id": "M2", "body": "refund please now", "intent": "refund", "created": "2026-01-03"},
    ...         {"message_id": "M3", "body": "card has not arrived", "intent": "card", "created": "2026-01-04"}]
    >>> g, notes = guess_mapping(["message_id", "body", "intent", "created"], rows)
    >>> g["text"], g["time"], g["id"], g["label"], g["split"]
    ('body', 'created', 'message_id', 'intent', None)
    >>> guess_dataset_name("Support Tickets (2026).csv.gz")
    'Support_Tickets_2026'
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from pathlib import Path
from typing import Any

from ..errors import InputError
from .readers import detect_format, open_reader
from .dates import AmbiguousDate, DayOrder, TimeParser
from .markup import has_entities

__all__ = ["ROLES", "column_checks", "guess_dataset_name", "guess_mapping", "preview_file"]

ROLES = ("text", "label", "time", "id", "split")
TEXT_NAMES = ("text", "message", "body", "utterance", "content", "comment", "review", "sentence", "question",
              "query", "description", "transcript", "tweet", "document", "msg")
LABEL_NAMES = ("label", "intent", "category", "class", "tag", "topic", "sentiment", "target", "reason")
TIME_NAMES = ("time", "timestamp", "date", "datetime", "created", "created_at", "updated_at", "ts", "sent_at")
ID_NAMES = ("id", "uuid", "key", "guid")
SPLIT_NAMES = ("split", "subset", "fold", "partition")
SPLIT_VALUES = {"train", "test", "validation", "valid", "val", "dev", "eval", "holdout"}
MAX_LABELS = 200  # more distinct values than this is not a label column
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


def preview_file(path: Path, *, n: int = 20, sample: int = 500, encoding: str = "utf-8",
                 delimiter: str | None = None, source: str | None = None, sheet: str | None = None) -> dict[str, Any]:
    """Columns, the first ``n`` rows, unreadable rows among the first ``sample``, and the guessed mapping.

    Reads at most ``sample`` rows, whatever the file's size. Raises InputError
    (file, row, what was expected, the fix) when the file has no columns or
    none of its first rows can be read.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> preview_file(Path("tickets.csv"))["guess"]
    {'text': 'text', 'label': 'intent', 'time': 'timestamp', 'id': 'message_id', 'split': 'split'}
    """
    path = Path(path)
    name = source or path.name
    fmt, _ = detect_format(path)
    try:
        reader = open_reader(path, encoding=encoding, delimiter=delimiter, sheet=sheet)
    except UnicodeError as e:  # e.g. utf-16 without a byte-order mark
        raise InputError(f"{name}: cannot be read as {encoding} ({e}).",
                         fix="Pick the file's real encoding (usually utf-8), or save it as UTF-8.") from None
    rows: list[dict] = []
    row_nums: list[int] = []
    problems: list[dict] = []
    read = 0
    truncated_tail = False
    try:
        it = reader.rows()
        while read < sample:
            try:
                r = next(it)
            except StopIteration:
                break
            except (EOFError, OSError):  # a compressed file cut short by the preview's byte limit
                truncated_tail = True
                break
            except UnicodeError as e:
                raise InputError(f"{name}: cannot be read as {encoding} ({e}).",
                                 fix="Pick the file's real encoding (usually utf-8), or save it as UTF-8.") from None
            read += 1
            if r.problem:
                problems.append({"row": r.row, "line": r.line, "reason": r.problem[0], "detail": r.problem[1],
                                 "raw": (r.raw or "")[:300]})
            else:
                rows.append({str(c): _jsonable(v) for c, v in r.values.items()})
                row_nums.append(r.row)
        hint = getattr(reader, "delimiter_hint", None)
        columns = list(reader.columns)  # JSONL learns keys as it reads
        renamed = list(reader.header_renames)
        sheets = getattr(reader, "sheet", None)
    finally:
        reader.close()
    if not columns and not problems:
        raise InputError(f"{name}: no columns found (the file is empty or has no header).",
                         fix="Export the file with a header row naming its columns.")
    if read and not rows:
        p = problems[0]
        raise InputError(f"{name}, row {p['row']}: {p['reason']} ({p['detail']}); none of the first {read} rows "
                         f"could be read as {fmt}.",
                         fix="Check the file's format and encoding (e.g. save it as UTF-8 CSV with a header), "
                             "or pick the right extension.")
    guess, notes = guess_mapping(columns, rows)
    out = {"source": name, "format": fmt, "columns": columns, "rows": rows[:n], "rows_read": read,
           "problems": problems[:50], "guess": guess, "notes": notes, "dataset": guess_dataset_name(name),
           "checks": column_checks(columns, rows, row_nums),
           "truncated_tail": truncated_tail, "renamed_columns": renamed}
    if sheets:
        out["sheet"] = sheets
    marked = sum(isinstance(r.get(guess["text"]), str) and has_entities(r[guess["text"]]) for r in rows) if guess["text"] else 0
    if marked >= 3 or (marked and marked * 10 >= len(rows)):
        out.setdefault("warnings", []).append(
            f"{marked} of the first {len(rows)} texts hold HTML entities like &rsquo; or &amp;: import with "
            "--unescape-html (unescape_html=true) to store them as plain text.")
    if renamed:
        out.setdefault("warnings", []).append("renamed columns: " + ", ".join(
            f"{r['from']!r} -> {r['to']!r} ({r['why']})" for r in renamed))
    if hint and len(columns) == 1:
        sep = "tabs" if hint == "\t" else repr(hint)
        fix = ("rename it to .tsv" if hint == "\t" else
               f"save it with commas, or ingest it on the server with: inhouse ingest --delimiter {hint!r}")
        out.setdefault("warnings", []).append(f"the header reads as one column {columns[0]!r}; the file looks separated by {sep}: {fix}.")
        out["suggested_delimiter"] = hint
    return out


def guess_mapping(columns: list[str], rows: list[dict]) -> tuple[dict[str, str | None], dict[str, str]]:
    """``({role: column or None}, {role: why})`` for the roles text, label, time, id and split."""
    stats = {c: _stats([r.get(c) for r in rows]) for c in columns}
    guess: dict[str, str | None] = dict.fromkeys(ROLES)
    notes: dict[str, str] = {}
    taken: set[str] = set()

    def pick(role: str, col: str | None, why: str) -> None:
        guess[role] = col
        notes[role] = why
        if col:
            taken.add(col)

    # text: a known name, else the column with the longest strings
    named = _by_name(columns, TEXT_NAMES, lambda c: stats[c]["strings"] > 0)
    if named:
        pick("text", named, f"named like a text column; average {stats[named]['avg_len']:.0f} characters")
    else:
        cands = [c for c in columns if stats[c]["strings"]]
        if cands:
            best = max(cands, key=lambda c: stats[c]["avg_len"])
            pick("text", best, f"the longest strings (average {stats[best]['avg_len']:.0f} characters)")
        else:
            pick("text", None, "no column holds text; choose one")

    # split: values like train/test
    for c in columns:
        s = stats[c]
        if c in taken or not s["distinct"]:
            continue
        if s["values"] <= SPLIT_VALUES and (len(s["values"]) >= 2 or c.lower() in SPLIT_NAMES):
            pick("split", c, f"values {sorted(s['values'])}")
            break
    else:
        pick("split", None, "no column with train/test values")

    # time: parses as a date/time (written as a date; epoch numbers only under a time-like name)
    times = []
    for c in columns:
        if c in taken:
            continue
        s = stats[c]
        named_t = _name_matches(c, TIME_NAMES)
        if s["nonempty"] and s["times"] >= 0.9 * s["nonempty"] and (s["iso"] >= 0.9 * s["nonempty"] or named_t):
            times.append((not named_t, columns.index(c), c))
    if times:
        c = min(times)[2]
        pick("time", c, f"{stats[c]['times']} of {stats[c]['nonempty']} values parse as dates/times")
    else:
        pick("time", None, "no column parses as dates/times")

    # id: unique values under an id-like name, else unique short values
    ids = []
    for c in columns:
        s = stats[c]
        if c in taken or s["nonempty"] < 2 or s["distinct"] != s["nonempty"] or s["nonempty"] < 0.99 * len(rows):
            continue
        if s["avg_len"] > 64:
            continue
        low = c.lower()
        rank = 0 if low in ID_NAMES else 1 if re.search(r"(^|_|\b)id$|_id$|Id$", c) or low.endswith("id") else 2
        if rank < 2:
            ids.append((rank, columns.index(c), c))
    if ids:
        c = min(ids)[2]
        pick("id", c, f"id-like name; all {stats[c]['nonempty']} values in the preview are unique")
    else:
        pick("id", None, "no unique id-like column (documents get their row number)")

    # label: a low-cardinality string column; a label-like name wins
    labels = []
    for c in columns:
        s = stats[c]
        if c in taken or s["strings"] < 1 or s["distinct"] < 2 or s["distinct"] > MAX_LABELS:
            continue
        if s["nonempty"] >= 10 and s["distinct"] > 0.5 * s["nonempty"]:
            continue
        if s["avg_len"] > 60:
            continue
        labels.append((0 if _name_matches(c, LABEL_NAMES) else 1, -s["distinct"], columns.index(c), c))
    if labels:
        c = min(labels)[3]
        s = stats[c]
        pick("label", c, f"{'label-like name; ' if min(labels)[0] == 0 else ''}{s['distinct']} distinct values "
                         f"in {s['nonempty']} rows ({s['nonempty'] * 100 // max(1, len(rows))}% filled)")
    else:
        pick("label", None, "no low-cardinality column (you can label in the app)")
    return guess, notes


def column_checks(columns: list[str], rows: list[dict], row_nums: list[int], examples: int = 5) -> dict:
    """Per column, the rows the ingest would quarantine if it were the text or the time column.

    ``{column: {"text": {"count": n, "examples": [{row, reason, detail, value}]}, "time": {...}}}``
    (only the roles with problems), so a screen can warn for whichever mapping the user picks.

    >>> c = column_checks(["t"], [{"t": "hi"}, {"t": "  "}, {"t": "2026-01-02"}], [1, 2, 3])["t"]
    >>> c["time"]["count"], c["time"]["examples"][0]["row"], c["text"]["examples"][0]["reason"]
    (1, 1, 'empty text')
    """
    out: dict[str, dict] = {}
    for c in columns:
        found: dict[str, dict] = {}
        parse = _column_time_parser([r.get(c) for r in rows])
        for row, r in zip(row_nums, rows):
            v = r.get(c)
            for role, problem in (("text", _text_problem(c, v)), ("time", _time_problem(c, v, parse))):
                if problem:
                    f = found.setdefault(role, {"count": 0, "examples": []})
                    f["count"] += 1
                    if len(f["examples"]) < examples:
                        f["examples"].append({"row": row, "reason": problem[0], "detail": problem[1],
                                              "value": v if not isinstance(v, str) else v[:200]})
        if found:
            out[c] = found
    return out


def _text_problem(col: str, v: Any) -> tuple[str, str] | None:
    if v is None:
        return "missing text", f"no value in column {col!r}"
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        return "text not a string", f"column {col!r} holds a {type(v).__name__}"
    if isinstance(v, str) and not v.strip():
        return "empty text", f"column {col!r} is empty"
    return None


def _time_problem(col: str, v: Any, parse: TimeParser) -> tuple[str, str] | None:
    if v is None or isinstance(v, (_dt.date, _dt.datetime)) or (isinstance(v, str) and not v.strip()):
        return None
    try:
        parse(v if isinstance(v, str) else str(v))
    except AmbiguousDate as e:
        return "ambiguous date", f"column {col!r}: {e}"
    except (ValueError, OverflowError) as e:
        return "bad timestamp", f"column {col!r}: {e}"
    return None


def _column_time_parser(values: list) -> TimeParser:
    """A parser whose day/month order is settled by ``values`` where they settle it (as the ingest does)."""
    order = DayOrder()
    for i, v in enumerate(values, 1):
        order.see(i, v)
    return TimeParser(None, order.dayfirst, order.settled_by)


def guess_dataset_name(filename: str) -> str:
    """An allowed dataset name from a file name (letters, digits, '.', '_', '-'; starts with a letter or digit)."""
    stem = Path(filename or "").name
    while True:
        p = Path(stem)
        if p.suffix.lower() in (".gz", ".csv", ".tsv", ".jsonl", ".ndjson", ".parquet", ".txt", ".json", ".xlsx"):
            stem = p.stem
        else:
            break
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")
    name = re.sub(r"_+", "_", name)[:100].strip("._-")
    return name or "dataset"


# --------------------------------------------------------------- helpers ----

def _name_matches(col: str, names: tuple[str, ...]) -> bool:
    low = col.lower().replace(" ", "_")
    return low in names or any(low.startswith(n + "_") or low.endswith("_" + n) for n in names)


def _by_name(columns: list[str], names: tuple[str, ...], ok) -> str | None:
    exact = [c for c in columns if c.lower() in names and ok(c)]
    if exact:
        return min(exact, key=lambda c: names.index(c.lower()))
    loose = [c for c in columns if _name_matches(c, names) and ok(c)]
    return loose[0] if loose else None


def _stats(values: list) -> dict:
    nonempty = [v for v in values if v is not None and str(v).strip() != ""]
    strs = [v for v in nonempty if isinstance(v, str)]
    times = iso = 0
    parse_time = _column_time_parser(nonempty[:200])
    for v in nonempty[:200]:
        if isinstance(v, (_dt.date, _dt.datetime)):
            times += 1
            iso += 1
            continue
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            continue
        try:
            if parse_time(str(v)) is not None:
                times += 1
                iso += isinstance(v, str) and not _NUMBER.match(v.strip())  # written as a date, not a bare number
        except AmbiguousDate:  # a date all the same, whichever way round
            times += 1
            iso += 1
        except (ValueError, OverflowError):
            pass
    scale = len(nonempty) / max(1, min(200, len(nonempty)))
    hashable = [v if isinstance(v, (str, int, float, bool)) else str(v) for v in nonempty]
    distinct = set(hashable)
    return {"nonempty": len(nonempty), "strings": len(strs), "distinct": len(distinct),
            "values": {str(v).strip().lower() for v in distinct} if len(distinct) <= 8 else set(),
            "avg_len": sum(len(s) for s in strs) / len(strs) if strs else 0.0,
            "times": round(times * scale), "iso": round(iso * scale)}


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (str, int, bool)):
        return v
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(v, (_dt.datetime, _dt.date)):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v][:50]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in list(v.items())[:50]}
    if isinstance(v, bytes):
        return v[:200].decode("utf-8", "replace")
    return str(v)
