"""Ingest robustness: stray quotes, encodings, --replace, delimiters, heavy quarantine,
late JSONL keys, duplicate ids, stale ingests, racing processes, quotes in paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from inhouse.errors import UsageError
from inhouse.workspace.store import Workspace

REPO = Path(__file__).resolve().parents[1]


def docs(ws, name) -> list[dict]:
    parts = ws.dataset_parts(name)
    if not parts:
        return []
    return sorted(pa.concat_tables([pq.read_table(p) for p in parts]).to_pylist(), key=lambda r: r["doc_id"])


def quarantine(res) -> list[dict]:
    return [json.loads(line) for line in Path(res.quarantine_file).read_text("utf-8").splitlines()]


# ------------------------------------------------------ racing processes ----

RACE_WORKER = r"""
import sys, time
from pathlib import Path
from inhouse.data.ingest import ingest
from inhouse.errors import UsageError
from inhouse.workspace.store import Workspace
base, me, trials, data = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
(base / f"ready-{me}").touch()
for t in range(trials):
    go = base / f"go-{t}"
    while not go.exists():  # spin, so that all workers start the same instant
        pass
    ws = Workspace.open(base / f"ws-{t}")
    ingest(ws, data, f"d{me}")
    ws.close()
"""


def test_processes_racing_on_a_fresh_workspace_never_see_database_is_locked(tmp_path):
    workers, trials = 4, 10
    data = tmp_path / "d.csv"
    data.write_text("text\n" + "".join(f"row {i}\n" for i in range(20)), "utf-8")
    procs = [subprocess.Popen([sys.executable, "-c", RACE_WORKER, str(tmp_path), str(i), str(trials), str(data)],
                              cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                              stderr=subprocess.PIPE, text=True) for i in range(workers)]
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"ready-{i}").exists() for i in range(workers)):
            assert all(p.poll() is None for p in procs), [p.stderr.read() for p in procs if p.poll() is not None]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for t in range(trials):
            (tmp_path / f"go-{t}").touch()
            time.sleep(0.3)
        errors = [p.communicate(timeout=120)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0] * workers, "\n".join(e[-2000:] for e in errors)
    for t in range(trials):
        ws = Workspace.open(tmp_path / f"ws-{t}")
        assert ws.dataset_names() == [f"d{i}" for i in range(workers)]
        ws.close()


OPEN_AND_INGEST = """
import sys
from inhouse.data.ingest import ingest
from inhouse.errors import UsageError
from inhouse.workspace.store import Workspace
print(ingest(Workspace.open(sys.argv[1]), sys.argv[2], "d").stored)
"""


def test_opening_a_workspace_another_process_is_still_creating_waits_instead_of_failing(tmp_path):
    import sqlite3

    home = tmp_path / "fresh"
    home.mkdir()
    data = tmp_path / "d.csv"
    data.write_text("text\nhello\n", "utf-8")
    # another process is half-way through creating the database: it holds the write lock, not yet in WAL mode
    other = sqlite3.connect(home / "inhouse.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE IF NOT EXISTS scratch (x)")
    proc = subprocess.Popen([sys.executable, "-c", OPEN_AND_INGEST, str(home), str(data)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    other.execute("COMMIT")
    other.close()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert out.strip() == "1"


# ------------------------------------------------------ quotes in paths ----

def test_a_workspace_whose_path_has_a_single_quote_ingests_and_describes(tmp_path, run_cli):
    home = tmp_path / "o'brien's data"
    data = tmp_path / "it's.csv"
    data.write_text("text,label\nsame,a\nsame,b\nother,a\n", "utf-8")
    r = run_cli("--home", home, "ingest", data, "--dataset", "d", "--label-col", "label", "--json")
    assert r.exit_code == 0, r.stderr
    assert (r.json["stored"], r.json["duplicates"]) == (3, 1)
    shown = run_cli("--home", home, "datasets", "show", "d", "--json")
    assert shown.exit_code == 0, shown.stderr
    assert shown.json["rows"] == 3 and shown.json["labels"] == {"a": 2, "b": 1}


# ------------------------------------------------------ stale ingests ----

def _mark_running(ws, dataset: str, **stats) -> int:
    """An ingest row left 'running' (what a killed process leaves behind)."""
    ds_id = ws.dataset(dataset).id
    with ws.tx() as c:
        cur = c.execute("INSERT INTO ingests (dataset_id, source_path, source_sha256, source_size, options, started_at,"
                        " status, stats) VALUES (?, 'x.csv', 'abc', 1, '{}', ?, 'running', ?)",
                        (ds_id, time.time(), json.dumps(stats)))
    return cur.lastrowid


def test_an_ingest_left_running_by_another_host_blocks_rm_until_force(ws, tmp_path, run_cli):
    from inhouse.data.ingest import ingest

    path = tmp_path / "t.csv"
    path.write_text("text\nhello\n", "utf-8")
    ingest(ws, path, "d")
    stale = _mark_running(ws, "d", pid=4242, host="some-other-host")
    r = run_cli("datasets", "rm", "d", "--yes")
    assert r.exit_code == 8
    assert "some-other-host" in r.stderr and "inhouse datasets rm d --force" in r.stderr
    r = run_cli("datasets", "rm", "d", "--yes", "--force", "--json")
    assert r.exit_code == 0, r.stderr
    assert {k: r.json[k] for k in ("name", "rows", "ingests")} == {"name": "d", "rows": 1, "ingests": 2}
    assert ws.dataset_names() == [] and stale


def test_a_reused_pid_on_this_host_does_not_keep_a_dead_ingest_alive(ws, tmp_path, run_cli):
    import socket

    from inhouse.data.datasets import remove_dataset
    from inhouse.data.ingest import ingest, process_start_ticks
    from inhouse.errors import Conflict

    path = tmp_path / "t.csv"
    path.write_text("text\nhello\n", "utf-8")
    ingest(ws, path, "d")
    me, host = os.getpid(), socket.gethostname()
    # our own pid, alive, recorded with a start time that is not ours: the pid was reused
    _mark_running(ws, "d", pid=me, pid_started=(process_start_ticks(me) or 0) + 1, host=host)
    # a process that really still runs here blocks, even with force
    live = _mark_running(ws, "d", pid=me, pid_started=process_start_ticks(me), host=host)
    with pytest.raises(Conflict, match=f"kill {me}"):
        remove_dataset(ws, "d", force=True)
    assert [r[0] for r in ws.db.execute("SELECT status FROM ingests ORDER BY id")] == ["done", "failed", "running"]
    ws.db.execute("UPDATE ingests SET status = 'failed' WHERE id = ?", (live,))
    assert run_cli("datasets", "rm", "d", "--yes").exit_code == 0


# ------------------------------------------------------- stray quotes (1) ----

def _rows_csv(path: Path, n: int, special: dict[int, str]) -> None:
    """``text,label`` with rows 'row i,l<i%3>', except the rows given in ``special`` (1-based)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("text,label\n")
        for i in range(1, n + 1):
            f.write(special.get(i, f"row {i},l{i % 3}") + "\n")


