"""Everything documented runs (issue 16 §3): every example file the README names runs as shipped, and
together they use every step kind a pipeline file may name (the ``embed`` step imported a module that never
existed)."""

from __future__ import annotations

import json
import re
import runpy
import shutil
from pathlib import Path

import pandas as pd
import pytest

from inhouse.demo.data import generate
from inhouse.pipeline.spec import STEPS, load_spec

REPO = Path(__file__).resolve().parents[1]


def _named_examples() -> list[Path]:
    names = sorted(set(re.findall(r"\bexamples/[\w.-]+\.ya?ml\b", (REPO / "README.md").read_text(encoding="utf-8"))))
    assert names, "the README names no example file"
    return [REPO / n for n in names]


def test_the_shipped_inbox_is_what_the_generator_writes(tmp_path):
    make = runpy.run_path(str(REPO / "examples" / "make_inbox.py"))
    make["main"](tmp_path)
    shipped = sorted(p.name for p in (REPO / "examples" / "inbox").glob("*.csv"))
    assert shipped == sorted(p.name for p in tmp_path.glob("*.csv")) and shipped
    for name in shipped:
        assert (REPO / "examples" / "inbox" / name).read_bytes() == (tmp_path / name).read_bytes(), name


def test_the_readme_examples_together_use_every_step_kind():
    kinds = {s.kind for path in _named_examples() for s in load_spec(path).steps}
    assert kinds == set(STEPS)


@pytest.mark.slow
def test_every_example_the_readme_names_runs_as_shipped(ws, run_cli, tmp_path):
    # the model the examples name, as `make demo` leaves it: support-intents, alias production
    df = pd.DataFrame(generate(n=500, seed=4))
    df[df["intent"] != ""].to_csv(tmp_path / "labelled.csv", index=False)
    assert run_cli("ingest", tmp_path / "labelled.csv", "--dataset", "demo", "--label-col", "intent").exit_code == 0
    r = run_cli("train", "--dataset", "demo", "--name", "support-intents", "--method", "head", "--split", "all")
    assert r.exit_code == 0, r.stderr
    assert run_cli("models", "alias", "support-intents@1", "production").exit_code == 0

    for path in _named_examples():
        folder = tmp_path / "run" / path.stem
        shutil.copytree(path.parent, folder, ignore=shutil.ignore_patterns("*-out", "__pycache__"))
        spec = load_spec(folder / path.name)
        r = run_cli("pipeline", "run", folder / path.name, "--json")
        assert r.exit_code == 0, f"{path.name}: {r.stderr}{r.stdout[-2000:]}"
        steps = r.json["steps"]
        assert [s["name"] for s in steps] == [s.kind for s in spec.steps]
        assert all(s["status"] == "done" for s in steps), [(s["name"], s["status"], s.get("reason")) for s in steps]
        if "embed" in {s.kind for s in spec.steps}:  # every document of the dataset has its vectors, computed or reused
            last = ws.db.execute("SELECT result FROM runs WHERE kind = 'embed' ORDER BY id DESC LIMIT 1").fetchone()
            got = json.loads(last[0])
            assert got["documents"] == sum(len(pd.read_csv(f)) for f in (folder / "inbox").glob("*.csv"))
            assert got["computed"] + got["reused"] == got["unique_texts"] > 0 and got["dim"] == 384
        assert Path(r.json["report"]).is_file()
        # run again: nothing new, every step skipped (the embed step's vectors are reused, not recomputed)
        again = run_cli("pipeline", "run", folder / path.name, "--json")
        assert again.exit_code == 0 and {s["status"] for s in again.json["steps"]} == {"skipped"}, again.stdout[-2000:]
