"""A chunk of input rows: the unit of work, of checkpointing and of Ray staging.

    >>> c = make_chunk(0, {"row": [1, 2, 3]}, ["hi", None, "hi"], [None, "empty text: ...", None])
    >>> c.unique, c.inverse
    (['hi'], [0, -1, 0])
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Chunk:
    """One chunk of input rows: their keys, the distinct texts to compute and where each row's text is."""

    index: int
    keys: dict[str, list]  # output key columns (row, id / doc_id), one value per row
    errors: list[str | None]
    unique: list[str] = field(default_factory=list)
    inverse: list[int] = field(default_factory=list)  # per row: position in ``unique``, -1 for an error row

    @property
    def rows(self) -> int:
        return len(self.errors)


def make_chunk(index: int, keys: dict[str, list], texts: list[str | None], errors: list[str | None]) -> Chunk:
    c = Chunk(index, keys, errors)
    seen: dict[str, int] = {}
    for t, e in zip(texts, errors):
        if e is not None:
            c.inverse.append(-1)
            continue
        j = seen.setdefault(t, len(c.unique))  # the text itself is the key: no hash per row
        if j == len(c.unique):
            c.unique.append(t)
        c.inverse.append(j)
    return c


def chunk_table(chunk: Chunk, cols: dict[str, list], schema):
    """The chunk's rows (key columns + predictions + error) as an Arrow table of ``schema``."""
    import pyarrow as pa

    inv = chunk.inverse
    data = dict(chunk.keys)
    for name in ("label", "score", "abstained", "best_label", "top_labels", "top_scores", "labels"):
        if name not in schema.names:
            continue
        values = cols.get(name, [])
        empty = [] if name in ("top_labels", "top_scores", "labels") else None
        data[name] = [values[i] if i >= 0 else empty for i in inv]
    data["error"] = chunk.errors
    return pa.table({n: data[n] for n in schema.names if n in data},
                    schema=pa.schema([schema.field(n) for n in schema.names if n in data]))


