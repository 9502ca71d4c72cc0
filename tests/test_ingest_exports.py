"""Files as people's tools write them: pandas CSVs, US/European dates, odd headers, Excel, JSON, transcripts.

Each file is ingested with the real CLI, then every command a user would run
next (datasets show, --where filters, export, trends) must answer, never end
in an internal error.
"""

from __future__ import annotations

import csv
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from inhouse.data.dates import TimeParser, parse_time
from inhouse.data.ingest import ingest
from inhouse.errors import UsageError
from inhouse.workspace.documents import read_documents


def ok(run_cli, *args):
    r = run_cli(*args)
    assert r.exit_code == 0, f"inhouse {' '.join(map(str, args))} -> {r.exit_code}\n{r.stdout}\n{r.stderr}"
    assert "internal error" not in r.stderr
    return r


def every_command_works(run_cli, tmp_path: Path, dataset: str, wheres: list[str], trends_by: str | None) -> None:
    """show, a --where per expression (export and count), export of everything, trends when there are times."""
    show = ok(run_cli, "datasets", "show", dataset, "--json").json
    ok(run_cli, "datasets", "show", dataset)
    for i, where in enumerate(wheres):
        out = ok(run_cli, "datasets", "export", dataset, "--where", where, "--output", tmp_path / f"w{i}.csv", "--json")
        assert out.json["rows"] >= 1, where
    whole = ok(run_cli, "datasets", "export", dataset, "--output", tmp_path / "all.csv", "--json").json
    assert whole["rows"] == show["rows"]
    assert len(pd.read_csv(tmp_path / "all.csv")) == show["rows"]
    if trends_by:
        ok(run_cli, "trends", "--dataset", dataset, "--by", trends_by, "--every", "month", "--json")


def cr_rows(shared_data: Path, n: int) -> pd.DataFrame:
    """``n`` customer reviews (a fixed sample: the file is sorted by label) (text, label) with made-up review dates over 2011 (cr.csv has none)."""
    df = pd.read_csv(shared_data / "customer_reviews_cr" / "cr.csv", keep_default_na=False)
    df = df[df["text"].str.strip() != ""].sample(n, random_state=7).reset_index(drop=True)  # 4 rows are empty
    rng = random.Random(7)
    start = datetime(2011, 1, 1)
    df["when"] = [start + timedelta(days=rng.randrange(365), minutes=rng.randrange(1440)) for _ in range(n)]
    return df


# -------------------------------------------------------- the reported files ----

def test_a_csv_written_by_pandas_with_its_unnamed_index_works_in_every_command(ws, tmp_path, run_cli, shared_data):
    """Reported: header ',Text,Date' ingested, then show and every --where ended in a DuckDB ParserException."""
    df = cr_rows(shared_data, 300)
    out = pd.DataFrame({"Text": df["text"], "Date": df["when"].dt.strftime("%Y-%m-%d"), "Sentiment": df["label"]})
    path = tmp_path / "reviews.csv"
    out.to_csv(path)  # pandas' default: the index as a first column with an empty name
    assert path.read_text("utf-8").startswith(",Text,Date,Sentiment\n")
    res = ok(run_cli, "ingest", path, "--dataset", "rev", "--text-col", "Text", "--time-col", "Date", "--json").json
    assert (res["read"], res["stored"], res["quarantined"]) == (300, 300, 0)
    assert res["renamed_columns"] == [{"from": "", "to": "column_1", "why": "blank"}]
    plain = ok(run_cli, "ingest", path, "--dataset", "rev2", "--text-col", "Text")
    assert "renamed columns: '' -> 'column_1' (blank)" in plain.stdout
    every_command_works(run_cli, tmp_path, "rev", ["column_1 = '5'", "Sentiment = 'negative'",
                                                   "time >= '2011-06-01'"], trends_by="Sentiment")
    kept = pd.read_csv(tmp_path / "w0.csv")
    assert kept["text"].tolist() == [df["text"][5]]


def test_a_tsv_of_600_reviews_with_us_long_dates_ingests_whole(ws, tmp_path, run_cli, shared_data):
    """Reported: 'May 30, 2011' dates quarantined all 600 rows ('neither ISO 8601 nor epoch seconds')."""
    df = cr_rows(shared_data, 600)
    path = tmp_path / "reviews.tsv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["review", "rating", "date"])
        for t, label, when in zip(df["text"], df["label"], df["when"]):
            w.writerow([t, label, f"{when:%B} {when.day}, {when:%Y}"])  # May 30, 2011
    assert "May" in path.read_text("utf-8") or "June" in path.read_text("utf-8")
    res = ok(run_cli, "ingest", path, "-d", "us", "--text-col", "review", "--label-col", "rating",
             "--time-col", "date", "--json").json
    assert (res["read"], res["stored"], res["quarantined"]) == (600, 600, 0)
    docs = read_documents(ws, "us").sort_values("source_row")
    want = [int(datetime(w.year, w.month, w.day, tzinfo=timezone.utc).timestamp()) for w in df["when"]]
    got = [int(t.timestamp()) for t in docs["time"]]
    assert got == want
    every_command_works(run_cli, tmp_path, "us", ["label = 'positive'", "time < '2011-03-01'"], trends_by="label")


