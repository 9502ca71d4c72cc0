"""``inhouse embed``: compute and cache embeddings for a dataset."""

from __future__ import annotations

import click

from ..service.models import DEFAULT_ENCODER, embed
from . import cli, emit_json, json_option, pass_ctx


@cli.command("embed")
@click.option("--dataset", required=True, help="Dataset to embed.")
@click.option("--model", default=DEFAULT_ENCODER, show_default=True, help="Embedding model.")
@click.option("--split", default=None, help="Only this split.")
@click.option("--where", default=None, metavar="EXPR", help="Only documents for which EXPR holds.")
@json_option
@pass_ctx
def embed_cmd(ctx, dataset: str, model: str, split: str | None, where: str | None, as_json: bool) -> None:
    """Embed every document of a dataset, reusing cached vectors.

    Each document is embedded as every stage reads it (links, @handles and HTML
    entities removed), so discover, training and summaries reuse the vectors.

    \b
    Resumable: vectors are kept in chunks as they are computed, so a killed
    run continues where it stopped. The run's cost (documents, tokens, CPU,
    peak memory) is recorded: see inhouse runs list --kind embed.

    \b
    Example:
      $ inhouse embed --dataset banking77
      embedded 13083 documents (13083 distinct texts) with minilm-l6: 13083 computed, 0 reused, 384 dims, 61.2 s
    """
    result, cost = embed(ctx.ws, dataset, model, split=split, where=where)
    if as_json:
        emit_json({**result.to_dict(), "cost": cost})
    else:
        click.echo(f"embedded {result.documents} documents ({result.unique_texts} distinct texts) with {model}: "
                   f"{result.computed} computed, {result.reused} reused, {result.dim} dims, {result.seconds:.1f} s")