def test_a_stray_quote_in_row_10_of_100000_costs_that_row_only(ws, tmp_path):
    from inhouse.data.ingest import ingest

    path = tmp_path / "big.csv"
    _rows_csv(path, 100_000, {10: '"row 10 has a stray quote,l1'})
    started = time.monotonic()
    res = ingest(ws, path, "big")
    print(f"100,000 rows with a stray quote in row 10: {time.monotonic() - started:.1f}s")
    assert (res.read, res.stored, res.quarantined) == (100_000, 99_999, 1)
    assert res.error is None
    q = quarantine(res)
    assert [(x["row"], x["line"], x["reason"]) for x in q] == [(10, 11, "unclosed quote")]
    assert "--max-record-lines" in q[0]["detail"] and q[0]["raw"] == '"row 10 has a stray quote,l1'
    got = docs(ws, "big")
    assert [d["source_row"] for d in got] == [i for i in range(1, 100_001) if i != 10]
    assert all(d["text"] == f"row {d['source_row']}" for d in got)
    assert all(list(d["labels"]) == [] for d in got[:3])


def test_two_stray_quotes_do_not_merge_the_rows_between_them(ws, tmp_path):
    from inhouse.data.ingest import ingest

    path = tmp_path / "two.csv"
    _rows_csv(path, 30, {10: '"row 10 opens a quote,l1', 20: 'row 20 closes it",l2'})
    res = ingest(ws, path, "two", label_col="label")
    assert (res.read, res.stored, res.quarantined) == (30, 29, 1)
    q = quarantine(res)
    assert [(x["row"], x["reason"]) for x in q] == [(10, "unclosed quote")]
    assert "lines 12-21" in q[0]["detail"]
    got = docs(ws, "two")
    assert [d["source_row"] for d in got] == [i for i in range(1, 31) if i != 10]
    assert not any("\n" in d["text"] for d in got)
    assert got[18]["text"] == 'row 20 closes it"' and list(got[18]["labels"]) == ["l2"]


