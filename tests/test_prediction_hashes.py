"""A dataset's stored predictions keep each row's text hash as read with its text (issue 19 §3): the streamed
classify engine passes the hashes to PredictionSet.add instead of a DuckDB look-up of the documents per part."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

import inhouse.data.predictions as predictions
from test_security import head_version

TEXTS = ["my card has not arrived", "I want my money back", "the exchange rate was wrong", "top up failed again",
         "my pin is blocked"]


@pytest.mark.slow
def test_stored_parts_carry_the_documents_text_hashes_without_looking_them_up(ws, run_cli, tmp_path, monkeypatch):
    v = head_version(ws, "intents", seed=1)
    path = tmp_path / "d.csv"
    pd.DataFrame({"text": TEXTS}).to_csv(path, index=False)
    assert run_cli("ingest", path, "--dataset", "d").exit_code == 0

    def no_lookup(*a, **k):
        raise AssertionError("the engine looked the text hashes up again")

    monkeypatch.setattr(predictions, "_current_hashes", no_lookup)
    r = run_cli("classify", v.ref, "--dataset", "d", "--backend", "torch", "--chunk-rows", "2", "--json")
    assert r.exit_code == 0, r.stderr
    assert r.json["computed"] == len(TEXTS)
    s = predictions.find_set(ws, "d", v.sha256)
    assert len(s.parts()) == 3 and s.verify() == []  # three chunks of at most two rows, each a valid part
    docs = dict(duckdb.sql(f"SELECT doc_id, text_hash FROM {predictions._doc_hashes_sql(ws, 'd')}").fetchall())
    stored = dict(duckdb.sql(f"SELECT doc_id, text_hash FROM {s.sql_source()}").fetchall())
    assert stored == docs and len(stored) == len(TEXTS)
