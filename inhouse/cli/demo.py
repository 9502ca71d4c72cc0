"""``inhouse demo``: run the whole platform on a generated contact-center corpus."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

import click

from ..demo import run as demo_api
from . import cli, emit_json, json_option, pass_ctx


def inhouse_command() -> str:
    """How to run this same ``inhouse`` from the user's shell, as printed: ``inhouse`` when it is the one on
    $PATH, else the full path of the venv's script (``make demo`` runs .venv/bin/inhouse, which is on no PATH
    until the venv is activated), else ``PYTHON -m inhouse``."""
    script = Path(sys.executable).with_name("inhouse")
    on_path = shutil.which("inhouse")
    if script.is_file() and os.access(script, os.X_OK):
        if on_path and Path(on_path).resolve() == script.resolve():
            return "inhouse"
        return shlex.quote(str(script.absolute()))
    return f"{shlex.quote(str(Path(sys.executable).absolute()))} -m inhouse"


def next_steps(home) -> list[str]:
    """The commands the demo ends with, runnable as printed from the same shell."""
    cmd = f"{inhouse_command()} --home {shlex.quote(str(home))}"
    return [f"{cmd} tokens create me --role admin", f"{cmd} serve",
            "# then open http://127.0.0.1:8080/ and sign in with the token"]


def _line(name: str, r: dict) -> str:
    """One readable line per step; the full results are in --json."""
    show = {k: v for k, v in r.items() if not isinstance(v, (dict, list)) or k in ("redacted",)}
    parts = ", ".join(f"{k}={v}" for k, v in list(show.items())[:8])
    return f"  {name:<10} {parts}"


@cli.command("demo")
@click.option("--rows", default=6000, show_default=True, help="Messages to generate.")
@click.option("--seed", default=7, show_default=True, help="Seed for the generated corpus and the models.")
@click.option("--out", "out_dir", default="demo-out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the generated corpus, charts and reports.")
@click.option("--no-llm", is_flag=True, help="Skip the local generative model (topic names, summaries).")
@json_option
@pass_ctx
def demo_cmd(ctx, rows: int, seed: int, out_dir: str, no_llm: bool, as_json: bool) -> None:
    """Generate a contact-center corpus and carry it through the whole platform.

    \b
    Example:
      $ inhouse --home demo-workspace demo
      generate   file=demo-out/contact_center.csv, rows=6000, ...
      ingest     read=6000, stored=6000, duplicates=..., quarantined=0
      ...
    """
    cfg = demo_api.DemoConfig(rows=rows, seed=seed, out_dir=Path(out_dir), llm=None if no_llm else "smollm2-135m")
    if not as_json:
        click.echo(f"inhouse demo: workspace {ctx.ws.home}")

    def show(name: str, result: dict, seconds: float) -> None:
        if not as_json:
            click.echo(f"[{seconds:6.1f}s]" + _line(name, result))
            for line in result.get("lines", []):
                click.echo(f"            {line}")

    report = demo_api.run(ctx.ws, cfg, on_step=show)
    if as_json:
        emit_json(report)
    else:
        click.echo(f"done in {report['seconds']:.0f} s. Workspace: {report['workspace']}  Outputs: {report['out_dir']}")
        click.echo(f"report: {report['report']}")
        click.echo("in the browser (copy these as they are; the venv need not be activated):")
        for line in next_steps(report["workspace"]):
            click.echo(f"  {line}")
