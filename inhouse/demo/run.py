"""``inhouse demo``: the whole platform, end to end, on a generated corpus.

Each step is one call into the public Python API, the same functions the CLI
commands use, so the demo shows exactly what a user would get. Steps report
through the progress mechanism and return a dict; :func:`run` collects them.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> report = run(Workspace.open("/tmp/demo"), out_dir=Path("/tmp/demo/out"))
    >>> report["steps"][0]["step"]
    'generate'
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..workspace.store import Workspace
from . import data as demo_data

DATASET = "contact-center"


@dataclass
class DemoConfig:
    rows: int = 6000
    seed: int = 7
    model_name: str = "support-intents"
    method: str | None = None  # None: the default training method
    epochs: float | None = 1.0  # the demo corpus is small and clean: one epoch suffices
    max_steps: int | None = 80  # keeps `make demo` within minutes on 2 cores
    min_topic_size: int = 40  # the generated corpus repeats phrasings; keep sub-topics meaningful
    llm: str | None = "smollm2-135m"
    out_dir: Path = field(default_factory=lambda: Path("demo-out"))


def _step_generate(ws: Workspace, cfg: DemoConfig, state: dict) -> dict:
    path = demo_data.write_csv(cfg.out_dir / "contact_center.csv", cfg.rows, cfg.seed)
    state["csv"] = path
    return {"file": str(path), "rows": cfg.rows, "planted": f"'{demo_data.EMERGING_MARKER} update crashes' inside "
            f"{demo_data.EMERGING_INTENT}, last {demo_data.EMERGING_WEEKS} weeks"}


def _step_ingest(ws: Workspace, cfg: DemoConfig, state: dict) -> dict:
    from ..data.ingest import ingest

    res = ingest(ws, state["csv"], DATASET, text_col="text", label_col="intent", time_col="timestamp",
                 id_col="message_id", split_col="split", redact_pii=True)
    d = res.to_dict()
    return {k: d[k] for k in ("dataset", "read", "stored", "duplicates", "quarantined", "redacted")}


def _step_embed(ws: Workspace, cfg: DemoConfig, state: dict) -> dict:
    from ..models.embeddings import embed_dataset

    res, _, _ = embed_dataset(ws, DATASET)
    d = res.to_dict()
    return {k: d[k] for k in ("model", "documents", "unique_texts", "computed", "reused", "dim")}


def _step_train(ws: Workspace, cfg: DemoConfig, state: dict) -> dict:
    from ..training.arguments import TrainingArguments
    from ..training.train import train

    args = TrainingArguments(seed=cfg.seed, epochs=cfg.epochs, max_steps=cfg.max_steps, min_steps=0)
    if cfg.method:
        args.method = cfg.method
    res = train(ws, DATASET, cfg.model_name, args)
    state["ref"] = res.ref
    return {"model": res.ref, "method": res.method, "base": res.base, "n_train": res.n_train,
            "labels": len(res.labels), "train_seconds": res.train_seconds, "sha256": res.sha256[:16]}


def _step_evaluate(ws: Workspace, cfg: DemoConfig, state: dict) -> dict:
    from ..analysis.evaluate import evaluate
    from ..registry.core import set_alias

    r = evaluate(ws, state["ref"], DATASET, "test", out=cfg.out_dir)
    set_alias(ws, state["ref"], "production")
    gain = r["accuracy"] - r["zero_shot"]["accuracy"]
    lines = [f"fine-tuned {r['model']}: accuracy {r['accuracy']:.1%}, macro-F1 {r['macro_f1']:.3f} on {r['n']} test messages",
             f"general model (zero-shot {r['base']}): accuracy {r['zero_shot']['accuracy']:.1%}, "
             f"macro-F1 {r['zero_shot']['macro_f1']:.3f}  ->  gain {gain:+.1%}",
             f"confusion matrix: {r['confusion_matrix_png']}", f"alias: {state['ref'].split('@')[0]}@production -> {r['model']}"]
    return {"accuracy": r["accuracy"], "macro_f1": r["macro_f1"], "zero_shot_accuracy": r["zero_shot"]["accuracy"],
            "gain": round(gain, 4), "ece": r.get("ece"), "lines": lines}


def _step_weights(ws: Workspace, cfg: DemoConfig, state: dict) -> dict:
    from ..analysis.explain import weight_changes

    r = weight_changes(ws, state["ref"], chart=cfg.out_dir / "weight_changes.png")
    by_layer = {x["layer"]: x for x in r.get("layers", [])}
    top = [f"{name} {by_layer[name]['relative_change']:.3f}" for name in r.get("top_layers", [])[:3]]
    lines = [f"share of encoder parameters changed: {r['overall'].get('changed_share', 0):.1%}",
             "layers that changed most: " + (", ".join(top) or "-"), f"chart: {r.get('chart_png')}"]
    return {"overall": r["overall"], "lines": lines}


PIPELINE_YAML = """\
# The demo's daily pipeline (written by `inhouse demo`; run it yourself with `inhouse pipeline run FILE`).
# Paths are relative to this file. Run it again after adding a file to inbox/: only that file is read
# and only its messages classified; the summaries, sub-topics and trends are recomputed over everything.
name: contact-center-daily
dataset: {dataset}
steps:
  - ingest: {{path: "inbox/*.csv", text_col: text, time_col: timestamp, id_col: message_id, redact_pii: true}}
  - classify: {{model: {model}}}
  - summarize: {{by: prediction{llm}}}
  - discover: {{within: prediction, min_topic_size: {min_topic_size}, seed: {seed}}}
  - trends: {{by: prediction, every: week, recent: 3}}
  - report: {{out: report.html}}
