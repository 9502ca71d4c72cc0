"""``inhouse models ...``: the base-model catalog and registered local models."""

from __future__ import annotations

import click

from ..models.catalog import add_model, list_models
from ..service.models import model_kinds
from . import LiveChoice, cli, emit_json, json_option, pass_ctx


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
@click.option("--name", default=None, help="Only the versions of this trained model.")
@json_option
@pass_ctx
def list_cmd(ctx, name: str | None, as_json: bool) -> None:
    """List base models and trained model versions.

    \b
    Example:
      $ inhouse models list
      NAME          KIND                   SIZE      SHA256        LICENSE
      minilm-l6     sentence-transformers  87.1 MB   53aa51172d14  Apache-2.0
      <BLANKLINE>
      MODEL     VERSION  ALIASES     METHOD  LABELS  ACCURACY  MACRO_F1  ON             SIZE  CREATED              SHA256
      intents   @2       production  head        77     0.912     0.905  banking77:t  1.3 MB  2026-11-29 14:28:08  3f9a1c0b7d2e
    """
    from .. import registry

    trained = registry.catalog(ctx.ws, name)
    base = [] if name else list_models(ctx.ws)
    if as_json:
        emit_json({"base_models": [m.to_dict() for m in base], "models": trained})
        return
    if base:
        w = max(16, max(len(m.name) for m in base) + 2)  # 'qwen2.5-coder-1.5b' ran into its kind
        click.echo(f"{'NAME':<{w}}{'KIND':<23}{'SIZE':>10}  {'SHA256':<14}{'LICENSE':<12}SOURCE")
        for m in base:
            click.echo(f"{m.name:<{w}}{m.kind:<23}{human_size(m.size):>10}  {m.sha256[:12]:<14}{(m.license or '?'):<12}{m.source}")
    if not trained:
        if not base:
            click.echo(f"no trained versions of {name!r}" if name else "no trained models")
        return
    click.echo("")
    click.echo(f"{'MODEL':<16}{'VERSION':<9}{'ALIASES':<14}{'METHOD':<11}{'LABELS':>6}{'ACCURACY':>10}{'MACRO_F1':>10}  "
               f"{'ON':<12}{'SIZE':>10}  {'CREATED':<21}SHA256")
    for r in trained:
        m = r["metrics"]
        acc = m.get("accuracy")
        f1 = m.get("macro_f1", m.get("f1_macro"))
        created = (r["created_at"] or "?").replace("T", " ").replace("Z", "")
        method = str(r["method"] or "?") + (f":{r['format']}" if r["format"] != "safetensors" else "")
        on = {"validation": "val"}.get(m.get("on"), m.get("on") or "-")
        click.echo(f"{r['name']:<16}{'@' + str(r['version']):<9}{','.join(r['aliases']) or '-':<14}{method:<11}"
                   f"{r['labels']:>6}{score(acc):>10}{score(f1):>10}  {on[:11]:<12}{human_size(r['size']):>10}  "
                   f"{created:<21}{r['sha256'][:12]}")


def score(v) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) else "-"


@models_group.command("add")
@click.argument("name")
@click.argument("path", type=click.Path(exists=True))
@click.option("--kind", type=LiveChoice(lambda: model_kinds()), help="Override the detected kind.")
@click.option("--license", "license_", help="The model's license, shown in listings and model cards.")
@click.option("--trust-code", is_flag=True,
              help="Accept a folder that names custom code (modules.json classes, auto_map). Only for code you audited.")
@json_option
@pass_ctx
def add_cmd(ctx, name: str, path: str, kind: str | None, license_: str | None, trust_code: bool, as_json: bool) -> None:
    """Register a local model folder, ONNX file or GGUF file as NAME.

    \b
    Example:
      $ inhouse models add e5-small /models/e5-small-v2
      added e5-small: hf, 127.8 MB, sha256 4c1f0e...
    """
    m = add_model(ctx.ws, name, path, kind=kind, license=license_, trust_code=trust_code)
    if as_json:
        emit_json(m.to_dict())
    else:
        click.echo(f"added {m.name}: {m.kind}, {human_size(m.size)}, sha256 {m.sha256[:16]}")
