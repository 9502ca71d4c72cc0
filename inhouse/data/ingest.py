"""Turn a user's file into the documents of a dataset.

Reads CSV, TSV, JSONL, Parquet or plain text (see :mod:`inhouse.readers`) in
chunks, so memory stays bounded whatever the file size, and writes one Parquet
part per chunk under ``datasets/<name>/`` with the columns of
:data:`inhouse.store.DOC_COLUMNS`. Every row becomes a document or a line in
the quarantine file ``quarantine/<name>/ingest-<id>.jsonl`` with its row
number, the reason and the raw content; nothing is dropped silently.

    >>> res = ingest(ws, "banking77.csv", "banking77", label_col="label", split_col="split")
    >>> res.stored, res.quarantined, res.duplicates
    (13083, 0, 0)
    >>> ingest(ws, "banking77.csv", "banking77").skipped   # same bytes: nothing added
    True

Crash safety: an ingest is a row in ``ingests`` with status ``running``; its
parts are registered in the ``parts`` table (which readers read) only in the
transaction that marks it ``done``. A killed ingest leaves unregistered files
that the next ingest into the dataset deletes, and can simply be run again.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .. import progress
from ..errors import ColumnNotFound, InputError, UsageError
from ..workspace.documents import doc_schema
from ..workspace.files import atomic_path, json_dumps, pid_alive, text_hash
from ..workspace.store import Workspace, current_user
from . import duck
from .pii import Redactor
from .readers import Reader, Row, check_encoding, open_reader

MAX_CHUNK_CHARS = 64 << 20  # a part is also cut when its texts reach this many characters
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_META_JSON = json.JSONEncoder(ensure_ascii=False, default=str).encode


@dataclass
class IngestOptions:
    """How to read a file; stored with every ingest so it can be repeated."""

    text_col: str = "text"
    label_col: str | None = None
    time_col: str | None = None
    id_col: str | None = None
    split_col: str | None = None
    redact_pii: bool = False
    max_chars: int = 100_000
    label_sep: str | None = None
    chunk_rows: int = 100_000
    encoding: str = "utf-8"

    def validate(self) -> "IngestOptions":
        if not self.text_col:
            raise UsageError("--text-col must name a column.")
        if self.max_chars < 1:
            raise UsageError(f"--max-chars must be at least 1, got {self.max_chars}.")
        if self.chunk_rows < 1:
            raise UsageError(f"--chunk-rows must be at least 1, got {self.chunk_rows}.")
        if self.label_sep == "":
            raise UsageError("--label-sep must not be empty.", fix="Use e.g. --label-sep '|'.")
        self.encoding = check_encoding(self.encoding)
        return self

    def flags(self) -> dict[str, str]:
        """Column option -> the CLI flag that sets it."""
        return {"text_col": "--text-col", "label_col": "--label-col", "time_col": "--time-col",
                "id_col": "--id-col", "split_col": "--split-col"}


@dataclass
class IngestResult:
    """What one ingest did. ``stored + quarantined == read``."""

    dataset: str
    ingest_id: int
    source: str
    sha256: str
    format: str = ""
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    quarantine_file: str | None = None
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    redacted: dict[str, int] = field(default_factory=dict)
    blank_lines: int = 0
    parts: int = 0
    first_doc_id: int | None = None
    end_doc_id: int | None = None
    skipped: bool = False
    note: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _BadRow(Exception):
    """A row that goes to the quarantine: ``args == (reason, detail)``."""


# ---------------------------------------------------------------- public ----

def ingest(ws: Workspace, path: str | os.PathLike, dataset: str, *, text_col: str = "text",
           label_col: str | None = None, time_col: str | None = None, id_col: str | None = None,
           split_col: str | None = None, redact_pii: bool = False, max_chars: int = 100_000,
           label_sep: str | None = None, chunk_rows: int = 100_000, encoding: str = "utf-8") -> IngestResult:
    """Add the rows of ``path`` to ``dataset`` (created if new) and report what happened.

    >>> ingest(ws, "tickets.jsonl", "tickets", label_col="intent", time_col="created").to_dict()
    {'dataset': 'tickets', 'ingest_id': 1, 'read': 1200, 'stored': 1198, 'quarantined': 2, ...}
    """
    started = time.monotonic()
    opts = IngestOptions(text_col=text_col, label_col=label_col, time_col=time_col, id_col=id_col,
                         split_col=split_col, redact_pii=redact_pii, max_chars=max_chars, label_sep=label_sep,
                         chunk_rows=chunk_rows, encoding=encoding).validate()
    check_dataset_name(dataset)
    path = _check_file(Path(path))
    line_limit = max(8 << 20, opts.max_chars * 4 + (1 << 20))
    reader = open_reader(path, encoding=opts.encoding, line_limit=line_limit,
                         batch_rows=min(opts.chunk_rows, 10_000))
    try:
        _check_columns(reader, path, opts)
        sha = file_sha256(ws, path)
        ds_id = _ensure_dataset(ws, dataset)
        reap_stale_ingests(ws, dataset)
        done = ws.db.execute("SELECT id FROM ingests WHERE dataset_id = ? AND source_sha256 = ? AND status = 'done'",
                             (ds_id, sha)).fetchone()
        if done:
            return IngestResult(dataset, done[0], str(path), sha, reader_format(path), skipped=True,
                                seconds=round(time.monotonic() - started, 3),
                                note=f"{path.name} (same sha256) is already in {dataset!r} as ingest "
                                     f"#{done[0]}; nothing was added. To read it again with other options, "
                                     f"remove the dataset first: inhouse datasets rm {dataset}")
        ingest_id = _start_ingest(ws, ds_id, path, sha, opts)
        run = _IngestRun(ws, dataset, ds_id, ingest_id, opts, started)
        try:
            res = run.execute(reader, path, sha)
        except BaseException as e:
            _abandon(ws, dataset, ingest_id, f"{type(e).__name__}: {e}")
            raise
    finally:
        reader.close()
    res.seconds = round(time.monotonic() - started, 3)
    return res

def check_dataset_name(name: str) -> str:
    if not _NAME_RE.match(name or ""):
        raise UsageError(f"dataset name {name!r} is not allowed.",
                         fix="Use letters, digits, '.', '_' and '-' (up to 100), starting with a letter or digit.")
    return name


def file_sha256(ws: Workspace, path: Path) -> str:
    """sha256 of a file, cached in the workspace by (path, size, mtime)."""
    st = path.stat()
    key = str(path.resolve())
    row = ws.db.execute("SELECT sha256 FROM hash_cache WHERE path = ? AND size = ? AND mtime_ns = ?",
                        (key, st.st_size, st.st_mtime_ns)).fetchone()
    if row:
        return row[0]
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f, progress.task(f"hashing {path.name}", total=st.st_size, unit="B") as t:
        while block := f.read(4 << 20):
            h.update(block)
            t.advance(len(block))
    digest = h.hexdigest()
    ws.db.execute("INSERT OR REPLACE INTO hash_cache (path, size, mtime_ns, sha256) VALUES (?, ?, ?, ?)",
                  (key, st.st_size, st.st_mtime_ns, digest))
    return digest


def reap_stale_ingests(ws: Workspace, dataset: str, *, force: bool = False) -> list[int]:
    """Mark 'running' ingests whose process is gone as failed and delete their files.

    An ingest started on this host is stale when its process no longer runs
    (checked by PID and, on Linux, the process start time, so a reused PID does
    not keep it alive). One started on another host cannot be checked from
    here; ``force=True`` gives those up too (never one whose process still runs
    on this host). Returns the ids of the reaped ingests.
    """
    info = ws.dataset(dataset)
    host = socket.gethostname()
    reaped = []
    for r in ws.db.execute("SELECT id, stats FROM ingests WHERE dataset_id = ? AND status = 'running'",
                           (info.id,)).fetchall():
        stats = json.loads(r["stats"] or "{}")
        if stats.get("host") == host:
            if ingest_process_alive(stats):
                continue
            reason = "the process running it ended before it finished"
        elif force:
            reason = (f"given up with --force on {host}: it was started on host {stats.get('host')!r} "
                      f"(pid {stats.get('pid')}), which cannot be checked from here")
        else:
            continue
        _abandon(ws, dataset, r["id"], reason)
        reaped.append(r["id"])
    return reaped


def running_ingests(ws: Workspace, dataset: str) -> list[dict]:
    """The ingests of ``dataset`` still marked running: id, host, pid, started_at, and whether on this host."""
    info = ws.dataset(dataset)
    host = socket.gethostname()
    out = []
    for r in ws.db.execute("SELECT id, stats, started_at FROM ingests WHERE dataset_id = ? AND status = 'running'"
                           " ORDER BY id", (info.id,)):
        stats = json.loads(r["stats"] or "{}")
        out.append({"id": r["id"], "host": stats.get("host"), "pid": stats.get("pid"),
                    "started_at": r["started_at"], "this_host": stats.get("host") == host})
    return out


def ingest_process_alive(stats: dict) -> bool:
    """Whether the process recorded in an ingest's stats (same host) still runs and is the same process."""
    if not pid_alive(stats.get("pid")):
        return False
    recorded = stats.get("pid_started")
    if recorded is None:
        return True
    now = process_start_ticks(stats["pid"])
    return now is None or now == recorded