def test_a_stray_quote_that_runs_into_a_quoted_row_or_the_end_of_the_file(ws, tmp_path):
    from inhouse.data.ingest import ingest

    path = tmp_path / "breaks.csv"
    _rows_csv(path, 40, {5: '"row 5 opens,l2', 8: '"row 8 is quoted",l2', 38: '"row 38 never closes,l2'})
    res = ingest(ws, path, "b", label_col="label")
    assert (res.read, res.stored, res.quarantined) == (40, 38, 2)
    assert [(x["row"], x["reason"]) for x in quarantine(res)] == [(5, "unclosed quote"), (38, "unclosed quote")]
    assert "end of the file" in quarantine(res)[1]["detail"]
    got = {d["source_row"]: d for d in docs(ws, "b")}
    assert got[8]["text"] == "row 8 is quoted" and got[40]["text"] == "row 40"


def test_real_multiline_quoted_texts_still_work(ws, tmp_path):
    from inhouse.data.ingest import ingest

    long_text = "\n".join(f"line {i} of a long letter" for i in range(50))
    path = tmp_path / "multi.csv"
    path.write_text(
        "text,label,channel\n"
        '"Hello,\nmy card, it is lost\nand the app, it crashes\nthanks",card,mail\n'
        f'"{long_text}",letter,post\n'
        'plain row,x,chat\n'
        '"two\nlines",y,chat\n', "utf-8")
    res = ingest(ws, path, "m", label_col="label")
    assert (res.read, res.stored, res.quarantined) == (4, 4, 0)
    got = docs(ws, "m")
    assert got[0]["text"] == "Hello,\nmy card, it is lost\nand the app, it crashes\nthanks"
    assert got[1]["text"] == long_text and [d["source_row"] for d in got] == [1, 2, 3, 4]
    assert [list(d["labels"]) for d in got] == [["card"], ["letter"], ["x"], ["y"]]
    # a field longer than --max-record-lines is taken as a stray quote, and the detail says how to allow it
    small = ingest(ws, path, "m2", label_col="label", max_record_lines=10, max_quarantine_share=1.0)
    q = quarantine(small)
    assert q[0]["row"] == 2 and q[0]["reason"] == "unclosed quote" and "raise --max-record-lines" in q[0]["detail"]
    assert docs(ws, "m2")[0]["text"] == got[0]["text"]


# ----------------------------------------------------------- encodings (2) ----

