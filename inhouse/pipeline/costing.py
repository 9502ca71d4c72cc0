"""Cost blocks for commands whose library call records its own run (``embed``, ``train``).

:func:`metered` runs the call under a :class:`inhouse.workspace.costs.CostMeter`,
counts the documents' tokens with the model's own tokenizer, and attaches the
cost to the run the call recorded (the newest run of that kind started after it).

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> result, cost = metered(ws, "embed", lambda: embed_dataset(ws, "tickets"), "tickets", "minilm-l6")
"""

from __future__ import annotations

import time
from typing import Any, Callable

from ..workspace.costs import CostMeter, record_cost
from ..workspace.store import Workspace


def count_tokens(ws: Workspace, model: str, texts: list[str], batch: int = 4096) -> int:
    """Tokens of ``texts`` with the base model's own tokenizer (words for static embeddings)."""
    from ..models.encoders import load_encoder

    tok = getattr(getattr(load_encoder(ws, model), "st", None), "tokenizer", None)
    if tok is None:
        return sum(len(t.split()) for t in texts)
    total = 0
    for i in range(0, len(texts), batch):
        total += sum(len(x) for x in tok(texts[i:i + batch], truncation=True)["input_ids"])
    return total


def metered(ws: Workspace, kind: str, call: Callable[[], Any], dataset: str, model: str,
            split: str | None = None) -> tuple[Any, dict]:
    """Run ``call`` under a cost meter and record the cost beside the run it recorded."""
    from ..workspace.documents import read_documents

    t0 = time.time()
    with CostMeter() as meter:
        result = call()
        texts = read_documents(ws, dataset, columns=["doc_id", "text"], split=split)["text"].tolist()
        meter.add(documents=len(texts), tokens=count_tokens(ws, model, texts))
    cost = meter.result(ws)
    row = ws.db.execute("SELECT max(id) FROM runs WHERE kind = ? AND started_at >= ?", (kind, t0 - 1)).fetchone()
    if row and row[0]:
        record_cost(ws, int(row[0]), kind, cost)
    return result, cost
