"""The CLI contract: every command takes --json; every failure is one line on stderr (or,
under --json, one JSON object on stdout) with its documented exit code; no path ends
in a raw traceback; the hints and the model card name things that exist."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import click
import numpy as np
import pytest
from safetensors.numpy import save_file

from inhouse import errors, registry
from inhouse.cli import cli
from inhouse.exchange.card import model_card

REPO = Path(__file__).resolve().parents[1]
KINDS = {"usage": 2, "input": 3, "not_found": 4, "integrity": 5, "network": 6, "missing_dependency": 7, "conflict": 8}


def head_build(seed: int):
    def build(folder: Path) -> dict:
        rng = np.random.default_rng(seed)
        save_file({"W": rng.normal(size=(2, 4)).astype(np.float32)}, str(folder / "head.safetensors"))
        return {"kind": "classifier", "method": "head", "labels": ["a", "b"], "base": {"name": "minilm-l6", "sha256": "0" * 64}}

    return build


def child_env(**extra: str) -> dict:
    """The environment of a child ``inhouse``: this checkout's code, a user's view (no INHOUSE_DEBUG)."""
    env = {k: v for k, v in os.environ.items() if k != "INHOUSE_DEBUG"}
    return {**env, "PYTHONPATH": str(REPO), **extra}


def inhouse(*args) -> subprocess.CompletedProcess:
    """The real command in a child process: ``python -m inhouse ARGS``."""
    return subprocess.run([sys.executable, "-m", "inhouse", *map(str, args)], capture_output=True, text=True,
                          env=child_env(), timeout=120)


def assert_json_error(r, kind: str) -> dict:
    """stdout is exactly one JSON error object of ``kind``, the exit code is that kind's, no traceback."""
    assert "Traceback" not in r.stdout + r.stderr
    err = json.loads(r.stdout)
    assert set(err) == {"error", "message", "fix", "exit_code"}, err
    assert err["error"] == kind and err["message"] and r.exit_code == err["exit_code"] == KINDS.get(kind, err["exit_code"])
    return err


def assert_one_line_error(r, code: int) -> str:
    assert "Traceback" not in r.stdout + r.stderr
    assert r.exit_code == code and r.stdout == "", (r.exit_code, r.stdout)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


# ------------------------------------------------------------ every command ----

def _commands(group: click.Group, path: tuple = ()):
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, path + (name,))
        else:
            yield " ".join(path + (name,)), cmd


def test_every_command_takes_json():
    commands = dict(_commands(cli))
    assert {"models unalias", "models rm", "ingest", "classify", "demo"} <= set(commands)
    missing = [name for name, cmd in commands.items()
               if not any(isinstance(p, click.Option) and "--json" in p.opts and p.is_flag for p in cmd.params)]
    assert missing == []


def test_unalias_and_rm_answer_in_json(ws, run_cli):
    registry.save_version(ws, "m", head_build(0))
    registry.save_version(ws, "m", head_build(1))
    registry.set_alias(ws, "m@2", "staging")
    r = run_cli("models", "unalias", "m", "staging", "--json")
    assert r.exit_code == 0 and r.json == {"name": "m", "alias": "staging", "previous": 2}
    r = run_cli("models", "rm", "m@1", "--json")
    assert r.exit_code == 0 and r.json["removed"] == "m@1" and r.json["version"] == 1 and len(r.json["sha256"]) == 64


# ------------------------------------------------------------ --json errors ----

def test_domain_errors_under_json_are_one_object_with_the_kind_and_exit_code(ws, run_cli, tmp_path):
    err = assert_json_error(run_cli("models", "show", "nope", "--json"), "not_found")
    assert "'nope'" in err["message"] and err["fix"].startswith("Train one")
    err = assert_json_error(run_cli("ingest", tmp_path / "missing.csv", "--dataset", "d", "--json"), "input")
    assert "missing.csv" in err["message"] and err["fix"]
    assert_json_error(run_cli("label", "--json"), "usage")  # a UsageError raised by the command itself
    registry.save_version(ws, "m", head_build(0))
    registry.set_alias(ws, "m@1", "production")
    err = assert_json_error(run_cli("models", "rm", "m@1", "--json"), "conflict")
    assert "production" in err["message"]


@pytest.mark.parametrize("args, needle", [
    (["models", "show", "--json"], "Missing argument 'REF'"),                      # missing argument
    (["ingest", "f.csv", "--json"], "Missing option '--dataset'"),                 # missing option
    (["trends", "--dataset", "d", "--every", "year", "--json"], "'year' is not one of"),  # bad choice
    (["datasets", "list", "--bogus", "--json"], "No such option '--bogus'"),        # unknown option
    (["nosuchcommand", "--json"], "No such command 'nosuchcommand'"),              # unknown command
])
def test_clicks_own_usage_errors_under_json_are_json_with_exit_2(run_cli, args, needle):
    err = assert_json_error(run_cli(*args), "usage")
    assert needle in err["message"] and "--help" in err["fix"]


