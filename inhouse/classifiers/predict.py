"""Prediction of a few texts in memory: cached probabilities and top-k, and the row checks classify shares.

:func:`classify_texts` and :func:`cached_proba` answer a short list of texts
(one document's prediction, an evaluation's test rows, an export's parity
check), caching probabilities by (model sha256, text hash). Classifying a
whole dataset or file is one engine only, the streamed, resumable
:func:`inhouse.service.classify.classify` (:mod:`inhouse.pipeline.classify`);
it shares :func:`text_problem`, :func:`id_value` and :func:`check_input` from here.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> classify_texts(load_classifier(ws, "intents"), ["card still not here"], top_k=2)["top_labels"]
    [['card_arrival', 'card_delivery_estimate']]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..models.embeddings import EmbeddingCache
from ..progress import task
from ..workspace.files import text_hash
from ..workspace.store import Workspace
from .base import Classifier

# ---------------------------------------------------------- predictions ----

class PredictionCache(EmbeddingCache):
    """Probability vectors under ``predictions/<model sha256[:16]>/``, keyed by text hash.

    Each part's seal names the model that computed it; a part whose seal names
    another model, or none (written before seals did), is never served: its
    entries are computed again.
    """

    require_model = True

    def __init__(self, ws: Workspace, model_sha256: str):
        self.dir = ws.dir("predictions", model_sha256[:16])
        self.model_sha256 = model_sha256


def cached_proba(clf: Classifier, texts: list[str], hashes: list[str] | None = None, *, cache: bool = True,
                 batch_size: int = 4096) -> np.ndarray:
    """``clf.predict_proba(texts)``, reusing (and storing) probabilities cached by (model sha256, text hash)."""
    return cached_scores(clf, texts, hashes, cache=cache, batch_size=batch_size)[0]


def cached_scores(clf: Classifier, texts: list[str], hashes: list[str] | None = None, *, cache: bool = True,
                  batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray | None]:
    """``clf.predict_scores(texts)`` (probabilities, and the distance of versions that abstain by distance),
    reusing (and storing) what is cached by (model sha256, text hash).

    A version of the distance rule caches its distance as one more column after the probabilities (its
    sha256 is new, so no entry of another width is found). Work is done in slices of ``batch_size``
    distinct texts and each slice is cached when done, so an interrupted run keeps what it finished.
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
                probs, dist = clf.predict_scores([first[h] for h in keys], keys)
                rows = probs if dist is None else np.concatenate([probs, np.asarray(dist)[:, None]], axis=1)
                if store:
                    store.put(keys, rows)
                found.update(zip(keys, rows))
                t.advance(len(keys))
    n = len(clf.labels)
    if not hashes:
        return np.zeros((0, n), np.float32), (np.zeros(0, np.float32) if clf.needs_distance else None)
    rows = np.stack([found[h] for h in hashes]).astype(np.float32)
    return rows[:, :n], (rows[:, n] if clf.needs_distance else None)


def classify_texts(clf: Classifier, texts: list[str], hashes: list[str] | None = None, *,
                   top_k: int = 3, cache: bool = True, batch_size: int = 4096, abstain: bool = True) -> dict:
    """Predict every text; the one core of batch prediction.

    Returns ``{"label", "score", "abstained", "top_labels", "top_scores"}``
    (lists in input order; ``labels`` too for multi-label models). ``label`` is
    :meth:`Classifier.decide`'s: the model's ``other`` label where it abstains
    (``abstained`` true; ``score`` is then the best in-scope probability, which
    was too low), unless ``abstain=False``. Probabilities are cached by (model
    sha256, text hash), so texts seen before cost nothing.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> classify_texts(clf, ["card still not here"], top_k=2)["top_labels"]
    [['card_arrival', 'card_delivery_estimate']]
    """
    probs, distance = cached_scores(clf, texts, hashes, cache=cache, batch_size=batch_size)
    k = max(1, min(top_k, len(clf.labels)))
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    _, best = clf.best_in_scope(probs) if len(probs) else (None, np.zeros(0))
    abstained = clf.abstains(probs, distance) if abstain else np.zeros(len(probs), dtype=bool)
    out = {
        "label": clf.decide(probs, abstain=abstain, distance=distance) if not clf.multi_label
        else [clf.labels[r[0]] for r in top],
        "score": [float(x) for x in best],
        "abstained": [bool(x) for x in abstained],
        "top_labels": [[clf.labels[j] for j in r] for r in top],
        "top_scores": [[round(float(probs[i, j]), 6) for j in r] for i, r in enumerate(top)],
    }
    if clf.multi_label:
        out["labels"] = clf.decide(probs)
    return out


def read_table(path: Path):
    """A small CSV, Parquet or JSON Lines file as a DataFrame (by extension).

    For a few texts (e.g. an export's parity check); ``classify --input``
    streams rows with ingest's readers instead (:mod:`inhouse.pipeline.classify`).
    """
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


# ------------------------------------------------------------ row checks ----

def text_problem(value, text_col: str) -> tuple[str | None, str | None]:
    """``(text, None)`` when ``value`` can be classified, else ``(None, "reason: detail")`` (ingest's rules)."""
    if value is None:
        return None, f"missing text: no value in column {text_col!r}"
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as e:
            return None, f"undecodable bytes: column {text_col!r} is not valid utf-8 at byte {e.start}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None, f"text not a string: column {text_col!r} holds a {type(value).__name__}"
    if not value.strip():
        return None, f"empty text: column {text_col!r} is empty or only whitespace"
    return value, None


def id_value(value) -> str | None:
    """An id as ingest stores it (``source_id``): a string, stripped; None when empty."""
    if value is None:
        return None
    s = value.strip() if isinstance(value, str) else str(value)
    return s or None


def check_input(path: Path) -> Path:
    if not path.exists():
        raise InputError(f"{path}: no such file.", fix=f"Check the path (relative paths start at {Path.cwd()}).")
    if path.is_dir():
        raise InputError(f"{path} is a folder; --input reads one file.", fix="Pass a file, e.g. --input new.csv")
    if path.stat().st_size == 0:
        raise InputError(f"{path.name}: the file is empty (0 bytes).", fix="Check that the export finished.")
    return path
