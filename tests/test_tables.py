"""Tables people open: CSV and XLSX with formulas neutralised, from the library, the CLI and the server's downloads."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pyarrow as pa
import pytest

from inhouse.pipeline.outputs import TableWriter
from inhouse.workspace.tables import safe_cell, write_table

EVIL = '=HYPERLINK("http://x","y")'
ROWS = [EVIL, "+1 call me", "-2+3", "@SUM(A1:A2)", "\tcmd", "plain text", "-3.5"]


def _xlsx_rows(path) -> list[tuple]:
    from openpyxl import load_workbook

    wb = load_workbook(path)
    sheet = wb.worksheets[0]
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)  # no cell is a formula
    return [tuple(c.value for c in row) for row in sheet.iter_rows()]


def test_safe_cell_neutralises_formulas_only():
    assert [safe_cell(v) for v in ROWS] == ["'" + EVIL, "'+1 call me", "'-2+3", "'@SUM(A1:A2)", "'\tcmd",
                                            "plain text", "-3.5"]
    assert safe_cell(-3) == -3 and safe_cell(None) == "" and safe_cell(["=a"]) == '["=a"]'
    assert safe_cell(safe_cell(EVIL)) == "'" + EVIL  # idempotent: converting a written CSV again changes nothing


def test_write_table_csv_and_xlsx_neutralise_and_keep_rows(tmp_path):
    df = pd.DataFrame({"id": range(len(ROWS)), "text": ROWS, "score": [-1.5] * len(ROWS),
                       "top": [["=a", "b"]] * len(ROWS)})
    text = write_table(df, tmp_path / "out.csv").read_text()
    assert "'" + EVIL.replace('"', '""') in text and '\n0,"=' not in text
    back = list(csv.DictReader(io.StringIO(text)))
    assert [r["text"] for r in back][-2:] == ["plain text", "-3.5"] and back[0]["score"] == "-1.5"
    rows = _xlsx_rows(write_table(df, tmp_path / "out.xlsx"))
    assert rows[0] == ("id", "text", "score", "top") and len(rows) == len(ROWS) + 1
    assert rows[1] == (0, "'" + EVIL, -1.5, '["=a", "b"]') and rows[-1][1] == "-3.5"


def test_streamed_writer_of_classify_and_pipelines_neutralises(tmp_path):
    schema = pa.schema([("doc", pa.string()), ("label", pa.string())])
    for suffix in (".csv", ".xlsx"):
        with TableWriter(tmp_path / f"predictions{suffix}", schema) as w:
            w.write(pa.table({"doc": [EVIL, "ok"], "label": ["@x", "y"]}))
        path = tmp_path / f"predictions{suffix}"
        if suffix == ".csv":
            assert list(csv.reader(io.StringIO(path.read_text()))) == [["doc", "label"], ["'" + EVIL, "'@x"], ["ok", "y"]]
        else:
            assert _xlsx_rows(path) == [("doc", "label"), ("'" + EVIL, "'@x"), ("ok", "y")]


def test_datasets_export_writes_neutralised_csv_and_xlsx(run_cli, tmp_path):
    src = tmp_path / "in.csv"
    pd.DataFrame({"text": ROWS, "label": ["a", "=b", "a", "b", "a", "b", "a"]}).to_csv(src, index=False)
    assert run_cli("ingest", src, "--dataset", "evil", "--label-col", "label").exit_code == 0
    r = run_cli("datasets", "export", "evil", "--output", tmp_path / "out.csv")
    assert r.exit_code == 0, r.stderr
    text = (tmp_path / "out.csv").read_text()
    assert "'" + EVIL.replace('"', '""') in text and "'=b" in text
    assert not any(line.split(",")[0].startswith(("=", "@", "+")) for line in text.splitlines())
    r = run_cli("datasets", "export", "evil", "--output", tmp_path / "out.xlsx")
    assert r.exit_code == 0, r.stderr
    rows = _xlsx_rows(tmp_path / "out.xlsx")
    texts = [row[rows[0].index("text")] for row in rows[1:]]
    assert len(texts) == len(ROWS) and "'" + EVIL in texts and "plain text" in texts


@pytest.mark.slow
def test_server_downloads_come_as_csv_xlsx_and_parquet(tmp_path, shared_data):
    from openpyxl import load_workbook

    from conftest import invoke_cli
    from serverkit import Server, create_token

    home = tmp_path / "home"
    src = tmp_path / "in.csv"
    df = pd.DataFrame({"text": ROWS * 3, "label": ["a", "b", "c"] * 7,
                       "created": ["2026-01-01T00:00:00Z"] * 20 + [EVIL]})  # the last row: quarantined (bad time)
    df.to_csv(src, index=False)
    r = invoke_cli("--home", home, "ingest", src, "--dataset", "evil", "--label-col", "label", "--time-col", "created",
                   "--max-quarantine-share", "1.0")
    assert r.exit_code == 0, r.stderr
    r = invoke_cli("--home", home, "summarize", "--dataset", "evil", "--by", "label", "--yes")
    assert r.exit_code == 0, r.stderr
    token = create_token(home, "reader", "viewer")
    server = Server(home)
    try:
        with server.client(token) as c:
            q = c.get("/datasets/evil/quarantine/download", params={"format": "csv"})
            assert q.status_code == 200 and q.headers["content-type"].startswith("text/csv"), q.text
            rows = list(csv.DictReader(io.StringIO(q.text)))
            assert len(rows) == 1 and rows[0]["raw"].startswith("'") and EVIL.split("(")[0] in rows[0]["raw"]
            x = c.get("/datasets/evil/quarantine/download", params={"format": "xlsx"})
            assert x.status_code == 200 and "spreadsheetml" in x.headers["content-type"]
            (tmp_path / "q.xlsx").write_bytes(x.content)
            assert len(list(load_workbook(tmp_path / "q.xlsx").worksheets[0].iter_rows())) == 2
            s = c.get("/datasets/evil/summaries/download", params={"format": "xlsx"})
            assert s.status_code == 200, s.text
            (tmp_path / "s.xlsx").write_bytes(s.content)
            cells = [cell for row in _xlsx_rows(tmp_path / "s.xlsx") for cell in row]
            assert len(cells) > 10 and not any(isinstance(v, str) and v[:1] in "=+-@\t" for v in cells)
            p = c.get("/datasets/evil/summaries/download", params={"format": "parquet"})
            (tmp_path / "s.parquet").write_bytes(p.content)
            assert len(pd.read_parquet(tmp_path / "s.parquet")) == 3
            bad = c.get("/datasets/evil/summaries/download", params={"format": "exe"})
            assert bad.status_code == 422
    finally:
        server.stop()
