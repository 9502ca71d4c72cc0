"""``inhouse pipeline run``, ``inhouse prices show|set`` and ``inhouse runs list|show``."""

from __future__ import annotations

import datetime as dt

import click

from ..service import costs as costs_api
from ..service.pipelines import DRIFT_EXIT_CODE
from . import cli, emit_json, json_option, pass_ctx


@cli.group("pipeline")
def pipeline_group() -> None:
    """Declarative pipelines: ingest, classify, summarize, discover, trends, report."""


@pipeline_group.command("run")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--fail-on-drift", is_flag=True,
              help=f"Exit with code {DRIFT_EXIT_CODE} when the run's drift is flagged (for schedulers that watch).")
@json_option
@pass_ctx
def pipeline_run_cmd(ctx, file: str, fail_on_drift: bool, as_json: bool) -> None:
    """Run the steps of a pipeline file; steps whose inputs did not change are skipped.

    Paths in the file are relative to its folder. The model of classify is
    resolved to its sha256 once at the start; the report names it. A run that
    classifies gets a drift record (abstain rate, mean confidence and category
    mix of its new documents against the version's evaluation and the previous
    runs; thresholds in the file's ``drift:`` key); with --fail-on-drift a
    flagged run exits with code 10 after printing its result.

    \b
    Example:
      $ inhouse pipeline run examples/contact-center-daily.yaml
      ingest     done      2.1 s   6000 rows
      classify   done      3.0 s   6000 rows  intents@3 (onnx-int8)
      ...
      drift: ok (1,200 new documents; abstain rate 4.1%, mean confidence 0.912)
      report: examples/out/report.html
    """
    from ..service.pipelines import run_file as run_pipeline

    def show(step: dict) -> None:
        if not as_json:
            extra = f"  {step['model']}" if step.get("model") else ""
            why = f"  ({step['reason']})" if step.get("reason") else ""
            click.echo(f"  {step['name']:<10} {step['status']:<8} {step['seconds']:7.1f} s {step['rows']:>9,} rows"
                       f"{extra}{why}")

    r = run_pipeline(ctx.ws, file, on_step=show)
    if as_json:
        emit_json(r)
    else:
        c = r["cost"]
        click.echo(f"run {r['run_id']}: {r['seconds']:.1f} s, {c['cpu_seconds']:.0f} CPU s, peak {c['peak_rss_mb']:.0f} MB")
        if r.get("drift"):
            click.echo(f"drift: {drift_line(r['drift'])}")
            for reason in r["drift"]["reasons"]:
                click.echo(f"  ! {reason}")
        click.echo(f"report: {r['report']}")
    if fail_on_drift and (r.get("drift") or {}).get("flagged"):
        click.get_current_context().exit(DRIFT_EXIT_CODE)


def drift_line(d: dict) -> str:
    """One line of a drift record: its status, window and numbers."""
    p, n = d.get("profile") or {}, (d.get("window") or {}).get("documents")
    if not p or not n:
        return f"{d['status']} ({d.get('note') or 'nothing to measure'})"
    conf = p.get("mean_confidence")
    return (f"{d['status']} ({n:,} new documents; abstain rate {p['abstain_rate']:.1%}"
            + (f", mean confidence {conf:.3f}" if conf is not None else "") + ")")


# -------------------------------------------------------------- schedules ----

@pipeline_group.command("schedule")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--every", required=True, metavar="EVERY",
              help="Ns, Nm, Nh or Nd (15m, 1h, 1d; at least 1s), or a 5-field cron expression in UTC.")
@click.option("--name", default=None, help="The schedule's name (default: the pipeline's name).")
@json_option
@pass_ctx
def pipeline_schedule_cmd(ctx, file: str, every: str, name: str | None, as_json: bool) -> None:
    """Run a pipeline file again and again from the running server (``inhouse serve``).

    The file's content is copied now: a later edit or removal of the file changes
    nothing (schedule it again, and remove the old schedule, to change it). Its
    relative paths (an inbox, the report) still resolve in the file's folder, so
    new files there are what the next run reads; steps whose inputs did not change
    are skipped. One run at a time per schedule; after downtime the missed runs
    are run once, and the next run is one interval later. Runs are listed by
    ``inhouse runs list --kind pipeline``.

    \b
    Example:
      $ inhouse pipeline schedule examples/contact-center-daily.yaml --every 1h
      schedule 1: contact-center-daily every 1h, next run 2026-12-03 16:00:00 UTC
      $ inhouse pipeline schedule examples/contact-center-daily.yaml --every "0 6 * * 1-5"
    """
    from ..service import schedules

    s = schedules.schedule_file(ctx.ws, file, every, name=name)
    if as_json:
        emit_json(s)
        return
    click.echo(f"schedule {s['id']}: {s['name']} every {s['every']}, next run {_when(s['next_at'])} UTC "
               "(runs while `inhouse serve` runs)")


