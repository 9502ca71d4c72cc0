"""Ingest: real files in every format, bad rows, PII, idempotency, crashes."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from inhouse.data import pii
from inhouse.data.datasets import describe_dataset, list_datasets
from inhouse.data.ingest import ingest, parse_time
from inhouse.errors import ColumnNotFound, InputError, UsageError
from inhouse.workspace.documents import DOC_COLUMNS, doc_schema, read_documents

REPO = Path(__file__).resolve().parents[1]


def docs(ws, name) -> list[dict]:
    """The stored documents exactly as written (Arrow types, None for nulls), in doc_id order."""
    parts = ws.dataset_parts(name)
    if not parts:
        return []
    rows = pa.concat_tables([pq.read_table(p) for p in parts]).to_pylist()
    assert all(list(r) == DOC_COLUMNS for r in rows)
    return sorted(rows, key=lambda r: r["doc_id"])


def quarantine(res) -> list[dict]:
    return [json.loads(line) for line in Path(res.quarantine_file).read_text("utf-8").splitlines()]


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


# ------------------------------------------------------------ banking77 ----

def test_banking77_through_the_cli_then_again_adds_nothing(ws, shared_data, run_cli):
    csv_path = shared_data / "banking77" / "banking77.csv"
    r = run_cli("ingest", csv_path, "--dataset", "banking77", "--label-col", "label", "--split-col", "split", "--json")
    assert r.exit_code == 0, r.stderr
    out = r.json
    assert (out["read"], out["stored"], out["quarantined"], out["duplicates"]) == (13083, 13083, 0, 0)
    assert out["dataset"] == "banking77" and out["quarantine_file"] is None and out["redacted"] == {}

    shown = run_cli("datasets", "show", "banking77", "--json").json
    assert shown["rows"] == 13083 and len(shown["labels"]) == 77
    assert shown["splits"] == {"train": 10003, "test": 3080}
    assert [i["file"] for i in shown["ingests"]] == [str(csv_path.resolve())]  # ingest records the real path

    part = ws.dataset_parts("banking77")[0]
    assert pq.read_schema(part).remove_metadata() == doc_schema()
    first = docs(ws, "banking77")[0]
    assert first["text"] == "I am still waiting on my card?" and list(first["labels"]) == ["card_arrival"]
    assert (first["source_row"], first["split"], first["meta"]) == (1, "train", "{}")

    again = run_cli("ingest", csv_path, "--dataset", "banking77", "--label-col", "label", "--split-col", "split", "--json").json
    assert again["stored"] == 0 and again["skipped"] and again["ingest_id"] == out["ingest_id"]
    assert len(read_documents(ws, "banking77")) == 13083


# ------------------------------------------------------------- bad rows ----

def test_bad_csv_rows_are_quarantined_with_row_and_reason(ws, tmp_path):
    lines = [
        b"text,label,time,extra\n",
        b"good one,a,2024-01-05T10:00:00+02:00,x\n",                      # row 1
        b",a,2024-01-05,x\n",                                              # row 2: empty text
        b"\"a quoted, multi\nline text\",b,1704448800,y\n",               # row 3 (lines 4-5)
        b"caf\xe9 au lait,a,2024-01-05,x\n",                               # row 4: not utf-8
        b"\n",                                                             # blank line: counted, not a row
        b"fine text,a,yesterday-ish,x\n",                                  # row 5: bad timestamp
        b"" + b"y" * 60 + b",a,,x\n",                                      # row 6: too long (max 50)
        b"only,two\n",                                                     # row 7: wrong field count
        b"\"unbalanced\"quote,a,,x\n",                                     # row 8: malformed
        b"last good,c,2024-02-01,z\n",                                     # row 9
    ]
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"".join(lines))

    res = ingest(ws, path, "mixed", label_col="label", time_col="time", max_chars=50)

    assert (res.read, res.stored, res.quarantined, res.blank_lines) == (9, 3, 6, 1)
    got = {(q["row"], q["reason"]) for q in quarantine(res)}
    assert got == {(2, "empty text"), (4, "undecodable bytes"), (5, "bad timestamp"), (6, "text too long"),
                   (7, "wrong field count"), (8, "malformed row")}
    by_row = {q["row"]: q for q in quarantine(res)}
    assert by_row[4]["raw"] == "caf\\xe9 au lait,a,2024-01-05,x" and by_row[4]["line"] == 6
    assert "yesterday-ish" in by_row[5]["detail"] and by_row[7]["raw"] == "only,two"
    assert res.quarantine_file == str(ws.home / "quarantine" / "mixed" / f"ingest-{res.ingest_id}.jsonl")
    assert res.quarantine_reasons["empty text"] == 1

    stored = docs(ws, "mixed")
    assert [d["source_row"] for d in stored] == [1, 3, 9]
    assert stored[1]["text"] == "a quoted, multi\nline text"
    assert [d["time"] for d in stored] == [utc(2024, 1, 5, 8), utc(2024, 1, 5, 10), utc(2024, 2, 1)]
    assert json.loads(stored[0]["meta"]) == {"extra": "x"}
    assert describe_dataset(ws, "mixed")["quarantined"] == 6


def test_bad_jsonl_lines_are_quarantined(ws, tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join([
        json.dumps({"text": "ok", "intent": "a"}),
        json.dumps({"intent": "a"}),                 # missing text
        '{"text": "broken",',                        # malformed JSON
        "[1, 2]",                                    # not an object
        json.dumps({"text": None, "intent": "b"}),   # null text
        json.dumps({"text": ["a", "list"]}),         # not a string
        json.dumps({"text": "fine", "intent": None}),
    ]) + "\n", "utf-8")
    res = ingest(ws, path, "j", label_col="intent")
    assert (res.stored, res.quarantined) == (2, 5)
    assert [(q["row"], q["reason"]) for q in quarantine(res)] == [
        (2, "missing text"), (3, "malformed row"), (4, "malformed row"), (5, "missing text"), (6, "text not a string")]
    assert [list(d["labels"]) for d in docs(ws, "j")] == [["a"], []]


# -------------------------------------------------------------- formats ----

def test_jsonl_keeps_lists_times_and_metadata(ws, tmp_path):
    rows = [
        {"id": 7, "body": "first", "tags": ["x", "y"], "at": "2024-03-01T12:00:00Z", "who": {"name": "a"}},
        {"id": 8, "body": "second", "tags": [], "at": 1709294400, "who": None},
        {"id": 9, "body": "third", "tags": "z", "at": "2024-03-01", "part": "test"},
    ]
    path = tmp_path / "t.ndjson.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    res = ingest(ws, path, "j", text_col="body", label_col="tags", time_col="at", id_col="id")
    assert (res.stored, res.format) == (3, "jsonl.gz")
    got = docs(ws, "j")
    assert [list(d["labels"]) for d in got] == [["x", "y"], [], ["z"]]
    assert [d["source_id"] for d in got] == ["7", "8", "9"]
    assert [d["time"] for d in got] == [utc(2024, 3, 1, 12), utc(2024, 3, 1, 12), utc(2024, 3, 1)]
    assert json.loads(got[0]["meta"]) == {"who": {"name": "a"}}
    assert json.loads(got[2]["meta"]) == {"part": "test"}
    assert [d["source_row"] for d in got] == [1, 2, 3]


def test_tsv_with_multilabels_and_splits(ws, tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("message\tlabels\tsplit\tchannel\n"
                    "refund please\tbilling|refund\ttrain\tmail\n"
                    "app crashes, again\tbug\ttest\tchat\n"
                    "no label here\t\t\tchat\n", "utf-8")
    res = ingest(ws, path, "t", text_col="message", label_col="labels", split_col="split", label_sep="|")
    assert res.stored == 3
    got = docs(ws, "t")
    assert [list(d["labels"]) for d in got] == [["billing", "refund"], ["bug"], []]
    assert [d["split"] for d in got] == ["train", "test", None]
    assert json.loads(got[1]["meta"]) == {"channel": "chat"}
    d = describe_dataset(ws, "t")
    assert d["labels"] == {"billing": 1, "bug": 1, "refund": 1} and d["unlabelled"] == 1
    assert d["splits"] == {"test": 1, "train": 1} and d["no_split"] == 1


def test_parquet_with_typed_columns(ws, tmp_path):
    table = pa.table({
        "text": ["alpha", "beta", "gamma", ""],
        "labels": [["p"], ["p", "q"], [], ["p"]],
        "ts": pa.array([datetime(2024, 1, 1, 9), None, datetime(2024, 1, 3), None], pa.timestamp("ms")),
        "score": [0.5, 1.5, 2.5, 3.5],
    })
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    res = ingest(ws, path, "p", label_col="labels", time_col="ts", chunk_rows=2)
    assert (res.read, res.stored, res.quarantined, res.parts) == (4, 3, 1, 2)
    assert quarantine(res)[0]["row"] == 4 and quarantine(res)[0]["reason"] == "empty text"
    got = docs(ws, "p")
    assert [d["doc_id"] for d in got] == [0, 1, 2]
    assert [d["time"] for d in got][0] == utc(2024, 1, 1, 9) and got[1]["time"] is None
    assert [json.loads(d["meta"]) for d in got] == [{"score": 0.5}, {"score": 1.5}, {"score": 2.5}]
    assert describe_dataset(ws, "p")["time_range"]["max"].startswith("2024-01-03")


def test_plain_text_is_one_document_per_line(ws, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("\ufefffirst line\r\nsecond line\n\n   \nfourth, with comma\n", "utf-8")
    res = ingest(ws, path, "notes")
    assert (res.stored, res.blank_lines) == (3, 2)
    got = docs(ws, "notes")
    assert [d["text"] for d in got] == ["first line", "second line", "fourth, with comma"]
    assert [d["source_row"] for d in got] == [1, 2, 5]
    with pytest.raises(ColumnNotFound):
        ingest(ws, path, "notes2", label_col="label")


def test_identical_texts_are_separate_documents_sharing_a_hash(ws, tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text\nsame\nsame\nother\n", "utf-8")
    res = ingest(ws, path, "d")
    assert (res.stored, res.duplicates) == (3, 1)
    got = docs(ws, "d")
    assert got[0]["text_hash"] == got[1]["text_hash"] != got[2]["text_hash"]


# ----------------------------------------------------- idempotency, append ----

def test_same_file_is_ingested_once_and_another_appends(ws, tmp_path, run_cli):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("text,label\nhello,x\nworld,y\n", "utf-8")
    b.write_text("text,label\nworld,y\nnew,z\nnew,z\n", "utf-8")
    first = ingest(ws, a, "d", label_col="label")
    again = ingest(ws, a, "d", label_col="label")
    assert (first.stored, again.stored, again.skipped) == (2, 0, True)
    copy = tmp_path / "copy-of-a.csv"
    copy.write_bytes(a.read_bytes())
    assert ingest(ws, copy, "d", label_col="label").skipped  # same content under another name
    second = ingest(ws, b, "d", label_col="label")
    # 'world' was already in the dataset; the second 'new' repeats one earlier in the same file
    assert (second.stored, second.duplicates) == (3, 2)
    assert [d["doc_id"] for d in docs(ws, "d")] == [0, 1, 2, 3, 4]
    assert [d["ingest_id"] for d in docs(ws, "d")] == [first.ingest_id] * 2 + [second.ingest_id] * 3
    assert ingest(ws, a, "other", label_col="label").stored == 2  # another dataset takes it again

    listed = {d["name"]: d for d in run_cli("datasets", "list", "--json").json["datasets"]}
    assert listed["d"]["rows"] == 5 and listed["d"]["ingests"] == 2 and listed["other"]["rows"] == 2
    human = run_cli("ingest", a, "--dataset", "d", "--label-col", "label")
    assert human.exit_code == 0 and "already in 'd'" in human.stdout


# -------------------------------------------------------------------- PII ----

def test_redact_pii_masks_before_anything_is_stored(ws, tmp_path):
    path = tmp_path / "pii.csv"
    path.write_text(
        "text,contact,when\n"
        "\"mail me at jane.doe@example.com or call +44 20 7946 0958\",jane@corp.io,2024-01-01\n"
        "\"card 4111 1111 1111 1111, iban GB82 WEST 1234 5698 7654 32\",,2024-01-01\n"
        "\"paid 1,234.56 on 2024-01-05 for order 1234567890, ref 4111111111111112\",,2024-01-01\n"
        "\"bad time but secret@example.com\",,not-a-date\n", "utf-8")
    res = ingest(ws, path, "pii", time_col="when", redact_pii=True)
    assert (res.stored, res.quarantined) == (3, 1)
    got = docs(ws, "pii")
    assert got[0]["text"] == "mail me at [EMAIL] or call [PHONE]"
    assert got[1]["text"] == "card [CARD], iban [IBAN]"
    assert got[2]["text"] == "paid 1,234.56 on 2024-01-05 for order 1234567890, ref 4111111111111112"
    assert json.loads(got[0]["meta"]) == {"contact": "[EMAIL]"}
    assert "[EMAIL]" in quarantine(res)[0]["raw"] and "secret@" not in quarantine(res)[0]["raw"]
    assert res.redacted == {"EMAIL": 3, "PHONE": 1, "CARD": 1, "IBAN": 1}
    assert "example.com" not in b"".join(p.read_bytes() for p in ws.dataset_parts("pii")).decode("latin-1")


@pytest.mark.parametrize("text,kind", [
    ("write to a.b-c+tag@mail.example.co.uk", "EMAIL"),
    ("call (555) 123-4567", "PHONE"), ("tel 07700 900123", "PHONE"), ("+1-800-555-0199", "PHONE"),
    ("01 23 45 67 89", "PHONE"), ("amex 3782 822463 10005", "CARD"), ("5555-5555-5555-4444", "CARD"),
    ("NL91ABNA0417164300", "IBAN"), ("DE89 3704 0044 0532 0130 00", "IBAN"),
])
def test_pii_kinds_are_found(text, kind):
    out, counts = pii.redact(text)
    assert counts == {kind: 1} and f"[{kind}]" in out


@pytest.mark.parametrize("text", [
    "I paid 1,234.56 EUR", "on 2024-01-05 10:30", "order 1234567890", "order #98765432101",
    "card 4111 1111 1111 1112", "ip 192.168.100.200", "version 1.2.3.4567890", "12 345 678.90",
    "GB82 WEST 1234 5698 7654 33", "isbn 978-3-16-148410-0", "room 1234 floor 5678",
])
def test_plain_numbers_are_left_alone(text):
    assert pii.redact(text) == (text, {})


# ------------------------------------------------------- errors, columns ----

def test_wrong_column_fails_at_once_listing_columns_and_flag(ws, tmp_path, run_cli):
    path = tmp_path / "banking.csv"
    path.write_text("query,intent\nhi,greet\n", "utf-8")
    with pytest.raises(ColumnNotFound) as e:
        ingest(ws, path, "b")
    assert str(e.value) == ("banking.csv: column 'text' not found; columns are ['query', 'intent']. "
                            "Use --text-col with one of them.")
    r = run_cli("ingest", path, "--dataset", "b", "--text-col", "query", "--time-col", "when")
    assert r.exit_code == 3 and "--time-col" in r.stderr and "['query', 'intent']" in r.stderr
    # nothing was started, not even the hashing of the file
    assert ws.db.execute("SELECT COUNT(*) FROM ingests").fetchone()[0] == 0
    assert ws.db.execute("SELECT COUNT(*) FROM hash_cache").fetchone()[0] == 0
    jl = tmp_path / "t.jsonl"
    jl.write_text('{"body": "x"}\n', "utf-8")
    with pytest.raises(ColumnNotFound, match=r"columns are \['body'\]"):
        ingest(ws, jl, "j")


def test_bad_inputs_are_explained(ws, tmp_path, run_cli):
    with pytest.raises(InputError, match="file not found"):
        ingest(ws, tmp_path / "missing.csv", "d")
    (tmp_path / "data.xls").write_bytes(b"PK")
    with pytest.raises(InputError, match=r"supported are \.csv, \.tsv, \.jsonl"):
        ingest(ws, tmp_path / "data.xls", "d")
    (tmp_path / "data.xlsx").write_bytes(b"PK")
    with pytest.raises(InputError, match=r"data.xlsx: not a readable .xlsx workbook"):
        ingest(ws, tmp_path / "data.xlsx", "d")
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(InputError, match="empty.csv: the file is empty"):
        ingest(ws, tmp_path / "empty.csv", "d")
    with pytest.raises(InputError, match="is a folder"):
        ingest(ws, tmp_path, "d")
    (tmp_path / "ok.csv").write_text("text\nx\n", "utf-8")
    with pytest.raises(UsageError, match="dataset name"):
        ingest(ws, tmp_path / "ok.csv", "../evil")
    r = run_cli("ingest", tmp_path / "empty.csv", "--dataset", "d")
    assert r.exit_code == 3 and r.stderr.startswith("error: empty.csv: the file is empty")


def test_parse_time_accepts_iso_dates_and_epochs():
    assert parse_time("2024-01-05T10:00:00+02:00") == parse_time("2024-01-05T08:00:00Z") == parse_time(1704441600)
    assert parse_time("2024-01-05") == parse_time("20240105") == parse_time("1704412800.0")
    assert parse_time(None) is None and parse_time(" ") is None
    assert parse_time("1704441600000") == parse_time(1704441600)  # epoch milliseconds
    for bad in ("yesterday", "2024-13-01", "May 2024", "10:30"):
        with pytest.raises(ValueError):
            parse_time(bad)


# ------------------------------------------------------------ crash safety ----

def test_failure_mid_stream_leaves_nothing_visible_and_rerun_works(ws, tmp_path, monkeypatch):
    from inhouse.data import ingest as ingest_mod

    path = tmp_path / "rows.csv"
    path.write_text("text\n" + "".join(f"row {i}\n" for i in range(50)), "utf-8")
    flush = ingest_mod._IngestRun._flush

    def failing_flush(self):
        flush(self)
        if len(self.parts) == 2:
            raise OSError("disk full (simulated)")

    monkeypatch.setattr(ingest_mod._IngestRun, "_flush", failing_flush)
    with pytest.raises(OSError, match="disk full"):
        ingest(ws, path, "d", chunk_rows=10)
    assert ws.dataset_parts("d") == [] and len(read_documents(ws, "d")) == 0
    assert list((ws.home / "datasets" / "d").glob("*")) == []
    status, stats = ws.db.execute("SELECT status, stats FROM ingests").fetchone()
    assert status == "failed" and "disk full" in json.loads(stats)["error"]

    monkeypatch.setattr(ingest_mod._IngestRun, "_flush", flush)
    res = ingest(ws, path, "d", chunk_rows=10)
    assert (res.stored, res.parts) == (50, 5)
    assert [d["source_row"] for d in docs(ws, "d")] == list(range(1, 51))


KILL_SCRIPT = """
import sys, time
from inhouse.data import ingest as m
from inhouse.workspace.store import Workspace
flush = m._IngestRun._flush
def flush_then_wait(self):
    flush(self)
    if len(self.parts) == 2:
        open(sys.argv[3], "w").close()
        time.sleep(120)  # the test kills us here, mid-ingest
