"""``classify``: every row of a dataset or a file, streamed in chunks, resumable, exactly once.

Input is read in chunks of ``chunk_rows`` rows (bounded memory whatever its
size); within a chunk identical texts are computed once
(:func:`inhouse.pipeline.engine.predict_unique`). Each finished chunk is kept
at once, written to a temporary name and renamed:

- ``--dataset``: as a part of the dataset's prediction set for the version
  (:mod:`inhouse.data.predictions`), keyed by (dataset, model sha256). Run
  again, only documents without a prediction are computed: after a kill, or
  after new files were ingested; with the same version and nothing new,
  nothing is computed.
- ``--input``: as a numbered chunk under ``tmp/classify/<key>/`` of the
  workspace, where the key hashes the file (path, size, mtime), the version and
  the options. Run again with the same command, finished chunks are skipped.

The output file is then written from the kept chunks, in input order, to a
temporary name and renamed, so it holds every input row exactly once.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> r = classify(ws, "intents@production", dataset="tickets", output="preds.parquet")
    >>> r["rows"], r["backend"], r["computed"]
    (13083, 'onnx-int8', 13083)
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .. import registry
from ..classifiers.base import DecisionRule
from ..classifiers.predict import check_input, id_value, text_problem
from ..data.predictions import PredictionSet, prediction_schema
from ..data.readers import check_encoding, open_reader
from ..errors import ColumnNotFound, UsageError
from ..progress import task
from ..workspace.costs import CostMeter, record_cost
from ..workspace.documents import ROW_COLUMN, id_column, id_output_name
from ..workspace.files import atomic_path
from ..workspace.store import Workspace
from .chunks import Chunk, chunk_table, make_chunk
from .cascade import load_fast_predictor
from .engine import EngineOptions, Predictor, predict_unique
from .outputs import TableWriter, check_output

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class ClassifyOptions:
    """Everything that decides how (not what) classify computes."""

    top_k: int = 3
    chunk_rows: int = 16_384
    engine: str = "local"
    backend: str = "auto"
    ray_address: str | None = None
    workers: int = 2
    abstain: bool = True  # False: the most likely in-scope label even where the version would say "other"
    cascade: bool = True  # False: the transformer answers every text (no static-embedding cascade)
    engine_options: EngineOptions = field(default_factory=EngineOptions)

    def validate(self) -> "ClassifyOptions":
        if self.engine not in ENGINES:
            raise UsageError(f"--engine must be one of {list(ENGINES)}, found {self.engine!r}.")
        if self.chunk_rows < 1 or self.top_k < 1 or self.workers < 1:
            raise UsageError("chunk_rows, top_k and workers must be at least 1.")
        return self


class LocalRunner:
    """Computes each chunk in this process as it comes (ONNX Runtime on every core)."""

    def __init__(self, make_predictor: Callable[[list[str]], Predictor], top_k: int, meter: CostMeter):
        self.make_predictor, self.top_k, self.meter = make_predictor, top_k, meter
        self.predictor: Predictor | None = None

    def run(self, chunks: Iterator[Chunk], keep: Callable[[Chunk, dict], None], progress) -> None:
        """Chunks are computed in background threads (as many at once as the predictor allows) while this
        thread reads the next chunk and keeps the finished ones, in input order."""
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        def compute(c: Chunk):
            return predict_unique(self.predictor, c.unique, top_k=self.top_k) if c.unique else ({}, 0)

        def finish(c: Chunk, cols: dict, tokens: int) -> None:
            keep(c, cols)
            self.meter.add(documents=c.rows, tokens=tokens)
            progress(c.rows, len(c.unique))

        pending: deque = deque()
        pool = None
        try:
            for c in chunks:
                if self.predictor is None:
                    self.predictor = self.make_predictor(c.unique)
                    depth = max(1, self.predictor.concurrent_chunks)
                    pool = ThreadPoolExecutor(depth, thread_name_prefix="inhouse-chunk")
                pending.append((c, pool.submit(compute, c)))
                while len(pending) > depth:
                    c0, f = pending.popleft()
                    finish(c0, *f.result())
            while pending:
                c0, f = pending.popleft()
                finish(c0, *f.result())
        finally:
            if pool is not None:
                for _, f in pending:
                    f.cancel()
                pool.shutdown(wait=True)
            if self.predictor is not None:
                self.predictor.close()

    def info(self) -> dict:
        return self.predictor.info() if self.predictor else {"backend": "none (nothing to compute)"}


def resolve_version(ws: Workspace, ref: str | registry.Version) -> registry.Version:
    v = registry.verify(registry.resolve(ws, ref))
    if not v.manifest.get("labels"):
        raise UsageError(f"{v.ref} is not a classifier (its manifest lists no labels).",
                         fix="Use a version made by: inhouse train")
    return v


def _runner(ws: Workspace, v: registry.Version, opts: ClassifyOptions, meter: CostMeter, scratch: Path):
    def make(sample: list[str]) -> Predictor:
        return load_fast_predictor(ws, v, backend=opts.backend, sample=sample,
                                   options=replace(opts.engine_options, cascade=opts.cascade))

    if opts.engine == "ray":
        from .rayengine import RayRunner

        return RayRunner(ws, v, make, opts, meter, scratch)
    return LocalRunner(make, opts.top_k, meter)


# ----------------------------------------------------------------- dataset ----

def _dataset_chunks(ws: Workspace, dataset: str, split: str | None, done: np.ndarray, chunk_rows: int,
                    allowed: np.ndarray | None = None) -> Iterator[Chunk]:
    """The documents without a prediction, in doc id order, in chunks (streamed part by part)."""
    import pyarrow.parquet as pq

    keys: list[int] = []
    texts: list = []
    hashes: list = []  # each document's text hash, read with its text: the prediction set keeps it per row
    index = 0
    for part in ws.dataset_parts(dataset):
        pf = pq.ParquetFile(part)
        has_hash = "text_hash" in pf.schema_arrow.names
        cols = ["doc_id", "text"] + (["text_hash"] if has_hash else []) + (["split"] if split is not None else [])
        for batch in pf.iter_batches(batch_size=min(chunk_rows, 65_536), columns=cols):
            ids = batch.column("doc_id").to_numpy(zero_copy_only=False)
            keep = np.ones(len(ids), dtype=bool)
            if len(done):
                pos = np.searchsorted(done, ids).clip(max=len(done) - 1)
                keep &= done[pos] != ids
            if split is not None:
                keep &= np.array([s == split for s in batch.column("split").to_pylist()], dtype=bool)
            if allowed is not None:  # --where: only the documents it selects
                keep &= np.isin(ids, allowed)
            if not keep.any():
                continue
            idx = np.flatnonzero(keep)
            keys += ids[idx].tolist()
            texts += batch.column("text").take(idx).to_pylist()
            hashes += batch.column("text_hash").take(idx).to_pylist() if has_hash else [None] * len(idx)
            while len(keys) >= chunk_rows:
                yield _doc_chunk(index, keys[:chunk_rows], texts[:chunk_rows], hashes[:chunk_rows])
                index += 1
                keys, texts, hashes = keys[chunk_rows:], texts[chunk_rows:], hashes[chunk_rows:]
    if keys:
        yield _doc_chunk(index, keys, texts, hashes)


def _doc_chunk(index: int, doc_ids: list[int], texts: list, hashes: list) -> Chunk:
    checked = [text_problem(t, "text") for t in texts]
    return make_chunk(index, {"doc_id": doc_ids, "text_hash": hashes}, [t for t, _ in checked],
                      [e for _, e in checked])


def count_docs(ws: Workspace, dataset: str, split: str | None) -> int:
    """How many documents ``dataset`` has (in ``split``), counted in DuckDB without reading their texts."""
    import duckdb

    parts = [str(p) for p in ws.dataset_parts(dataset)]
    if not parts:
        return 0
    con = duckdb.connect()
    try:
        where = "WHERE split = ?" if split is not None else ""
        return int(con.execute(f"SELECT count(*) FROM read_parquet(?) {where}",
                               [parts] + ([split] if split is not None else [])).fetchone()[0])
    finally:
        con.close()


def output_schema(id_name: str | None, with_doc_id: bool, multi_label: bool):
    import pyarrow as pa

    fields = [(id_name, pa.string())] if id_name else []
    fields.append((ROW_COLUMN, pa.int64()))
    if with_doc_id:
        fields.append(("doc_id", pa.int64()))
    fields += [(f.name, f.type) for f in prediction_schema(multi_label) if f.name not in ("doc_id", "best_label")]
    fields += [("model", pa.string()), ("model_sha256", pa.string())]
    return pa.schema(fields)


def _write_dataset_output(ws: Workspace, pset: PredictionSet, dataset: str, split: str | None, v: registry.Version,
                          output: Path, id_name: str | None, *, abstain: bool = True,
                          allowed: np.ndarray | None = None) -> tuple[int, Counter, Counter]:
    """Join documents and their predictions in doc id order, streamed into the output file."""
    import duckdb

    schema = output_schema(id_name, True, bool(v.manifest.get("multi_label")))
    docs = [str(p) for p in ws.dataset_parts(dataset)]
    pred_cols = [n for n in schema.names if n in prediction_schema(bool(v.manifest.get("multi_label"))).names
                 and n != "doc_id"]
    conds = (["d.split = ?"] if split is not None else []) + (["d.doc_id IN (SELECT unnest(?::BIGINT[]))"]
                                                             if allowed is not None else [])
    where = ("WHERE " + " AND ".join(conds)) if conds else ""
    sel = ([f"d.source_id AS \"{id_name}\""] if id_name else []) + [f"d.source_row AS {ROW_COLUMN}", "d.doc_id"]
    answer = {"label": "COALESCE(p.best_label, p.label) AS label", "abstained": "false AS abstained"}  # --no-abstain
    sel += [answer[c] if not abstain and c in answer else f"p.{c}" for c in pred_cols] + ["? AS model", "? AS model_sha256"]
    labels, reasons = Counter(), Counter()
    con = duckdb.connect()
    try:
        con.execute("SET memory_limit = '1GB'")
        con.execute("SET threads = 2")
        q = (f"SELECT {', '.join(sel)} FROM read_parquet(?) d LEFT JOIN {pset.sql_source()} p USING (doc_id) "
             f"{where} ORDER BY d.doc_id")
        params = [v.ref, v.sha256, docs] + ([split] if split is not None else []) + (
            [allowed.tolist()] if allowed is not None else [])
        reader = con.sql(q, params=params).to_arrow_reader(65_536)
        with TableWriter(output, schema) as w:
            import pyarrow as pa

            for batch in reader:
                t = pa.Table.from_batches([batch])
                w.write(t)
                labels.update(x for x in t.column("label").to_pylist() if x is not None)
                reasons.update(e.split(":", 1)[0] for e in t.column("error").to_pylist() if e)
            rows = w.rows
    finally:
        con.close()
    return rows, labels, reasons


def _set_counts(pset: PredictionSet, ws: Workspace, dataset: str, split: str | None) -> tuple[Counter, Counter]:
    import duckdb

    if not pset.parts():
        return Counter(), Counter()
    con = duckdb.connect()
    try:
        src = pset.sql_source()
        if split is not None:
            docs = [str(p) for p in ws.dataset_parts(dataset)]
            src = f"(SELECT p.* FROM {src} p JOIN read_parquet(?) d USING (doc_id) WHERE d.split = ?)"
            params = [docs, split]
        else:
            params = []
        labels = Counter(dict(con.execute(f"SELECT label, count(*) FROM {src} WHERE label IS NOT NULL GROUP BY label",
                                          params).fetchall()))
        reasons = Counter(dict(con.execute(f"SELECT split_part(error, ':', 1), count(*) FROM {src} WHERE error IS NOT "
                                           "NULL GROUP BY 1", params).fetchall()))
    finally:
        con.close()
    return labels, reasons


def classify_dataset(ws: Workspace, v: registry.Version, dataset: str, *, split: str | None, output: Path | None,
                     opts: ClassifyOptions, meter: CostMeter, where: str | None = None) -> dict:
    pset = PredictionSet.open(ws, dataset, v.ref, v.sha256)
    done = pset.done_doc_ids()
    allowed = None
    if where:
        from ..workspace.filters import matching_doc_ids

        allowed = np.sort(np.asarray(matching_doc_ids(ws, dataset, where), dtype=np.int64))
        done = done[np.isin(done, allowed)] if len(done) else done
    total = count_docs(ws, dataset, split) if allowed is None else len(allowed)
    multi = bool(v.manifest.get("multi_label"))
    schema = prediction_schema(multi)
    runner = _runner(ws, v, opts, meter, ws.dir("tmp", "classify-ray", f"{pset.dataset_id}-{v.sha256[:16]}"))
    computed = [0, 0]

    def keep(c: Chunk, cols: dict) -> None:
        hashes = c.keys.get("text_hash")  # read with the texts: no look-up of the documents per part
        pset.add(chunk_table(c, cols, schema), text_hashes=None if hashes is None or None in hashes else hashes)
        computed[0] += c.rows

    with task(f"classifying {dataset} with {v.ref}", total=max(total - len(done), 0), unit="doc") as t:
        def progress(rows: int, unique: int) -> None:
            computed[1] += unique
            t.advance(rows)

        runner.run(_dataset_chunks(ws, dataset, split, done, opts.chunk_rows, allowed), keep, progress)
    id_name = id_output_name(id_column(ws, dataset), output_schema(None, True, multi).names)
    if output is not None:
        rows, labels, reasons = _write_dataset_output(ws, pset, dataset, split, v, output, id_name,
                                                      abstain=opts.abstain, allowed=allowed)
    else:
        labels, reasons = _set_counts(pset, ws, dataset, split)
        rows = total
    return {"rows": rows, "computed": computed[0], "unique_texts_computed": computed[1],
            "reused": rows - computed[0], "id_column": id_name, "prediction_set": str(pset.path.relative_to(ws.home)),
            "errors": int(sum(reasons.values())), "error_reasons": dict(reasons),
            "label_counts": dict(labels.most_common(20)), **runner.info()}


# -------------------------------------------------------------------- file ----

def _checkpoint_key(path: Path, v: registry.Version, text_col: str, id_col: str | None, encoding: str,
                    opts: ClassifyOptions) -> str:
    st = path.stat()
    what = {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "model": v.sha256,
            "text_col": text_col, "id_col": id_col, "encoding": encoding, "top_k": opts.top_k,
            "chunk_rows": opts.chunk_rows, "backend": opts.backend, "cascade": opts.cascade}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:32]


def _file_chunks(reader, text_col: str, id_col: str | None, id_name: str | None, chunk_rows: int,
                 skip: Callable[[int], bool]) -> Iterator[Chunk]:
    rows, ids, texts, errors = [], [], [], []
    index = 0
    for r in reader.rows():
        rows.append(r.row)
        values = r.values or {}
        ids.append(id_value(values.get(id_col)) if id_col else None)
        if r.problem is not None:
            texts.append(None)
            errors.append(f"{r.problem[0]}: {r.problem[1]}")
        else:
            t, e = text_problem(values.get(text_col), text_col)
            texts.append(t)
            errors.append(e)
        if len(rows) == chunk_rows:
            if not skip(index):
                yield make_chunk(index, _file_keys(id_name, ids, rows), texts, errors)
            index += 1
            rows, ids, texts, errors = [], [], [], []
    if rows and not skip(index):
        yield make_chunk(index, _file_keys(id_name, ids, rows), texts, errors)


def _file_keys(id_name: str | None, ids: list, rows: list) -> dict[str, list]:
    keys = {id_name: ids} if id_name else {}
    keys[ROW_COLUMN] = rows
    return keys


def classify_file(ws: Workspace, v: registry.Version, path: Path, *, text_col: str, id_col: str | None,
                  encoding: str, output: Path, opts: ClassifyOptions, meter: CostMeter) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = check_input(path)
    multi = bool(v.manifest.get("multi_label"))
    id_name = id_output_name(id_col, output_schema(None, False, multi).names)
    schema = output_schema(id_name, False, multi)
    part_schema = pa.schema([f for f in schema if f.name not in ("model", "model_sha256")])
    ckpt = ws.dir("tmp", "classify", _checkpoint_key(path, v, text_col, id_col, encoding, opts))
    have = {int(p.name[6:14]) for p in ckpt.glob("chunk-*.parquet")}
    resumed = sum(pq.ParquetFile(ckpt / f"chunk-{i:08d}.parquet").metadata.num_rows for i in have)
    reader = open_reader(path, encoding=check_encoding(encoding))
    computed = [0, 0]
    try:
        if getattr(reader, "sampled_objects", None) != 0:  # JSONL whose first lines all fail: every row says why
            for col, flag in ((text_col, "--text-col"), (id_col, "--id-col")):
                if col is not None and col not in reader.columns:
                    raise ColumnNotFound(path.name, col, reader.columns, flag)
        runner = _runner(ws, v, opts, meter, ckpt / "ray")

        def keep(c: Chunk, cols: dict) -> None:
            if not opts.abstain and "best_label" in cols:  # --no-abstain: the most likely in-scope label
                cols = {**cols, "label": cols["best_label"], "abstained": [False] * len(cols["best_label"])}
            with atomic_path(ckpt / f"chunk-{c.index:08d}.parquet") as tmp:
                pq.write_table(chunk_table(c, cols, part_schema), tmp)
            computed[0] += c.rows

        with task(f"classifying {path.name} with {v.ref}", unit="row") as t:
            def progress(rows: int, unique: int) -> None:
                computed[1] += unique
                t.advance(rows)

            runner.run(_file_chunks(reader, text_col, id_col, id_name, opts.chunk_rows, lambda i: i in have),
                       keep, progress)
        blank = reader.blank
    finally:
        reader.close()
    labels, reasons = Counter(), Counter()
    parts = sorted(ckpt.glob("chunk-*.parquet"))
    with TableWriter(output, schema) as w:
        for p in parts:
            t = pq.read_table(p)
            t = t.append_column("model", pa.array([v.ref] * t.num_rows, pa.string()))
            t = t.append_column("model_sha256", pa.array([v.sha256] * t.num_rows, pa.string()))
            w.write(t)
            labels.update(x for x in t.column("label").to_pylist() if x is not None)
            reasons.update(e.split(":", 1)[0] for e in t.column("error").to_pylist() if e)
        rows = w.rows
    shutil.rmtree(ckpt, ignore_errors=True)
    return {"rows": rows, "computed": computed[0], "unique_texts_computed": computed[1], "resumed_rows": resumed,
            "id_column": id_name, "blank_lines": blank, "errors": int(sum(reasons.values())),
            "error_reasons": dict(reasons), "label_counts": dict(labels.most_common(20)), **runner.info()}


# ------------------------------------------------------------------ public ----

def classify(ws: Workspace, ref: str | registry.Version, *, dataset: str | None = None, input_path: str | None = None,
             output: str | None = None, text_col: str = "text", id_col: str | None = None, split: str | None = None,
             encoding: str = "utf-8", options: ClassifyOptions | None = None, record: bool = True,
             where: str | None = None) -> dict:
    """Classify every document of ``dataset`` (stored as a prediction set) or every row of ``input_path``.

    Returns rows, seconds, docs_per_second, backend, model and model_sha256,
    what was computed and reused, error counts, label counts and the cost block.
    """
    opts = (options or ClassifyOptions()).validate()
    if (dataset is None) == (input_path is None):
        raise UsageError("give exactly one of --dataset or --input.", fix="Example: --dataset tickets, or --input new.csv")
    if where and dataset is None:
        raise UsageError("--where selects documents of --dataset; it does not apply to --input.",
                         fix="Ingest the file first, or filter it before classifying.")
    if input_path is not None and output is None:
        raise UsageError("--input needs --output FILE (.csv, .parquet or .jsonl).")
    if dataset is not None:
        ws.dataset(dataset)
        if id_col is not None and id_col != id_column(ws, dataset):
            raise UsageError(f"--id-col names a column of --input; the ids of dataset {dataset!r} come from its ingest "
                             f"(id column: {id_column(ws, dataset) or 'none, so rows are numbered'}).",
                             fix="Leave out --id-col: the output already has the dataset's ids.")
    out = check_output(output) if output else None
    if input_path is not None:
        check_input(Path(input_path))
    if opts.engine == "ray":
        from .rayengine import require_ray

        require_ray(local=not opts.ray_address)
    v = resolve_version(ws, ref)
    t0 = time.time()
    with CostMeter() as meter:
        if dataset is not None:
            r = classify_dataset(ws, v, dataset, split=split, output=out, opts=opts, meter=meter, where=where)
        else:
            r = classify_file(ws, v, Path(input_path), text_col=text_col, id_col=id_col, encoding=encoding,
                              output=out, opts=opts, meter=meter)
        meter.add(reused=r.get("reused") or 0)  # stored predictions: shown as reused, not billed as computed
    cost = meter.result(ws)
    seconds = round(time.time() - t0, 3)
    rule = DecisionRule(v.manifest)
    abstains = opts.abstain and rule.can_abstain
    r["abstain_label"] = rule.other_label if abstains else None
    r["abstained"] = int(r.get("label_counts", {}).get(rule.other_label, 0)) if abstains else 0
    result = {"output": str(out) if out else None, "dataset": dataset, "input": input_path, "where": where, **r,
              "model": v.ref, "model_sha256": v.sha256, "engine": opts.engine, "seconds": seconds,
              "docs_per_second": round(r["rows"] / seconds, 1) if seconds > 0 else None, "cost": cost}
    if record:
        run_id = ws.record_run("classify", {"dataset": dataset, "input": input_path, "output": result["output"],
                                            "split": split, "encoding": encoding if input_path else None,
                                            **{k: v_ for k, v_ in asdict(opts).items() if k != "engine_options"}},
                               {k: x for k, x in result.items() if k != "cost"}, model=v.ref, model_sha256=v.sha256,
                               started_at=t0)
        record_cost(ws, run_id, "classify", cost)
        result["run_id"] = run_id
    return result