def process_start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, Linux /proc); None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rindex(b")") + 2:].split()[19])  # field 22 of proc(5), after "pid (comm)"
    except (OSError, ValueError, IndexError):
        return None


# ------------------------------------------------------------ the run ----

class _IngestRun:
    """One ingest from start to commit: rows -> documents, parts and quarantine."""

    def __init__(self, ws: Workspace, dataset: str, ds_id: int, ingest_id: int, opts: IngestOptions,
                 started: float | None = None):
        self.ws, self.dataset, self.ds_id, self.ingest_id, self.opts = ws, dataset, ds_id, ingest_id, opts
        self.started = time.monotonic() if started is None else started
        self.redactor = Redactor() if opts.redact_pii else None
        self.parts: list[tuple[str, int, int]] = []  # (relative path, rows, first doc_id)
        self.quarantine = _Quarantine(ws.home / "quarantine" / dataset, ingest_id, self.redactor)
        self._clear()

    def _clear(self) -> None:
        self.buf: list[tuple] = []  # (text, labels, time, split, source_id, meta, source_row)
        self.buf_chars = 0

    def execute(self, reader: Reader, path: Path, sha: str) -> IngestResult:
        opts = self.opts
        convert = _Converter(opts, reader.columns, self.redactor)
        read = 0
        with progress.task(f"ingesting {path.name}", total=reader.total, unit=reader.unit) as t:
            for row in reader.rows():
                read += 1
                problem = row.problem
                if problem is None:
                    try:
                        self._add(row.row, convert(row.values))
                    except _BadRow as e:
                        problem = e.args
                if problem is not None:
                    self.quarantine.add(row, problem)
                if not read & 4095:
                    t.advance(reader.position() - t.done, stored=read - self.quarantine.count)
            self._flush()
            t.advance(reader.position() - t.done, stored=read - self.quarantine.count)
        if read == 0:
            raise InputError(f"{path.name}: no rows to ingest (only a header or blank lines).",
                             fix="Check that the export finished, then ingest it again.")
        stored = sum(n for _, n, _ in self.parts)
        res = IngestResult(self.dataset, self.ingest_id, str(path), sha, reader_format(path), read=read,
                           stored=stored, quarantined=self.quarantine.count,
                           quarantine_reasons=dict(self.quarantine.reasons),
                           redacted=dict(self.redactor.counts) if self.redactor else {},
                           blank_lines=reader.blank, parts=len(self.parts))
        if self.parts:
            res.first_doc_id = min(first for _, _, first in self.parts)
            res.end_doc_id = max(first + n for _, n, first in self.parts)
        res.duplicates = _count_duplicates(self.ws, self.ws.dataset_parts(self.dataset),
                                           [self.ws.home / p for p, _, _ in self.parts])
        qfile = self.quarantine.finish()
        res.quarantine_file = str(qfile) if qfile else None
        res.seconds = round(time.monotonic() - self.started, 3)
        self._commit(res, reader, qfile)
        return res

    def _add(self, source_row: int, doc: tuple) -> None:
        self.buf.append((*doc, source_row))
        self.buf_chars += len(doc[0]) + len(doc[5])
        if len(self.buf) >= self.opts.chunk_rows or self.buf_chars >= MAX_CHUNK_CHARS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        n = len(self.buf)
        if not n:
            return
        text, labels, times, split, source_id, meta, source_row = zip(*self.buf)
        first = _reserve_doc_ids(self.ws, self.ds_id, n)
        schema = doc_schema()
        cols = {
            "doc_id": pa.array(range(first, first + n), pa.int64()),
            "text": pa.array(text, pa.string()),
            "text_hash": pa.array([text_hash(x) for x in text], pa.string()),
            "labels": pa.array(labels, pa.list_(pa.string())),
            "time": pa.array(times, pa.int64()).cast(schema.field("time").type),
            "split": pa.array(split, pa.string()),
            "source_id": pa.array(source_id, pa.string()),
            "source_row": pa.array(source_row, pa.int64()),
            "ingest_id": pa.array([self.ingest_id] * n, pa.int64()),
            "meta": pa.array(meta, pa.string()),
        }
        table = pa.Table.from_pydict(cols, schema=schema)
        rel = f"datasets/{self.dataset}/{_part_prefix(self.ingest_id)}{len(self.parts):05d}.parquet"
        with atomic_path(self.ws.home / rel) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        self.parts.append((rel, n, first))
        self._clear()

    def _commit(self, res: IngestResult, reader: Reader, qfile: Path | None) -> None:
        import sqlite3

        ws, now = self.ws, time.time()
        stats = {k: v for k, v in res.to_dict().items() if k not in ("dataset", "ingest_id", "source", "sha256")}
        try:
            with ws.tx() as c:
                for rel, n, first in self.parts:
                    c.execute("INSERT INTO parts (dataset_id, ingest_id, path, rows, first_doc_id) VALUES (?, ?, ?, ?, ?)",
                              (self.ds_id, self.ingest_id, rel, n, first))
                c.execute("UPDATE ingests SET status = 'done', finished_at = ?, stats = ?, quarantine_path = ?,"
                          " first_doc_id = ?, end_doc_id = ? WHERE id = ?",
                          (now, json_dumps(stats), str(qfile) if qfile else None, res.first_doc_id,
                           res.end_doc_id, self.ingest_id))
                columns = _merge_columns(ws, self.ds_id, self.opts, reader.columns)
                c.execute("UPDATE datasets SET columns = ? WHERE id = ?", (json_dumps(columns), self.ds_id))
                ws.audit("ingest", self.dataset, ingest_id=self.ingest_id, file=res.source,
                         stored=res.stored, quarantined=res.quarantined)
        except sqlite3.IntegrityError:
            # another process finished ingesting the same bytes first (unique index ingests_once)
            other = ws.db.execute("SELECT id FROM ingests WHERE dataset_id = ? AND source_sha256 = ? AND status = 'done'",
                                  (self.ds_id, res.sha256)).fetchone()
            _abandon(ws, self.dataset, self.ingest_id, "the same file was ingested concurrently", status="skipped")
            res.skipped, res.stored, res.quarantine_file = True, 0, None
            res.note = f"the same file was ingested at the same time as ingest #{other[0] if other else '?'}; nothing was added."


