"""Fixtures every test file may use.

* ``ws`` (autouse): each test gets its own empty workspace; ``$INHOUSE_HOME``
  points at it, so the CLI and ``Workspace.open()`` find the same folder.
* ``shared_data``: the folder of real datasets (``../shared/data`` beside the
  repository); the test is skipped when it is missing.
* ``browser``: the session's headless Chromium for the web UI's tests (``uikit.py``).
* ``run_cli``: runs the real ``inhouse`` command in-process and returns
  ``(exit_code, stdout, stderr)``; ``.json`` parses stdout.

    def test_example(ws, shared_data, run_cli):
        r = run_cli("ingest", shared_data / "banking77/banking77.csv", "--dataset", "b", "--json")
        assert r.exit_code == 0 and r.json["stored"] == 13083
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from inhouse.workspace.store import Workspace

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def ws(tmp_path_factory, monkeypatch) -> Workspace:
    """A fresh workspace for this test, also set as ``$INHOUSE_HOME``."""
    home = tmp_path_factory.mktemp("inhouse-home")
    monkeypatch.setenv("INHOUSE_HOME", str(home))
    workspace = Workspace.open(home)
    yield workspace
    workspace.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed browser test leaves its pages' pictures and text under test-artifacts/ui/failed/ (CI keeps them)."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and "browser" in getattr(item, "fixturenames", ()):
        import uikit

        if report.failed:
            uikit.keep_failure(item.name)
        uikit.close_pages()  # a test's pages do not poll and stream in the background of the next tests


@pytest.fixture(scope="session")
def browser():
    """The session's one headless Chromium (Debian's, driven by Playwright): see ``uikit.py``."""
    from uikit import launch_browser

    yield from launch_browser()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: the real datasets (banking77, sst2, ...); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is missing")
    return SHARED_DATA


class CliResult(NamedTuple):
    exit_code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        """stdout parsed as JSON (for commands run with ``--json``)."""
        return json.loads(self.stdout)


def invoke_cli(*args: Any, input: str | None = None) -> CliResult:
    """Run ``inhouse ARGS...`` in this process, the way the console script does.

    Arguments may be paths or numbers (they are turned into strings). Every
    failure becomes an exit code and a line on stderr (a JSON object on stdout
    under ``--json``), as for a user. An unexpected exception is the CLI's
    "internal error" line (exit 1) with its traceback on stderr: INHOUSE_DEBUG=1
    is set here unless the test set INHOUSE_DEBUG itself (``"0"`` shows what a
    user sees).
    """
    from click.testing import CliRunner

    from inhouse.cli import cli, hoist_home

    argv = hoist_home([str(a) for a in args])
    try:
        runner = CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        runner = CliRunner()  # click >= 8.2 keeps stderr apart by default
    env = None if "INHOUSE_DEBUG" in os.environ else {"INHOUSE_DEBUG": "1"}
    result = runner.invoke(cli, argv, input=input, env=env, prog_name="inhouse", catch_exceptions=False)
    return CliResult(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def run_cli():
    """``run_cli(*args, input=None) -> CliResult(exit_code, stdout, stderr)``; see :func:`invoke_cli`."""
    return invoke_cli


@pytest.fixture(autouse=True, scope="session")
def _offline():
    """Tests run as the CLI and the server do: inside inhouse's socket guard (``import inhouse`` alone no longer
    turns it on; tests/test_netguard.py checks a host process keeps its network)."""
    from inhouse.netguard import offline

    with offline():
        yield