# ---------------------------------------------------------------- dates ----

def test_each_date_style_people_export_reads_as_the_same_instant():
    p = TimeParser()
    day = parse_time("2011-05-30")
    for v in ("May 30, 2011", "30 May 2011", "05/30/2011", "Monday, May 30, 2011", "2011/05/30", "30-May-2011",
              "20110530", 40693, "40693", "1306713600", "1306713600000", 1306713600000):
        assert p(v) == day, v
    assert TimeParser(dayfirst=True)("30/05/2011") == day
    evening = parse_time("2011-05-30T22:31:00Z")
    for v in ("May 30, 2011 10:31 PM", "30 May 2011 22:31", "Mon, 30 May 2011 22:31:00 +0000",
              "May 30, 2011 6:31 PM EDT", "2011-05-31T00:31:00+02:00", "5/30/2011 22:31"):
        assert p(v) == evening, v
    assert TimeParser(time_format="%d.%m.%Y %H:%M")("30.05.2011 22:31") == evening
    with pytest.raises(ValueError, match="does not match --time-format '%d.%m.%Y'"):
        TimeParser(time_format="%d.%m.%Y")("2011-05-30")
    with pytest.raises(ValueError, match="tried ISO 8601, epoch seconds/milliseconds, Excel serial days"):
        p("the day after tomorrow")
    with pytest.raises(ValueError, match="unknown time zone 'XYZT'"):
        p("May 30, 2011 10:31 PM XYZT")


def _dates_csv(path: Path, dates: list[str]) -> Path:
    path.write_text("text,when\n" + "".join(f"row {i},{d}\n" for i, d in enumerate(dates)), "utf-8")
    return path


def test_day_month_order_is_settled_by_the_file_or_asked_for(ws, tmp_path, run_cli):
    # European: row 3 has 30 in the first place -> day first, also for the ambiguous rows before it
    eu = _dates_csv(tmp_path / "eu.csv", ["05/06/2011", "01/02/2011", "30/05/2011", "12/11/2011"])
    res = ingest(ws, eu, "eu", time_col="when")
    assert res.stored == 4 and res.day_order == "day first (row 3 reads '30/05/2011')"
    times = read_documents(ws, "eu").sort_values("source_row")["time"].dt.strftime("%Y-%m-%d").tolist()
    assert times == ["2011-06-05", "2011-02-01", "2011-05-30", "2011-11-12"]
    # US: a value over 12 in the second place; a row that contradicts it is quarantined, saying why
    us = _dates_csv(tmp_path / "us.csv", ["05/06/2011", "05/30/2011", "30/05/2011"])
    res = ingest(ws, us, "us", time_col="when", max_quarantine_share=1.0)
    assert (res.stored, res.quarantined) == (2, 1)
    q = [json.loads(x) for x in Path(res.quarantine_file).read_text().splitlines()]
    assert q[0]["row"] == 3 and q[0]["reason"] == "bad timestamp"
    assert "'30/05/2011' is day first, but the column's dates are month first (row 2 reads '05/30/2011')" in q[0]["detail"]
    # nothing settles it: stop before storing anything, asking for the order
    amb = _dates_csv(tmp_path / "amb.csv", ["05/06/2011", "01/02/2011"])
    r = run_cli("ingest", amb, "-d", "amb", "--time-col", "when")
    assert r.exit_code != 0 and "internal error" not in r.stderr
    assert "could be either way round" in r.stderr and "--dayfirst" in r.stderr and "--monthfirst" in r.stderr
    assert "amb" not in ws.dataset_names() or ws.dataset_parts("amb") == []
    res = ok(run_cli, "ingest", amb, "-d", "amb", "--time-col", "when", "--monthfirst", "--json").json
    assert res["stored"] == 2 and res["day_order"] == "month first (given)"
    with pytest.raises(UsageError, match="no strftime code"):
        ingest(ws, amb, "x", time_col="when", time_format="dd.mm.yyyy")


