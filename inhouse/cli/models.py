"""``inhouse models ...``: the base-model catalog and registered local models."""

from __future__ import annotations

import click

from .. import models as models_api
from . import cli, emit_json, json_option, pass_ctx


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@cli.group("models")
def models_group() -> None:
    """Base models (catalog and your own) and trained model versions."""


@models_group.command("list")
@json_option
@pass_ctx
def list_cmd(ctx, as_json: bool) -> None:
    """List the models this workspace can use.

    \b
    Example:
      $ inhouse models list
      NAME          KIND                   SIZE      SHA256        LICENSE
      minilm-l6     sentence-transformers  87.1 MB   53aa51172d14  Apache-2.0
    """
    base = models_api.list_models(ctx.ws)
    if as_json:
        emit_json({"base_models": [m.to_dict() for m in base]})
        return
    click.echo(f"{'NAME':<16}{'KIND':<23}{'SIZE':>10}  {'SHA256':<14}{'LICENSE':<12}SOURCE")
    for m in base:
        click.echo(f"{m.name:<16}{m.kind:<23}{human_size(m.size):>10}  {m.sha256[:12]:<14}{(m.license or '?'):<12}{m.source}")


@models_group.command("add")
@click.argument("name")
@click.argument("path", type=click.Path(exists=True))
@click.option("--kind", type=click.Choice(models_api.KINDS), help="Override the detected kind.")
@click.option("--license", "license_", help="The model's license, shown in listings and model cards.")
@json_option
@pass_ctx
def add_cmd(ctx, name: str, path: str, kind: str | None, license_: str | None, as_json: bool) -> None:
    """Register a local model folder, ONNX file or GGUF file as NAME.

    \b
    Example:
      $ inhouse models add e5-small /models/e5-small-v2
      added e5-small: hf, 127.8 MB, sha256 4c1f0e...
    """
    m = models_api.add_model(ctx.ws, name, path, kind=kind, license=license_)
    if as_json:
        emit_json(m.to_dict())
    else:
        click.echo(f"added {m.name}: {m.kind}, {human_size(m.size)}, sha256 {m.sha256[:16]}")
