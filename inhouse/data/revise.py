"""Checks and changes over written document parts, in DuckDB so memory stays bounded.

* :func:`count_repeated_texts`: rows of a new ingest whose text is already in
  the dataset or earlier in the file.
* :class:`DuplicateIds`: rows that reuse a user id (``--id-col``) given
  earlier in the file or in an earlier ingest, and what
  ``--on-duplicate-id`` does with them (``quarantine`` | ``keep-first`` |
  ``keep-last``). DuckDB works over the Parquet parts, sorting by id with
  ``memory_limit`` 1 GB and spilling to ``ws/tmp``, so 10M rows do not need
  10M ids in Python memory (a Python set of 10M ids would take ~1 GB); Python
  only ever holds one part (``chunk_rows`` rows) and the ids to drop from it.
* :func:`rewrite_part`: a part without some of its documents, written to a
  temporary file and renamed into place.
* :func:`carry_labels`: moves labels people set on documents that are being
  replaced onto the new documents with the same key (``source_id``, else
  ``source_row``) and the same text; the rest are counted as dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..workspace.files import atomic_path

POLICIES = ("quarantine", "keep-first", "keep-last")


def count_repeated_texts(con, old: list[Path], new: list[Path]) -> int:
    """Rows of ``new`` whose text is in ``old`` or earlier in ``new``."""
    if not new:
        return 0
    n_new = con.execute("SELECT COUNT(*) FROM read_parquet(?)", [[str(p) for p in new]]).fetchall()[0][0]
    q = "SELECT COUNT(*) FROM (SELECT DISTINCT text_hash FROM read_parquet(?)) n"
    params: list = [[str(p) for p in new]]
    if old:
        q += " WHERE NOT EXISTS (SELECT 1 FROM read_parquet(?) o WHERE o.text_hash = n.text_hash)"
        params.append([str(p) for p in old])
    fresh = con.execute(q, params).fetchall()[0][0]
    return int(n_new - fresh)


@dataclass
class DuplicateIds:
    """Rows of this ingest whose id was already used, and which documents to drop for the policy.

    ``count``: rows whose id appeared before (earlier in the file, or in an
    earlier ingest); ``same_text``: those whose text is also the same as the
    previous row with that id (an exact re-send). The temp table ``dup_drop``
    holds the doc_ids to drop: later rows (quarantine, keep-first), or every
    row but the last, earlier ingests' documents included (keep-last).
    """

    policy: str
    count: int = 0
    same_text: int = 0
    examples: list[dict] = field(default_factory=list)
    drop_new: int = 0
    drop_old: int = 0

    @classmethod
    def find(cls, con, new: list[Path], old: list[Path], policy: str) -> "DuplicateIds":
        new_files = [str(p) for p in new]
        sel = "SELECT doc_id, source_id, text_hash, source_row, ingest_id, filename"
        q = f"{sel}, TRUE AS is_new FROM read_parquet(?, filename = true) WHERE source_id IS NOT NULL"
        params: list[Any] = [new_files]
        if old:
            q += (f" UNION ALL {sel}, FALSE FROM read_parquet(?, filename = true) WHERE source_id IN"
                  " (SELECT source_id FROM read_parquet(?))")
            params += [[str(p) for p in old], new_files]
        con.execute(f"""CREATE OR REPLACE TEMP TABLE dup AS
            SELECT * FROM (
              SELECT *, row_number() OVER w AS k, count(*) OVER (PARTITION BY source_id) AS cnt,
                     lag(text_hash) OVER w AS prev_hash, lag(source_row) OVER w AS prev_row,
                     lag(ingest_id) OVER w AS prev_ingest, lag(is_new) OVER w AS prev_new,
                     max(CASE WHEN is_new THEN doc_id END) OVER (PARTITION BY source_id) AS last_new
              FROM ({q}) WINDOW w AS (PARTITION BY source_id ORDER BY is_new, doc_id)
            ) WHERE cnt > 1""", params)
        out = cls(policy)
        out.count, out.same_text = con.execute(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE text_hash = prev_hash) FROM dup WHERE is_new AND k > 1").fetchall()[0]
        for sid, row, prev_row, prev_ingest, prev_new, same in con.execute(
                "SELECT source_id, source_row, prev_row, prev_ingest, prev_new, text_hash = prev_hash FROM dup"
                " WHERE is_new AND k > 1 ORDER BY doc_id LIMIT 5").fetchall():
            out.examples.append({"id": sid, "row": row, "previous_row": prev_row,
                                 "previous_ingest": None if prev_new else prev_ingest, "same_text": bool(same)})
        if policy == "keep-last":
            drop = "doc_id <> last_new"
        else:
            drop = "is_new AND k > 1"
        con.execute(f"CREATE OR REPLACE TEMP TABLE dup_drop AS SELECT doc_id, is_new, filename FROM dup WHERE {drop}")
        out.drop_new, out.drop_old = con.execute(
            "SELECT COUNT(*) FILTER (WHERE is_new), COUNT(*) FILTER (WHERE NOT is_new) FROM dup_drop").fetchall()[0]
        return out

    def drop_ids(self, con, file: Path) -> list[int]:
        """The doc_ids to drop from one part file."""
        return [r[0] for r in con.execute("SELECT doc_id FROM dup_drop WHERE filename = ? ORDER BY doc_id",
                                          [str(file)]).fetchall()]

    def old_files(self, con) -> list[str]:
        """Files of earlier ingests that lose documents (keep-last)."""
        return [r[0] for r in con.execute("SELECT DISTINCT filename FROM dup_drop WHERE NOT is_new ORDER BY 1").fetchall()]

    def quarantined_rows(self, con, new: list[Path], batch: int = 10_000) -> Iterator[dict]:
        """One quarantine record per dropped row of this ingest (policy quarantine), in row order."""
        cur = con.execute(
            "SELECT n.source_row, n.source_id, n.text, n.labels, n.split, CAST(n.time AS VARCHAR), n.meta,"
            " d.prev_row, d.prev_ingest, d.prev_new, d.text_hash = d.prev_hash"
            " FROM read_parquet(?) n JOIN dup d USING (doc_id) WHERE d.is_new AND d.k > 1 ORDER BY n.doc_id",
            [[str(p) for p in new]])
        while rows := cur.fetchmany(batch):
            for row, sid, text, labels, split, t, meta, prev_row, prev_ingest, prev_new, same in rows:
                where = f"row {prev_row}" + ("" if prev_new else f" of ingest #{prev_ingest}")
                raw = json.dumps({"id": sid, "text": text, "labels": labels, "split": split, "time": t,
                                  "meta": json.loads(meta or "{}")}, ensure_ascii=False)
                yield {"row": row, "line": None, "reason": "duplicate id",
                       "detail": f"id {sid!r} was already used by {where}, "
                                 f"with {'the same' if same else 'a different'} text; "
                                 "--on-duplicate-id keep-first or keep-last chooses instead of quarantining",
                       "raw": raw}


def rewrite_part(src: Path, dst: Path, drop: list[int]) -> tuple[int, int | None]:
    """Write ``src`` without the documents ``drop`` to ``dst`` (atomically); ``(rows, first doc_id)`` left.

    With no rows left nothing is written and ``(0, None)`` comes back.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(src)
    keep = pc.invert(pc.is_in(table["doc_id"], value_set=pa.array(drop, pa.int64())))
    table = table.filter(keep)
    if table.num_rows == 0:
        return 0, None
    with atomic_path(dst) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return table.num_rows, int(pc.min(table["doc_id"]).as_py())