class _Converter:
    """Turns a row's values into document fields, or raises _BadRow(reason, detail)."""

    def __init__(self, opts: IngestOptions, columns: list[str], redactor: Redactor | None):
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
                raise _BadRow("bad timestamp", f"column {o.time_col!r}: {e}") from None
        split = _opt_str(values.get(o.split_col)) if o.split_col else None
        source_id = _opt_str(values.get(o.id_col)) if o.id_col else None
        meta = {k: v for k, v in values.items() if k not in self.mapped}
        if self.redactor:
            text = self.redactor(text)
            meta = self.redactor.value(meta)
        return text, labels, t, split, source_id, _META_JSON(meta) if meta else "{}"


class _Quarantine:
    """Bad rows as JSON lines, written to a hidden temp file and renamed into place at the end."""

    def __init__(self, folder: Path, ingest_id: int, redactor: Redactor | None):
        self.final = folder / f"ingest-{ingest_id}.jsonl"
        self.tmp = folder / f".ingest-{ingest_id}.jsonl.tmp"
        self.redactor = redactor
        self.count = 0
        self.reasons: Counter[str] = Counter()
        self._f = None

    def add(self, row: Row, problem: tuple[str, str]) -> None:
        raw = row.raw if row.raw is not None else json.dumps(row.values, ensure_ascii=False, default=str)
        raw = raw.rstrip("\r\n")
        if self.redactor:
            raw = self.redactor(raw)
        if self._f is None:
            self.tmp.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.tmp, "w", encoding="utf-8")
        rec = {"row": row.row, "line": row.line, "reason": problem[0], "detail": problem[1], "raw": raw}
        self._f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.count += 1
        self.reasons[problem[0]] += 1

    def finish(self) -> Path | None:
        if self._f is None:
            return None
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self.tmp, self.final)
        return self.final


