"""After ``make demo``, every command it prints works as printed (issue 17 §4): the venv is not activated, so a
bare ``inhouse`` was "command not found"; the demo prints the venv's own script by its full path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from inhouse.cli import demo as demo_cli

REPO = Path(__file__).resolve().parents[1]
SHELL_PATH = "/usr/bin:/bin"  # a fresh shell's PATH: no venv activated


def _user_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "INHOUSE_HOME")}
    return {**env, "PATH": SHELL_PATH, "PYTHONPATH": str(REPO), **extra}


def test_the_demo_prints_its_next_commands(run_cli, monkeypatch, tmp_path):
    home = tmp_path / "demo workspace"  # a space: the printed path must be quoted
    report = {"seconds": 1, "workspace": str(home), "out_dir": str(tmp_path), "report": str(tmp_path / "r.html")}
    monkeypatch.setattr(demo_cli.demo_api, "run", lambda ws, cfg, on_step=None: report)  # the steps: test_demo.py
    out = run_cli("--home", home, "demo", "--rows", "10").stdout
    printed = [line.strip() for line in out.splitlines()[-3:]]
    assert printed == demo_cli.next_steps(home)


def test_the_printed_commands_run_in_a_shell_without_the_venv(tmp_path):
    home = tmp_path / "demo workspace"
    code = f"from inhouse.cli.demo import next_steps; print('\\n'.join(next_steps({str(home)!r})))"
    lines = subprocess.run([sys.executable, "-c", code], env=_user_env(), capture_output=True, text=True,
                           timeout=120, cwd=tmp_path).stdout.splitlines()
    assert len(lines) == 3 and lines[0].endswith("tokens create me --role admin") and lines[1].endswith(" serve")
    # as a user pastes it into a shell whose PATH has no venv
    created = subprocess.run(["bash", "-c", lines[0]], env=_user_env(), capture_output=True, text=True, timeout=120,
                             cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip().splitlines()[-1].startswith("ih_")
    assert home.is_dir()
    help_ = subprocess.run(["bash", "-c", lines[1] + " --help"], env=_user_env(), capture_output=True, text=True,
                           timeout=120, cwd=tmp_path)
    assert help_.returncode == 0 and "Serve the workspace over HTTP" in help_.stdout


def test_a_bare_inhouse_is_printed_only_when_it_is_the_one_on_the_path(tmp_path):
    script = Path(sys.executable).with_name("inhouse")
    code = "from inhouse.cli.demo import inhouse_command; print(inhouse_command())"
    with_venv = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                               env=_user_env(PATH=f"{script.parent}:{SHELL_PATH}")).stdout.strip()
    assert with_venv == ("inhouse" if script.exists() else f"{sys.executable} -m inhouse")