def test_the_quarantine_says_which_formats_were_tried(ws, tmp_path):
    path = _dates_csv(tmp_path / "bad.csv", ["2011-05-30", "soon", "31.05.2011 x"])
    res = ingest(ws, path, "bad", time_col="when", max_quarantine_share=1.0)
    q = [json.loads(x) for x in Path(res.quarantine_file).read_text().splitlines()]
    assert [r["row"] for r in q] == [2, 3]
    assert all("tried ISO 8601, epoch seconds/milliseconds, Excel serial days" in r["detail"] and "--time-format"
               in r["detail"] for r in q)
    res = ingest(ws, _dates_csv(tmp_path / "fmt.csv", ["30.05.2011", "2011-05-30"]), "fmt", time_col="when",
                 time_format="%d.%m.%Y", max_quarantine_share=1.0)
    q = [json.loads(x) for x in Path(res.quarantine_file).read_text().splitlines()]
    assert res.stored == 1 and "does not match --time-format '%d.%m.%Y'" in q[0]["detail"]


# -------------------------------------------------------------- headers ----

def test_blank_repeated_padded_and_builtin_headers_get_names_every_command_takes(ws, tmp_path, run_cli):
    path = tmp_path / "odd.csv"
    path.write_text(",body, Region ,body,text,time,label,row,Label,doc_id,\n"
                    + "".join(f"{i},message {i},north,second {i},t{i},noon,L{i % 2},r{i},x,d{i},\n" for i in range(6)),
                    "utf-8")
    res = ok(run_cli, "ingest", path, "-d", "odd", "--text-col", "body", "--json").json
    assert res["stored"] == 6
    renamed = {r["from"] + "@" + r["to"] for r in res["renamed_columns"]}
    assert renamed == {"@column_1", " Region @Region", "body@body_2", "text@text_2", "time@time_2", "label@label_2",
                       "row@row_2", "Label@Label_3", "doc_id@doc_id_2", "@column_11"}
    again = ok(run_cli, "ingest", path, "-d", "odd2", "--text-col", "body", "--json").json
    assert again["renamed_columns"] == res["renamed_columns"]  # deterministic
    show = ok(run_cli, "datasets", "show", "odd", "--json").json
    assert show["rows"] == 6
    every_command_works(run_cli, tmp_path, "odd", ["column_1 = '2'", "Region = 'north'", "body_2 = 'second 3'",
                                                   "text_2 = 't1'", "time_2 = 'noon'", "label_2 = 'L1'",
                                                   "row_2 = 'r4'", "Label_3 = 'x'", "doc_id_2 = 'd0'"], None)
    docs = read_documents(ws, "odd").sort_values("source_row")
    assert docs["text"].tolist()[0] == "message 0"
    assert json.loads(docs["meta"].tolist()[0])["body_2"] == "second 0"
    # the padded name can be given either way
    res = ingest(ws, path, "odd3", text_col=" Region ")
    assert res.stored == 6 and read_documents(ws, "odd3")["text"].tolist()[0] == "north"


# --------------------------------------------------------------- formats ----

def test_excel_workbook_first_sheet_by_default_and_another_by_name(ws, tmp_path, run_cli):
    import openpyxl

    wb = openpyxl.Workbook()
    first = wb.active
    first.title = "Summary"
    first.append(["note"])
    first.append(["not the tickets"])
    sheet = wb.create_sheet("Tickets")
    sheet.append(["subject", "body", "opened", None, "text"])
    sheet.append(["Card lost", "I lost my card &amp; wallet", datetime(2011, 5, 30, 10, 0), 1, "x"])
    sheet.append([None, None, None, None, None])
    sheet.append(["Refund", "<p>Where is my refund?</p>", datetime(2011, 6, 2), 2, "y"])
    path = tmp_path / "tickets.xlsx"
    wb.save(path)
    res = ok(run_cli, "ingest", path, "-d", "first", "--text-col", "note", "--json").json
    assert (res["stored"], res["sheet"]) == (1, "Summary")
    res = ok(run_cli, "ingest", path, "-d", "t", "--sheet", "Tickets", "--text-col", "subject", "--text-col", "body",
             "--time-col", "opened", "--unescape-html", "--json").json
    assert (res["read"], res["stored"], res["blank_lines"], res["sheet"]) == (2, 2, 1, "Tickets")
    assert {r["to"] for r in res["renamed_columns"]} == {"column_4", "text_2"}
    docs = read_documents(ws, "t").sort_values("source_row")
    assert docs["text"].tolist() == ["Card lost\nI lost my card & wallet", "Refund\nWhere is my refund?"]
    assert docs["time"].dt.strftime("%Y-%m-%d %H:%M").tolist() == ["2011-05-30 10:00", "2011-06-02 00:00"]
    every_command_works(run_cli, tmp_path, "t", ["column_4 = '2'", "text_2 = 'x'"], trends_by="text_2")
    r = run_cli("ingest", path, "-d", "t", "--sheet", "Nope")
    assert r.exit_code != 0 and "no sheet 'Nope'; its sheets are ['Summary', 'Tickets']" in r.stderr


