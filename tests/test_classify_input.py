"""``classify --input`` reads files as ingest does and never drops or crashes on a bad row.

One small head model (banking77 slice) classifies hand-made files: quoted
multi-line fields, blank lines, empty and whitespace-only texts, malformed
rows, another encoding, gzip, JSON Lines, Parquet and plain text. Every input
row gets one output row, in order, numbered as ingest numbers it.
"""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

LABELS = ["card_swallowed", "order_physical_card", "why_verify_identity", "exchange_via_app"]

CSV = (
    'id,text,channel\n'
    'a1,my card got stuck in the ATM,chat\n'
    '\n'
    'a2,"how do I order a\nphysical card",email\n'
    'a3,,chat\n'
    'a4,"   ",chat\n'
    'a5,"too",many,fields\n'
    'a6,why do you need to verify my identity,email\n'
)


@pytest.fixture(scope="module")
def model_home(tmp_path_factory, shared_data):
    """A workspace with a head model ``h`` trained on four banking77 intents."""
    from conftest import invoke_cli

    home = tmp_path_factory.mktemp("classify-input-ws")
    df = pd.read_csv(shared_data / "banking77" / "banking77.csv")
    df = df[df["label"].isin(LABELS) & (df["split"] == "train")].groupby("label").head(10)
    df.to_csv(home / "train.csv", index=False)
    r = invoke_cli("--home", home, "ingest", home / "train.csv", "--dataset", "b4", "--label-col", "label")
    assert r.exit_code == 0, r.stderr
    r = invoke_cli("--home", home, "train", "--dataset", "b4", "--name", "h", "--method", "head",
                   "--split", "all", "--val-fraction", "0")
    assert r.exit_code == 0, r.stderr
    return home


def _jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_row_comes_back_in_order_numbered_like_ingest(model_home, run_cli, tmp_path):
    src = tmp_path / "mix.csv"
    src.write_text(CSV, encoding="utf-8")
    r = run_cli("--home", model_home, "classify", "h", "--input", src, "--id-col", "id",
                "--output", tmp_path / "p.jsonl", "--json")
    assert r.exit_code == 0, r.stderr
    assert r.json["rows"] == 6 and r.json["errors"] == 3
    assert r.json["error_reasons"] == {"empty text": 2, "wrong field count": 1}
    rows = _jsonl(tmp_path / "p.jsonl")
    assert [x["row"] for x in rows] == [1, 2, 3, 4, 5, 6]  # header and blank line not counted
    assert [x["id"] for x in rows] == ["a1", "a2", "a3", "a4", None, "a6"]  # a malformed row has no fields
    assert [x["label"] for x in rows] == ["card_swallowed", "order_physical_card", None, None, None,
                                          "why_verify_identity"]
    for x in rows[2:5]:
        assert x["score"] is None and x["top_labels"] == [] and x["error"]
    assert rows[2]["error"].startswith("empty text") and rows[3]["error"].startswith("empty text")
    assert rows[4]["error"].startswith("wrong field count")
    assert all(x["error"] is None and 0 < x["score"] <= 1 for x in (rows[0], rows[1], rows[5]))

    # ingest numbers the same file the same way: its stored rows, classified as a dataset, match
    r = run_cli("--home", model_home, "ingest", src, "--dataset", "mix", "--id-col", "id", "--json",
                "--max-quarantine-share", "1")  # half the rows are bad on purpose
    assert r.exit_code == 0 and r.json["stored"] == 3 and r.json["quarantined"] == 3, r.stderr
    r = run_cli("--home", model_home, "classify", "h", "--dataset", "mix", "--output", tmp_path / "d.jsonl")
    assert r.exit_code == 0, r.stderr
    ds = _jsonl(tmp_path / "d.jsonl")
    assert [(x["id"], x["row"], x["label"]) for x in ds] == [(x["id"], x["row"], x["label"])
                                                             for x in (rows[0], rows[1], rows[5])]
    human = run_cli("--home", model_home, "classify", "h", "--input", src, "--output", tmp_path / "p.csv").stdout
    assert "wrote 6 predictions" in human and "3 rows without a label (2 empty text, 1 wrong field count)" in human
    out = pd.read_csv(tmp_path / "p.csv")
    assert list(out.columns[:2]) == ["row", "label"] and out["error"].notna().sum() == 3


