"""The workspace: migrations, concurrent writers, atomic files, progress."""

import multiprocessing as mp
import os

import pytest

from inhouse import progress
from inhouse.workspace.files import atomic_path
from inhouse.workspace.migrations import SCHEMA_MIGRATIONS
from inhouse.workspace.store import Workspace, default_home


def _writer(home: str, n: int) -> None:
    ws = Workspace.open(home)
    for i in range(n):
        with ws.tx():
            ws.audit("test.write", str(os.getpid()), i=i)


def test_migrations_are_numbered_and_idempotent(tmp_path):
    ws = Workspace.open(tmp_path / "w")
    assert ws.schema_version() == len(SCHEMA_MIGRATIONS)
    assert ws.migrate() == len(SCHEMA_MIGRATIONS)
    tables = {r[0] for r in ws.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"datasets", "ingests", "labels", "model_versions", "aliases", "runs", "jobs", "audit"} <= tables


def test_home_comes_from_env_or_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("INHOUSE_HOME", str(tmp_path / "x"))
    assert default_home() == tmp_path / "x"
    monkeypatch.delenv("INHOUSE_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_home() == tmp_path / "data" / "inhouse"


def test_several_processes_write_one_workspace(tmp_path):
    home = str(tmp_path / "shared")
    Workspace.open(home)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(home, 50)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    ws = Workspace.open(home)
    assert ws.db.execute("SELECT COUNT(*) FROM audit WHERE action='test.write'").fetchone()[0] == 150
    assert ws.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole" and len(list(tmp_path.iterdir())) == 1


def test_progress_reports_rate_and_eta():
    events = []
    with progress.use(progress.ListSink(events)):
        with progress.task("work", total=4, unit="doc") as t:
            t.advance(2, loss=0.5)
    assert [e.kind for e in events] == ["start", "advance", "end"]
    adv = events[1]
    assert adv.done == 2 and adv.info == {"loss": 0.5} and adv.rate > 0 and adv.eta is not None
    line = progress.format_event(adv)
    assert "50%" in line and "doc/s" in line and "loss=0.5" in line


def test_progress_of_slow_work_says_seconds_per_unit_not_a_zero_rate():
    """qwen2.5-coder-1.5b writes one summary in ~30 s on 2 cores: the bar said '0.0 category/s'."""
    slow = progress.Event("advance", "summarising with qwen", 2, 10, "category", 66.4)
    line = progress.format_event(slow)
    assert "33.2 s/category" in line and "0.0" not in line and "<04:25" in line
    fast = progress.Event("advance", "embedding", 300, 1000, "doc", 1.5)
    assert "200.0 doc/s" in progress.format_event(fast)
