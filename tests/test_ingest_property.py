"""Property: whatever header, quoting, delimiter, encoding, line ending and date style a file has, every row
is stored or quarantined with a reason (none lost, none invented), and no command ends in an internal error.

Hypothesis writes the files; the ingest is the library's, the commands after it the real CLI.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inhouse.data.ingest import ingest
from inhouse.errors import InputError, UsageError
from inhouse.workspace.documents import read_documents
from inhouse.workspace.filters import quote

NAMES = ["", " ", "text", "Text", " Text ", "time", "label", "Label", "row", "doc_id", "meta", "labels", "body",
         "body", "Región", 'say "hi"', "it's", "a.b", "$x", "column_1", "label_2", "1", "select", "id"]
DELIMITERS = {",": "csv", "\t": "tsv", ";": "csv", "|": "csv"}
ENCODINGS = ["utf-8", "utf-8-sig", "cp1252", "utf-16"]
STYLES = ["iso", "iso_time", "us_long", "eu_long", "us_short", "eu_short", "epoch_s", "epoch_ms", "excel"]
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_COUNTER = itertools.count()

# latin-1 letters, punctuation that CSV cares about, and line breaks inside fields
TEXT = st.lists(st.sampled_from(list("abcXYZ éüñ,;|\t\"'\n") + ["\r\n", "  ", "word"]), max_size=12).map("".join)


def render(d: datetime, style: str) -> str:
    day = datetime(d.year, d.month, d.day)
    return {"iso": f"{d:%Y-%m-%d}", "iso_time": f"{d:%Y-%m-%dT%H:%M}:00Z", "us_long": f"{d:%B} {d.day}, {d.year}",
            "eu_long": f"{d.day} {d:%b} {d.year}", "us_short": f"{d:%m/%d/%Y}", "eu_short": f"{d:%d/%m/%Y}",
            "epoch_s": str(int(d.replace(tzinfo=timezone.utc).timestamp())),
            "epoch_ms": str(int(d.replace(tzinfo=timezone.utc).timestamp()) * 1000),
            "excel": str((day - datetime(1899, 12, 30)).days)}[style]


def instant(d: datetime, style: str) -> int:
    if style in ("iso_time", "epoch_s", "epoch_ms"):
        t = d
    else:
        t = datetime(d.year, d.month, d.day)
    return int(t.replace(tzinfo=timezone.utc).timestamp()) * 1_000_000


@st.composite
def files(draw):
    extra = draw(st.lists(st.sampled_from(NAMES), max_size=4))
    text_name = draw(st.sampled_from([n for n in NAMES if n.strip()]))
    with_time = draw(st.booleans())
    time_name = draw(st.sampled_from([n for n in NAMES if n.strip() and n.strip() != text_name.strip()]))
    style = draw(st.sampled_from(STYLES))
    n = draw(st.integers(1, 12))
    rows = []
    for _ in range(n):
        d = datetime(1990, 1, 1) + timedelta(minutes=draw(st.integers(0, 40 * 365 * 1440)))
        when = draw(st.sampled_from(["date"] * 6 + ["garbage", "empty"]))
        rows.append({"text": draw(TEXT), "extra": [draw(TEXT) for _ in extra], "d": d, "when": when})
    return {"extra": extra, "text_name": text_name, "time_name": time_name if with_time else None, "style": style,
            "rows": rows, "delimiter": draw(st.sampled_from(sorted(DELIMITERS))),
            "quoting": draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])),
            "encoding": draw(st.sampled_from(ENCODINGS)), "newline": draw(st.sampled_from(["\n", "\r\n"]))}


def write(spec: dict, folder) -> tuple:
    """The file, and the rows that are data rows (a row written as a whitespace-only line is a blank line)."""
    header = [spec["text_name"]] + ([spec["time_name"]] if spec["time_name"] else []) + spec["extra"]
    lines, data = [], []
    for fields in [header] + [[r["text"]] + ([{"date": render(r["d"], spec["style"]), "garbage": "n/a", "empty": ""}[
            r["when"]]] if spec["time_name"] else []) + r["extra"] for r in spec["rows"]]:
        buf = io.StringIO()
        csv.writer(buf, delimiter=spec["delimiter"], quoting=spec["quoting"], lineterminator=spec["newline"]
                   ).writerow(fields)
        lines.append(buf.getvalue())
    data = [r for r, line in zip(spec["rows"], lines[1:]) if line.strip()]
    fmt = DELIMITERS[spec["delimiter"]]
    path = folder / f"f{next(_COUNTER)}.{fmt}"
    path.write_bytes("".join(lines).encode(spec["encoding"]))
    return path, data


def day_order(spec: dict) -> bool | None:
    """What the file says about day/month order (None: nothing to settle or it cannot be settled)."""
    if spec["style"] not in ("us_short", "eu_short") or not spec["time_name"]:
        return None
    dates = [r["d"] for r in spec["rows"] if r["when"] == "date"]
    if any(d.day > 12 for d in dates):
        return spec["style"] == "eu_short"
    return None


@pytest.mark.slow
@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(spec=files())
def test_every_row_is_stored_or_quarantined_and_every_command_answers(spec, ws, tmp_path, run_cli):
    path, rows = write(spec, tmp_path)
    spec_rows = spec["rows"]
    name = f"p{next(_COUNTER)}"
    kw = dict(text_col=spec["text_name"], time_col=spec["time_name"], max_quarantine_share=1.0,
              delimiter=spec["delimiter"] if spec["delimiter"] in ";|" else None,
              encoding="utf-16" if spec["encoding"] == "utf-16" else spec["encoding"])
    if not rows:  # every row was written as a blank line
        with pytest.raises(InputError, match="no rows to ingest"):
            ingest(ws, path, name, **kw)
        return
    spec = {**spec, "rows": rows}
    order = day_order(spec)
    ambiguous = (spec["style"] in ("us_short", "eu_short") and spec["time_name"] and order is None
                 and any(r["when"] == "date" and r["d"].day != r["d"].month for r in spec["rows"]))
    if ambiguous:
        with pytest.raises(UsageError, match="--dayfirst"):
            ingest(ws, path, name, **kw)
        order = spec["style"] == "eu_short"
        kw["dayfirst"] = order
    res = ingest(ws, path, name, **kw)

    n = len(rows)
    assert res.read == n and res.stored + res.quarantined == n and res.blank_lines == len(spec_rows) - n
    q = [json.loads(x) for x in open(res.quarantine_file, encoding="utf-8")] if res.quarantine_file else []
    assert all(r["reason"] and r["detail"] for r in q)
    docs = read_documents(ws, name) if res.stored else None
    stored_rows = sorted(docs["source_row"].tolist()) if res.stored else []
    assert sorted(stored_rows + [r["row"] for r in q]) == list(range(1, n + 1))  # none lost, none twice
    for r in q:
        assert r["reason"] in ("empty text", "bad timestamp"), r
    if res.stored:
        for _, doc in docs.iterrows():  # none invented: each text (and time) is the row's own
            src = spec["rows"][doc["source_row"] - 1]
            assert doc["text"] == src["text"]
            if spec["time_name"] and src["when"] == "date":
                assert int((doc["time"] - EPOCH) / timedelta(microseconds=1)) == instant(src["d"], spec["style"])
    for r in spec["rows"]:
        if not r["text"].strip():
            assert any(q_["reason"] == "empty text" for q_ in q)

    if not res.stored:
        return
    r = run_cli("datasets", "show", name, "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    meta = r.json.get("metadata_columns") or [m["to"] for m in res.renamed_columns]
    stored_meta = json.loads(docs["meta"].iloc[0])
    for col in list(stored_meta)[:2]:
        r = run_cli("datasets", "export", name, "--where", f"{quote(col)} IS NOT NULL OR true",
                    "--output", tmp_path / f"{name}.csv", "--json")
        assert r.exit_code == 0 and r.json["rows"] == res.stored, r.stdout + r.stderr
    if spec["time_name"] and docs["time"].notna().any():
        r = run_cli("trends", "--dataset", name, "--by", "label", "--every", "day", "--json")
        # a usage answer is fine (e.g. too few days, or a time column the file called 'label'); a crash is not
        assert "internal error" not in r.stdout + r.stderr and r.exit_code != 1, r.stdout + r.stderr
    assert meta is not None
