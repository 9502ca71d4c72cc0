"""Batch prediction: cached probabilities, top-k, and ``classify`` of a dataset or a file.

:func:`classify_texts` is the one core of batch prediction (cache, top-k);
:func:`classify` wraps it for a dataset or a file and writes the output file.
A file is read row by row with ingest's readers (:func:`inhouse.data.readers.open_reader`),
so it is numbered, decoded and quoted exactly as ``inhouse ingest`` would.

    Illustrative (needs a workspace with data; not run as a doctest):
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
from ..data.readers import check_encoding, open_reader
from ..workspace.documents import (ROW_COLUMN, TABLE_SUFFIXES, id_column, id_output_name, read_documents,
                                   write_table)
from ..workspace.files import text_hash
from ..workspace.store import Workspace
from .base import Classifier
from .load import load_classifier

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
    probs = cached_proba(clf, texts, hashes, cache=cache, batch_size=batch_size)
    k = max(1, min(top_k, len(clf.labels)))
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    _, best = clf.best_in_scope(probs) if len(probs) else (None, np.zeros(0))
    abstained = clf.abstains(probs) if abstain else np.zeros(len(probs), dtype=bool)
    out = {
        "label": clf.decide(probs, abstain=abstain) if not clf.multi_label else [clf.labels[r[0]] for r in top],
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
    streams rows with ingest's readers instead (:func:`classify`).
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


# --------------------------------------------------------------- classify ----

class _Predictions:
    """Output columns filled row by row; rows without a usable text get ``error`` and no label."""

    def __init__(self, clf: Classifier, top_k: int, cache: bool, abstain: bool = True):
        self.clf, self.top_k, self.cache, self.abstain = clf, top_k, cache, abstain
        self.cols: dict[str, list] = {k: [] for k in ("label", "score", "abstained", "top_labels", "top_scores")}
        if clf.multi_label:
            self.cols["labels"] = []
        self.error: list[str | None] = []
        self._todo: list[tuple[int, str, str | None]] = []  # (output row, text, hash)

    @property
    def names(self) -> list[str]:
        """The output's own columns (a user's id column of the same name is written as ``source_id``)."""
        return [*self.cols, "error", "model", "model_sha256"]

    @property
    def pending(self) -> int:
        """Rows waiting for :meth:`flush`."""
        return len(self._todo)

    def add(self, text: str | None, error: str | None = None, text_hash: str | None = None) -> None:
        i = len(self.error)
        for k, col in self.cols.items():
            col.append([] if k in ("top_labels", "top_scores", "labels") else None)
        self.error.append(error)
        if error is None:
            self._todo.append((i, text, text_hash))

    def flush(self) -> None:
        if not self._todo:
            return
        rows, texts, hashes = zip(*self._todo)
        hashes = [h if h is not None else text_hash(t) for t, h in zip(texts, hashes)]
        pred = classify_texts(self.clf, list(texts), hashes, top_k=self.top_k, cache=self.cache, abstain=self.abstain)
        for k, col in self.cols.items():
            for i, v in zip(rows, pred[k]):
                col[i] = v
        self._todo = []

    def frame(self, keys: dict[str, list]):
        import pandas as pd

        self.flush()
        df = pd.DataFrame({**keys, **self.cols})
        df["score"] = pd.array(self.cols["score"], dtype="Float64")
        df["abstained"] = pd.array(self.cols["abstained"], dtype="boolean")
        df["error"] = pd.array(self.error, dtype="string")
        df["model"], df["model_sha256"] = self.clf.version.ref, self.clf.sha256
        return df


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


def _classify_dataset(ws: Workspace, clf: Classifier, dataset: str, split: str | None, top_k: int, cache: bool,
                      where: str | None = None, abstain: bool = True):
    df = read_documents(ws, dataset, columns=["doc_id", "text", "text_hash", "source_id", "source_row"], split=split,
                        where=where)
    preds = _Predictions(clf, top_k, cache, abstain)
    for text, h in zip(df["text"].tolist(), df["text_hash"].tolist()):
        t, err = text_problem(text, "text")
        preds.add(t, err, h)
    id_name = id_output_name(id_column(ws, dataset), preds.names)
    keys: dict[str, list] = {}
    if id_name:
        keys[id_name] = [None if v is None else str(v) for v in df["source_id"].tolist()]
    keys[ROW_COLUMN] = [None if v is None or v != v else int(v) for v in df["source_row"].tolist()]
    keys["doc_id"] = df["doc_id"].astype("int64").tolist()
    return preds.frame(keys), {"id_column": id_name}


def _classify_file(clf: Classifier, path: Path, text_col: str, id_col: str | None, encoding: str,
                   top_k: int, cache: bool, chunk_rows: int, abstain: bool = True):
    """Stream the rows of ``path`` with ingest's readers; one output row per input row, in order."""
    path = check_input(path)
    reader = open_reader(path, encoding=check_encoding(encoding))
    try:
        if getattr(reader, "sampled_objects", None) != 0:  # JSONL whose first lines all fail: every row says why
            for col, flag in ((text_col, "--text-col"), (id_col, "--id-col")):
                if col is not None and col not in reader.columns:
                    raise ColumnNotFound(path.name, col, reader.columns, flag)
        preds = _Predictions(clf, top_k, cache, abstain)
        ids: list[str | None] = []
        rows: list[int] = []
        for r in reader.rows():
            rows.append(r.row)
            values = r.values or {}
            ids.append(id_value(values.get(id_col)) if id_col else None)
            if r.problem is not None:
                preds.add(None, f"{r.problem[0]}: {r.problem[1]}")
            else:
                preds.add(*text_problem(values.get(text_col), text_col))
            if preds.pending >= chunk_rows:
                preds.flush()
        blank = reader.blank
    finally:
        reader.close()
    id_name = id_output_name(id_col, preds.names)
    keys = {id_name: ids} if id_name else {}
    keys[ROW_COLUMN] = rows
    return preds.frame(keys), {"id_column": id_name, "blank_lines": blank}


