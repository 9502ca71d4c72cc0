"""``inhouse discover | label | trends | summarize``: from raw text to topics, labels and trends."""

from __future__ import annotations

import click

from ..data import labels as labels_api
from ..errors import UsageError
from ..models.catalog import DEFAULT_ENCODER
from ..topics.labeling import label_topic
from . import cli, emit_json, json_option, pass_ctx

BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """``▁▃█``: values scaled to their own maximum."""
    top = max(values) if values else 0
    return "".join(BARS[min(len(BARS) - 1, int(v / top * (len(BARS) - 1) + 0.5))] if top else BARS[0]
                   for v in values)


def _cut(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


# -------------------------------------------------------------- discover ----

@cli.command("discover")
@click.option("--dataset", required=True, help="Dataset to find topics in.")
@click.option("--within", default=None, metavar="COLUMN",
              help="Find sub-topics inside each category of COLUMN (label, topic, split or a column of the file).")
@click.option("--model", default=DEFAULT_ENCODER, show_default=True, help="Embedding model.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed: the same seed gives the same topics.")
@click.option("--n-topics", default=None, type=click.IntRange(min=1),
              help="Exact number of topics (per category with --within); default: chosen from the data.")
@click.option("--outliers", is_flag=True, help="Put documents that fit no topic in topic -1 instead of the nearest.")
@click.option("--min-topic-size", default=10, show_default=True, type=click.IntRange(min=1),
              help="Smaller groups join their nearest topic (or become outliers).")
@click.option("--llm", default=None, metavar="NAME", help="Name topics with a local generative model (e.g. smollm2-135m).")
@click.option("--split", default=None, help="Only this split.")
@click.option("--run", "run_id", default=None, type=int, help="Show an earlier discovery run instead of a new one.")
@click.option("--output", "-o", default=None, type=click.Path(dir_okay=False),
              help="Write one row per document (your --id-col id if ingested with one, row, doc_id, topic, name) "
                   "to a .csv, .parquet or .jsonl file.")
@click.option("--examples", default=1, show_default=True, type=click.IntRange(min=0),
              help="Representative documents shown per topic in the table.")
@json_option
@pass_ctx
def discover_cmd(ctx, dataset, within, model, seed, n_topics, outliers, min_topic_size, llm, split, run_id,
                 output, examples, as_json) -> None:
    """Find the topics of a dataset without labels.

    Every document gets a topic (unless --outliers); the number of topics is
    chosen from the data unless --n-topics is given; the same data and seed
    always give the same topics. The run is kept, so `inhouse label --topic`,
    `trends --by topic` and `summarize --by topic` use it.

    \b
    Example:
      $ inhouse discover --dataset banking77
      banking77: 82 topics in 13083 documents (run 1; minilm-l6, seed 0; 7.6 s)
      TOPIC    SIZE   SHARE  NAME
          0     411    3.1%  identity, verify identity, verification
                             e.g. "What is the need to verify my identity?"
      ...
      $ inhouse discover --dataset tickets --output topics.csv
      $ head -2 topics.csv      # ticket_id: the --id-col of ingest; row: the row of the ingested file
      ticket_id,row,doc_id,topic,name
      T-0001,1,0,3,"refund, money back, refund request"
      $ inhouse discover --dataset banking77 --within label --output subtopics.csv
    """
    from ..topics.discover import discover
    from ..topics.runs import load_discovery, write_assignments

    if run_id is not None:
        res = load_discovery(ctx.ws, dataset, run_id)
    else:
        res = discover(ctx.ws, dataset, within=within, model=model, seed=seed, n_topics=n_topics,
                       outliers=outliers, llm=llm, split=split, min_topic_size=min_topic_size)
    if output:
        write_assignments(res, output, ws=ctx.ws)
    if as_json:
        emit_json(res.to_dict())
        return
    _print_topics(res, examples)
    if output:
        click.echo(f"wrote {res.n_documents} rows to {output}")


def _print_topics(res, examples: int) -> None:
    where = f", within {res.within}" if res.within else ""
    out = f", {res.n_outliers} outliers" if res.n_outliers else ""
    click.echo(f"{res.dataset}: {res.n_topics} topics in {res.n_documents} documents{where}{out} "
               f"(run {res.run_id}; {res.model}, seed {res.seed}; {res.seconds:.1f} s)")
    parent = object()
    for t in res.topics:
        if res.within and t.parent != parent:
            parent = t.parent
            click.echo(f"\n== {res.within} = {t.parent if t.parent is not None else '(none)'}")
            click.echo(f"{'TOPIC':>5}  {'SIZE':>6}  {'SHARE':>6}  NAME")
        elif t is res.topics[0]:
            click.echo(f"{'TOPIC':>5}  {'SIZE':>6}  {'SHARE':>6}  NAME")
        click.echo(f"{t.topic:>5}  {t.size:>6}  {t.share:>6.1%}  {_cut(t.name, 60)}")
        if t.name != ", ".join(t.keywords[:3]):
            click.echo(f"{'':>23}keywords: {_cut(', '.join(t.keywords[:6]), 70)}")
        for text, key in zip(t.representative_texts[:examples], t.representative_ids or [None] * examples):
            ref = f" ({res.id_column} {key})" if key is not None else ""
            click.echo(f"{'':>23}e.g. \"{_cut(text, 72)}\"{ref}")


# ----------------------------------------------------------------- label ----

@cli.command("label")
@click.option("--dataset", default=None, help="Dataset whose documents to label.")
@click.option("--topic", default=None, type=int, help="Label every document of this discovered topic.")
@click.option("--doc", "docs", multiple=True, metavar="ID",
              help="Label the document with your id ID: the --id-col value given at ingest, e.g. a ticket_id "
                   "(repeat for more). For a dataset ingested without --id-col: its doc_id.")
@click.option("--doc-id", "doc_ids", multiple=True, type=int, metavar="N",
              help="Label the document with internal id N (the doc_id column of classify/discover outputs).")
@click.option("--as", "label", default=None, metavar="LABEL", help="The label to set.")
@click.option("--run", "run_id", default=None, type=int, help="Discovery run of --topic (default: the latest).")
@click.option("--undo", "undo_batch", default=None, metavar="BATCH", help="Undo a labelling batch.")
@click.option("--undo-last", is_flag=True, help="Undo the newest batch (of --dataset, if given).")
@click.option("--list", "list_", is_flag=True, help="List labelling batches, newest first.")
@json_option
@pass_ctx
def label_cmd(ctx, dataset, topic, docs, doc_ids, label, run_id, undo_batch, undo_last, list_, as_json) -> None:
    """Label a whole topic or single documents; undo a batch; list batches.

    --doc takes your own ids (the --id-col given at ingest, as in the outputs
    of classify and discover); --doc-id takes internal doc_ids.

    \b
    Example:
      $ inhouse label --dataset banking77 --topic 4 --as change_pin
      labelled 314 documents of banking77 as 'change_pin' (batch lb-9f2c41d0aa, from topic 4 of run 1); ...
      $ inhouse label --dataset tickets --doc T-0012 --doc T-0040 --as refund
      $ inhouse label --dataset banking77 --doc-id 12 --doc-id 40 --as change_pin
      $ inhouse label --undo lb-9f2c41d0aa
      $ inhouse label --list
    """
    actions = [bool(topic is not None or docs or doc_ids), bool(undo_batch), undo_last, list_]
    if sum(actions) != 1:
        raise UsageError("say what to do: --topic T, --doc ID or --doc-id N with --as LABEL, --undo BATCH, "
                         "--undo-last or --list.",
                         fix="See: inhouse label --help")
    if list_:
        batches = labels_api.list_batches(ctx.ws, dataset)
        if as_json:
            emit_json({"batches": [b.to_dict() for b in batches]})
            return
        _print_batches(batches)
        return
    if undo_batch or undo_last:
        b = labels_api.undo(ctx.ws, undo_batch) if undo_batch else labels_api.undo_last(ctx.ws, dataset)
        if as_json:
            emit_json(b.to_dict())
        else:
            click.echo(f"undid batch {b.batch}: {b.count} labels '{b.label}' on {b.dataset} no longer count")
        return
    if not dataset or not label:
        raise UsageError("labelling needs --dataset and --as LABEL.",
                         fix="e.g. inhouse label --dataset D --topic 3 --as refund_request")
    if topic is not None and (docs or doc_ids):
        raise UsageError("give --topic or --doc/--doc-id, not both.")
    if topic is not None:
        b = label_topic(ctx.ws, dataset, topic, label, run=run_id)
    else:
        found = labels_api.find_docs(ctx.ws, dataset, list(docs)) if docs else []
        found += labels_api.find_docs(ctx.ws, dataset, list(doc_ids), internal=True) if doc_ids else []
        b = labels_api.label_docs(ctx.ws, dataset, found, label)
    if as_json:
        emit_json(b.to_dict())
        return
    origin = f", from topic {topic} of run {b.source.split(':')[1]}" if topic is not None else ""
    click.echo(f"labelled {b.count} document{'s' if b.count != 1 else ''} of {dataset} as '{b.label}' "
               f"(batch {b.batch}{origin}); undo with: inhouse label --undo {b.batch}")


def _print_batches(batches) -> None:
    import datetime as dt

    if not batches:
        click.echo("no labelling batches yet")
        return
    click.echo(f"{'BATCH':<14}{'DATASET':<16}{'LABEL':<24}{'COUNT':>6}  {'SOURCE':<14}{'USER':<10}{'WHEN':<17}STATE")
    for b in batches:
        when = dt.datetime.fromtimestamp(b.created_at).strftime("%Y-%m-%d %H:%M")
        state = "undone" if b.undone_at else "active"
        click.echo(f"{b.batch:<14}{_cut(b.dataset, 15):<16}{_cut(b.label, 23):<24}{b.count:>6}  "
                   f"{_cut(b.source, 13):<14}{_cut(b.user, 9):<10}{when:<17}{state}")


# ---------------------------------------------------------------- trends ----

@cli.command("trends")
@click.option("--dataset", required=True, help="Dataset with timestamps (ingested with --time-col).")
@click.option("--by", default="label", show_default=True, help="label, topic, or any column of the file.")
@click.option("--every", default="week", show_default=True, type=click.Choice(["day", "week", "month"]))
@click.option("--within", default=None, metavar="COLUMN", help="Shares inside each category of COLUMN.")
@click.option("--recent", default=None, type=click.IntRange(min=1),
              help="Periods in the recent window (default: the last quarter of the periods).")
@click.option("--alpha", default=0.05, show_default=True, type=float, help="False discovery rate (BH q-value).")
@click.option("--min-ratio", default=1.25, show_default=True, type=float,
              help="Smallest change of share (times) worth flagging.")
@click.option("--run", "run_id", default=None, type=int, help="Discovery run for --by topic (default: the latest).")
@click.option("--split", default=None, help="Only this split.")
@click.option("--chart", default=None, type=click.Path(dir_okay=False), help="Write a chart (.png, .svg, .pdf).")
@click.option("--top", default=15, show_default=True, type=click.IntRange(min=1), help="Rows shown per group.")
@json_option
@pass_ctx
def trends_cmd(ctx, dataset, by, every, within, recent, alpha, min_ratio, run_id, split, chart, top, as_json) -> None:
    """Volume and share of each category over time; which are emerging or declining.

    The recent window is tested against the periods before it (two-proportion
    z-test or Fisher's exact test, Benjamini-Hochberg across categories).

    \b
    Example:
      $ inhouse trends --dataset airline --by negative_reason --every day --recent 2 --chart trends.png
      airline: negative_reason per day, 8 days (2015-02-17 … 2015-02-24); recent window: last 2 vs 6 before; ...
      CATEGORY        TOTAL  BEFORE  RECENT  RATIO   CHANGE        q  SHARE     STATUS
      Lost Luggage      724    6.9%    9.4%   1.36   +2.5pp  6.8e-05  ▄█▅▅▅▆▇█  ▲ emerging
      ...
      $ inhouse trends --dataset tickets --by topic --within label --every week
    """
    from ..analysis.trends import chart as draw
    from ..analysis.trends import trends

    res = trends(ctx.ws, dataset, by=by, every=every, within=within, recent=recent, alpha=alpha,
                 min_ratio=min_ratio, run=run_id, split=split)
    if chart:
        draw(res, chart)
    if as_json:
        emit_json(res.to_dict())
        return
    _print_trends(res, top)
    if chart:
        click.echo(f"chart written to {chart}")


def _print_trends(res, top: int) -> None:
    p = res.periods
    base = len(p) - res.recent_periods
    left_out = [f"{res.without_time} without a time"] if res.without_time else []
    left_out += [f"{res.without_category} without a {res.by}" + (f" or {res.within}" if res.within else "")] \
        if res.without_category else []
    click.echo(f"{res.dataset}: {res.by} per {res.every}, {len(p)} {res.every}s ({p[0]} … {p[-1]}); recent window: "
               f"last {res.recent_periods} vs {base} before; {sum(res.totals)} documents"
               + (f" (left out: {', '.join(left_out)})" if left_out else ""))
    parent = object()
    shown = 0
    for c in sorted(res.categories, key=lambda c: (c.parent is None, str(c.parent), c.status == "stable", -c.total)):
        if c.parent != parent:
            parent, shown = c.parent, 0
            if res.within:
                click.echo(f"\n== {res.within} = {c.parent}")
            click.echo(f"{'CATEGORY':<34}{'TOTAL':>7}{'BEFORE':>8}{'RECENT':>8}{'RATIO':>7}{'CHANGE':>9}"
                       f"{'q':>9}  {'SHARE':<{min(len(p), 24)}}  STATUS")
        if c.status == "stable" and shown >= top:
            continue
        shown += 1
        label = c.category if c.name == c.category else f"{c.category}: {c.name}"
        ratio = "new" if c.share_ratio is None else f"{c.share_ratio:.2f}"
        mark = {"emerging": "▲ emerging", "declining": "▼ declining"}.get(c.status, "")
        click.echo(f"{_cut(label, 33):<34}{c.total:>7}{c.share_baseline:>8.1%}{c.share_recent:>8.1%}{ratio:>7}"
                   f"{c.abs_change * 100:>+7.1f}pp{c.q_value:>9.2g}  {sparkline(c.shares[-24:]):<{min(len(p), 24)}}  {mark}")
    flagged = res.flagged()
    click.echo("\n" + (f"{len(res.emerging())} emerging, {len(res.declining())} declining (q < {res.alpha}, share "
                       f"ratio >= {res.min_ratio} or <= {1 / res.min_ratio:.2f})" if flagged else
                       f"nothing emerging or declining at q < {res.alpha}"))


# ------------------------------------------------------------- summarize ----

@cli.command("summarize")
@click.option("--dataset", required=True, help="Dataset to summarise.")
@click.option("--by", default="label", show_default=True, help="label, topic, or any column of the file.")
@click.option("--llm", default=None, metavar="NAME", help="Write the summaries with a local generative model.")
@click.option("--n-docs", default=5, show_default=True, type=click.IntRange(min=1),
              help="Representative documents per category.")
@click.option("--category", "categories", multiple=True, help="Only this category (repeat for more).")
@click.option("--run", "run_id", default=None, type=int, help="Discovery run for --by topic (default: the latest).")
@click.option("--split", default=None, help="Only this split.")
@json_option
@pass_ctx
def summarize_cmd(ctx, dataset, by, llm, n_docs, categories, run_id, split, as_json) -> None:
    """One summary per category: keywords plus representative, mutually different documents.

    With --llm, a local model writes a one-sentence summary from them; the
    summaries are stored with the model's name and sha256.

    \b
    Example:
      $ inhouse summarize --dataset tickets --by label --n-docs 2
      ■ refund — 120 documents (12.0%)
        keywords: refund, money back, ...
        - I want my money back for order 123
        - Refund still not here after two weeks
        ticket_id: T-0012, T-0410
      $ inhouse summarize --dataset tickets --by topic --llm smollm2-135m --category 0

    The documents are shown by your ids (the --id-col of ingest), or by their
    row in the ingested file when the dataset has none; --json gives them as
    `ids`, with `id_column` saying which.
    """
    from ..analysis.summarize import summarize

    out = summarize(ctx.ws, dataset, by=by, llm=llm, n_docs=n_docs, run=run_id, split=split,
                    categories=list(categories) or None)
    if as_json:
        emit_json({"dataset": dataset, "by": by, "run_id": out[0].run_id if out else None,
                   "summaries": [s.to_dict() for s in out]})
        return
    for s in out:
        label = s.category if s.name == s.category else f"{s.category}: {s.name}"
        click.echo(f"■ {label} — {s.size} documents ({s.share:.1%})")
        click.echo(f"  keywords: {', '.join(s.keywords[:8])}")
        for line in s.summary.splitlines():
            click.echo(f"  {line}")
        click.echo(f"  {s.id_column}: {', '.join(str(i) for i in s.ids)}")
        for note in s.notes:
            click.echo(f"  note: {note}")
        click.echo("")
    if out:
        writer = f"{out[0].model} ({out[0].model_sha256[:12]})" if out[0].model else "extractive"
        click.echo(f"{len(out)} summaries ({writer}), run {out[0].run_id}")
