"""The steps a pipeline file may name; each returns ``(result, rows processed, output paths)``.

Results are plain JSON (kept in the run record, so a skipped step's result is
read back for the report); tables go to Parquet beside the report.
"""

from __future__ import annotations

from pathlib import Path

from ..workspace.costs import CostMeter
from .spec import Step


def step_ingest(run, step: Step, meter: CostMeter):
    from ..data.ingest import ingest

    o = step.options
    files = [p for p in sorted(run.spec.folder.glob(o["path"])) if p.is_file()] \
        if not Path(o["path"]).is_absolute() else [p for p in sorted(Path("/").glob(o["path"].lstrip("/"))) if p.is_file()]
    stored, new_files, seen = 0, [], 0
    for f in files:
        r = ingest(run.ws, f, run.spec.dataset, text_col=o["text_col"], time_col=o["time_col"], id_col=o["id_col"],
                   label_col=o["label_col"], split_col=o["split_col"], redact_pii=o["redact_pii"],
                   encoding=o["encoding"])
        if r.skipped:
            seen += 1
            continue
        stored += r.stored
        new_files.append({"file": f.name, "stored": r.stored, "quarantined": r.quarantined,
                          "duplicates": r.duplicates})
    return {"files": len(files), "new_files": new_files, "already_ingested": seen, "stored": stored}, stored, []


def step_classify(run, step: Step, meter: CostMeter):
    from .classify import ClassifyOptions, classify

    o = step.options
    opts = ClassifyOptions(top_k=o["top_k"], chunk_rows=o["chunk_rows"], engine=o["engine"],
                           ray_address=o["ray_address"], workers=o["workers"], cascade=o["cascade"])
    out = run.out_dir / o["output"]
    r = classify(run.ws, run.version, dataset=run.spec.dataset, output=str(out), options=opts)
    meter.add(documents=r["computed"], tokens=r["cost"]["tokens"], reused=r.get("reused") or 0)
    keep = ("rows", "computed", "reused", "backend", "precision", "agreement_with_torch", "parity_texts", "fallback",
            "errors", "error_reasons", "label_counts", "model", "model_sha256", "docs_per_second", "seconds",
            "cost", "run_id", "id_column", "cascade", "prepared")
    return {k: r.get(k) for k in keep}, r["computed"], [out]


def step_embed(run, step: Step, meter: CostMeter):
    from ..models.embeddings import embed_dataset  # the function `inhouse embed` runs: cached, resumable chunks

    r = embed_dataset(run.ws, run.spec.dataset, step.options["model"])[0].to_dict()
    meter.add(documents=r["computed"])
    return r, r["computed"], []


def step_summarize(run, step: Step, meter: CostMeter):
    import pandas as pd

    from ..analysis.summarize import counts, summarize

    o = step.options
    out = summarize(run.ws, run.spec.dataset, by=run.col(o["by"]), n_docs=o["n_docs"], llm=o["llm"])
    rows = [{**s.to_dict(), "by": o["by"]} for s in out]
    path = run.out_dir / "summaries.parquet"
    df = pd.DataFrame(rows)
    if len(df):
        df["ids"] = df["ids"].map(lambda v: [None if x is None else str(x) for x in v])
    _write(df, path)
    return {"summaries": rows, "by": o["by"], **counts(out)}, int(sum(s.size for s in out)), [path]


def step_discover(run, step: Step, meter: CostMeter):
    import pandas as pd

    from ..topics.discover import discover

    o = step.options
    res = discover(run.ws, run.spec.dataset, within=run.col(o["within"]), model=o["model"], seed=o["seed"],
                   n_topics=o["n_topics"], llm=o["llm"], min_topic_size=o["min_topic_size"])
    topics = [t.to_dict() for t in res.topics]
    path = run.out_dir / "subtopics.parquet"
    df = pd.DataFrame(topics)
    if len(df):
        df["representative_ids"] = df["representative_ids"].map(lambda v: [None if x is None else str(x) for x in v])
    _write(df, path)
    return {"run_id": res.run_id, "within": o["within"], "n_topics": res.n_topics, "topics": topics,
            "themes": [t.to_dict() for t in res.themes],
            "id_column": res.id_column, "seconds": res.seconds}, res.n_documents, [path]


def step_trends(run, step: Step, meter: CostMeter):
    import pandas as pd

    from ..analysis.trends import trends

    o = step.options
    kw = dict(every=o["every"], recent=o["recent"], alpha=float(o["alpha"]), min_ratio=float(o["min_ratio"]),
              recent_from=o["recent_from"], until=o["until"])
    cats = trends(run.ws, run.spec.dataset, by=run.col(o["by"]), **kw)
    out = {"categories": cats.to_dict(), "by": o["by"]}
    rows = [{**c.to_dict(), "level": "category"} for c in cats.categories]
    disc = run.results.get("discover")
    if disc and disc.get("run_id"):
        subs = trends(run.ws, run.spec.dataset, by="topic", within=run.col(disc["within"]), run=disc["run_id"], **kw)
        out["subtopics"] = subs.to_dict()
        rows += [{**c.to_dict(), "level": "subtopic"} for c in subs.categories]
    path = run.out_dir / "trends.parquet"
    _write(pd.DataFrame(rows), path)
    return out, cats.documents, [path]


def step_candidates(run, step: Step, meter: CostMeter):
    """The documents the pinned version turned away, grouped into candidate new categories
    (:func:`inhouse.analysis.candidates.find_candidates`), growth over the trends step's periods."""
    import pandas as pd

    from ..analysis.candidates import find_candidates

    o = step.options
    if not o["enabled"]:
        return {"enabled": False}, 0, []
    trend = run.spec.find("trends")
    window = {k: trend.options[k] for k in ("recent", "recent_from", "until")} if trend else {}
    every = o["every"] or (trend.options["every"] if trend else "week")
    res = find_candidates(run.ws, run.spec.dataset, model=run.version.sha256, every=every, seed=o["seed"],
               min_topic_size=o["min_topic_size"], n_topics=o["n_topics"], llm=o["llm"], embed_model=o["model"],
               merge=float(o["merge"]), **window)
    path = run.out_dir / o["output"]
    _write(pd.DataFrame(res.rows(), columns=CANDIDATE_COLUMNS), path)
    return res.to_dict(), res.turned_away, [path]


CANDIDATE_COLUMNS = ["candidate", "name", "name_source", "size", "turned_away", "answered_as", "share", "share_of_all",
                     "parent", "keywords", "status", "share_baseline", "share_recent", "share_ratio", "q_value",
                     "counts",
                     "representative_ids", "representative_texts", "discovery_run", "model", "model_sha256"]


def step_report(run, step: Step, meter: CostMeter):
    from .report import write_report

    path = run.spec.resolve(step.options["out"])
    write_report(run, path, title=step.options["title"])
    return {"path": str(path)}, 0, [path]


def _write(df, path: Path) -> None:
    from ..workspace.documents import write_table

    write_table(df, path, what=path.stem)