def test_a_cp1252_file_read_as_utf8_fails_at_once_naming_the_encoding(ws, tmp_path, run_cli):
    from inhouse.data.ingest import ingest
    from inhouse.errors import InputError

    path = tmp_path / "fr.csv"
    rows = ["café crème", "déjà vu", "garçon", "naïve", "plain ascii", "crème brûlée", "“quoted” – dash"]
    path.write_bytes(("text,label\n" + "".join(f"{r},a\n" for r in rows)).encode("cp1252"))
    with pytest.raises(InputError) as e:
        ingest(ws, path, "fr")
    assert "expected utf-8" in str(e.value) and "--encoding cp1252" in str(e.value) and "café" in str(e.value)
    assert ws.db.execute("SELECT COUNT(*) FROM ingests").fetchone()[0] == 0
    r = run_cli("ingest", path, "-d", "fr")
    assert r.exit_code == 3 and "Use --encoding cp1252" in r.stderr
    res = ingest(ws, path, "fr", encoding="cp1252")
    assert res.stored == 7 and [d["text"] for d in docs(ws, "fr")] == rows


def test_utf16_files_are_named_and_can_be_read(ws, tmp_path):
    from inhouse.data.ingest import ingest
    from inhouse.errors import InputError

    content = "text\tlabel\ncafé\ta\n\"two\nlines\"\tb\n中文\tc\n"
    bom = tmp_path / "excel.tsv"
    bom.write_bytes(content.encode("utf-16"))  # with a byte-order mark, as Excel's "Unicode text"
    with pytest.raises(InputError, match=r"UTF-16 byte-order mark.*Use --encoding utf-16"):
        ingest(ws, bom, "x")
    res = ingest(ws, bom, "x", label_col="label", encoding="utf-16")
    assert (res.stored, res.quarantined) == (3, 0)
    got = docs(ws, "x")
    assert [d["text"] for d in got] == ["café", "two\nlines", "中文"] and [d["source_row"] for d in got] == [1, 2, 3]
    bare = tmp_path / "bare.tsv"
    bare.write_bytes(content.encode("utf-16-le"))
    with pytest.raises(InputError, match="Use --encoding utf-16-le"):
        ingest(ws, bare, "y")
    assert ingest(ws, bare, "y", encoding="utf-16-le").stored == 3


def test_a_few_bad_bytes_in_a_utf8_file_are_only_quarantined_with_a_hint(ws, tmp_path):
    from inhouse.data.ingest import ingest

    path = tmp_path / "mostly.csv"
    path.write_bytes("text\n".encode() + "".join(f"ünïcode row {i}\n" for i in range(20)).encode("utf-8")
                     + b"caf\xe9 row\n")
    res = ingest(ws, path, "m")
    assert (res.stored, res.quarantined) == (20, 1)
    assert "in cp1252 it reads 'café row'" in quarantine(res)[0]["detail"]


# ------------------------------------------------------------- replace (3) ----

def test_replace_reingests_the_same_file_with_other_options_and_carries_labels(ws, tmp_path, run_cli):
    from inhouse.data.ingest import ingest
    from inhouse.data.labels import label_docs

    path = tmp_path / "t.csv"
    path.write_text("text,label\nhello,x\nworld,y\nagain,z\n", "utf-8")
    first = ingest(ws, path, "d")  # forgot --label-col
    label_docs(ws, "d", [0, 2], "checked")
    old_files = ws.dataset_parts("d")
    skipped = run_cli("ingest", path, "-d", "d", "--label-col", "label")
    assert skipped.exit_code == 0 and "--replace" in skipped.stdout
    r = run_cli("ingest", path, "-d", "d", "--label-col", "label", "--replace", "--json")
    assert r.exit_code == 0, r.stderr
    out = r.json
    assert (out["replaced_ingest"], out["replaced_documents"], out["stored"]) == (first.ingest_id, 3, 3)
    assert (out["user_labels_on_removed"], out["user_labels_carried"], out["user_labels_dropped"]) == (2, 2, 0)
    assert out["duplicates"] == 0  # the replaced documents do not count as earlier copies
    got = docs(ws, "d")
    assert [list(d["labels"]) for d in got] == [["x"], ["y"], ["z"]] and {d["ingest_id"] for d in got} == {out["ingest_id"]}
    assert not any(p.exists() for p in old_files)
    statuses = [r[0] for r in ws.db.execute("SELECT status FROM ingests ORDER BY id")]
    assert statuses == ["replaced", "done"]
    from inhouse.workspace.documents import read_documents
    df = read_documents(ws, "d", columns=["doc_id", "text", "label"])
    assert list(df["label"]) == ["checked", "y", "checked"]
    # the text changes (masked): the people's labels cannot follow and are reported as dropped
    again = ingest(ws, path, "d", label_col="label", replace=True, text_col="label")
    assert (again.user_labels_on_removed, again.user_labels_carried, again.user_labels_dropped) == (2, 0, 2)
    shown = run_cli("datasets", "show", "d", "--json").json
    assert shown["rows"] == 3 and shown["user_labels"] == 0
    assert [i["status"] for i in shown["ingests"]] == ["replaced", "replaced", "done"]


