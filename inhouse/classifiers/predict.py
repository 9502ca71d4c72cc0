"""Batch prediction: cached probabilities, top-k, and ``classify`` of a dataset or a file.

:func:`classify_texts` is the one core of batch prediction (cache, top-k);
:func:`classify` wraps it for a dataset or a file and writes the output file.

    >>> classify_texts(load_classifier(ws, "intents"), ["card still not here"], top_k=2)["top_labels"]
    [['card_arrival', 'card_delivery_estimate']]
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import ColumnNotFound, InputError, UsageError
from ..models.embeddings import EmbeddingCache
from ..progress import task
from ..workspace.documents import read_documents, write_table
from ..workspace.files import text_hash
from ..workspace.store import Workspace
from .base import Classifier
from .load import load_classifier

# ---------------------------------------------------------- predictions ----

class PredictionCache(EmbeddingCache):
    """Probability vectors under ``predictions/<model sha256[:16]>/``, keyed by text hash."""

    def __init__(self, ws: Workspace, model_sha256: str):
        self.dir = ws.dir("predictions", model_sha256[:16])


def cached_proba(clf: Classifier, texts: list[str], hashes: list[str] | None = None, *, cache: bool = True,
                 batch_size: int = 4096) -> np.ndarray:
    """``clf.predict_proba(texts)``, reusing (and storing) probabilities cached by (model sha256, text hash).

    Work is done in slices of ``batch_size`` distinct texts and each slice is
    cached when done, so an interrupted run keeps what it finished.
    """
    hashes = hashes if hashes is not None else [text_hash(t) for t in texts]
    store = PredictionCache(clf.ws, clf.sha256) if cache else None
    found = store.get(hashes) if store else {}
    todo = list(dict.fromkeys(h for h in hashes if h not in found))
    if todo:
        first = {h: t for t, h in zip(texts, hashes)}
        with task(f"classifying with {clf.version.ref}", total=len(todo), unit="text") as t:
            for i in range(0, len(todo), batch_size):
                keys = todo[i:i + batch_size]
                probs = clf.predict_proba([first[h] for h in keys], keys)
                if store:
                    store.put(keys, probs)
                found.update(zip(keys, probs))
                t.advance(len(keys))
    if not hashes:
        return np.zeros((0, len(clf.labels)), np.float32)
    return np.stack([found[h] for h in hashes]).astype(np.float32)


def classify_texts(clf: Classifier, texts: list[str], hashes: list[str] | None = None, *,
                   top_k: int = 3, cache: bool = True, batch_size: int = 4096) -> dict:
    """Predict every text; the one core of batch prediction.

    Returns ``{"label", "score", "top_labels", "top_scores"}`` (lists in input
    order; ``labels`` too for multi-label models). Probabilities are cached by
    (model sha256, text hash), so texts seen before cost nothing.

    >>> classify_texts(clf, ["card still not here"], top_k=2)["top_labels"]
    [['card_arrival', 'card_delivery_estimate']]
    """
    probs = cached_proba(clf, texts, hashes, cache=cache, batch_size=batch_size)
    k = max(1, min(top_k, len(clf.labels)))
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    out = {
        "label": [clf.labels[r[0]] for r in top],
        "score": [float(probs[i, r[0]]) for i, r in enumerate(top)],
        "top_labels": [[clf.labels[j] for j in r] for r in top],
        "top_scores": [[round(float(probs[i, j]), 6) for j in r] for i, r in enumerate(top)],
    }
    if clf.multi_label:
        out["labels"] = clf.decide(probs)
    return out


def read_table(path: Path):
    """A CSV, Parquet or JSON Lines file as a DataFrame (by extension)."""
    import pandas as pd

    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if not path.exists():
        raise InputError(f"{path}: no such file.", fix="Check the path.")
    if suffix in (".csv", ".csv.gz", ".tsv"):
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix in (".jsonl", ".jsonl.gz", ".ndjson"):
        return pd.read_json(path, lines=True, dtype=False)
    raise InputError(f"{path}: expected a .csv, .tsv, .parquet or .jsonl file, found {suffix or 'no extension'}.",
                     fix="Convert the file, or rename it with the right extension.")


def _input_rows(ws: Workspace, dataset: str | None, input_path: str | None, text_col: str,
                id_col: str | None, split: str | None):
    import pandas as pd

    if (dataset is None) == (input_path is None):
        raise UsageError("give exactly one of --dataset or --input.", fix="Example: --dataset tickets, or --input new.csv")
    if dataset is not None:
        df = read_documents(ws, dataset, columns=["doc_id", "text", "text_hash"], split=split)
        return df["doc_id"].tolist(), df["text"].tolist(), df["text_hash"].tolist(), "doc_id"
    path = Path(input_path)
    df = read_table(path)
    if text_col not in df.columns:
        raise ColumnNotFound(path.name, text_col, list(df.columns), "--text-col")
    if id_col is not None and id_col not in df.columns:
        raise ColumnNotFound(path.name, id_col, list(df.columns), "--id-col")
    texts = ["" if pd.isna(t) else str(t) for t in df[text_col]]
    ids = df[id_col].tolist() if id_col else list(range(len(df)))
    return ids, texts, [text_hash(t) for t in texts], id_col or "row"


def classify(ws: Workspace, ref: str, *, output: str, dataset: str | None = None, input_path: str | None = None,
             text_col: str = "text", id_col: str | None = None, split: str | None = None, top_k: int = 3,
             cache: bool = True) -> dict:
    """Predict every row of a dataset or file and write one row per input, in input order.

    >>> classify(ws, "intents", dataset="banking77", output="preds.parquet")["rows"]
    13083
    """
    import pandas as pd


    t0 = time.time()
    clf = load_classifier(ws, ref)
    ids, texts, hashes, id_name = _input_rows(ws, dataset, input_path, text_col, id_col, split)
    pred = classify_texts(clf, texts, hashes, top_k=top_k, cache=cache)
    df = pd.DataFrame({id_name: ids, **pred, "model": clf.version.ref, "model_sha256": clf.sha256})
    out = Path(output)
    write_table(df, out, what="predictions")
    result = {"output": str(out), "rows": len(df), "model": clf.version.ref, "model_sha256": clf.sha256,
              "seconds": round(time.time() - t0, 3),
              "label_counts": dict(pd.Series(pred["label"], dtype=object).value_counts().head(20).items())}
    ws.record_run("classify", {"dataset": dataset, "input": input_path, "output": str(out), "top_k": top_k},
                  result, model=clf.version.ref, model_sha256=clf.sha256, started_at=t0)
    return result
