"""Write a table chunk by chunk as Parquet, CSV, XLSX or JSON Lines (by extension), then rename it into place.

Memory stays bounded by one chunk whatever the table's size; until
:meth:`TableWriter.close` the rows live under a temporary name beside the
target, so a kill never leaves half an output under the real name.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> with TableWriter("preds.csv", schema) as w:
    ...     w.write(chunk_table)
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..workspace.tables import check_suffix, safe_cell, write_xlsx


def check_output(path: str | os.PathLike, what: str = "predictions") -> Path:
    path = Path(path)
    check_suffix(path, what)
    return path


class TableWriter:
    """Appends Arrow tables of one schema to a .parquet, .csv or .jsonl file; renames it into place on close."""

    def __init__(self, path: str | os.PathLike, schema, *, what: str = "predictions"):
        self.path = check_output(path, what)
        self.schema = schema
        self.kind = self.path.suffix.lower()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self.rows = 0
        self._pq = None
        self._f = None
        self._csv = None
        self._xlsx: list | None = None
        if self.kind == ".xlsx":  # openpyxl writes a workbook at once: rows wait in memory until close
            self._xlsx = []
        elif self.kind == ".parquet":
            import pyarrow.parquet as pq

            self._pq = pq.ParquetWriter(str(self.tmp), schema)
        else:
            self._f = open(self.tmp, "w", encoding="utf-8", newline="")
            if self.kind == ".csv":
                import csv

                self._csv = csv.writer(self._f)
                self._csv.writerow(schema.names)

    def write(self, table) -> None:
        table = table.select(self.schema.names).cast(self.schema)
        self.rows += table.num_rows
        if self._pq is not None:
            self._pq.write_table(table)
            return
        rows = table.to_pylist()
        if self._xlsx is not None:
            self._xlsx.extend(tuple(r.values()) for r in rows)
        elif self._csv is not None:
            self._csv.writerows([safe_cell(v) for v in r.values()] for r in rows)
        else:
            self._f.write("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))

    def close(self) -> Path:
        """Finish the file and rename it into place."""
        if self._pq is not None:
            self._pq.close()
        elif self._xlsx is not None:
            write_xlsx(self.tmp, list(self.schema.names), self._xlsx, what=self.path.stem)
        else:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            if self._pq is not None:
                self._pq.close()
            elif self._f is not None:
                self._f.close()
        finally:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "TableWriter":
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            self.close()
        else:
            self.abort()