# ---------------------------------------------------------- values ----

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


def _text(v: Any, o: IngestOptions) -> str:
    if v is None:
        raise _BadRow("missing text", f"no value in column {o.text_col!r}")
    if isinstance(v, bytes):
        try:
            v = v.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _BadRow("undecodable bytes", f"column {o.text_col!r} is not valid utf-8 at byte {e.start}") from None
    if not isinstance(v, str):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)
        else:
            raise _BadRow("text not a string", f"column {o.text_col!r} holds a {type(v).__name__}")
    if not v.strip():
        raise _BadRow("empty text", f"column {o.text_col!r} is empty")
    if len(v) > o.max_chars:
        raise _BadRow("text too long", f"{len(v):,} characters, over --max-chars {o.max_chars:,}")
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
        raise _BadRow("bad label", f"a {type(v).__name__} is not a label or a list of labels")
    return list(dict.fromkeys(s for x in items if (s := x.strip())))


def _opt_str(v: Any) -> str | None:
    if v is None:
        return None
    s = v.strip() if isinstance(v, str) else str(v)
    return s or None


# ---------------------------------------------------------- helpers ----

def reader_format(path: Path) -> str:
    from .readers import detect_format

    fmt, compressed = detect_format(path)
    return fmt + (".gz" if compressed else "")


