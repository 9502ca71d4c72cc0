"""``inhouse retrain``: the next version of a model, trained exactly like its production version on today's labels."""

from __future__ import annotations

import click

from . import cli, emit_json, json_option, pass_ctx


@cli.command("retrain")
@click.argument("ref")
@click.option("--dry-run", is_flag=True, help="Only say what would be trained (arguments, labels added), train nothing.")
@json_option
@pass_ctx
def retrain_cmd(ctx, ref: str, dry_run: bool, as_json: bool) -> None:
    """Train REF's model again with REF's training arguments, method and base model, on the current labels.

    REF is NAME (its production version, else its latest), NAME@N or NAME@ALIAS. The labels are read
    again from the dataset and label column REF was trained on, so labels added since (a topic or a
    candidate labelled into its label set) are learnt. Then compare and promote:
    `inhouse models diff NAME@production NAME@NEW --dataset D`, `inhouse models alias NAME@NEW production`.

    \b
    Example:
      $ inhouse retrain intents --dry-run
      would train intents@next like intents@1 (head on minilm-l6, label column intent of b5): 60 labelled rows
      (then 48), 5 labels, added ['lost_or_stolen_card'], removed []
      $ inhouse retrain intents
      retrained intents@2 like intents@1 (head on minilm-l6, label column intent of b5): 5 labels, added
      ['lost_or_stolen_card']
      val accuracy 100.0%, macro-F1 1.000, 14.9 s, sha256 12ebc0df70d0
      next: inhouse models diff intents@1 intents@2 --dataset b5
    """
    from ..service.retrain import plan, retrain

    if dry_run:
        p = plan(ctx.ws, ref)
        if as_json:
            emit_json(p)
            return
        click.echo(f"would train {p['name']}@next like {p['like']['ref']} ({p['method']} on {p['base']}, label column "
                   f"{p['label_col']} of {p['dataset']}): {p['rows']} labelled rows (then {p['rows_before']}), "
                   f"{len(p['labels'])} labels, added {p['labels_added']}, removed {p['labels_removed']}"
                   + ("" if p["changed"] else "; the labelled rows are unchanged"))
        return
    r = retrain(ctx.ws, ref)
    if as_json:
        emit_json(r)
        return
    m = r["val_metrics"]
    click.echo(f"retrained {r['ref']} like {r['like']['ref']} ({r['method']} on {r['base']}, label column "
               f"{r['label_col']} of {r['dataset']}): {len(r['labels'])} labels, added {r['labels_added']}")
    click.echo(f"val accuracy {m.get('accuracy', 0):.1%}, macro-F1 {m.get('macro_f1', 0):.3f}, {r['train_seconds']:.1f} s, "
               f"sha256 {r['sha256'][:12]}")
    click.echo(f"next: inhouse models diff {r['like']['ref']} {r['ref']} --dataset {r['dataset']}")
