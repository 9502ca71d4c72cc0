"""Cost blocks for commands whose library call records its own run (``embed``, ``train``).

:func:`metered` runs the call under a :class:`inhouse.workspace.costs.CostMeter`
and attaches the cost to the run that call recorded: ``run_id`` when the caller
knows it, else the run of ``kind`` recorded by the call itself in this thread
(:func:`inhouse.workspace.store.recording_runs`), never "the newest run of that
kind", which another process may have recorded meanwhile. The documents' tokens
are counted with the model's own tokenizer after the meter stops, so counting
is not billed as work; documents the call took from stored results (``reused``)
are shown as reused and their tokens are not billed.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> (r, _, _), cost = metered(ws, "embed", lambda: embed_dataset(ws, "tickets"), "tickets", "minilm-l6",
    ...                            reused=lambda out: out[0].reused)
    >>> cost["documents"], cost["reused"], cost["run_id"]
    (120, 13, 41)
"""

from __future__ import annotations

from typing import Any, Callable

from ..workspace.costs import CostMeter, record_cost
from ..workspace.store import Workspace, recording_runs


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
            split: str | None = None, *, run_id: int | None = None,
            reused: Callable[[Any], int] | None = None) -> tuple[Any, dict]:
    """Run ``call`` under a cost meter and record the cost beside the run it recorded.

    ``reused(result)``: how many of the distinct texts the call took from stored
    results; the billed documents and tokens are the computed share. The cost
    block gets ``run_id`` (None when the call recorded no run of ``kind``).
    """
    from ..workspace.documents import read_documents

    with recording_runs() as recorded, CostMeter() as meter:
        result = call()
    texts = read_documents(ws, dataset, columns=["doc_id", "text"], split=split)["text"].tolist()
    distinct = len(set(texts))
    n_reused = min(int(reused(result)), distinct) if reused else 0
    share = (distinct - n_reused) / distinct if distinct else 0.0
    meter.add(documents=round(len(texts) * share), tokens=round(count_tokens(ws, model, texts) * share),
              reused=len(texts) - round(len(texts) * share))
    cost = meter.result(ws)
    if run_id is None:
        own = [i for k, i in recorded if k == kind]
        run_id = own[-1] if own else None
    cost["run_id"] = run_id
    if run_id is not None:
        record_cost(ws, run_id, kind, cost)
    return result, cost