def test_encodings_gzip_jsonl_parquet_and_text_read_like_ingest(model_home, run_cli, tmp_path):
    texts = ["my card got stuck in the ATM", "café: why do you need to verify my identity"]
    (tmp_path / "w.csv").write_bytes(("text\n" + "\n".join(texts) + "\n").encode("cp1252"))
    r = run_cli("--home", model_home, "classify", "h", "--input", tmp_path / "w.csv", "--encoding", "cp1252",
                "--output", tmp_path / "w.jsonl", "--json")
    assert r.exit_code == 0 and r.json["errors"] == 0, r.stderr
    good = [x["label"] for x in _jsonl(tmp_path / "w.jsonl")]
    assert good == ["card_swallowed", "why_verify_identity"]
    # read as UTF-8 the byte 0xe9 cannot be decoded: that row says so, the others are classified
    r = run_cli("--home", model_home, "classify", "h", "--input", tmp_path / "w.csv", "--output", tmp_path / "u.jsonl")
    assert r.exit_code == 0, r.stderr
    bad = _jsonl(tmp_path / "u.jsonl")
    assert bad[0]["label"] == good[0] and bad[1]["label"] is None
    assert bad[1]["error"].startswith("undecodable bytes") and "utf-8" in bad[1]["error"]
    r = run_cli("--home", model_home, "classify", "h", "--input", tmp_path / "w.csv", "--encoding", "klingon",
                "--output", tmp_path / "k.jsonl")
    assert r.exit_code == 3 and "unknown encoding 'klingon'" in r.stderr

    with gzip.open(tmp_path / "g.csv.gz", "wt", encoding="utf-8") as f:
        f.write("text\n" + "\n".join(texts) + "\n")
    r = run_cli("--home", model_home, "classify", "h", "--input", tmp_path / "g.csv.gz", "--output", tmp_path / "g.jsonl")
    assert r.exit_code == 0, r.stderr
    assert [x["label"] for x in _jsonl(tmp_path / "g.jsonl")] == good

    lines = [json.dumps({"text": texts[0], "n": 1}), "{not json", json.dumps({"n": 3}), "[1, 2]", "",
             json.dumps({"text": texts[1], "n": 6}), json.dumps({"text": 42, "n": 7})]
    (tmp_path / "j.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = run_cli("--home", model_home, "classify", "h", "--input", tmp_path / "j.jsonl", "--id-col", "n",
                "--output", tmp_path / "jo.parquet", "--json")
    assert r.exit_code == 0, r.stderr
    assert r.json["rows"] == 6 and r.json["blank_lines"] == 1 and r.json["errors"] == 3
    j = pd.read_parquet(tmp_path / "jo.parquet")
    assert j["row"].tolist() == [1, 2, 3, 4, 6, 7]  # JSON Lines rows are line numbers, as at ingest
    assert j["n"].fillna("-").tolist() == ["1", "-", "3", "-", "6", "7"]  # ids as ingest stores them (source_id)
    assert j["label"].fillna("-").tolist()[:2] == [good[0], "-"] and j["label"].iloc[4] == good[1]
    assert j["error"].iloc[1].startswith("malformed row") and j["error"].iloc[2].startswith("missing text")
    assert j["error"].iloc[3].startswith("malformed row") and pd.notna(j["label"].iloc[5])  # 42 -> "42"
    assert j["score"].isna().tolist() == [False, True, True, True, False, False]

    pd.DataFrame({"text": [texts[0], None, "  ", texts[1]]}).to_parquet(tmp_path / "p.parquet")
    r = run_cli("--home", model_home, "classify", "h", "--input", tmp_path / "p.parquet", "--output", tmp_path / "po.csv")
    assert r.exit_code == 0, r.stderr
    p = pd.read_csv(tmp_path / "po.csv")
    assert p["row"].tolist() == [1, 2, 3, 4] and p["label"].isna().tolist() == [False, True, True, False]
    assert p["error"].iloc[1].startswith("missing text") and p["error"].iloc[2].startswith("empty text")

    (tmp_path / "t.txt").write_text(texts[0] + "\n\n" + texts[1] + "\n", encoding="utf-8")
    r = run_cli("--home", model_home, "classify", "h", "--input", tmp_path / "t.txt", "--output", tmp_path / "to.jsonl")
    assert r.exit_code == 0, r.stderr
    assert [(x["row"], x["label"]) for x in _jsonl(tmp_path / "to.jsonl")] == [(1, good[0]), (3, good[1])]


def test_input_errors_say_what_to_do(model_home, run_cli, tmp_path):
    (tmp_path / "a.csv").write_text("body\nhello\n", encoding="utf-8")
    r = run_cli("--home", model_home, "classify", "h", "--input", tmp_path / "a.csv", "--output", tmp_path / "o.csv")
    assert r.exit_code == 3 and "column 'text' not found" in r.stderr and "--text-col" in r.stderr
    r = run_cli("--home", model_home, "classify", "h", "--input", tmp_path / "a.csv", "--text-col", "body",
                "--id-col", "ticket", "--output", tmp_path / "o.csv")
    assert r.exit_code == 3 and "column 'ticket' not found" in r.stderr and "--id-col" in r.stderr
    (tmp_path / "a.docx").write_text("x", encoding="utf-8")
    r = run_cli("--home", model_home, "classify", "h", "--input", tmp_path / "a.docx", "--output", tmp_path / "o.csv")
    assert r.exit_code == 3 and "supported are" in r.stderr
    (tmp_path / "a.xlsx").write_text("x", encoding="utf-8")  # a workbook that is not one says how to fix it
    r = run_cli("--home", model_home, "classify", "h", "--input", tmp_path / "a.xlsx", "--output", tmp_path / "o.csv")
    assert r.exit_code == 3 and "a.xlsx" in r.stderr and "save it again" in r.stderr
    (tmp_path / "e.csv").write_text("", encoding="utf-8")
    r = run_cli("--home", model_home, "classify", "h", "--input", tmp_path / "e.csv", "--output", tmp_path / "o.csv")
    assert r.exit_code == 3 and "empty" in r.stderr
    r = run_cli("--home", model_home, "classify", "h", "--input", tmp_path / "a.csv", "--text-col", "body",
                "--output", tmp_path / "o.xls")  # .xlsx is written (workspace/tables.py), the old .xls is not
    assert r.exit_code == 2 and ".csv, .parquet or .jsonl" in r.stderr
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "o.xls").exists()