def test_a_replace_that_fails_leaves_the_old_documents(ws, tmp_path, monkeypatch):
    from inhouse.data import ingest as ingest_mod

    path = tmp_path / "rows.csv"
    path.write_text("text\n" + "".join(f"row {i}\n" for i in range(30)), "utf-8")
    first = ingest_mod.ingest(ws, path, "d", chunk_rows=10)
    before = docs(ws, "d")
    flush = ingest_mod._IngestRun._flush

    def failing_flush(self):
        flush(self)
        if len(self.parts) == 2:
            raise OSError("disk full (simulated)")

    monkeypatch.setattr(ingest_mod._IngestRun, "_flush", failing_flush)
    with pytest.raises(OSError):
        ingest_mod.ingest(ws, path, "d", chunk_rows=10, replace=True)
    assert docs(ws, "d") == before
    assert [r[0] for r in ws.db.execute("SELECT status FROM ingests ORDER BY id")] == ["done", "failed"]
    assert sorted(p.name for p in (ws.home / "datasets" / "d").glob("*.parquet")) == \
        sorted(p.name for p in ws.dataset_parts("d"))
    assert first.ingest_id == 1


# ----------------------------------------------------------- delimiter (4) ----

def test_a_semicolon_csv_is_explained_and_delimiter_reads_it(ws, tmp_path, run_cli):
    from inhouse.data.ingest import ingest
    from inhouse.errors import ColumnNotFound

    path = tmp_path / "eu.csv"
    path.write_text("text;label\nbonjour, ça va;greet\nau revoir;bye\n", "utf-8")
    with pytest.raises(ColumnNotFound) as e:
        ingest(ws, path, "eu")
    assert "separated by ';'s" in str(e.value) and "--delimiter ';'" in str(e.value)
    r = run_cli("ingest", path, "-d", "eu", "--label-col", "label")
    assert r.exit_code == 3 and "--delimiter ';'" in r.stderr
    r = run_cli("ingest", path, "-d", "eu", "--label-col", "label", "--delimiter", ";", "--json")
    assert r.exit_code == 0 and r.json["stored"] == 2
    assert [(d["text"], list(d["labels"])) for d in docs(ws, "eu")] == [("bonjour, ça va", ["greet"]),
                                                                         ("au revoir", ["bye"])]
    tsv = tmp_path / "commas.tsv"
    tsv.write_text("text,label\nhi,a\n", "utf-8")
    with pytest.raises(ColumnNotFound, match="--delimiter ','"):
        ingest(ws, tsv, "t", label_col="label")
    tabs = tmp_path / "tabs.csv"
    tabs.write_text("text\tlabel\nhi, there\ta\n", "utf-8")
    r = run_cli("ingest", tabs, "-d", "tabs", "--label-col", "label", "--delimiter", "\\t", "--json")
    assert r.exit_code == 0 and docs(ws, "tabs")[0]["text"] == "hi, there"
    one = tmp_path / "one.csv"
    one.write_text("text;label\nx;y\n", "utf-8")
    res = ingest(ws, one, "one", text_col="text;label")
    assert res.stored == 1 and "--delimiter ';'" in res.warnings[0]
    jl = tmp_path / "x.jsonl"
    jl.write_text('{"text": "a"}\n', "utf-8")
    with pytest.raises(UsageError, match="--delimiter applies to .csv and .tsv"):
        ingest(ws, jl, "j", delimiter=";")