def test_json_array_files_and_the_html_entity_hint(ws, tmp_path, run_cli):
    rows = [{"id": i, "text": f"It&rsquo;s ticket {i}", "created": f"May {i + 1}, 2011"} for i in range(5)]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(rows + ["not an object"]), "utf-8")
    res = ok(run_cli, "ingest", path, "-d", "j", "--time-col", "created", "--max-quarantine-share", "1", "--json").json
    assert (res["read"], res["stored"], res["quarantined"], res["format"]) == (6, 5, 1, "json")
    assert res["texts_with_html_entities"] == 5
    assert any("--unescape-html" in w for w in res["warnings"])
    path2 = tmp_path / "wrapped.json"
    path2.write_text(json.dumps({"count": 5, "results": rows}), "utf-8")
    res = ok(run_cli, "ingest", path2, "-d", "j2", "--unescape-html", "--json").json
    assert res["stored"] == 5 and not any("--unescape-html" in w for w in res["warnings"])
    assert read_documents(ws, "j2").sort_values("source_row")["text"].tolist()[0] == "It’s ticket 0"
    lines = tmp_path / "lines.json"  # one object per line, saved as .json
    lines.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    res = ok(run_cli, "ingest", lines, "-d", "j3", "--speaker", "customer", "--json").json
    assert res["stored"] == 5 and any("--speaker customer had no effect" in w for w in res["warnings"])


# ---------------------------------------------------------- conversations ----

def test_abcd_transcripts_become_one_document_per_conversation(ws, tmp_path, run_cli, shared_data):
    src = shared_data / "abcd_sample" / "abcd_sample.jsonl"
    res = ok(run_cli, "ingest", src, "-d", "calls", "--text-col", "turns", "--speaker", "customer",
             "--label-col", "label", "--json").json
    assert (res["read"], res["stored"], res["conversations"]) == (3, 3, 3)
    docs = read_documents(ws, "calls").sort_values("source_row")
    first = json.loads(src.read_text().splitlines()[0])
    said = [t[1] for t in first["turns"] if t[0] == "customer"]
    assert docs["text"].tolist()[0] == "\n".join(said)
    meta = json.loads(docs["meta"].tolist()[0])
    assert (meta["turns"], meta["speaker_turns"]) == (len(first["turns"]), len(said))
    assert "text_2" in meta  # the file's own 'text' column is kept, renamed
    every_command_works(run_cli, tmp_path, "calls", ["turns = '29'", "flow = 'product_defect'",
                                                     "CAST(turns AS INTEGER) > 25"], None)
    r = run_cli("datasets", "export", "calls", "--where", "turns > 25", "--output", tmp_path / "x.csv")
    assert r.exit_code == 2 and "cannot be evaluated" in r.stderr and "CAST(turns AS INTEGER)" in r.stderr, r.stderr


def test_transcripts_with_timed_turns_keep_turn_count_and_duration(ws, tmp_path, run_cli):
    t0 = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)
    convs = []
    for c in range(4):
        turns = [{"speaker": "agent" if k % 2 else "customer", "text": f"turn {k} of call {c}",
                  "time": (t0 + timedelta(days=c, seconds=30 * k)).isoformat()} for k in range(c + 2)]
        convs.append({"call_id": f"C{c}", "turns": turns, "started": turns[0]["time"]})
    convs.append({"call_id": "C9", "turns": [{"speaker": "agent", "text": "hello?"}], "started": "2026-01-09"})
    path = tmp_path / "calls.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in convs), "utf-8")
    res = ok(run_cli, "ingest", path, "-d", "c", "--text-col", "turns", "--speaker", "customer", "--id-col", "call_id",
             "--time-col", "started", "--max-quarantine-share", "1", "--json").json
    assert (res["stored"], res["quarantined"]) == (4, 1)  # C9: the customer never speaks
    docs = read_documents(ws, "c").sort_values("source_row")
    metas = [json.loads(m) for m in docs["meta"]]
    assert [m["turns"] for m in metas] == [2, 3, 4, 5]
    assert [m["duration_s"] for m in metas] == [30.0, 60.0, 90.0, 120.0]
    assert docs["text"].tolist()[1] == "turn 0 of call 1\nturn 2 of call 1"
    every_command_works(run_cli, tmp_path, "c", ["duration_s = '90.0'", "turns = '5'"], trends_by=None)
    ok(run_cli, "trends", "--dataset", "c", "--by", "turns", "--every", "day", "--min-count", "1", "--json")


