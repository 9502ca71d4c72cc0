"""Tables people open: CSV, Excel (.xlsx), Parquet or JSON Lines by extension, written atomically, spreadsheet-safe.

Every table inhouse writes for a person (``datasets export``, ``classify
--output``, a pipeline's ``predictions.csv``, topics, summaries, trends,
quarantine, and the server's downloads) goes through :func:`safe_cell`: a text
cell a spreadsheet would run as a formula (it starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return) is written with a leading ``'``, so Excel and
LibreOffice show it as text (OWASP's "CSV injection" advice). Numbers, and text
that is only a number such as ``-3.5``, are left alone.

    >>> safe_cell('=HYPERLINK("http://x","y")')
    '\\'=HYPERLINK("http://x","y")'
    >>> safe_cell("-3.5"), safe_cell(-3), safe_cell(["a", "b"])
    ('-3.5', -3, '["a", "b"]')
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path

from .files import atomic_path

TABLE_SUFFIXES = (".csv", ".xlsx", ".parquet", ".jsonl")
FORMATS = ("csv", "xlsx", "parquet")  # what a download can ask for (?format=)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
XLSX_MAX_ROWS = 1_048_575  # Excel's limit, less the header
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def safe_cell(v):
    """One cell for CSV or XLSX: None as empty, lists and dicts as JSON, a would-be formula as text."""
    if v is None:
        return ""
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v, ensure_ascii=False, default=str)
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):  # numpy scalars and arrays
        return safe_cell(v.tolist())
    if isinstance(v, str) and v[:1] in FORMULA_START and not _NUMBER.fullmatch(v):
        return "'" + v
    return v


def safe_frame(df):
    """A copy of ``df`` whose text, list and dict cells went through :func:`safe_cell`."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype) in ("string", "str"):
            out[col] = [safe_cell(v) for v in out[col]]
    return out


def check_suffix(path: Path, what: str) -> str:
    from ..errors import UsageError

    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise UsageError(f"{path}: the output must end in .csv, .parquet or .jsonl (or .xlsx), found "
                         f"{suffix or 'no extension'}.", fix=f"Choose a file name such as {what}.parquet.")
    return suffix


def write_table(df, path: str | os.PathLike, *, what: str = "results") -> Path:
    """Write a DataFrame atomically as CSV, XLSX, Parquet or JSON Lines, by the file's extension.

    In CSV and XLSX, list-valued columns (top labels, keywords) are written as
    JSON and would-be formulas as text (:func:`safe_cell`).

    Illustrative (writes a file; not run as a doctest):
    >>> write_table(pd.DataFrame({"id": [1], "text": ["=1+1"]}), "out.csv")  # id,text / 1,'=1+1
    PosixPath('out.csv')
    """
    path = Path(path)
    suffix = check_suffix(path, what)
    with atomic_path(path) as tmp:
        if suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        elif suffix == ".jsonl":
            df.to_json(tmp, orient="records", lines=True, force_ascii=False)
        elif suffix == ".xlsx":
            write_xlsx(tmp, [str(c) for c in df.columns], df.itertuples(index=False, name=None), what=what)
        else:
            safe_frame(df).to_csv(tmp, index=False)
    return path


def xlsx_cell(v):
    """A value openpyxl stores as is: safe text without control characters, naive datetimes, plain numbers."""
    if type(v).__name__ in ("NAType", "NaTType"):
        return None
    v = safe_cell(v)
    if isinstance(v, str):
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        return ILLEGAL_CHARACTERS_RE.sub("", v)
    if isinstance(v, dt.datetime) and v.tzinfo is not None:
        return v.isoformat()
    if hasattr(v, "isoformat") and not isinstance(v, (dt.date, dt.time)):  # pandas Timestamp and friends
        return v.isoformat()
    if isinstance(v, float) and v != v:  # NaN: an empty cell
        return None
    return v


def write_xlsx(path, columns: list[str], rows, *, what: str = "results") -> int:
    """Rows (tuples in ``columns``' order) into a one-sheet workbook at ``path``; returns the row count."""
    wb = _workbook()
    sheet = wb.create_sheet(what[:31] or "table")
    sheet.append([xlsx_cell(c) for c in columns])
    n = 0
    for row in rows:
        n += 1
        if n > XLSX_MAX_ROWS:
            from ..errors import UsageError

            raise UsageError(f"{what}: more than {XLSX_MAX_ROWS:,} rows, the most one Excel sheet holds.",
                             fix="Download it as CSV or Parquet instead.")
        sheet.append([xlsx_cell(v) for v in row])
    wb.save(str(path))
    return n


def _workbook():
    try:
        from openpyxl import Workbook
    except ImportError as e:  # pragma: no cover - depends on the install
        from ..errors import MissingDependency

        raise MissingDependency("openpyxl", "excel", "Writing .xlsx files") from e
    return Workbook(write_only=True)


def read_table(path: str | os.PathLike):
    """A table inhouse wrote (.parquet, .csv, .jsonl, .xlsx) as a DataFrame; CSV cells stay text."""
    import pandas as pd

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".jsonl":
        return pd.read_json(path, lines=True, dtype=False)
    if suffix == ".xlsx":
        return pd.read_excel(path, dtype=object)
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def convert(src: str | os.PathLike, fmt: str, dest_dir: str | os.PathLike, *, what: str = "results") -> Path:
    """``src`` rewritten as ``fmt`` (csv, xlsx, parquet) in ``dest_dir``, neutralised like every table here."""
    src = Path(src)
    out = Path(dest_dir) / f"{src.stem}.{fmt}"
    return write_table(read_table(src), out, what=what)
