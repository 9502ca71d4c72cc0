"""``classify`` as one operation: every door calls :func:`classify`, and every door reads what it stored.

There is one engine for classifying a dataset or a file: the streamed,
resumable one of :mod:`inhouse.pipeline.classify` (chunks, the version's ONNX
graph, a dataset's predictions kept as its prediction set). The CLI's
``inhouse classify``, the public ``inhouse.classify``, ``POST /classify/jobs``
(its job worker) and the pipeline's classify step all run it, so the same
request gives the same rows from every door.

:func:`stored_predictions` is how a request *reads* predictions (Explore's
*Predicted* filter, a document's prediction): from the prediction set of that
version on that dataset, never by computing them inside the request. When the
set is missing or lacks documents it raises :class:`inhouse.errors.NotClassified`
(HTTP 409) whose fix is the classify job to start.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> r = classify(ws, "intents@production", dataset="tickets")
    >>> r["rows"], r["computed"], r["prediction_set"]
    (13083, 13083, 'prediction_sets/1/64067f5f8d2a41c0')
    >>> stored_predictions(ws, "tickets", "intents@production").model
    'intents@1'
"""

from __future__ import annotations

import numpy as np

from .. import registry
from ..data.predictions import PredictionSet, find_set
from ..errors import NotClassified, NotFound
from ..pipeline.classify import ClassifyOptions, classify as _run, resolve_version
from ..workspace.store import Workspace

__all__ = ["ClassifyOptions", "classify", "stored_predictions", "classify_fix"]


def classify(ws: Workspace, model: str | registry.Version, *, dataset: str | None = None,
             input_path: str | None = None, output: str | None = None, text_col: str = "text",
             id_col: str | None = None, split: str | None = None, where: str | None = None,
             encoding: str = "utf-8", top_k: int = 3, abstain: bool = True, engine: str = "local",
             backend: str = "auto", ray_address: str | None = None, workers: int = 2, chunk_rows: int = 16_384,
             cascade: bool = True, options: ClassifyOptions | None = None, record: bool = True) -> dict:
    """Classify every document of ``dataset`` (kept as its prediction set) or every row of ``input_path``.

    One output row per input row, in input order, with the version that made
    it; ``output`` (.csv, .parquet or .jsonl) is required for ``input_path``
    and optional for a dataset. ``options`` replaces the keyword options
    (``top_k`` ... ``chunk_rows``) when given. Returns rows, computed/reused,
    backend, model and model_sha256, error and label counts, seconds, cost and
    the run id (see :func:`inhouse.pipeline.classify.classify`).
    """
    opts = options or ClassifyOptions(top_k=top_k, chunk_rows=chunk_rows, engine=engine, backend=backend,
                                      ray_address=ray_address, workers=workers, abstain=abstain, cascade=cascade)
    return _run(ws, model, dataset=dataset, input_path=input_path, output=output, text_col=text_col, id_col=id_col,
                split=split, encoding=encoding, options=opts, record=record, where=where)


def classify_fix(model: str, dataset: str) -> str:
    """The fix a person is offered where predictions are missing: the job (or command) that stores them."""
    return (f"Classify the dataset first (only documents without a prediction are computed): "
            f"POST /classify/jobs {{\"model\": \"{model}\", \"dataset\": \"{dataset}\"}}, "
            f"or: inhouse classify {model} --dataset {dataset}")


def stored_predictions(ws: Workspace, dataset: str, model: str,
                       doc_ids: np.ndarray | None = None) -> PredictionSet:
    """The prediction set of version ``model`` on ``dataset``, holding a prediction for every document of
    ``doc_ids`` (default: every document of the dataset).

    Reads only what classify stored; raises :class:`NotClassified` (409) naming
    how many documents have none and the classify job that fills them in.
    """
    ws.dataset(dataset)
    v = resolve_version(ws, model)
    try:
        pset = find_set(ws, dataset, v.sha256)
    except NotFound:
        pset = None
    done = pset.done_doc_ids() if pset is not None else np.zeros(0, dtype=np.int64)
    if doc_ids is None:
        doc_ids = _all_doc_ids(ws, dataset)
    missing = int((~np.isin(np.asarray(doc_ids, dtype=np.int64), done)).sum()) if len(doc_ids) else 0
    if pset is None or missing:
        what = ("has no stored predictions" if not len(done) else
                f"has no stored prediction for {missing:,} of its {len(doc_ids):,} documents asked for")
        raise NotClassified(f"dataset {dataset!r} {what} by {v.ref} (sha256 {v.sha256[:12]}); requests read stored "
                            "predictions and never classify a whole dataset themselves.",
                            fix=classify_fix(v.ref, dataset))
    return pset


def _all_doc_ids(ws: Workspace, dataset: str) -> np.ndarray:
    import pyarrow.parquet as pq

    arrays = [pq.read_table(p, columns=["doc_id"]).column(0).to_numpy() for p in ws.dataset_parts(dataset)]
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)


def document_prediction(ws: Workspace, dataset: str, doc_id: int, text: str, text_hash: str, model: str) -> dict:
    """The version's answer for one document: as classify stored it (what Explore's filter reads), else computed
    for this one text (cached by text hash), decided by the same rule (abstention included)."""
    v = registry.resolve(ws, model)
    try:
        pset = find_set(ws, dataset, v.sha256)
    except NotFound:
        pset = None
    s = None
    if pset is not None and pset.parts():
        import duckdb

        con = duckdb.connect()
        try:
            s = con.execute(f"SELECT label, score, abstained, top_labels, top_scores FROM {pset.sql_source()} "
                            "WHERE doc_id = ? AND label IS NOT NULL LIMIT 1", [doc_id]).fetchone()
        finally:
            con.close()
    if s is not None:
        return {"model": v.ref, "sha256": v.sha256, "label": s[0], "score": round(float(s[1]), 6),
                "abstained": bool(s[2]), "stored": True,
                "top": [{"label": l, "score": round(float(p), 6)} for l, p in zip(s[3], s[4])]}
    from ..classifiers.load import load_classifier
    from ..classifiers.predict import classify_texts

    clf = load_classifier(ws, model)
    p = classify_texts(clf, [text], [text_hash], top_k=5)
    return {"model": clf.version.ref, "sha256": clf.sha256, "label": p["label"][0], "score": round(p["score"][0], 6),
            "abstained": p["abstained"][0], "stored": False,
            "top": [{"label": l, "score": sc} for l, sc in zip(p["top_labels"][0], p["top_scores"][0])]}
