"""``inhouse discover | label | trends | summarize``: from raw text to topics, labels and trends."""

from __future__ import annotations

import click

from ..errors import UsageError
from ..service import topics as topics_service
from ..service.topics import DEFAULT_MODEL
from . import cli, emit_json, json_option, pass_ctx

BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], thin: list[bool] | None = None) -> str:
    """``▁▃█``: values scaled to their own maximum; ``·`` where ``thin`` (too few documents to draw)."""
    thin = thin or [False] * len(values)
    kept = [v for v, t in zip(values, thin) if not t]
    top = max(kept) if kept else 0
    return "".join("·" if t else BARS[min(len(BARS) - 1, int(v / top * (len(BARS) - 1) + 0.5))] if top else BARS[0]
                   for v, t in zip(values, thin))


def _cut(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


# -------------------------------------------------------------- discover ----

@cli.command("discover")
@click.option("--dataset", required=True, help="Dataset to find topics in.")
@click.option("--within", default=None, metavar="COLUMN",
              help="Find sub-topics inside each category of COLUMN (label, topic, split or a column of the file). "
                   "--within prediction: the documents the stored predictions turned away (other) or answered unsure, grouped into "
                   "candidate new categories (prediction:NAME@N for one version's).")
@click.option("--every", type=click.Choice(["day", "week", "month"]), default="week", show_default=True,
              help="With --within prediction: the periods a candidate's growth is measured over.")
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Embedding model.")
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
@click.option("--full", is_flag=True, help="Print representative documents in full, with your ids.")
@click.option("--where", default=None, metavar="EXPR",
              help="Only documents for which EXPR holds, e.g. \"label = 'negative'\".")
@click.option("--compare", "compare", default=None, metavar="COLUMN",
              help="Crosstab of the topics against COLUMN (purity, majority value, NMI, ARI); written to "
                   "--compare-output or the workspace's runs/.")
@click.option("--compare-output", default=None, type=click.Path(dir_okay=False),
              help="Where to write the --compare crosstab (.csv, .parquet, .jsonl).")
@click.option("--yes", is_flag=True, help="Run a long --llm job without asking.")
@click.option("--n-themes", default=None, type=click.IntRange(min=1),
              help="Exact number of themes (groups of topics): fewer is coarser, more is finer; default: chosen "
                   "from the data, 8-30.")
@click.option("--level", type=click.Choice(["themes", "topics"]), default="themes", show_default=True,
              help="themes: each theme with its sub-topics underneath; topics: the flat list of fine topics.")
@json_option
@pass_ctx
def discover_cmd(ctx, dataset, within, every, model, seed, n_topics, outliers, min_topic_size, llm, split, run_id,
                 output, examples, full, where, compare, compare_output, yes, n_themes, level, as_json) -> None:
    """Find the topics of a dataset without labels.

    Every document gets a topic (unless --outliers); the number of topics is
    chosen from the data unless --n-topics is given; the same data and seed
    always give the same topics. The run is kept, so `inhouse label --topic`,
    `trends --by topic` and `summarize --by topic` use it.

    Topics are grouped into themes (8-30, chosen from the data; --n-themes N
    for coarser or finer), shown first with their sub-topics underneath;
    --level topics shows the flat list. Under --within the categories are the
    top level and no themes are made.

    \b
    Example:
      $ inhouse discover --dataset contact-center
      contact-center: 9 themes, 44 topics in 1500 documents (run 1; minilm-l6, seed 0; 14.5 s)
      THEME    SIZE   SHARE  NAME
          0     291   19.4%  card, credit card, contactless card
                             e.g. "I ordered a debit card 5 days ago and nothing came in the post"
                 TOPIC 0     74  ordered, card ordered, think dropped
      ...
      $ inhouse discover --dataset contact-center --n-themes 12   # finer themes
      $ inhouse discover --dataset contact-center --run 1 --n-themes 5   # run 1, coarser
      $ inhouse discover --dataset contact-center --run 1 --level topics
      $ inhouse discover --dataset tickets --output topics.csv
      $ head -2 topics.csv      # ticket_id: the --id-col of ingest; row: the row of the ingested file
      ticket_id,row,doc_id,topic,name
      T-0001,1,0,3,"refund, money back, refund request"
      $ inhouse discover --dataset banking77 --within label --output subtopics.csv
      $ inhouse discover --dataset air --where "label = 'negative'" --compare negative_reason
      $ inhouse discover --dataset tickets --within prediction      # what the model turned away, as candidates
    """
    from ..service.topics import discover

    if within and within.split(":")[0] == "prediction" and run_id is None:
        for flag, value in (("--outliers", outliers), ("--split", split), ("--where", where), ("--compare", compare),
                            ("--n-themes", n_themes), ("--output", output)):
            if value:
                raise UsageError(f"{flag} does not apply to --within prediction (candidates of what the model turned "
                                 "away).", fix=f"Leave out {flag}.")
        return _candidates(ctx, dataset, within, every, model, seed, n_topics, min_topic_size, llm, examples, full,
                           yes, as_json)
    from ..topics.runs import load_discovery

    if run_id is not None and n_themes is not None:
        res = topics_service.regroup(ctx.ws, dataset, run_id, n_themes)  # a cut of the run's theme tree
    elif run_id is not None:
        res = load_discovery(ctx.ws, dataset, run_id)
    else:
        res = discover(ctx.ws, dataset, within=within, model=model, seed=seed, n_topics=n_topics,
                       outliers=outliers, llm=llm, split=split, min_topic_size=min_topic_size, where=where,
                       confirm=llm_confirm(yes, as_json), n_themes=n_themes)
    if output:
        topics_service.write_assignments(ctx.ws, res, output)
    comp = None
    if compare:
        from ..topics.compare import compare_topics

        target = compare_output or (ctx.ws.dir("runs") / f"compare-{dataset}-run{res.run_id}-{_safe(compare)}.csv")
        comp = compare_topics(ctx.ws, dataset, compare, result=res, output=target)
    if as_json:
        emit_json({**res.to_dict(), **({"compare": comp.to_dict()} if comp else {})})
        return
    if level == "themes" and res.themes:
        _print_themes(res, examples, full)
    else:
        _print_topics(res, examples, full)
    if output:
        click.echo(f"wrote {res.n_documents} rows to {output}")
    if res.llm_names:
        n = res.llm_names
        click.echo(f"names by {res.llm}: {n['accepted']} accepted, {n['fell_back']} fell back to keywords "
                   f"({n['junk']} unusable, {n['ungrounded']} mentioned words found in none of the topic's documents)")
    if comp:
        _print_compare(comp)


def _candidates(ctx, dataset, within, every, model, seed, n_topics, min_topic_size, llm, examples, full, yes,
                as_json) -> None:
    """``discover --within prediction``: the candidates of the stored predictions, as a pipeline finds them."""
    from ..service.candidates import find

    ref = within.partition(":")[2].strip() or None
    res = find(ctx.ws, dataset, model=ref, every=every, seed=seed, n_topics=n_topics, min_topic_size=min_topic_size,
               llm=llm, embed_model=model, confirm=llm_confirm(yes, as_json))
    if as_json:
        emit_json(res.to_dict())
        return
    away = "/".join(res.turned_away_labels)
    unsure = (f" and the {res.unsure} it answered unsure (best probability under "
              f"{res.review['confidence_below']:.2f})") if res.review else ""
    click.echo(f"{dataset}: {len(res.candidates)} candidates in the {res.turned_away} of {res.documents} documents "
               f"{res.model} turned away ({away!r}){unsure}; discovery run {res.discovery_run}; {res.seconds:.1f} s")
    if res.growth_note:
        click.echo(f"growth: none ({res.growth_note})")
    if not res.candidates:
        return
    click.echo(f"{'CAND':>5}  {'SIZE':>6}  {'AWAY':>6}  {'SHARE':>6}  {'GROWTH':<18}NAME")
    for c in res.candidates:
        g = c.growth or {}
        ratio = "new" if g and g.get("share_ratio") is None else f"x{g.get('share_ratio', 0):.1f}"
        growth = (f"{'▲' if g['status'] == 'emerging' else '▼' if g['status'] == 'declining' else '·'} {ratio}"
                  f" {sparkline(g.get('shares') or [])}") if g else "-"
        click.echo(f"{c.candidate:>5}  {c.size:>6}  {c.turned_away:>6}  {c.share:>6.1%}  {_cut(growth, 17):<18}"
                   f"{_cut(c.name, 56)}")
        if c.turned_away * 2 < c.size:  # mostly answered, unsure: say with which labels
            top = sorted(c.answered_as.items(), key=lambda kv: -kv[1])[:3]
            click.echo(f"{'':>31}mostly answered, unsure: {_cut(', '.join(f'{k} {n}' for k, n in top), 60)}")
        shown = max(examples, len(c.representative_texts) if full else 0)
        for text, key in zip(c.representative_texts[:shown], c.representative_ids):
            click.echo(f"{'':>31}e.g. \"{_cut(text, 72)}\" ({res.id_column} {key})")
    click.echo(f"\nAWAY: of its documents, those the model turned away (most first); share: of the turned-away and "
               f"unsure documents. Make one a label and confirm its documents in the queue: "
               f"the Analyze screen, or POST /datasets/{dataset}/candidates/{res.discovery_run}/CAND/label "
               "with {\"label_col\": COLUMN}")


def llm_confirm(yes: bool, as_json: bool):
    """The check before an LLM run: print its estimate (stderr); above the threshold, in interactive use
    without --yes, ask. Scripts (no terminal) go ahead: the estimate is still printed."""
    import sys

    def confirm(est) -> bool:
        click.echo(f"estimate: {est.line()}", err=True)
        if yes or not est.needs_confirmation:
            return True
        if not as_json and sys.stdin.isatty():
            return click.confirm(f"That is over {est.minutes:g} minutes. Run it? (--yes skips this question)",
                                 default=False, err=True)
        return True

    return confirm


def _safe(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:60] or "column"


def _print_compare(c) -> None:
    click.echo(f"\ntopics vs {c.column} ({c.with_value:,} of {c.documents:,} documents have a value): "
               f"NMI {c.nmi if c.nmi is not None else '-'}, ARI {c.ari if c.ari is not None else '-'}")
    click.echo(f"{'TOPIC':>5}  {'SIZE':>6}  {'MAJORITY':<28}{'SHARE':>7}  {'VERDICT':<12}NAME")
    for r in c.rows:
        share = f"{r.purity:.0%}" if r.with_value else "-"
        click.echo(f"{r.topic:>5}  {r.size:>6}  {_cut(r.majority or '-', 27):<28}{share:>7}  {r.verdict:<12}"
                   f"{_cut(r.name, 40)}")
    if c.output:
        click.echo(f"crosstab written to {c.output}")


def _print_themes(res, examples: int, full: bool = False) -> None:
    """Themes first, each with its sub-topics (largest first) underneath."""
    _print_run_line(res, f"{len(res.themes)} themes, ")
    click.echo(f"{'THEME':>5}  {'SIZE':>6}  {'SHARE':>6}  NAME")
    by_id = {t.topic: t for t in res.topics}
    for th in res.themes:
        click.echo(f"\n{th.theme:>5}  {th.size:>6}  {th.share:>6.1%}  {_cut(th.name, 60)}")
        _print_examples(res, th, examples, full)
        for k in th.topics:
            t = by_id[k]
            if t.merged_into is None:
                click.echo(f"{'':>10}TOPIC {t.topic:<4} {t.size:>6}  {_cut(t.name, 55)}")
    click.echo("\n(--level topics lists the topics with examples; --n-themes N gives coarser or finer themes)")


def _print_examples(res, t, examples: int, full: bool) -> None:
    shown = max(examples, len(t.representative_texts) if full else 0)
    for text, key in zip(t.representative_texts[:shown], t.representative_ids or [None] * shown):
        ref = f" ({res.id_column} {key})" if key is not None else ""
        if full:
            click.echo(f"{'':>23}- {res.id_column} {key}: {' '.join(str(text).split())}")
        else:
            click.echo(f"{'':>23}e.g. \"{_cut(text, 72)}\"{ref}")


def _print_run_line(res, themes: str = "") -> None:
    where = f", within {res.within}" if res.within else ""
    out = f", {res.n_outliers} outliers" if res.n_outliers else ""
    filt = f" where {res.where}" if getattr(res, "where", None) else ""
    emb = res.embeddings or {}
    computed = f"; embedded {emb['computed']} new texts, {emb['reused']} from the cache" if emb else ""
    click.echo(f"{res.dataset}: {themes}{res.n_topics} topics in {res.n_documents} documents{filt}{where}{out} "
               f"(run {res.run_id}; {res.model}, seed {res.seed}; {res.seconds:.1f} s{computed})")


def _print_topics(res, examples: int, full: bool = False) -> None:
    _print_run_line(res)
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
        _print_examples(res, t, examples, full)


# ----------------------------------------------------------------- label ----

@cli.command("label")
@click.option("--dataset", default=None, help="Dataset whose documents to label.")
@click.option("--topic", default=None, type=int, help="Label every document of this discovered topic.")
@click.option("--doc", "docs", multiple=True, metavar="ID",
              help="Label the document with your id ID: the --id-col value given at ingest, e.g. a ticket_id "
                   "(repeat for more). For a dataset ingested without --id-col: its doc_id.")
@click.option("--doc-id", "doc_ids", multiple=True, type=int, metavar="N",
              help="Label the document with internal id N (the doc_id column of classify/discover outputs).")
@click.option("--where", "where", default=None, metavar="EXPR",
              help="Label every document for which EXPR holds, e.g. \"airline = 'United' and label = 'negative'\".")
@click.option("--as", "label", default=None, metavar="LABEL", help="The label to set.")
@click.option("--into", "into", default=None, metavar="COLUMN",
              help="The label column to write into (created on first use; train with --label-col COLUMN). "
                   "Default: label, the column from ingest.")
@click.option("--overwrite", is_flag=True, help="Allow replacing labels that came from the file (ingest).")
@click.option("--run", "run_id", default=None, type=int, help="Discovery run of --topic (default: the latest).")
@click.option("--undo", "undo_batch", default=None, metavar="BATCH", help="Undo a labelling batch.")
@click.option("--undo-last", is_flag=True, help="Undo the newest batch (of --dataset, if given).")
@click.option("--list", "list_", is_flag=True, help="List labelling batches, newest first.")
@json_option
@pass_ctx
def label_cmd(ctx, dataset, topic, docs, doc_ids, where, label, into, overwrite, run_id, undo_batch, undo_last, list_,
              as_json) -> None:
    """Label a whole topic or single documents; undo a batch; list batches.

    --doc takes your own ids (the --id-col given at ingest, as in the outputs
    of classify and discover); --doc-id takes internal doc_ids; --where a
    filter over the dataset's columns (with --topic: only the topic's documents
    for which it holds).

    Labels go into a label column: --into COLUMN writes a label set of its own
    (created on first use) and leaves the labels from ingest alone; writing
    over labels that came from the file needs --overwrite and says how many
    would change.

    \b
    Example:
      $ inhouse label --dataset air --topic 3 --as cancelled_flight --into complaint
      $ inhouse label --dataset air --where "label = 'positive'" --as other --into complaint
      $ inhouse label --dataset banking77 --topic 4 --as change_pin
      labelled 314 documents of banking77 as 'change_pin' (batch lb-9f2c41d0aa, from topic 4 of run 1); ...
      $ inhouse label --dataset tickets --doc T-0012 --doc T-0040 --as refund
      $ inhouse label --dataset banking77 --doc-id 12 --doc-id 40 --as change_pin
      $ inhouse label --undo lb-9f2c41d0aa
      $ inhouse label --list
    """
    actions = [bool(topic is not None or docs or doc_ids or where), bool(undo_batch), undo_last, list_]
    if sum(actions) != 1:
        raise UsageError("say what to do: --topic T, --doc ID or --doc-id N with --as LABEL, --undo BATCH, "
                         "--undo-last or --list.",
                         fix="See: inhouse label --help")
    if list_:
        batches = topics_service.label_batches(ctx.ws, dataset)
        if as_json:
            emit_json({"batches": [b.to_dict() for b in batches]})
            return
        _print_batches(batches)
        return
    if undo_batch or undo_last:
        b = topics_service.undo(ctx.ws, undo_batch) if undo_batch else topics_service.undo_last(ctx.ws, dataset)
        if as_json:
            emit_json(b.to_dict())
        else:
            click.echo(f"undid batch {b.batch}: {b.count} labels '{b.label}' on {b.dataset} no longer count")
        return
    if not dataset or not label:
        raise UsageError("labelling needs --dataset and --as LABEL.",
                         fix="e.g. inhouse label --dataset D --topic 3 --as refund_request")
    from ..service.topics import label as label_service

    b = label_service(ctx.ws, dataset, label, topic=topic, run=run_id, docs=list(docs), doc_ids=list(doc_ids),
                      where=where, into=into, overwrite=overwrite)
    if as_json:
        emit_json(b.to_dict())
        return
    origin = f", from topic {topic} of run {b.source.split(':')[1]}" if topic is not None else ""
    column = f" in column '{b.column}'" if b.column != "label" else ""
    click.echo(f"labelled {b.count} document{'s' if b.count != 1 else ''} of {dataset} as '{b.label}'{column} "
               f"(batch {b.batch}{origin}); undo with: inhouse label --undo {b.batch}")
    if b.replaced_ingest_labels:
        click.echo(f"replaced {b.replaced_ingest_labels} labels that came from the file (--overwrite)")


def _print_batches(batches) -> None:
    import datetime as dt

    if not batches:
        click.echo("no labelling batches yet")
        return
    click.echo(f"{'BATCH':<14}{'DATASET':<16}{'COLUMN':<14}{'LABEL':<24}{'COUNT':>6}  {'SOURCE':<14}{'USER':<10}"
               f"{'WHEN':<17}STATE")
    for b in batches:
        when = dt.datetime.fromtimestamp(b.created_at).strftime("%Y-%m-%d %H:%M")
        state = "undone" if b.undone_at else "active"
        click.echo(f"{b.batch:<14}{_cut(b.dataset, 15):<16}{_cut(b.column, 13):<14}{_cut(b.label, 23):<24}{b.count:>6}  "
                   f"{_cut(b.source, 13):<14}{_cut(b.user, 9):<10}{when:<17}{state}")


# ---------------------------------------------------------------- trends ----

@cli.command("trends")
@click.option("--dataset", required=True, help="Dataset with timestamps (ingested with --time-col).")
@click.option("--by", default="label", show_default=True, help="label, topic, or any column of the file.")
@click.option("--every", default="week", show_default=True, type=click.Choice(["day", "week", "month"]))
@click.option("--within", default=None, metavar="COLUMN", help="Shares inside each category of COLUMN.")
@click.option("--recent", default=None, type=click.IntRange(min=1),
              help="Periods in the recent window (default: the last quarter of the periods).")
@click.option("--recent-from", default=None, metavar="DATE",
              help="The recent window starts on DATE (YYYY-MM-DD, in --tz); the baseline is everything before it.")
@click.option("--until", default=None, metavar="DATE", help="Leave out documents after DATE (inclusive end).")
@click.option("--alpha", default=0.05, show_default=True, type=float, help="False discovery rate (BH q-value).")
@click.option("--min-ratio", default=1.25, show_default=True, type=float,
              help="Smallest change of share (times) worth flagging.")
@click.option("--run", "run_id", default=None, type=int, help="Discovery run for --by topic (default: the latest).")
@click.option("--split", default=None, help="Only this split.")
@click.option("--chart", default=None, type=click.Path(dir_okay=False), help="Write a chart (.png, .svg, .pdf).")
@click.option("--top", default=15, show_default=True, type=click.IntRange(min=1), help="Rows shown per group.")
@click.option("--where", default=None, metavar="EXPR", help="Only documents for which EXPR holds.")
@click.option("--label-col", default=None, metavar="COLUMN", help="The label column --by label means (default: label).")
@click.option("--tz", default="UTC", show_default=True, help="Time zone of the period boundaries (times stay UTC).")
@click.option("--min-count", default=5, show_default=True, type=click.IntRange(min=1),
              help="Periods with fewer documents are not drawn; categories need this many recent ones to be flagged.")
@json_option
@pass_ctx
def trends_cmd(ctx, dataset, by, every, within, recent, recent_from, until, alpha, min_ratio, run_id, split, chart, top,
               where, label_col, tz, min_count, as_json) -> None:
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
      $ inhouse trends --dataset tickets --recent-from 2026-03-01 --until 2026-03-31   # March vs before
      $ inhouse trends --dataset air --by negative_reason --within airline --where "label = 'negative'" \\
          --every day --tz America/Los_Angeles
    """
    from ..service.analysis import draw_trends, trends

    res = trends(ctx.ws, dataset, by=by, label_col=label_col, every=every, within=within, recent=recent, alpha=alpha,
                 min_ratio=min_ratio, run=run_id, split=split, where=where, tz=tz, min_count=min_count,
                 recent_from=recent_from, until=until)
    left = {}
    if chart:
        left = draw_trends(res, chart)
    if as_json:
        emit_json({**res.to_dict(), **({"chart": str(chart), "chart_left_out": left} if chart else {})})
        return
    _print_trends(res, top)
    if chart:
        click.echo(f"chart written to {chart}" + ("" if not left else "; not drawn (smaller): " + "; ".join(
            (f"{p}: " if p is not None else "") + ", ".join(v) for p, v in left.items())))


def _print_trends(res, top: int) -> None:
    from ..analysis.trends import window_label

    p = res.periods
    left_out = [f"{res.without_time} without a time"] if res.without_time else []
    left_out += [f"{res.without_category} without a {res.by}" + (f" or {res.within}" if res.within else "")] \
        if res.without_category else []
    filt = f" where {res.where}" if res.where else ""
    click.echo(f"{res.dataset}{filt}: {res.by} per {res.every} ({res.tz}), {len(p)} {res.every}s ({p[0]} … {p[-1]}); "
               f"recent window: {window_label(res.to_dict())}; {sum(res.totals)} documents"
               + (f" (left out: {', '.join(left_out)})" if left_out else ""))
    w = min(len(p), 24)
    click.echo(f"volume per {res.every}: {sparkline(res.totals[-24:])}  ({', '.join(str(t) for t in res.totals[-24:])})")
    parent = object()
    shown = 0
    for c in sorted(res.categories, key=lambda c: (c.parent is None, str(c.parent), c.status == "stable", -c.total)):
        if c.parent != parent:
            parent, shown = c.parent, 0
            if res.within:
                click.echo(f"\n== {res.within} = {c.parent}")
            click.echo(f"{'CATEGORY':<34}{'TOTAL':>7}{'BEFORE':>8}{'RECENT':>8}{'RATIO':>7}{'CHANGE':>9}"
                       f"{'q':>9}  {'SHARE':<{w}}  {'VOLUME':<{w}}  STATUS")
        if c.status == "stable" and shown >= top:
            continue
        shown += 1
        label = c.category if c.name == c.category else f"{c.category}: {c.name}"
        ratio = "new" if c.share_ratio is None else f"{c.share_ratio:.2f}"
        mark = {"emerging": "▲ emerging", "declining": "▼ declining"}.get(c.status, "")
        click.echo(f"{_cut(label, 33):<34}{c.total:>7}{c.share_baseline:>8.1%}{c.share_recent:>8.1%}{ratio:>7}"
                   f"{c.abs_change * 100:>+7.1f}pp{c.q_value:>9.2g}  {sparkline(c.shares[-24:], c.thin[-24:]):<{w}}  "
                   f"{sparkline(c.counts[-24:]):<{w}}  {mark}")
    flagged = res.flagged()
    within = (f"; a sub-topic's share is of all documents, so one whose {res.within} grew around it is not "
              "declining") if res.within else ""
    click.echo("\n" + (f"{len(res.emerging())} emerging, {len(res.declining())} declining (q < {res.alpha}, share "
                       f"ratio >= {res.min_ratio} or <= {1 / res.min_ratio:.2f}, at least {res.min_count} recent "
                       "documents)" if flagged else f"nothing emerging or declining at q < {res.alpha}")
               + f"; · = a {res.every} with fewer than {res.min_count} documents" + within)


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
@click.option("--where", default=None, metavar="EXPR", help="Only documents for which EXPR holds.")
@click.option("--label-col", default=None, metavar="COLUMN", help="The label column --by label means (default: label).")
@click.option("--yes", is_flag=True, help="Run a long --llm job without asking.")
@json_option
@pass_ctx
def summarize_cmd(ctx, dataset, by, llm, n_docs, categories, run_id, split, where, label_col, yes, as_json) -> None:
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
    from ..service.analysis import summarize

    r = summarize(ctx.ws, dataset, by=by, label_col=label_col, llm=llm, n_docs=n_docs, run=run_id, split=split,
                  categories=list(categories), where=where, confirm=llm_confirm(yes, as_json))
    out = r["summaries"]
    if as_json:
        emit_json({**r, "summaries": [s.to_dict() for s in out]})
        return
    for s in out:
        label = s.category if s.name == s.category else f"{s.category}: {s.name}"
        click.echo(f"■ {label} — {s.size} documents ({s.share:.1%})")
        click.echo(f"  keywords: {', '.join(s.keywords[:8])}")
        for line in s.summary.splitlines():
            click.echo(f"  {line}")
        if s.kind == "abstractive":  # the model's sentence, then the documents it came from
            for line in s.texts:
                click.echo(f"    - {_cut(line, 200)}")
        click.echo(f"  {s.id_column}: {', '.join(str(i) for i in s.ids)}")
        for note in s.notes:
            click.echo(f"  note: {note}")
        click.echo("")
    if out:
        writer = f"{out[0].model} ({out[0].model_sha256[:12]})" if out[0].model else "extractive"
        click.echo(f"{len(out)} summaries ({writer}), run {out[0].run_id}")
        if llm:
            n = r  # the counts of generated summaries kept and fallen back
            click.echo(f"{llm}: {n['generated_kept']} generated summaries kept, {n['fell_back']} fell back to the "
                       f"extractive summary; {n['sentences_kept']} sentences kept, {n['sentences_dropped']} dropped "
                       "(a word or number in none of the documents; see the notes)")
