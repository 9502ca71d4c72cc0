"""``inhouse gc`` (retention: remove what is old or orphaned, merge cache parts) and ``inhouse status`` (disk use)."""

from __future__ import annotations

from dataclasses import asdict

import click

from . import cli, emit_json, json_option, pass_ctx


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


@cli.command("gc")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed or merged.")
@click.option("--keep-pipeline-runs", type=click.IntRange(min=0), default=None,
              help="Keep the newest N runs/pipelines/job-N folders (default: the workspace's retention, 30).")
@click.option("--keep-days", type=click.FloatRange(min=0), default=None,
              help="Keep anything younger than this many days (default: the workspace's retention, 30).")
@click.option("--tmp-hours", type=click.FloatRange(min=0), default=None,
              help="Remove tmp/ leftovers older than this (default: the workspace's retention, 24).")
@click.option("--save", is_flag=True, help="Keep the given settings as the workspace's retention (retention.json).")
@json_option
@pass_ctx
def gc_cmd(ctx, dry_run, keep_pipeline_runs, keep_days, tmp_hours, save, as_json) -> None:
    """Remove what the workspace's retention says is old, and derived data nothing points to.

    Pipeline run folders beyond the newest N (and older than the days kept),
    job logs and outputs older than the days kept, prediction sets of removed
    datasets, cached probabilities of removed model versions, upload and
    checkpoint leftovers in tmp/; probability-cache parts are merged. Nothing of
    a queued or running job is touched. Documents, models and labels are never
    removed here (use datasets rm / models rm).

    \b
    Example:
      $ inhouse gc --dry-run
      would remove 41 items, 1.2 GB: 12 pipeline runs, 27 job files, 1 orphans, 1 tmp; would merge 1 cache folder
      $ inhouse gc --keep-pipeline-runs 10 --keep-days 14 --save
    """
    from ..service import maintenance

    retention = maintenance.retention(ctx.ws, save=save, keep_pipeline_runs=keep_pipeline_runs, keep_days=keep_days,
                                      tmp_hours=tmp_hours)
    out = maintenance.gc(ctx.ws, retention=retention, dry_run=dry_run)
    if as_json:
        emit_json(out)
        return
    kinds = ("pipeline_runs", "job_files", "orphans", "tmp")
    n = sum(len(out[k]) for k in kinds)
    parts = ", ".join(f"{len(out[k])} {k.replace('_', ' ')}" for k in kinds if out[k])
    verb, merge = ("would remove", "would merge") if dry_run else ("removed", "merged")
    click.echo(f"{verb} {n} items, {_size(out['bytes'])}{': ' + parts if parts else ''}; "
               f"{merge} {len(out['compacted'])} cache folder{'s' if len(out['compacted']) != 1 else ''}")
    for k in kinds:
        for item in out[k]:
            click.echo(f"  {k:<14} {item['path']}  {_size(item['bytes'])}")
    click.echo(f"retention: {asdict(retention)}" + (" (saved)" if save else ""))


@cli.command("status")
@json_option
@pass_ctx
def status_cmd(ctx, as_json) -> None:
    """Disk use of the workspace, folder by folder, and its retention settings.

    \b
    Example:
      $ inhouse status
      workspace /home/ana/.local/share/inhouse: 2.4 GB
        datasets          1.1 GB   1,204 files  documents (Parquet parts) and discovery runs of each dataset
        ...
    """
    from ..service import maintenance

    out = maintenance.status(ctx.ws)
    if as_json:
        emit_json(out)
        return
    click.echo(f"workspace {out['home']}: {_size(out['total_bytes'])}")
    for name, f in sorted(out["folders"].items(), key=lambda x: -x[1]["bytes"]):
        click.echo(f"  {name:<16}{_size(f['bytes']):>10}  {f['files']:>7,} files  {f['holds']}")
    click.echo(f"retention: {out['retention']} (inhouse gc applies it)")