def classify(ws: Workspace, ref: str, *, output: str, dataset: str | None = None, input_path: str | None = None,
             text_col: str = "text", id_col: str | None = None, split: str | None = None, top_k: int = 3,
             cache: bool = True, encoding: str = "utf-8", chunk_rows: int = 10_000, where: str | None = None,
             abstain: bool = True) -> dict:
    """Predict every row of a dataset or file and write one row per input, in input order.

    Every output row carries ``row`` (the 1-based data row of the source file,
    as ingest numbers it: header and blank CSV lines not counted), the user's
    id (``--id-col`` of the file, or the dataset's ingest ``--id-col``), and
    ``error``: null, or why the row got no label (``empty text: ...``, or the
    reader's problem such as ``malformed row: ...``). ``--dataset`` outputs also
    carry the internal ``doc_id``. ``where`` keeps only the documents of the
    dataset for which the filter holds; ``abstain=False`` always answers a
    label of the model, never its ``other``.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> classify(ws, "intents", dataset="banking77", output="preds.parquet")["rows"]
    13083
    """
    import pandas as pd

    if (dataset is None) == (input_path is None):
        raise UsageError("give exactly one of --dataset or --input.", fix="Example: --dataset tickets, or --input new.csv")
    if where and dataset is None:
        raise UsageError("--where filters the documents of --dataset; it does not apply to --input.",
                         fix="Ingest the file first, or leave out --where.")
    if input_path is None and id_col is not None and id_col != id_column(ws, dataset):
        raise UsageError(f"--id-col names a column of --input; the ids of dataset {dataset!r} come from its ingest "
                         f"(id column: {id_column(ws, dataset) or 'none, so rows are numbered'}).",
                         fix="Leave out --id-col: the output already has the dataset's ids.")
    if chunk_rows < 1:
        raise UsageError(f"chunk_rows must be at least 1, found {chunk_rows}.")
    if Path(output).suffix.lower() not in TABLE_SUFFIXES:  # say so before the work, not after it:
        write_table(None, output, what="predictions")  # checks the extension first and raises its UsageError
    t0 = time.time()
    clf = load_classifier(ws, ref)
    if dataset is not None:
        df, extra = _classify_dataset(ws, clf, dataset, split, top_k, cache, where, abstain)
    else:
        df, extra = _classify_file(clf, Path(input_path), text_col, id_col, encoding, top_k, cache, chunk_rows,
                                   abstain)
    out = Path(output)
    write_table(df, out, what="predictions")
    errors = df["error"].dropna()
    reasons = {k: int(v) for k, v in errors.map(lambda e: e.split(":", 1)[0]).value_counts().items()}
    result = {"output": str(out), "rows": len(df), "errors": int(len(errors)), "error_reasons": reasons,
              "where": where, "abstained": int(df["abstained"].fillna(False).sum()),
              "abstain_label": clf.other_label if clf.can_abstain and abstain else None, **extra, "model": clf.version.ref, "model_sha256": clf.sha256,
              "seconds": round(time.time() - t0, 3),
              "label_counts": {k: int(v) for k, v in
                               pd.Series(df["label"], dtype=object).dropna().value_counts().head(20).items()}}
    ws.record_run("classify", {"dataset": dataset, "input": input_path, "output": str(out), "top_k": top_k,
                               "encoding": encoding if input_path else None, "where": where, "abstain": abstain},
                  result, model=clf.version.ref, model_sha256=clf.sha256, started_at=t0)
    return result
