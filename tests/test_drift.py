"""Drift (issue 20 §3) on real data: banking77 intents the model never saw make a pipeline run drift.

A ``head`` model learns 12 banking77 intents (train split) and is evaluated on
their test rows; a pipeline then reads an inbox: day 1 and day 2 are test rows
of the same intents (unshifted), day 3 test rows of 12 intents the model never
saw (shifted). Day 2 must not be flagged; day 3 must, for the abstain rate and
the confidence, and ``--fail-on-drift`` must exit with the documented code.
"""

from __future__ import annotations

import os
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from inhouse.analysis.drift import EXIT_CODE, DriftThresholds, Profile, compare, thresholds_from
from inhouse.errors import UsageError

KNOWN, UNSEEN = 12, 12

PIPELINE = """\
name: bank-daily
dataset: inbox
steps:
  - ingest: {path: "inbox/*.csv", text_col: text, id_col: query_id}
  - classify: {model: intents@production, chunk_rows: 500}
  - report: {out: out/report.html}
drift: {abstain_rate: 0.10, confidence: 0.05, mix: {distance: js, threshold: 0.10}, alpha: 0.01}
"""


@pytest.fixture(scope="module")
def bank(shared_data, tmp_path_factory):
    """A workspace with intents@1 (alias production) on 12 intents, evaluated on their test rows, and an inbox."""
    from conftest import invoke_cli

    home = tmp_path_factory.mktemp("drift-ws")
    df = pd.read_csv(shared_data / "banking77" / "banking77.csv")
    intents = sorted(df["label"].unique())
    known, unseen = intents[0:KNOWN * 6:6], intents[3:UNSEEN * 6:6]
    assert not set(known) & set(unseen)
    df[df["label"].isin(known)].to_csv(home / "known.csv", index=False)
    r = invoke_cli("--home", home, "ingest", home / "known.csv", "--dataset", "bank", "--label-col", "label",
                   "--split-col", "split")
    assert r.exit_code == 0, r.stderr
    r = invoke_cli("--home", home, "train", "--dataset", "bank", "--name", "intents", "--method", "head", "--shots", 40)
    assert r.exit_code == 0, r.stderr
    assert invoke_cli("--home", home, "models", "alias", "intents@1", "production").exit_code == 0
    r = invoke_cli("--home", home, "eval", "intents@1", "--dataset", "bank", "--split", "test", "--json")
    assert r.exit_code == 0, r.stderr
    assert r.json["profile"]["n"] == r.json["n"]
    test = df[df["split"] == "test"].reset_index(drop=True)
    test["query_id"] = [f"q{i:05d}" for i in range(len(test))]
    seen = test[test["label"].isin(known)].sample(frac=1.0, random_state=1)
    days = {"day-1": seen.iloc[: len(seen) // 2], "day-2": seen.iloc[len(seen) // 2:],
            "day-3": test[test["label"].isin(unseen)].sample(n=len(seen) // 2, random_state=1)}
    folder = home / "pipe"
    (folder / "inbox").mkdir(parents=True)
    for name, rows in days.items():
        rows[["query_id", "text"]].to_csv(folder / f"{name}.csv", index=False)
    (folder / "bank.yaml").write_text(PIPELINE, encoding="utf-8")
    return home, folder, {k: len(v) for k, v in days.items()}


def _land(folder: Path, name: str) -> None:
    os.replace(folder / f"{name}.csv", folder / "inbox" / f"{name}.csv")


class Sections(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = []

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self.ids.append(dict(attrs).get("id"))


@pytest.mark.slow
def test_unseen_intents_flag_drift_and_fail_on_drift_exits_with_its_code(bank, run_cli):
    home, folder, n = bank
    _land(folder, "day-1")
    r = run_cli("--home", home, "pipeline", "run", folder / "bank.yaml", "--json", "--fail-on-drift")
    assert r.exit_code == 0, r.stderr
    d1 = r.json["drift"]
    assert d1["window"]["documents"] == n["day-1"] and d1["window"]["from_doc_id"] == 0
    assert d1["against"]["evaluation"]["kind"] == "evaluation" and "runs" not in d1["against"]
    assert d1["status"] == "ok", d1["reasons"]
    first = r.json["run_id"]

    _land(folder, "day-2")  # the same intents: no drift against the evaluation nor day 1
    r = run_cli("--home", home, "pipeline", "run", folder / "bank.yaml", "--json", "--fail-on-drift")
    assert r.exit_code == 0, r.stderr
    d2 = r.json["drift"]
    assert d2["window"]["documents"] == n["day-2"] and d2["window"]["since_run"] == first
    assert d2["window"]["from_doc_id"] == d1["window"]["to_doc_id"]
    assert d2["against"]["runs"]["runs"] == [first]
    assert d2["status"] == "ok" and not d2["flagged"] and d2["reasons"] == [], d2

    _land(folder, "day-3")  # intents the model never saw
    r = run_cli("--home", home, "pipeline", "run", folder / "bank.yaml", "--json", "--fail-on-drift")
    assert r.exit_code == EXIT_CODE == 10, r.stderr
    d3 = r.json["drift"]
    assert d3["flagged"] and d3["status"] == "flagged"
    for against in ("evaluation", "runs"):
        m = d3["against"][against]["metrics"]
        assert m["abstain_rate"]["flagged"] and m["abstain_rate"]["change"] >= 0.10, m
        assert m["confidence"]["flagged"] and m["confidence"]["change"] <= -0.05, m
    assert any(x.startswith("abstain rate") and "evaluation on bank:test" in x for x in d3["reasons"])
    print("drift numbers:", {k: (d["profile"]["abstain_rate"], d["profile"]["mean_confidence"],
                                 d["against"]["evaluation"]["metrics"]["mix"]["value"])
                             for k, d in (("day-1", d1), ("day-2", d2), ("day-3", d3))},
          "evaluation:", d3["against"]["evaluation"]["metrics"]["abstain_rate"]["baseline"],
          d3["against"]["evaluation"]["metrics"]["confidence"]["baseline"])

    # the record is stored with the run: the dashboard, its REST twin and the report show it
    from inhouse.service.pipelines import dashboard, drift
    from inhouse.workspace.store import Workspace

    ws = Workspace.open(home)
    try:
        board = dashboard(ws, r.json["run_id"])
        assert board["drift"]["status"] == "flagged"
        assert [h["flagged"] for h in board["drift_history"]] == [False, False, True]
        assert drift(ws, r.json["run_id"])["drift"] == d3
    finally:
        ws.close()
    page = Path(r.json["report"]).read_text(encoding="utf-8")
    p = Sections()
    p.feed(page)
    assert "drift" in p.ids and "▲ drift" in page and "abstain rate" in page

    # nothing new: nothing to judge, not flagged, exit 0
    r = run_cli("--home", home, "pipeline", "run", folder / "bank.yaml", "--fail-on-drift")
    assert r.exit_code == 0, r.stderr
    assert "drift: no_new_documents" in r.stdout


def test_thresholds_from_the_pipeline_file_and_their_mistakes_by_line(tmp_path):
    from inhouse.pipeline.spec import load_spec

    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "a.csv").write_text("text\nhello\n", encoding="utf-8")
    text = PIPELINE.replace("report: {out: out/report.html}", "report: {out: report.html}")
    (tmp_path / "p.yaml").write_text(text, encoding="utf-8")
    assert load_spec(tmp_path / "p.yaml").drift == DriftThresholds()
    (tmp_path / "p.yaml").write_text(text.replace("distance: js", "distance: kl"), encoding="utf-8")
    with pytest.raises(UsageError, match=r"p.yaml:7: drift.mix distance must be one of \['js', 'tv'\]"):
        load_spec(tmp_path / "p.yaml")
    (tmp_path / "p.yaml").write_text(text.replace("alpha: 0.01", "alfa: 0.01"), encoding="utf-8")
    with pytest.raises(UsageError, match=r"p.yaml:7: unknown key 'alfa' in drift"):
        load_spec(tmp_path / "p.yaml")
    assert thresholds_from({"mix": 0.2, "min_documents": 50}) == DriftThresholds(mix=0.2, min_documents=50)
    assert not thresholds_from(False).enabled
    with pytest.raises(UsageError, match="abstain_rate must be a number"):
        thresholds_from({"abstain_rate": "high"})


def test_small_windows_do_not_cry_wolf():
    """The same shift in share is flagged on 2,000 documents and not on 20: the tests, not the threshold, decide."""
    base = Profile(3000, 300, 0.8 * 3000, (0.8 ** 2 + 0.15 ** 2) * 3000, {"a": 1800, "b": 900})
    t = DriftThresholds()

    def window(n):  # abstain 25% (base 10%), confidence 0.74 (base 0.80), mix 55/45 (base 67/33)
        return Profile(n, n // 4, 0.74 * n, (0.74 ** 2 + 0.15 ** 2) * n, {"a": int(n * 0.75 * 0.55),
                                                                           "b": int(n * 0.75 * 0.45)})

    big, small = compare(window(2000), base, t), compare(window(20), base, t)
    assert big["metrics"]["abstain_rate"]["flagged"] and big["metrics"]["confidence"]["flagged"]
    assert not big["metrics"]["mix"]["flagged"]  # significant, but a JS distance of 0.01 is under 0.10
    assert not small["flagged"]
    assert small["metrics"]["abstain_rate"]["change"] >= t.abstain_rate  # moved as much, but within chance