# ------------------------------------------------------------------ REST ----

@pytest.mark.slow
def test_the_api_takes_the_same_options_and_previews_xlsx_and_json(ws, tmp_path):
    import openpyxl
    from serverkit import Server, create_token

    wb = openpyxl.Workbook()
    wb.active.title = "Readme"
    wb.active.append(["nothing here"])
    sheet = wb.create_sheet("Data")
    sheet.append(["", "subject", "body", "sent"])
    for i, (day, month) in enumerate([(5, 6), (30, 5), (1, 2)]):
        sheet.append([i, f"Subject {i}", f"Body &amp; more {i}", f"{day:02d}/{month:02d}/2011"])
    xlsx = tmp_path / "mail.xlsx"
    wb.save(xlsx)
    amb = tmp_path / "amb.csv"
    amb.write_text("text,sent\na,05/06/2011\nb,01/02/2011\n", "utf-8")
    rows = json.dumps([{"text": "one", "when": "May 30, 2011"}, {"text": "two", "when": "June 1, 2011"}])
    token = create_token(ws.home, "ed", "editor")
    server = Server(ws.home)
    try:
        with server.client(token) as c:
            pv = c.post("/datasets/preview", files={"file": ("mail.xlsx", xlsx.read_bytes())}, data={"sheet": "Data"})
            assert pv.status_code == 200, pv.text
            pv = pv.json()
            assert pv["columns"] == ["column_1", "subject", "body", "sent"] and pv["sheet"] == "Data"
            assert pv["guess"]["time"] == "sent" and any("column_1" in w for w in pv["warnings"])
            pj = c.post("/datasets/preview", files={"file": ("rows.json", rows.encode())}).json()
            assert pj["format"] == "json" and pj["guess"]["time"] == "when" and pj["dataset"] == "rows"
            assert "warnings" not in pj
            assert any("--unescape-html" in w for w in pv["warnings"])  # 3 bodies hold &amp;
            r = c.post("/datasets", files={"file": ("mail.xlsx", xlsx.read_bytes())},
                       data={"dataset": "mail", "sheet": "Data", "text_col": ["subject", "body"], "time_col": "sent",
                             "unescape_html": "true"})
            assert r.status_code == 200, r.text
            d = r.json()
            assert (d["stored"], d["quarantined"], d["sheet"]) == (3, 0, "Data")
            assert d["renamed_columns"] == [{"from": "", "to": "column_1", "why": "blank"}]
            assert d["day_order"] == "day first (row 2 reads '30/05/2011')"
            r = c.post("/datasets", files={"file": ("amb.csv", amb.read_bytes())}, data={"dataset": "amb",
                                                                                         "time_col": "sent"})
            assert r.status_code == 400 and "--dayfirst" in r.text, r.text
            r = c.post("/datasets", files={"file": ("amb.csv", amb.read_bytes())},
                       data={"dataset": "amb", "time_col": "sent", "dayfirst": "false"})
            assert r.status_code == 200 and r.json()["day_order"] == "month first (given)", r.text
            docs = c.get("/datasets/mail").json()
            assert docs["rows"] == 3
    finally:
        server.stop()
    texts = read_documents(ws, "mail").sort_values("source_row")["text"].tolist()
    assert texts[0] == "Subject 0\nBody & more 0"


def test_the_demo_generator_writes_transcripts_that_ingest_as_conversations(ws, tmp_path, run_cli):
    from inhouse.demo.data import generate, write_transcripts

    path = write_transcripts(tmp_path / "calls.jsonl", n=300, seed=3)
    res = ok(run_cli, "ingest", path, "-d", "calls", "--text-col", "turns", "--speaker", "customer",
             "--label-col", "intent", "--time-col", "started_at", "--id-col", "conversation_id", "--json").json
    assert (res["read"], res["stored"], res["conversations"]) == (300, 300, 300)
    docs = read_documents(ws, "calls").sort_values("source_row")
    messages = [r["text"] for r in generate(300, 3)]
    assert [t.split("\n")[0] for t in docs["text"]] == messages  # the customer's first turn is the corpus message
    metas = [json.loads(m) for m in docs["meta"]]
    assert all(m["turns"] >= 4 and m["duration_s"] > 0 and m["speaker_turns"] >= 1 for m in metas)
    every_command_works(run_cli, tmp_path, "calls", ["channel = 'chat'"], trends_by="label")
