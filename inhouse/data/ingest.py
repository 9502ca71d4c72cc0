"""Turn a user's file into the documents of a dataset.

Reads CSV, TSV, JSONL, Parquet or plain text (see :mod:`inhouse.data.readers`)
in chunks, so memory stays bounded whatever the file size, and writes one
Parquet part per chunk under ``datasets/<name>/`` with the columns of
:data:`inhouse.workspace.documents.DOC_COLUMNS`. Every row becomes a document,
or a line in the quarantine file ``quarantine/<name>/ingest-<id>.jsonl`` with
its row number, the reason and the raw content; nothing is dropped silently.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> res = ingest(ws, "banking77.csv", "banking77", label_col="label", split_col="split")
    >>> res.stored, res.quarantined, res.duplicates
    (13083, 0, 0)
    >>> ingest(ws, "banking77.csv", "banking77").skipped   # same bytes: nothing added
    True
    >>> ingest(ws, "banking77.csv", "banking77", label_col="label", replace=True).replaced_ingest
    1

Crash safety: an ingest is a row in ``ingests`` with status ``running``; its
parts are registered in the ``parts`` table (which readers read) only in the
transaction that marks it ``done``. A killed ingest leaves unregistered files
that the next ingest into the dataset deletes, and can simply be run again.
``replace=True`` swaps the previous ingest of the same bytes for the new one in
that same transaction (the old one is marked ``replaced``; its files are deleted
after the commit, or by the next ingest if the process dies first).

Heavy quarantine: when more than ``max_quarantine_share`` of the rows read
(default 10%) went to the quarantine, the good rows are still stored and
committed (a partial dataset you can inspect beats redoing a long read), and
the result carries ``error`` saying so and how to undo it
(``inhouse datasets rm NAME``, or ``--replace`` with better options); the CLI
prints the summary and exits with code 3. ``max_quarantine_share=1.0`` never
flags an ingest.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import progress
from ..errors import ColumnNotFound, Conflict, InputError, UsageError
from ..workspace.documents import doc_schema
from ..workspace.files import atomic_path, json_dumps, pid_alive, text_hash
from ..workspace.store import Workspace, current_user
from . import duck
from .csvspans import MAX_RECORD_LINES, delimiter_flag
from .dates import TimeParser
from .options import IngestOptions, check_columns, resolve_columns, time_parser
from .pii import Redactor
from .readers import Reader, Row, detect_format, open_reader
from .revise import DuplicateIds, carry_labels, count_repeated_texts, rewrite_part
from .values import BadRow, Converter, parse_time

__all__ = ["MAX_RECORD_LINES", "IngestOptions", "IngestResult", "ingest", "parse_time", "reap_stale_ingests", "running_ingests",
           "check_dataset_name", "file_sha256"]

MAX_CHUNK_CHARS = 64 << 20  # a part is also cut when its texts reach this many characters
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass
class IngestResult:
    """What one ingest did. ``stored + quarantined + superseded == read``.

    ``superseded``: rows not stored because another row with the same id won
    (``--on-duplicate-id keep-first|keep-last``). ``duplicate_ids`` counts rows
    whose id was already used (earlier in the file or in an earlier ingest),
    ``duplicate_ids_same_text`` those that repeat the text too (exact re-sends).
    ``removed_earlier``: documents of earlier ingests removed by keep-last.
    ``replaced_ingest`` / ``replaced_documents``: what ``replace=True`` swapped
    out; ``user_labels_*``: labels people set on removed documents, how many
    were carried to the new document with the same id/row and text, and how
    many were dropped. ``renamed_columns``: header names that were blank,
    padded, repeated or built-in, and the names they were stored under
    (``{"from", "to", "why"}``). ``day_order``: how numeric dates were read
    and what settled it. ``error``: set when the quarantine is over the limit.
    """

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
    superseded: int = 0
    duplicate_ids: int = 0
    duplicate_ids_same_text: int = 0
    duplicate_id_examples: list[dict] = field(default_factory=list)
    on_duplicate_id: str | None = None
    removed_earlier: int = 0
    replaced_ingest: int | None = None
    replaced_documents: int = 0
    user_labels_on_removed: int = 0
    user_labels_carried: int = 0
    user_labels_dropped: int = 0
    renamed_columns: list[dict] = field(default_factory=list)
    day_order: str | None = None
    sheet: str | None = None
    conversations: int = 0
    texts_with_html_entities: int = 0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- public ----

def ingest(ws: Workspace, path: str | os.PathLike, dataset: str, *, text_col: str = "text",
           label_col: str | None = None, time_col: str | None = None, id_col: str | None = None,
           split_col: str | None = None, redact_pii: bool = False, max_chars: int = 100_000,
           label_sep: str | None = None, chunk_rows: int = 100_000, encoding: str = "utf-8",
           delimiter: str | None = None, max_record_lines: int = MAX_RECORD_LINES,
           on_duplicate_id: str = "quarantine", max_quarantine_share: float = 0.10,
           replace: bool = False, time_format: str | None = None, dayfirst: bool | None = None,
           sheet: str | None = None, unescape_html: bool = False, speaker: list[str] | None = None) -> IngestResult:
    """Add the rows of ``path`` to ``dataset`` (created if new) and report what happened.

    The same bytes are ingested once per dataset; ``replace=True`` reads them
    again (with other options) and swaps the previous ingest's documents for
    the new ones in one transaction. ``delimiter`` overrides ``,`` (CSV) or tab
    (TSV); ``max_record_lines`` is how many lines one quoted CSV field may span
    before its quote is taken as stray. With ``id_col``, ``on_duplicate_id``
    says what happens to a row whose id was already used: ``quarantine`` (the
    default: the later row goes to the quarantine), ``keep-first`` (it is
    left out) or ``keep-last`` (it replaces the earlier rows and documents).
    When more than ``max_quarantine_share`` of the rows were quarantined, the
    good rows are stored and ``result.error`` says so (see the module docstring).

    ``text_col`` may be a list (the columns are joined with a line break); a
    text cell holding a list of turns is one conversation, counting only the
    turns of ``speaker`` when given (:mod:`inhouse.data.conversations`).
    Times: see :mod:`inhouse.data.dates`; ``time_format`` is a strftime
    format, ``dayfirst`` True/False fixes the order of dates like 05/06/2011
    (None: settled from the file). ``sheet``: the .xlsx sheet (name or
    1-based number; default the first). ``unescape_html``: decode entities
    and strip markup from texts.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> ingest(ws, "tickets.jsonl", "tickets", label_col="intent", time_col="created").to_dict()
    {'dataset': 'tickets', 'ingest_id': 1, 'read': 1200, 'stored': 1198, 'quarantined': 2, ...}
    """
    started = time.monotonic()
    opts = IngestOptions(text_col=text_col, label_col=label_col, time_col=time_col, id_col=id_col,
                         split_col=split_col, redact_pii=redact_pii, max_chars=max_chars, label_sep=label_sep,
                         chunk_rows=chunk_rows, encoding=encoding, delimiter=delimiter,
                         max_record_lines=max_record_lines, on_duplicate_id=on_duplicate_id,
                         max_quarantine_share=max_quarantine_share, time_format=time_format, dayfirst=dayfirst,
                         sheet=sheet, unescape_html=unescape_html, speaker=speaker).validate()
    check_dataset_name(dataset)
    path = _check_file(Path(path))
    fmt, _ = detect_format(path)
    if opts.delimiter is not None and fmt not in ("csv", "tsv"):
        raise UsageError(f"--delimiter applies to .csv and .tsv files; {path.name} is {fmt}.",
                         fix="Leave out --delimiter.")
    reopen = _reader_of(path, opts)
    reader = reopen()
    try:
        opts = resolve_columns(opts, reader)
        deferred = check_columns(reader, path, opts)
        times = time_parser(opts, reopen, path.name)
        sha = file_sha256(ws, path)
        ds_id = _ensure_dataset(ws, dataset)
        reap_stale_ingests(ws, dataset)
        done = ws.db.execute("SELECT id FROM ingests WHERE dataset_id = ? AND source_sha256 = ? AND status = 'done'",
                             (ds_id, sha)).fetchone()
        if done and not replace:
            return IngestResult(dataset, done[0], str(path), sha, reader_format(path), skipped=True,
                                seconds=round(time.monotonic() - started, 3),
                                note=f"{path.name} (same sha256) is already in {dataset!r} as ingest "
                                     f"#{done[0]}; nothing was added. To read it again with other options, "
                                     f"add --replace: its documents are swapped for the new ones in one step "
                                     f"(inhouse ingest {path.name} --dataset {dataset} --replace ...).")
        ingest_id = _start_ingest(ws, ds_id, path, sha, opts)
        run = _IngestRun(ws, dataset, ds_id, ingest_id, opts, started, replacing=done[0] if done else None,
                         times=times)
        try:
            res = run.execute(reader, path, sha, deferred)
        except BaseException as e:
            _abandon(ws, dataset, ingest_id, f"{type(e).__name__}: {e}")
            raise
    finally:
        reader.close()
    run.delete_replaced_files()
    if replace and not done:
        res.warnings.append(f"--replace: {path.name} was not in {dataset!r} yet, so nothing was replaced.")
    _check_quarantine_share(res, opts, path)
    res.seconds = round(time.monotonic() - started, 3)
    return res

def _reader_of(path: Path, opts: IngestOptions):
    """A function that opens a fresh reader of ``path`` with ``opts`` (the ingest may read the file twice)."""
    line_limit = max(8 << 20, opts.max_chars * 4 + (1 << 20))

    def reopen() -> Reader:
        return open_reader(path, encoding=opts.encoding, line_limit=line_limit,
                           batch_rows=min(opts.chunk_rows, 10_000), delimiter=opts.delimiter,
                           max_record_lines=opts.max_record_lines, sheet=opts.sheet)

    return reopen


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
    collect_garbage(ws, dataset)
    return reaped


def collect_garbage(ws: Workspace, dataset: str) -> list[Path]:
    """Delete part files no ingest will ever register: those of replaced or failed ingests.

    Files are listed first and the database read after, so a part that an
    ingest registers in between is seen as registered; files of ingests still
    running are left alone.
    """
    folder = ws.home / "datasets" / dataset
    files = sorted(folder.glob("ingest-*-part-*.parquet")) if folder.is_dir() else []
    if not files:
        return []
    info = ws.dataset(dataset)
    registered = {r[0] for r in ws.db.execute("SELECT path FROM parts WHERE dataset_id = ?", (info.id,))}
    running = {r[0] for r in ws.db.execute("SELECT id FROM ingests WHERE dataset_id = ? AND status = 'running'",
                                           (info.id,))}
    gone = []
    for f in files:
        try:
            owner = int(f.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if owner not in running and f"datasets/{dataset}/{f.name}" not in registered:
            f.unlink(missing_ok=True)
            gone.append(f)
    return gone


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
                 started: float | None = None, replacing: int | None = None, times: TimeParser | None = None):
        self.ws, self.dataset, self.ds_id, self.ingest_id, self.opts = ws, dataset, ds_id, ingest_id, opts
        self.started = time.monotonic() if started is None else started
        self.replacing = replacing
        self.redactor = Redactor() if opts.redact_pii else None
        self.parts: list[tuple[str, int, int]] = []  # (relative path, rows, first doc_id)
        self.quarantine = _Quarantine(ws.home / "quarantine" / dataset, ingest_id, self.redactor)
        self.rewrites: list[tuple[int, str, str | None, int, int | None]] = []  # keep-last: earlier parts changed
        self.delete_after_commit: list[Path] = []
        self.convert = Converter(opts, self.redactor, times)
        self._clear()

    def _clear(self) -> None:
        self.buf: list[tuple] = []  # (text, labels, time, split, source_id, meta, source_row)
        self.buf_chars = 0

    def execute(self, reader: Reader, path: Path, sha: str, deferred: list[tuple[str, str]] = ()) -> IngestResult:
        convert = self.convert
        read = 0
        with progress.task(f"ingesting {path.name}", total=reader.total, unit=reader.unit) as t:
            for row in reader.rows():
                read += 1
                problem = row.problem
                if problem is None:
                    try:
                        self._add(row.row, convert(row.values))
                    except BadRow as e:
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
        for col, flag in deferred:  # JSONL keys not among the first lines' must appear somewhere
            if col not in reader.columns:
                raise ColumnNotFound(path.name, col, reader.columns, flag)
        res = IngestResult(self.dataset, self.ingest_id, str(path), sha, reader_format(path), read=read,
                           blank_lines=reader.blank, replaced_ingest=self.replacing)
        describe_reading(res, reader, convert, self.opts)
        hint = getattr(reader, "delimiter_hint", None)
        if hint:
            res.warnings.append(f"the header reads as one column {reader.columns[0]!r}, which holds "
                                f"{'tabs' if hint == chr(9) else repr(hint) + 's'}; if that is the separator, "
                                f"ingest again with {delimiter_flag(hint)} --replace")
        con = duck.connect(self.ws)
        try:
            old = [self.ws.home / r[0] for r in self.ws.db.execute(
                "SELECT path FROM parts WHERE dataset_id = ? AND ingest_id IS NOT ? ORDER BY first_doc_id",
                (self.ds_id, self.replacing))]
            if self.opts.id_col and self.parts:
                self._duplicate_ids(con, res, old)
            new = [self.ws.home / p for p, _, _ in self.parts]
            res.duplicates = count_repeated_texts(con, old, new)
            res.stored = sum(n for _, n, _ in self.parts)
            res.quarantined = self.quarantine.count
            res.quarantine_reasons = dict(self.quarantine.reasons)
            res.redacted = dict(self.redactor.counts) if self.redactor else {}
            res.parts = len(self.parts)
            if self.parts:
                res.first_doc_id = min(first for _, _, first in self.parts)
                res.end_doc_id = max(first + n for _, n, first in self.parts)
            qfile = self.quarantine.finish()
            res.quarantine_file = str(qfile) if qfile else None
            res.seconds = round(time.monotonic() - self.started, 3)
            self._commit(res, reader, qfile, con)
        finally:
            con.close()
        return res

    def _duplicate_ids(self, con, res: IngestResult, old: list[Path]) -> None:
        """Find rows reusing an id and apply --on-duplicate-id (before anything is committed)."""
        policy = self.opts.on_duplicate_id
        dup = DuplicateIds.find(con, [self.ws.home / p for p, _, _ in self.parts], old, policy)
        res.duplicate_ids, res.duplicate_ids_same_text = dup.count, dup.same_text
        res.duplicate_id_examples, res.on_duplicate_id = dup.examples, policy
        if not dup.drop_new and not dup.drop_old:
            return
        if policy == "quarantine":
            for rec in dup.quarantined_rows(con, [self.ws.home / p for p, _, _ in self.parts]):
                self.quarantine.add_record(rec)
        else:
            res.superseded = dup.drop_new
        kept = []
        for rel, n, first in self.parts:  # not registered yet: rewritten in place
            drop = dup.drop_ids(con, self.ws.home / rel)
            if not drop:
                kept.append((rel, n, first))
                continue
            rows, new_first = rewrite_part(self.ws.home / rel, self.ws.home / rel, drop)
            if rows:
                kept.append((rel, rows, new_first))
            else:
                (self.ws.home / rel).unlink(missing_ok=True)
        self.parts = kept
        if policy == "keep-last":
            registered = {str(self.ws.home / r[1]): r for r in self.ws.db.execute(
                "SELECT id, path FROM parts WHERE dataset_id = ?", (self.ds_id,))}
            for i, file in enumerate(dup.old_files(con)):
                part_id, rel_old = registered[file]
                rel = f"datasets/{self.dataset}/{_part_prefix(self.ingest_id)}k{i:05d}.parquet"
                rows, new_first = rewrite_part(Path(file), self.ws.home / rel, dup.drop_ids(con, Path(file)))
                self.rewrites.append((part_id, rel_old, rel if rows else None, rows, new_first))
            res.removed_earlier = dup.drop_old

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

    def _commit(self, res: IngestResult, reader: Reader, qfile: Path | None, con) -> None:
        import sqlite3

        ws, now = self.ws, time.time()
        new = [ws.home / p for p, _, _ in self.parts]
        try:
            with ws.tx() as c:
                removed_sql, removed_params = [], []
                if self.replacing is not None:
                    old = c.execute("SELECT quarantine_path FROM ingests WHERE id = ? AND status = 'done'",
                                    (self.replacing,)).fetchone()
                    if old is None:
                        raise Conflict(f"ingest #{self.replacing}, which this one replaces, was replaced or removed "
                                       "while this one ran.", fix="Look with: inhouse datasets show " + self.dataset)
                    c.execute("UPDATE ingests SET status = 'replaced', quarantine_path = NULL, stats = "
                              "json_set(stats, '$.replaced_by', ?) WHERE id = ?", (self.ingest_id, self.replacing))
                    if old[0]:
                        self.delete_after_commit.append(Path(old[0]))
                    gone = c.execute("SELECT path, rows FROM parts WHERE ingest_id = ?", (self.replacing,)).fetchall()
                    c.execute("DELETE FROM parts WHERE ingest_id = ?", (self.replacing,))
                    self.delete_after_commit += [ws.home / r[0] for r in gone]
                    res.replaced_documents = sum(r[1] for r in gone)
                    if gone:
                        removed_sql.append("SELECT doc_id, source_id, source_row, text_hash FROM read_parquet(?)")
                        removed_params.append([str(ws.home / r[0]) for r in gone])
                for part_id, rel_old, rel_new, rows, first in self.rewrites:
                    if rel_new is None:
                        cur = c.execute("DELETE FROM parts WHERE id = ? AND path = ?", (part_id, rel_old))
                    else:
                        cur = c.execute("UPDATE parts SET path = ?, rows = ?, first_doc_id = ? WHERE id = ? AND path = ?",
                                        (rel_new, rows, first, part_id, rel_old))
                    if cur.rowcount != 1:
                        raise Conflict(f"another ingest changed {rel_old} while this one ran.",
                                       fix="Run the ingest again.")
                    self.delete_after_commit.append(ws.home / rel_old)
                if self.rewrites:
                    removed_sql.append("SELECT doc_id, source_id, source_row, text_hash FROM read_parquet(?)"
                                       " WHERE doc_id IN (SELECT doc_id FROM dup_drop WHERE NOT is_new)")
                    removed_params.append([str(ws.home / r[1]) for r in self.rewrites])
                if removed_sql:
                    labels = [(r[0], bool(r[1])) for r in c.execute(
                        "SELECT doc_id, undone_at IS NULL FROM labels WHERE dataset_id = ?", (self.ds_id,))]
                    carry = carry_labels(con, labels, " UNION ALL ".join(removed_sql), removed_params, new)
                    c.executemany("UPDATE labels SET doc_id = ? WHERE dataset_id = ? AND doc_id = ?",
                                  [(n, self.ds_id, o) for o, n in carry.moves])
                    res.user_labels_on_removed, res.user_labels_carried = carry.referring, carry.carried
                    res.user_labels_dropped = carry.dropped
                stats = {k: v for k, v in res.to_dict().items() if k not in ("dataset", "ingest_id", "source", "sha256")}
                for rel, n, first in self.parts:
                    c.execute("INSERT INTO parts (dataset_id, ingest_id, path, rows, first_doc_id) VALUES (?, ?, ?, ?, ?)",
                              (self.ds_id, self.ingest_id, rel, n, first))
                c.execute("UPDATE ingests SET status = 'done', finished_at = ?, stats = ?, quarantine_path = ?,"
                          " first_doc_id = ?, end_doc_id = ? WHERE id = ?",
                          (now, json_dumps(stats), str(qfile) if qfile else None, res.first_doc_id,
                           res.end_doc_id, self.ingest_id))
                columns = _merge_columns(ws, self.ds_id, self.opts, self.convert.names.stored())
                c.execute("UPDATE datasets SET columns = ? WHERE id = ?", (json_dumps(columns), self.ds_id))
                ws.audit("ingest", self.dataset, ingest_id=self.ingest_id, file=res.source, stored=res.stored,
                         quarantined=res.quarantined, replaced=self.replacing, removed_earlier=res.removed_earlier,
                         user_labels_dropped=res.user_labels_dropped)
        except sqlite3.IntegrityError:
            # another process finished ingesting the same bytes first (unique index ingests_once)
            self.delete_after_commit = []
            other = ws.db.execute("SELECT id FROM ingests WHERE dataset_id = ? AND source_sha256 = ? AND status = 'done'",
                                  (self.ds_id, res.sha256)).fetchone()
            _abandon(ws, self.dataset, self.ingest_id, "the same file was ingested concurrently", status="skipped")
            res.skipped, res.stored, res.quarantine_file = True, 0, None
            res.quarantined, res.quarantine_reasons = 0, {}  # its quarantine file went with it (_abandon)
            res.note = f"the same file was ingested at the same time as ingest #{other[0] if other else '?'}; nothing was added."

    def delete_replaced_files(self) -> None:
        """After the commit: the files of replaced or rewritten parts (a crash here leaves garbage the next ingest removes)."""
        for p in self.delete_after_commit:
            p.unlink(missing_ok=True)
        self.delete_after_commit = []


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

    def add_record(self, rec: dict) -> None:
        """A ready record (row, line, reason, detail, raw) whose raw is already redacted."""
        if self._f is None:
            self.tmp.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.tmp, "w", encoding="utf-8")
        self._f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.count += 1
        self.reasons[rec["reason"]] += 1

    def finish(self) -> Path | None:
        if self._f is None:
            return None
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self.tmp, self.final)
        return self.final


def _check_quarantine_share(res: IngestResult, opts: IngestOptions, path: Path) -> None:
    """Set ``res.error`` when more than ``max_quarantine_share`` of the rows read were quarantined."""
    if res.skipped or not res.read or res.quarantined / res.read <= opts.max_quarantine_share:
        return
    share = res.quarantined / res.read
    top = ", ".join(f"{r} {n:,}" for r, n in sorted(res.quarantine_reasons.items(), key=lambda x: -x[1])[:3])
    hint = ""
    if res.quarantine_reasons.get("undecodable bytes", 0) * 2 > res.quarantined:
        hint = " Most were not valid text in the encoding used: check --encoding (see a row's detail for a guess)."
    elif res.quarantine_reasons.get("wrong field count", 0) * 2 > res.quarantined:
        hint = " Most had the wrong number of fields: check --delimiter."
    res.error = (f"{path.name}: {res.quarantined:,} of {res.read:,} rows ({share:.1%}) were quarantined ({top}), "
                 f"over --max-quarantine-share {opts.max_quarantine_share:g}. The {res.stored:,} good rows ARE stored "
                 f"in {res.dataset!r} as ingest #{res.ingest_id}; the quarantined rows are in {res.quarantine_file}."
                 f"{hint} To undo: inhouse datasets rm {res.dataset} (or fix the options and run the ingest again "
                 f"with --replace); to accept this share next time: --max-quarantine-share 1.0")


# ---------------------------------------------------------- helpers ----

def reader_format(path: Path) -> str:
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
        for name in (f".ingest-{ingest_id}.jsonl.tmp", f"ingest-{ingest_id}.jsonl"):  # never committed: nobody reads it
            (ws.home / "quarantine" / dataset / name).unlink(missing_ok=True)
        with ws.tx() as c:
            c.execute("UPDATE ingests SET status = ?, finished_at = ?, stats = ? WHERE id = ? AND status = 'running'",
                      (status, time.time(), json_dumps({"error": error}), ingest_id))
    except Exception:  # pragma: no cover - best effort while another error is on its way up
        pass


def _merge_columns(ws: Workspace, ds_id: int, opts: IngestOptions, meta_names: list[str]) -> dict:
    """The dataset's column mapping after this ingest; ``meta_names`` are the stored metadata names."""
    row = ws.db.execute("SELECT columns FROM datasets WHERE id = ?", (ds_id,)).fetchone()
    before = json.loads(row[0] or "{}")
    mapped = {"text": opts.text_col, "label": opts.label_col, "time": opts.time_col, "id": opts.id_col,
              "split": opts.split_col}
    meta = list(dict.fromkeys(before.get("meta", []) + meta_names))
    return {**mapped, "meta": meta}