m._IngestRun._flush = flush_then_wait
m.ingest(Workspace.open(sys.argv[1]), sys.argv[2], "big", chunk_rows=1000)
"""


def test_killed_ingest_leaves_no_visible_rows_and_can_be_rerun(ws, tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps({"text": f"document number {i}"}) + "\n" for i in range(5000)), "utf-8")
    marker = tmp_path / "two-parts-written"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(ws.home), str(path), str(marker)],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, "the ingest process ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)

    on_disk = sorted((ws.home / "datasets" / "big").glob("*.parquet"))
    assert len(on_disk) == 2  # written, but never registered
    assert ws.dataset_parts("big") == [] and len(read_documents(ws, "big")) == 0
    assert describe_dataset(ws, "big")["rows"] == 0
    assert ws.db.execute("SELECT status FROM ingests").fetchone()[0] == "running"

    res = ingest(ws, path, "big", chunk_rows=1000)
    assert (res.stored, res.quarantined, res.skipped) == (5000, 0, False)
    statuses = [r[0] for r in ws.db.execute("SELECT status FROM ingests ORDER BY id")]
    assert statuses == ["failed", "done"]
    assert not any(p.exists() for p in on_disk)  # the dead ingest's files are cleaned up
    assert len(read_documents(ws, "big")) == 5000
    assert list_datasets(ws)[0]["rows"] == 5000


# ---------------------------------------------------------------- commands ----

def test_init_show_and_rm_commands(ws, tmp_path, run_cli):
    r = run_cli("init", "--json")
    assert r.exit_code == 0 and r.json["home"] == str(ws.home)
    assert str(ws.home) in run_cli("init").stdout
    path = tmp_path / "t.csv"
    path.write_text("text,label,when\nhello,a,2024-01-01\n,a,2024-01-02\n", "utf-8")
    out = run_cli("ingest", path, "-d", "t", "--label-col", "label", "--time-col", "when")
    # 1 of 2 rows quarantined is over the default --max-quarantine-share 0.1: stored, but exit 3
    assert out.exit_code == 3 and "quarantined 1" in out.stdout and "empty text 1" in out.stdout
    assert "1 good rows ARE stored" in out.stderr and "inhouse datasets rm t" in out.stderr
    show = run_cli("datasets", "show", "t")
    assert show.exit_code == 0 and "labels (1): a 1" in show.stdout and "quarantine:" in show.stdout
    assert run_cli("datasets", "show", "nope").exit_code == 4
    assert run_cli("datasets", "rm", "t", "--json").exit_code == 2  # needs --yes
    r = run_cli("datasets", "rm", "t", "--yes", "--json")
    assert r.exit_code == 0 and {k: r.json[k] for k in ("name", "rows", "ingests")} == {"name": "t", "rows": 1,
                                                                                         "ingests": 1}
    assert r.json["removed"]["prediction_sets"] == 0 and "model versions" in r.json["kept"]
    assert run_cli("datasets", "list", "--json").json == {"datasets": []}
    assert not (ws.home / "datasets" / "t").exists() and not (ws.home / "quarantine" / "t").exists()


def test_a_file_without_rows_is_an_error_not_an_empty_ingest(ws, tmp_path):
    (tmp_path / "header.csv").write_text("text,label\n\n", "utf-8")
    with pytest.raises(InputError, match="header.csv: no rows to ingest"):
        ingest(ws, tmp_path / "header.csv", "d")
    gz = tmp_path / "nothing.txt.gz"
    gz.write_bytes(gzip.compress(b""))
    with pytest.raises(InputError, match="no rows"):
        ingest(ws, gz, "d")
    assert [r[0] for r in ws.db.execute("SELECT status FROM ingests")] == ["failed", "failed"]
    assert ws.dataset_parts("d") == []
