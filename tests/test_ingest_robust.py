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
    assert r.json == {"name": "d", "rows": 1, "ingests": 2}
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