def test_without_json_errors_stay_one_line_on_stderr_with_the_fix(run_cli, tmp_path):
    line = assert_one_line_error(run_cli("models", "show", "nope"), 4)
    assert "'nope'" in line and "Train one with: inhouse train" in line
    r = run_cli("models", "show")  # click's own usage message, as before
    assert r.exit_code == 2 and r.stdout == "" and "Missing argument 'REF'" in r.stderr and "Traceback" not in r.stderr


def test_a_real_process_keeps_stdout_for_json_and_stderr_for_words(ws, tmp_path):
    r = inhouse("models", "show", "nope", "--json")
    assert r.returncode == 4 and r.stderr == "" and json.loads(r.stdout)["error"] == "not_found"
    r = inhouse("models", "show", "--json")
    assert r.returncode == 2 and r.stderr == "" and json.loads(r.stdout)["error"] == "usage"
    r = inhouse("models", "show", "nope")
    assert r.returncode == 4 and r.stdout == "" and r.stderr.startswith("error: model 'nope'")
    assert len(r.stderr.strip().splitlines()) == 1


# ------------------------------------------------------ no raw tracebacks ----

def test_a_damaged_workspace_database_is_an_integrity_error(run_cli, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "inhouse.db").write_bytes(b"this is not a SQLite file" * 100)
    line = assert_one_line_error(run_cli("--home", home, "datasets", "list"), 5)
    assert str(home / "inhouse.db") in line and "Restore it from a backup" in line
    err = assert_json_error(run_cli("--home", home, "init", "--json"), "integrity")
    assert str(home / "inhouse.db") in err["message"]


def test_a_home_below_a_file_is_an_input_error_naming_the_folder(run_cli, tmp_path):
    (tmp_path / "afile").write_text("x")
    home = tmp_path / "afile" / "ws"
    line = assert_one_line_error(run_cli("--home", home, "init"), 3)
    assert str(home) in line and "Not a directory" in line and "--home" in line
    r = run_cli("--home", tmp_path / "afile", "init")  # the file itself: click's own check, exit 2
    assert r.exit_code == 2 and "is a file" in r.stderr and "Traceback" not in r.stderr
    assert_json_error(run_cli("--home", tmp_path / "afile", "init", "--json"), "usage")


@pytest.mark.parametrize("name, content, needle", [
    ("texts.txt", b"\xff\xfe\x00 not utf-8\n", "expected UTF-8 text"),
    ("texts.parquet", b"PAR1 but truncated, not parquet at all", "expected a readable .parquet file"),
    ("texts.csv", b'text,label\n"an unclosed quote,1\n', "expected a readable .csv file"),
])
def test_an_unreadable_check_file_is_an_input_error_naming_it(run_cli, tmp_path, name, content, needle):
    bad = tmp_path / name
    bad.write_bytes(content)
    line = assert_one_line_error(run_cli("models", "export", "m@1", "--out", tmp_path / "o", "--check-file", bad), 3)
    assert str(bad) in line and needle in line
    assert_json_error(run_cli("models", "export", "m@1", "--out", tmp_path / "o", "--check-file", bad, "--json"), "input")


def test_an_output_path_through_a_file_is_an_input_error_naming_it(run_cli, tmp_path):
    rows = ["text,label,ts"] + [f"message {i} about {'cards' if i % 2 else 'refunds'},{'ab'[i % 2]},2026-0{1 + i % 3}-1{i % 9}"
                                for i in range(60)]
    (tmp_path / "dated.csv").write_text("\n".join(rows) + "\n")
    assert run_cli("ingest", tmp_path / "dated.csv", "--dataset", "dd", "--label-col", "label", "--time-col", "ts").exit_code == 0
    (tmp_path / "afile").write_text("x")
    chart = tmp_path / "afile" / "sub" / "trends.png"
    line = assert_one_line_error(run_cli("trends", "--dataset", "dd", "--every", "month", "--chart", chart), 3)
    assert str(tmp_path / "afile") in line and "choose another path" in line
    assert_json_error(run_cli("trends", "--dataset", "dd", "--every", "month", "--chart", chart, "--json"), "input")


BOOM = """
import sys
import click
from inhouse.cli import cli, json_option, main

@cli.command("boom")
@click.option("--opt", is_flag=True)
@json_option
def boom(opt, as_json):
    {}.get("x")["y"]  # a bug: TypeError

main(sys.argv[1:])
"""