@dataclass
class LabelCarry:
    """Labels people set on documents being removed: how many, and where they go."""

    referring: int = 0  # active (not undone) labels on the removed documents
    carried: int = 0  # of those, moved to the new document with the same key and text
    dropped: int = 0  # of those, left behind: no new document has the same key and text
    moves: list[tuple[int, int]] = field(default_factory=list)  # (old doc_id, new doc_id)


def carry_labels(con, labels: list[tuple[int, bool]], removed_sql: str, removed_params: list,
                 new: list[Path]) -> LabelCarry:
    """Map labelled documents that are being removed onto new documents with the same key and text.

    ``labels``: ``(doc_id, active)`` of every label row of the dataset;
    ``removed_sql``: a query yielding ``doc_id, source_id, source_row, text_hash``
    of the documents being removed. A document's key is its ``source_id``, or
    its ``source_row`` when it has none.
    """
    out = LabelCarry()
    if not labels:
        return out
    import pandas as pd

    con.register("labelled", pd.DataFrame({"doc_id": [d for d, _ in labels], "active": [a for _, a in labels]},
                                          columns=["doc_id", "active"]).astype({"doc_id": "int64", "active": "bool"}))
    new_sql = ("SELECT NULL::BIGINT AS doc_id, NULL::VARCHAR AS source_id, NULL::BIGINT AS source_row,"
               " NULL::VARCHAR AS text_hash WHERE FALSE")
    params = list(removed_params)
    if new:
        new_sql = "SELECT doc_id, source_id, source_row, text_hash FROM read_parquet(?)"
        params.append([str(p) for p in new])
    rows = con.execute(f"""
        WITH r AS ({removed_sql}), n AS ({new_sql}),
             m AS (SELECT r.doc_id AS old, min(n.doc_id) AS new FROM r LEFT JOIN n
                   ON n.text_hash = r.text_hash AND coalesce(n.source_id, '#' || n.source_row)
                                                  = coalesce(r.source_id, '#' || r.source_row)
                   GROUP BY r.doc_id)
        SELECT m.old, m.new, l.active FROM m JOIN labelled l ON l.doc_id = m.old""", params).fetchall()
    con.unregister("labelled")
    moves = {}
    for old, new_id, active in rows:
        if new_id is not None:
            moves[old] = new_id
        if active:
            out.referring += 1
            if new_id is not None:
                out.carried += 1
            else:
                out.dropped += 1
    out.moves = sorted(moves.items())
    return out