def _check_file(path: Path) -> Path:
    if not path.exists():
        raise InputError(f"{path}: file not found.", fix=f"Check the path (relative paths start at {Path.cwd()}).")
    if path.is_dir():
        raise InputError(f"{path} is a folder; ingest reads one file.",
                         fix="Pass a file; for many: for f in DIR/*.csv; do inhouse ingest \"$f\" --dataset NAME; done")
    if path.stat().st_size == 0:
        raise InputError(f"{path.name}: the file is empty (0 bytes).",
                         fix="Check that the export finished, then ingest it again.")
    return path.resolve()


def _check_columns(reader: Reader, path: Path, opts: IngestOptions) -> None:
    if getattr(reader, "sampled_objects", None) == 0:
        return  # JSONL whose first lines are all unreadable: every row will be quarantined with its reason
    for attr, flag in opts.flags().items():
        col = getattr(opts, attr)
        if col is not None and col not in reader.columns:
            raise ColumnNotFound(path.name, col, reader.columns, flag)


def _ensure_dataset(ws: Workspace, name: str) -> int:
    with ws.tx() as c:
        c.execute("INSERT OR IGNORE INTO datasets (name, created_at) VALUES (?, ?)", (name, time.time()))
        return c.execute("SELECT id FROM datasets WHERE name = ?", (name,)).fetchone()[0]


