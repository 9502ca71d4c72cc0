"""Installable like any Python package (issue 16 §9).

The wheel is built from the repository (``python -m build``, setuptools' own backend, no warnings), installed
non-editable into a new venv, and the installed ``inhouse`` ingests, trains a ``head`` model and classifies
from another folder. Offline and quick: the new venv sees the project venv's packages (the ones
requirements.txt pinned, minus its editable inhouse) as a site directory, and pip installs the wheel with
``--no-index``, so the dependencies pyproject.toml declares must all be satisfied by them or pip fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from inhouse.demo.data import generate

REPO = Path(__file__).resolve().parents[1]


def _run(argv, cwd, env=None, timeout=600) -> subprocess.CompletedProcess:
    out = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{argv}: {out.stdout[-2000:]}{out.stderr[-3000:]}"
    return out


def _requirements() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[re.sub(r"\[.*\]", "", name).lower()] = version
    return pins


def test_every_runtime_requirement_is_declared_and_pinned_as_in_requirements():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {}
    extras = {k: v for k, v in project["optional-dependencies"].items() if k != "qwen"}  # 1.1 GB of model parts,
    for req in project["dependencies"] + [r for reqs in extras.values() for r in reqs]:  # never in requirements
        name, version = re.fullmatch(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)", req).groups()
        declared[name.lower()] = version
    assert declared.pop("ray") == "2.60.0"  # the [ray] extra, pinned in requirements-dev.txt
    assert declared == _requirements()  # nothing missing, nothing extra, the same pins
    assert project["license"] == "Apache-2.0" and (REPO / project["license-files"][0]).is_file()


def _deps_site(tmp: Path) -> Path:
    """The project venv's packages as a folder of links, without inhouse itself (its editable install)."""
    site = Path(sysconfig.get_paths()["purelib"])
    deps = tmp / "deps"
    deps.mkdir()
    for entry in site.iterdir():
        if entry.name.lower().startswith(("inhouse", "__editable__", ".__editable__", "__pycache__")):
            continue
        (deps / entry.name).symlink_to(entry)
    return deps


@pytest.mark.slow
def test_the_built_wheel_installs_non_editable_and_runs_from_another_folder(tmp_path):
    build = _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", tmp_path / "dist", REPO],
                 cwd=tmp_path)
    assert "SetuptoolsDeprecationWarning" not in build.stdout + build.stderr
    wheel = next((tmp_path / "dist").glob("inhouse-*.whl"))

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp_path)
    py = venv / "bin" / "python"
    purelib = _run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).stdout
    Path(purelib.strip(), "project-deps.pth").write_text(f"import site; site.addsitedir({str(_deps_site(tmp_path))!r})\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "INHOUSE_HOME", "VIRTUAL_ENV")}
    # the venv's own (older) setuptools would shadow the pinned one torch needs
    _run([py, "-m", "pip", "uninstall", "-q", "-y", "setuptools"], cwd=tmp_path, env=env)
    # --no-index: every dependency pyproject.toml declares must already be there, at its pin
    _run([py, "-m", "pip", "install", "-q", "--no-index", "--disable-pip-version-check", wheel], cwd=tmp_path, env=env)

    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([py, "-c", "import inhouse; print(inhouse.__file__)"], cwd=work, env=env).stdout.strip()
    assert where.startswith(str(venv)) and "site-packages" in where, where
    df = pd.DataFrame(generate(n=400, seed=2))
    df[df["intent"] != ""].to_csv(work / "tickets.csv", index=False)
    df[["message_id", "text"]].head(50).to_csv(work / "new.csv", index=False)
    cli = [venv / "bin" / "inhouse", "--home", work / "ws"]
    _run([*cli, "ingest", "tickets.csv", "--dataset", "t", "--label-col", "intent"], cwd=work, env=env)
    trained = json.loads(_run([*cli, "train", "--dataset", "t", "--name", "intents", "--method", "head", "--split",
                               "all", "--json"], cwd=work, env=env).stdout)
    assert trained["method"] == "head"
    _run([*cli, "classify", "intents", "--input", "new.csv", "--output", "preds.csv"], cwd=work, env=env)
    preds = pd.read_csv(work / "preds.csv")
    assert len(preds) == 50 and preds["label"].notna().all()