def test_an_unexpected_exception_is_one_internal_error_line_and_exit_1(tmp_path):
    env = child_env(INHOUSE_HOME=str(tmp_path / "h"))
    r = subprocess.run([sys.executable, "-c", BOOM, "boom", "--opt"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and r.stdout == "" and "Traceback" not in r.stderr, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("internal error: TypeError: 'NoneType' object is not subscriptable")
    assert "please report it with the command line: inhouse boom --opt" in line and "INHOUSE_DEBUG=1" in line

    r = subprocess.run([sys.executable, "-c", BOOM, "boom", "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    err = json.loads(r.stdout)
    assert err["error"] == "internal" and err["exit_code"] == 1 and "TypeError" in err["message"]
    assert "inhouse boom --json" in err["fix"]

    r = subprocess.run([sys.executable, "-c", BOOM, "boom"], capture_output=True, text=True,
                       env={**env, "INHOUSE_DEBUG": "1"}, timeout=120)
    assert r.returncode == 1 and "Traceback (most recent call last)" in r.stderr and "internal error: TypeError" in r.stderr


def test_ctrl_c_in_a_command_is_one_line_or_json_and_exit_130(ws, tmp_path):
    """SIGINT while the command reads its --check-file from a FIFO: it is running, not importing."""
    for as_json in (False, True):
        fifo = tmp_path / f"texts-{as_json}.txt"
        os.mkfifo(fifo)
        args = [sys.executable, "-m", "inhouse", "models", "export", "m@1", "--out", str(tmp_path / "o"),
                "--check-file", str(fifo)] + (["--json"] if as_json else [])
        # Ctrl-C's default action in the command, as in a terminal: a shell that runs the tests in the background
        # (`make test &`, CI wrappers) hands its children SIGINT ignored, and exec keeps an ignored signal ignored
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        opened = threading.Event()

        def writer():
            with open(fifo, "w"):  # returns once the command has opened the FIFO to read it
                opened.set()
                proc.wait(timeout=120)

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        assert opened.wait(timeout=120), "the command never opened its input"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        t.join(timeout=10)
        assert proc.returncode == 130 and "Traceback" not in out + err, err
        if as_json:
            assert json.loads(out)["error"] == "interrupted"
        else:
            assert out == "" and "interrupted: nothing half-written was kept." in err


# --------------------------------------------------------------- extras ----

def _hinted_extras() -> set[str]:
    """Every extra that a ``MissingDependency(module, extra, what)`` in the package names."""
    found = set()
    for path in (REPO / "inhouse").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "MissingDependency":
                extra = node.args[1] if len(node.args) > 1 else next(k.value for k in node.keywords if k.arg == "extra")
                assert isinstance(extra, ast.Constant), f"{path}: the extra must be a literal string"
                found.add(extra.value)
    return found


def test_every_extra_a_hint_names_is_defined_and_pinned_as_in_requirements():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    hinted = _hinted_extras()
    assert {"llm", "train", "onnx", "server", "pipeline", "ray"} <= hinted and hinted <= set(extras)
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.lower()] = version
    for extra, reqs in extras.items():
        for req in reqs:
            name, version = re.fullmatch(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)", req).groups()
            if extra not in ("ray", "qwen"):  # qwen: 1.1 GB of model parts, an extra only (never in CI)
                assert pins.get(name.lower()) == version, f"[{extra}] {req} vs requirements.txt {pins.get(name.lower())}"
    e = errors.MissingDependency("llama_cpp", "llm", "A local generative model")
    assert "pip install 'inhouse[llm]'" in e.fix and "make install" in e.fix
    assert (e.kind, e.exit_code) == ("missing_dependency", 7)


def test_each_error_class_has_its_documented_kind_and_exit_code():
    got = {c.kind: c.exit_code for c in (errors.UsageError, errors.InputError, errors.NotFound, errors.IntegrityError,
                                         errors.NetworkBlocked, errors.MissingDependency, errors.Conflict)}
    assert got == KINDS and errors.ColumnNotFound.kind == "input"
    for kind, code in KINDS.items():
        assert re.search(rf"{kind}\s+{code}\b", errors.__doc__), kind


# ----------------------------------------------------------- model card ----

def _card() -> str:
    return model_card({"export": {"source": {"ref": "intents@3", "sha256": "a" * 64}, "format": "folder",
                                  "exported_at": "2026-01-01T00:00:00Z", "exported_by": "ana"},
                       "labels": ["x", "y"], "files": {}})


def _parse(argv: list[str]) -> list[str]:
    """Parse ``inhouse ARGV`` down to its command the way click does, without running it."""
    ctx = cli.make_context("inhouse", list(argv))
    cmd, names = cli, []
    while isinstance(cmd, click.Group):
        name, cmd, rest = cmd.resolve_command(ctx, ctx._protected_args + ctx.args)
        names.append(name)
        ctx = cmd.make_context(name, rest, parent=ctx)
    return names


def test_the_model_cards_commands_parse(tmp_path, monkeypatch):
    card = _card()
    block = card.split("## Use it", 1)[1].split("```")[1]
    commands = [shlex.split(line) for line in block.strip().splitlines()]
    assert len(commands) == 2 and all(c[0] == "inhouse" for c in commands)
    monkeypatch.chdir(tmp_path)  # the placeholders exist, so click's path checks pass
    (tmp_path / "THIS_FOLDER").mkdir()
    (tmp_path / "texts.csv").write_text("text\nhello\n")
    assert [_parse(c[1:]) for c in commands] == [["models", "import"], ["classify"]]
    with pytest.raises(click.UsageError):  # the parser does refuse what the old card said
        _parse(["classify", "--model", "NAME", "--input", "texts.csv", "--output", "predictions.csv"])