def _start_ingest(ws: Workspace, ds_id: int, path: Path, sha: str, opts: IngestOptions) -> int:
    with ws.tx() as c:
        cur = c.execute(
            "INSERT INTO ingests (dataset_id, source_path, source_sha256, source_size, options, started_at, status,"
            " stats, user) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?)",
            (ds_id, str(path), sha, path.stat().st_size, json_dumps(asdict(opts)), time.time(),
             json_dumps({"pid": os.getpid(), "pid_started": process_start_ticks(os.getpid()),
                         "host": socket.gethostname()}), current_user()))
        return int(cur.lastrowid)


def _reserve_doc_ids(ws: Workspace, ds_id: int, n: int) -> int:
    with ws.tx() as c:
        first = c.execute("SELECT next_doc_id FROM datasets WHERE id = ?", (ds_id,)).fetchone()[0]
        c.execute("UPDATE datasets SET next_doc_id = ? WHERE id = ?", (first + n, ds_id))
    return first


def _part_prefix(ingest_id: int) -> str:
    return f"ingest-{ingest_id:06d}-part-"


def _abandon(ws: Workspace, dataset: str, ingest_id: int, error: str, status: str = "failed") -> None:
    """Delete an unfinished ingest's files and mark it; never raises over the original error."""
    try:
        folder = ws.home / "datasets" / dataset
        prefix = _part_prefix(ingest_id)
        for pattern in (f"{prefix}*", f".{prefix}*"):
            for p in folder.glob(pattern):
                p.unlink(missing_ok=True)
        (ws.home / "quarantine" / dataset / f".ingest-{ingest_id}.jsonl.tmp").unlink(missing_ok=True)
        with ws.tx() as c:
            c.execute("UPDATE ingests SET status = ?, finished_at = ?, stats = ? WHERE id = ? AND status = 'running'",
                      (status, time.time(), json_dumps({"error": error}), ingest_id))
    except Exception:  # pragma: no cover - best effort while another error is on its way up
        pass


def _count_duplicates(ws: Workspace, old: list[Path], new: list[Path]) -> int:
    """Rows of ``new`` whose text is in ``old`` or earlier in ``new`` (DuckDB, spills to disk)."""
    if not new:
        return 0
    con = duck.connect(ws)
    try:
        n_new = con.execute("SELECT COUNT(*) FROM read_parquet(?)", [[str(p) for p in new]]).fetchone()[0]
        q = "SELECT COUNT(*) FROM (SELECT DISTINCT text_hash FROM read_parquet(?)) n"
        params: list = [[str(p) for p in new]]
        if old:
            q += " WHERE NOT EXISTS (SELECT 1 FROM read_parquet(?) o WHERE o.text_hash = n.text_hash)"
            params.append([str(p) for p in old])
        fresh = con.execute(q, params).fetchone()[0]
    finally:
        con.close()
    return int(n_new - fresh)


def _merge_columns(ws: Workspace, ds_id: int, opts: IngestOptions, columns: list[str]) -> dict:
    row = ws.db.execute("SELECT columns FROM datasets WHERE id = ?", (ds_id,)).fetchone()
    before = json.loads(row[0] or "{}")
    mapped = {"text": opts.text_col, "label": opts.label_col, "time": opts.time_col, "id": opts.id_col,
              "split": opts.split_col}
    meta = list(dict.fromkeys(before.get("meta", []) + [c for c in columns if c not in mapped.values()]))
    return {**mapped, "meta": meta}


