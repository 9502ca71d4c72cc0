"""The pipeline report shows a whole-dataset discovery's themes first, each with its sub-topics under it
(issue 18 §1); a discovery within categories keeps its per-category tables (tests/test_pipeline.py)."""

from __future__ import annotations

import re
from html import escape as html_escape
from pathlib import Path

import pytest

PIPELINE = """\
name: themes-report
dataset: calls
steps:
  - ingest: {path: "calls.csv", text_col: text, time_col: timestamp, id_col: message_id}
  - discover: {within: null, model: wordllama}
  - report: {out: report.html}
"""


@pytest.mark.slow
def test_report_of_a_whole_dataset_discovery_lists_themes_then_their_sub_topics(run_cli, tmp_path):
    from inhouse.demo.data import write_csv
    from inhouse.topics.runs import load_discovery
    from inhouse.workspace.store import Workspace

    write_csv(tmp_path / "calls.csv", n=600, seed=7)
    (tmp_path / "p.yaml").write_text(PIPELINE, encoding="utf-8")
    home = tmp_path / "home"
    r = run_cli("--home", home, "pipeline", "run", tmp_path / "p.yaml", "--json")
    assert r.exit_code == 0, r.stderr
    ws = Workspace.open(home)
    try:
        res = load_discovery(ws, "calls")
    finally:
        ws.close()
    assert 2 < len(res.themes) < res.n_topics
    html = Path(r.json["report"]).read_text(encoding="utf-8")
    section = html.split("<section id='subtopics'>")[1].split("</section>")[0]
    assert "<h2>Themes and their sub-topics</h2>" in section
    blocks = section.split("<h3 class='theme'>")[1:]
    want = sorted(res.themes, key=lambda th: (-th.size, th.theme))
    assert [b.split(" <span")[0] for b in blocks] == [html_escape(th.name) for th in want], \
        "themes first, largest first"
    assert [sorted(int(t) for t in re.findall(r"<tr><td class='num'>(\d+)</td>", b)) for b in blocks] == \
        [sorted(th.topics) for th in want], "each theme's own sub-topics under it"