"""
PIPELINE_DATASET = "contact-center-daily"


def write_pipeline(cfg: DemoConfig, csv_path: Path, model: str) -> Path:
    """The generated messages as weekly inbox files (no agent tags), and the pipeline file that reads them."""
    import pandas as pd

    df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    inbox = cfg.out_dir / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    week = pd.to_datetime(df["timestamp"], utc=True).dt.strftime("%G-W%V")
    for w, part in df.drop(columns=["intent", "split"]).groupby(week):
        part.to_csv(inbox / f"messages-{w}.csv", index=False)
    path = cfg.out_dir / "pipeline.yaml"
    path.write_text(PIPELINE_YAML.format(dataset=PIPELINE_DATASET, model=model, min_topic_size=cfg.min_topic_size,
                                         seed=cfg.seed, llm=f", llm: {cfg.llm}" if cfg.llm else ""), encoding="utf-8")
    return path


def _trend_lines(cats: list[dict]) -> list[str]:
    out = []
    flagged = [c for c in cats if c["status"] != "stable"]
    # emerging first (the news), then declining; strongest evidence first within each
    flagged.sort(key=lambda c: (c["status"] != "emerging", c.get("q_value", 1.0), -abs(c.get("abs_change", 0.0))))
    for c in flagged[:6]:
        ratio = f"x{c['share_ratio']:.1f}" if c["share_ratio"] is not None else "new"
        where = f"{c['parent']} / " if c.get("parent") else ""
        out.append(f"{c['status'].upper():<9} {where}{c['name']!r}: share {c['share_baseline']:.1%} -> "
                   f"{c['share_recent']:.1%} ({ratio}, q={c['q_value']:.1g})")
    return out or ["no category changed significantly"]


def _step_pipeline(ws: Workspace, cfg: DemoConfig, state: dict) -> dict:
    from ..pipeline.runner import run_pipeline

    model = state["ref"].split("@")[0] + "@production"
    path = write_pipeline(cfg, state["csv"], model)
    r = run_pipeline(ws, path)
    last = ws.db.execute("SELECT result FROM runs WHERE id = ?", (r["run_id"],)).fetchone()[0]
    import json

    results = {s["name"]: s.get("result") or {} for s in json.loads(last)["steps"]}
    t = results.get("trends") or {}
    lines = [f"pipeline {path.name}: " + ", ".join(f"{s['name']} {s['status']} ({s['rows']} rows, {s['seconds']:.0f} s)"
                                                  for s in r["steps"])]
    c = results.get("classify") or {}
    lines.append(f"classify: {c.get('rows')} messages by {c.get('model')} on {c.get('backend')}, "
                 f"{c.get('docs_per_second') or 0:,.0f} docs/s")
    lines += ["intents, last 3 weeks vs the weeks before:"] + _trend_lines((t.get("categories") or {}).get("categories", []))
    lines += ["sub-topics inside each predicted intent:"] + _trend_lines((t.get("subtopics") or {}).get("categories", []))
    cost = r["cost"]
    lines.append(f"cost: {cost['documents']} documents, {cost['tokens']:,} tokens, {cost['cpu_seconds']:.0f} CPU s")
    lines.append(f"report: {r['report']}")
    state["report"] = r["report"]
    return {"run_id": r["run_id"], "report": r["report"], "lines": lines}


STEPS: list[tuple[str, Callable[[Workspace, DemoConfig, dict], dict]]] = [
    ("generate", _step_generate),
    ("ingest", _step_ingest),
    ("embed", _step_embed),
    ("train", _step_train),
    ("evaluate", _step_evaluate),
    ("weights", _step_weights),
    ("pipeline", _step_pipeline),
]


def run(ws: Workspace, cfg: DemoConfig | None = None,
        on_step: Callable[[str, dict, float], None] | None = None) -> dict:
    """Run every demo step in order; ``on_step(name, result, seconds)`` after each."""
    cfg = cfg or DemoConfig()
    cfg.out_dir = Path(cfg.out_dir)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    state: dict = {}
    steps = []
    t_all = time.time()
    for name, fn in STEPS:
        t0 = time.time()
        result = fn(ws, cfg, state)
        seconds = round(time.time() - t0, 2)
        steps.append({"step": name, "seconds": seconds, "result": result})
        if on_step:
            on_step(name, result, seconds)
    return {"workspace": str(ws.home), "out_dir": str(cfg.out_dir.resolve()), "dataset": DATASET,
            "seconds": round(time.time() - t_all, 2), "steps": steps, "report": state.get("report")}