ENTITY_SHARE = 0.01  # suggest --unescape-html when this share of the stored texts holds HTML entities


def describe_reading(res: IngestResult, reader: Reader, convert: Converter, opts: IngestOptions) -> None:
    """Renamed columns, the day/month order, conversations and HTML entities: into ``res`` and its warnings."""
    for c in reader.columns:
        if c not in convert.mapped:
            convert.names(c)  # a column no row had a value in is still named
    final = {r["from"]: r for r in convert.renames}
    renamed = []
    for r in reader.header_renames:
        later = final.pop(r["to"], None)
        renamed.append({"from": r["from"], "to": later["to"] if later else r["to"],
                        "why": r["why"] + (f"; {later['why']}" if later else "")})
    renamed += [{"from": r["from"], "to": r["to"], "why": r["why"]} for r in final.values()]
    res.renamed_columns = renamed
    if renamed:
        res.warnings.append("renamed columns: " + ", ".join(f"{r['from']!r} -> {r['to']!r} ({r['why']})"
                                                           for r in renamed))
    t = convert.times
    if t.dayfirst is not None:
        res.day_order = ("day first" if t.dayfirst else "month first") + (f" ({t.settled_by})" if t.settled_by else "")
    res.sheet = getattr(reader, "sheet", None)
    res.conversations = convert.conversations
    if opts.speaker and not convert.conversations:
        res.warnings.append(f"--speaker {' '.join(opts.speaker)} had no effect: no text cell held a list of turns "
                            "(a conversation); check --text-col")
    res.texts_with_html_entities = convert.entities
    if not opts.unescape_html and convert.entities >= 3 and convert.entities >= ENTITY_SHARE * res.read:
        res.warnings.append(f"{convert.entities:,} texts hold HTML entities like &rsquo; or &amp;; to store them "
                            f"as plain text, ingest again with --unescape-html --replace")