@pipeline_group.group("schedules", invoke_without_command=True)
@json_option
@click.pass_context
def schedules_group(click_ctx, as_json: bool) -> None:
    """List the schedules (next run, last run, last result); pause, resume or remove one.

    \b
    Example:
      $ inhouse pipeline schedules
      ID  NAME                  EVERY  STATE   NEXT RUN (UTC)       LAST RUN (UTC)       LAST RESULT
      1   contact-center-daily  1h     active  2026-12-03 16:00:00  2026-12-03 15:00:00  done: run 12
      $ inhouse pipeline schedules pause 1
    """
    if click_ctx.invoked_subcommand is None:
        _list_schedules(as_json)


def _last(s: dict) -> str:
    last = s["last"]
    if not last:
        return "-"
    if last["status"] == "done":
        drift = f" (drift {last['drift']})" if last.get("drift") == "flagged" else ""
        return f"done: run {last['run_id']}{drift}" if last.get("run_id") else f"done: {last.get('skipped') or 'nothing'}"
    return f"{last['status']}: {last['error']}" if last.get("error") else last["status"]


@pass_ctx
def _list_schedules(ctx, as_json: bool) -> None:
    from ..service import schedules

    rows = schedules.listing(ctx.ws)
    if as_json:
        emit_json({"schedules": rows})
        return
    click.echo(f"{'ID':<4}{'NAME':<22}{'EVERY':<14}{'STATE':<8}{'NEXT RUN (UTC)':<21}{'LAST RUN (UTC)':<21}LAST RESULT")
    for s in rows:
        click.echo(f"{s['id']:<4}{s['name'][:21]:<22}{s['every'][:13]:<14}{'paused' if s['paused'] else 'active':<8}"
                   f"{_when(s['next_at']) if s['next_at'] else '-':<21}{_when(s['last_at']) if s['last_at'] else '-':<21}"
                   f"{_last(s)[:80]}")


def _change(action: str, doc: str):
    @schedules_group.command(action, help=doc)
    @click.argument("schedule_id", type=int)
    @json_option
    @pass_ctx
    def cmd(ctx, schedule_id: int, as_json: bool) -> None:
        from ..service import schedules

        s = getattr(schedules, action)(ctx.ws, schedule_id)
        if as_json:
            emit_json(s)
        else:
            click.echo(f"schedule {s['id']} ({s['name']}): {action}d" if action != "remove" else
                       f"schedule {s['id']} ({s['name']}): removed; its past runs stay")

    return cmd


_change("pause", "Stop starting runs of a schedule (a run under way goes on).")
_change("resume", "Start runs of a paused schedule again; the next is one interval from now.")
_change("remove", "Remove a schedule; its past runs stay (a run under way goes on).")


# ----------------------------------------------------------------- prices ----

@pipeline_group.command("steps")
@json_option
def pipeline_steps_cmd(as_json: bool) -> None:
    """List the steps a pipeline file may name, with their options and defaults (required: ...).

    \b
    Example:
      $ inhouse pipeline steps
      ingest      path (required), text_col=text, time_col, id_col, label_col, split_col, redact_pii=False, ...
      classify    model (required), top_k=3, engine=local, ...
    """
    from ..service.pipelines import step_kinds

    steps = step_kinds()
    if as_json:
        emit_json({"steps": steps})
        return
    for s in steps:
        opts = ", ".join(k + (" (required)" if o["required"] else "" if o["default"] is None else f"={o['default']}")
                         for k, o in s["options"].items())
        click.echo(f"{s['kind']:<12}{opts}")


@cli.group("prices")
def prices_group() -> None:
    """The hosted-API price table used to show what the same work would have cost."""


@prices_group.command("show")
@json_option
@pass_ctx
def prices_show_cmd(ctx, as_json: bool) -> None:
    """List prices per million tokens, each with the date it was read.

    \b
    Example:
      $ inhouse prices show
      MODEL                           KIND       INPUT/1M  OUTPUT/1M  READ ON
      openai-text-embedding-3-small   embedding      0.02       0.00  2024-12-01
    """
    table = costs_api.prices(ctx.ws)
    if as_json:
        emit_json({"prices": [p.to_dict() for p in table]})
        return
    click.echo(f"{'MODEL':<32}{'KIND':<11}{'INPUT/1M':>9}{'OUTPUT/1M':>11}  {'CUR':<5}{'READ ON':<12}SOURCE")
    for p in table:
        click.echo(f"{p.model:<32}{p.kind:<11}{p.input_per_1m:>9.3f}{p.output_per_1m:>11.3f}  {p.currency:<5}"
                   f"{p.read_on:<12}{p.source or ''}")
    click.echo("prices are list prices as read on the date shown; check them: inhouse prices set MODEL --input X ...")


