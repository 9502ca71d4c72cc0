"""Cost you can audit (issue 16 §10): cost goes to the run that made it, reused work is shown as reused."""

from __future__ import annotations

import threading

import pandas as pd

from inhouse.pipeline.costing import metered
from inhouse.workspace.costs import run_cost


def _dataset(run_cli, tmp_path, name="d", n=40):
    path = tmp_path / f"{name}.csv"
    pd.DataFrame({"text": [f"my card number {i} was charged twice" for i in range(n)]}).to_csv(path, index=False)
    r = run_cli("ingest", path, "--dataset", name)
    assert r.exit_code == 0, r.stderr


def test_two_interleaved_runs_each_get_their_own_cost(ws, run_cli, tmp_path):
    """A records its run first, B records its run second but finishes first: each cost lands on its own run."""
    _dataset(run_cli, tmp_path, "small", n=10)
    _dataset(run_cli, tmp_path, "large", n=50)
    a_recorded, b_recorded = threading.Event(), threading.Event()
    ids, costs = {}, {}

    def work(name, record_after, then_signal, wait_for):
        def call():
            record_after.wait(10) if record_after else None
            ids[name] = ws.record_run("embed", {"dataset": name}, {})
            then_signal.set()
            wait_for.wait(10) if wait_for else None
            return name
        _, costs[name] = metered(ws, "embed", call, name, "wordllama")

    a = threading.Thread(target=work, args=("small", None, a_recorded, b_recorded))
    b = threading.Thread(target=work, args=("large", a_recorded, b_recorded, None))
    a.start(), b.start()
    a.join(), b.join()
    assert ids["small"] < ids["large"]  # B's run is the newest of its kind when A looks for its own
    assert costs["small"]["run_id"] == ids["small"] and costs["large"]["run_id"] == ids["large"]
    assert run_cost(ws, ids["small"])["documents"] == 10 and run_cost(ws, ids["large"])["documents"] == 50


def test_reused_embeddings_are_shown_as_reused_not_billed(ws, run_cli, tmp_path):
    _dataset(run_cli, tmp_path, "d", n=30)
    first = run_cli("embed", "--dataset", "d", "--model", "wordllama", "--json")
    assert first.exit_code == 0, first.stderr
    assert first.json["cost"]["documents"] == 30 and first.json["cost"]["reused"] == 0
    again = run_cli("embed", "--dataset", "d", "--model", "wordllama", "--json")
    assert again.exit_code == 0, again.stderr
    c = again.json["cost"]
    assert c["documents"] == 0 and c["tokens"] == 0 and c["reused"] == 30 and c["run_id"] is not None
    shown = run_cli("runs", "show", c["run_id"])
    assert "0 documents computed (30 more reused from stored results, not billed)" in shown.stdout
    listed = run_cli("runs", "list", "--kind", "embed", "--json").json["runs"]
    assert [r["cost"]["reused"] for r in listed] == [30, 0]


def test_the_report_says_how_many_documents_were_reused():
    from inhouse.pipeline.report import cost_table

    cost = {"documents": 20, "reused": 480, "tokens": 300, "cpu_seconds": 1.0, "wall_seconds": 1.0,
            "docs_per_second": 20, "peak_rss_mb": 300}
    assert "20 documents computed (480 more reused from stored predictions, not billed)" in cost_table(cost, "run")