# ---------------------------------------------------- heavy quarantine (5) ----

def test_heavy_quarantine_stores_the_good_rows_and_exits_3(ws, tmp_path, run_cli):
    path = tmp_path / "bad.csv"
    path.write_text("text,label\n" + "".join(f"row {i},a\n" for i in range(7)) + ",a\n,b\nonly\n", "utf-8")
    r = run_cli("ingest", path, "-d", "bad", "--label-col", "label")
    assert r.exit_code == 3
    assert "stored 7, duplicates 0, quarantined 3" in r.stdout
    assert "3 of 10 rows (30.0%) were quarantined" in r.stderr and "ARE stored" in r.stderr
    assert "inhouse datasets rm bad" in r.stderr and "--replace" in r.stderr
    assert run_cli("datasets", "show", "bad", "--json").json["rows"] == 7
    j = run_cli("ingest", path, "-d", "bad2", "--label-col", "label", "--json")
    assert j.exit_code == 3 and j.json["stored"] == 7 and "over --max-quarantine-share 0.1" in j.json["error"]
    ok = run_cli("ingest", path, "-d", "bad3", "--label-col", "label", "--max-quarantine-share", "1.0", "--json")
    assert ok.exit_code == 0 and ok.json["error"] is None
    assert run_cli("ingest", path, "-d", "bad4", "--max-quarantine-share", "0.3").exit_code == 0


# -------------------------------------------------------- late JSONL keys (6) ----

def test_jsonl_keys_first_seen_after_the_sample_are_kept(ws, tmp_path):
    from inhouse.data.datasets import describe_dataset
    from inhouse.data.ingest import ingest

    path = tmp_path / "late.jsonl"
    lines = [{"text": f"doc {i}"} for i in range(1500)]
    for i in range(1200, 1500):
        lines[i]["intent"] = f"i{i % 2}"
    lines[1400]["extra"] = {"deep": 1}
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), "utf-8")
    res = ingest(ws, path, "late", label_col="intent")
    assert (res.stored, res.quarantined) == (1500, 0)
    got = docs(ws, "late")
    assert list(got[1199]["labels"]) == [] and list(got[1200]["labels"]) == ["i0"]
    assert json.loads(got[1400]["meta"]) == {"extra": {"deep": 1}}
    assert describe_dataset(ws, "late")["columns"]["meta"] == ["extra"]
    from inhouse.errors import ColumnNotFound
    with pytest.raises(ColumnNotFound, match=r"column 'topic' not found; columns are \['text', 'intent', 'extra'\]"):
        ingest(ws, path, "late2", split_col="topic")
    assert ws.dataset_parts("late2") == []
    assert ws.db.execute("SELECT status FROM ingests ORDER BY id DESC").fetchone()[0] == "failed"


# -------------------------------------------------------- duplicate ids (7) ----