@prices_group.command("set")
@click.argument("model")
@click.option("--input", "input_price", required=True, type=float, help="Price per 1M input tokens.")
@click.option("--output", "output_price", default=0.0, type=float, show_default=True, help="Price per 1M output tokens.")
@click.option("--kind", type=click.Choice(["embedding", "chat"]), default=None,
              help="embedding: input tokens only; chat: plus a short label per document (default: by --output).")
@click.option("--read-on", default=None, metavar="YYYY-MM-DD", help="When you read the price (default: today).")
@click.option("--currency", default="USD", show_default=True)
@click.option("--source", default=None, help="Where the price was read.")
@json_option
@pass_ctx
def prices_set_cmd(ctx, model, input_price, output_price, kind, read_on, currency, source, as_json) -> None:
    """Add or change one hosted model's price.

    \b
    Example:
      $ inhouse prices set openai-text-embedding-3-small --input 0.02 --read-on 2026-11-30
    """
    p = costs_api.set_price(ctx.ws, model, input_per_1m=input_price, output_per_1m=output_price, kind=kind,
                            read_on=read_on, currency=currency, source=source)
    if as_json:
        emit_json(p.to_dict())
    else:
        click.echo(f"{p.model}: {p.input_per_1m} / {p.output_per_1m} {p.currency} per 1M tokens (read on {p.read_on})")


# ------------------------------------------------------------------- runs ----

@cli.group("runs")
def runs_group() -> None:
    """Recorded runs (classify, embed, train, pipeline, ...) with their model version and cost."""


def _when(t) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if t else "?"


@runs_group.command("list")
@click.option("--kind", default=None, help="Only runs of this kind (classify, embed, train, pipeline, ...).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@json_option
@pass_ctx
def runs_list_cmd(ctx, kind, limit, as_json) -> None:
    """The latest runs, newest first, with documents, tokens, seconds, docs/s and peak memory.

    \b
    Example:
      $ inhouse runs list --kind classify
      ID   KIND      WHEN (UTC)           MODEL        DOCS   REUSED    TOKENS   CPU S  WALL S  DOCS/S  PEAK MB
      12   classify  2026-11-30 07:02:11  intents@3   13083        0    208311    14.2     8.1   1615     412
    """
    runs = costs_api.list_runs(ctx.ws, kind, limit)
    if as_json:
        emit_json({"runs": runs})
        return
    click.echo(f"{'ID':<6}{'KIND':<16}{'WHEN (UTC)':<21}{'MODEL':<20}{'DOCS':>9}{'REUSED':>9}{'TOKENS':>11}{'CPU S':>8}"
               f"{'WALL S':>8}{'DOCS/S':>8}{'PEAK MB':>9}")
    for r in runs:
        c = r["cost"] or {}
        num = lambda k, f: format(c[k], f) if c.get(k) is not None else "-"  # noqa: E731
        click.echo(f"{r['id']:<6}{r['kind'][:15]:<16}{_when(r['started_at']):<21}{(r['model'] or '-')[:19]:<20}"
                   f"{num('documents', ','):>9}{num('reused', ','):>9}{num('tokens', ','):>11}{num('cpu_seconds', '.1f'):>8}"
                   f"{num('wall_seconds', '.1f'):>8}{num('docs_per_second', ',.0f'):>8}{num('peak_rss_mb', ',.0f'):>9}")


@runs_group.command("show")
@click.argument("run_id", type=int)
@json_option
@pass_ctx
def runs_show_cmd(ctx, run_id, as_json) -> None:
    """One run: parameters, result, model version and cost (with the hosted-API equivalent)."""
    import json

    r = costs_api.get_run(ctx.ws, run_id)
    if as_json:
        emit_json(r)
        return
    click.echo(f"run {r['id']}: {r['kind']} {r['status']}, {_when(r['started_at'])} .. {_when(r['finished_at'])} UTC "
               f"by {r['user']}")
    if r["model"]:
        click.echo(f"  model    {r['model']} (sha256 {r['model_sha256']})")
    click.echo(f"  params   {json.dumps(r['params'], default=str)[:300]}")
    c = r["cost"]
    if not c:
        click.echo("  cost     not recorded for this run")
        return
    reused = f" ({c['reused']:,} more reused from stored results, not billed)" if c.get("reused") else ""
    click.echo(f"  cost     {c['documents']:,} documents computed{reused}, {c['tokens']:,} tokens, {c['cpu_seconds']:.1f} CPU s, "
               f"{c['wall_seconds']:.1f} s wall, {c.get('docs_per_second') or 0:,.0f} docs/s, peak {c['peak_rss_mb']:,.0f} MB")
    for name, a in (c.get("api") or {}).items():
        click.echo(f"           on {name}: {a['cost']:.4f} {a['currency']} (price read on {a['price_read_on']})")