def test_duplicate_ids_are_quarantined_by_default_and_reported(ws, tmp_path, run_cli):
    from inhouse.data.ingest import ingest

    a = tmp_path / "a.csv"
    a.write_text("id,text\n1,one\n2,two\n3,three\n2,TWO changed\n3,three\n4,four\n", "utf-8")
    res = ingest(ws, a, "d", id_col="id", max_quarantine_share=1.0)
    assert (res.read, res.stored, res.quarantined, res.superseded) == (6, 4, 2, 0)
    assert (res.duplicate_ids, res.duplicate_ids_same_text) == (2, 1)
    assert res.duplicate_id_examples == [
        {"id": "2", "row": 4, "previous_row": 2, "previous_ingest": None, "same_text": False},
        {"id": "3", "row": 5, "previous_row": 3, "previous_ingest": None, "same_text": True}]
    q = quarantine(res)
    assert [(x["row"], x["reason"]) for x in q] == [(4, "duplicate id"), (5, "duplicate id")]
    assert "TWO changed" in q[0]["raw"] and "a different text" in q[0]["detail"]
    assert [d["source_id"] for d in docs(ws, "d")] == ["1", "2", "3", "4"]
    b = tmp_path / "b.csv"
    b.write_text("id,text\n4,four again but new\n5,five\n", "utf-8")
    r = run_cli("ingest", b, "-d", "d", "--id-col", "id", "--max-quarantine-share", "1")
    assert r.exit_code == 0 and "duplicate ids: 1 rows reuse an id" in r.stdout and "of ingest #1" in r.stdout
    assert [d["source_id"] for d in docs(ws, "d")] == ["1", "2", "3", "4", "5"]


def test_keep_first_and_keep_last(ws, tmp_path):
    from inhouse.data.ingest import ingest
    from inhouse.data.labels import label_docs

    a = tmp_path / "a.csv"
    a.write_text("id,text\n1,one\n2,two\n3,three\n", "utf-8")
    ingest(ws, a, "d", id_col="id")
    label_docs(ws, "d", [1], "old-two")    # id 2: its text changes below, the label cannot follow
    label_docs(ws, "d", [2], "old-three")  # id 3: re-sent with the same text, the label follows
    b = tmp_path / "b.csv"
    b.write_text("id,text\n2,two v2\n4,four\n4,four v2\n3,three\n", "utf-8")
    first = ingest(ws, b, "first", id_col="id", on_duplicate_id="keep-first")
    assert (first.stored, first.superseded, first.quarantined, first.duplicate_ids) == (3, 1, 0, 1)
    assert [d["text"] for d in docs(ws, "first")] == ["two v2", "four", "three"]
    last = ingest(ws, b, "d", id_col="id", on_duplicate_id="keep-last")
    assert (last.read, last.stored, last.superseded, last.quarantined) == (4, 3, 1, 0)
    assert (last.duplicate_ids, last.duplicate_ids_same_text, last.removed_earlier) == (3, 1, 2)
    assert (last.user_labels_on_removed, last.user_labels_carried, last.user_labels_dropped) == (2, 1, 1)
    got = docs(ws, "d")
    assert [(d["source_id"], d["text"]) for d in got] == [("1", "one"), ("2", "two v2"), ("4", "four v2"), ("3", "three")]
    from inhouse.workspace.documents import read_documents
    labels = dict(zip(read_documents(ws, "d")["source_id"], read_documents(ws, "d")["label"]))
    assert labels["3"] == "old-three" and not isinstance(labels["2"], str)
    assert sorted(p.name for p in (ws.home / "datasets" / "d").glob("*.parquet")) == \
        sorted(p.name for p in ws.dataset_parts("d"))


def test_files_left_by_a_crash_right_after_a_replace_commit_are_removed_later(ws, tmp_path, monkeypatch):
    from inhouse.data import ingest as ingest_mod

    path = tmp_path / "t.csv"
    path.write_text("text\na\nb\n", "utf-8")
    ingest_mod.ingest(ws, path, "d")
    old_files = ws.dataset_parts("d")
    monkeypatch.setattr(ingest_mod._IngestRun, "delete_replaced_files", lambda self: None)  # "dies" after commit
    ingest_mod.ingest(ws, path, "d", replace=True)
    assert all(p.exists() for p in old_files) and len(docs(ws, "d")) == 2
    other = tmp_path / "u.csv"
    other.write_text("text\nc\n", "utf-8")
    ingest_mod.ingest(ws, other, "d")
    assert not any(p.exists() for p in old_files)
    assert sorted(p.name for p in (ws.home / "datasets" / "d").glob("*.parquet")) == \
        sorted(p.name for p in ws.dataset_parts("d"))
    assert [d["text"] for d in docs(ws, "d")] == ["a", "b", "c"]
