"""``inhouse train | eval | explain-weights | explain | classify``: fine-tune, measure, inspect, apply.

Heavy imports (torch, transformers) happen inside the commands, so ``inhouse
--help`` stays fast.
"""

from __future__ import annotations

import click

from ..errors import UsageError
from ..service.training import method_names
from . import LiveChoice, cli, emit_json, json_option, pass_ctx


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def prepared_line(p: dict) -> str:
    """One line on what was prepared for fast classify (ONNX precision and verdict, cascade)."""
    if not p.get("prepared"):
        return f"fast classify: not prepared ({p.get('reason')})"
    line = f"fast classify prepared in {p['seconds']:.1f} s: onnx {p['onnx']['precision']} ({p['onnx']['rule']})"
    c = p.get("cascade")
    if c and c.get("use"):
        v = c["validation"]
        line += (f"; cascade answers {_pct(v['share'])} of validation rows, accuracy {_pct(v['accuracy'])} vs "
                 f"{_pct(v['accuracy_transformer'])} for the transformer alone")
    elif c:
        line += f"; cascade not used ({c.get('reason')})"
    return line


def _speed_notes(r: dict) -> list[str]:
    """Notes for classify's output: a graph built now instead of at save, the cascade's share or why it is off."""
    notes = [r["prepared"]] if r.get("prepared") and r["prepared"] != "at save" else []
    c = r.get("cascade")
    if isinstance(c, str):
        notes.append(c)
    elif isinstance(c, dict) and c.get("share") is not None:
        notes.append(f"the cascade answered {_pct(c['share'])} of the distinct texts ({c['answered']}), "
                     f"the transformer the rest")
    return notes


@cli.command("train")
@click.option("--dataset", required=True, help="Dataset with labelled documents.")
@click.option("--name", required=True, help="Model name; each training adds a version NAME@N.")
@click.option("--base", default="minilm-l6", show_default=True, help="Base model (inhouse models list).")
@click.option("--method", type=LiveChoice(lambda: method_names()), default="full", show_default=True,
              help="head: frozen encoder + logistic regression (seconds); setfit: contrastive + head; "
                   "full: end-to-end fine-tuning (best accuracy per CPU minute); lora: adapters (also causal LMs); "
                   "and any method registered with inhouse.training.registry.register_method.")
@click.option("--label-col", default="label", show_default=True, help="'label', or a metadata column of the dataset.")
@click.option("--split", default="train", show_default=True, help="Split to train on ('all' for every row).")
@click.option("--shots", type=int, help="Sample K examples per label (few-shot), with --seed.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--epochs", type=float, help="Epochs (default: the method's).")
@click.option("--max-steps", type=int, help="Stop after this many optimizer steps.")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--learning-rate", type=float, help="Encoder learning rate (default: the method's).")
@click.option("--val-fraction", type=float, default=0.1, show_default=True,
              help="Share of each label's rows held out for choosing epochs/C (0: none).")
@click.option("--min-examples", type=int, default=0, help="Drop labels with fewer examples than this.")
@click.option("--max-seq-length", type=int, default=128, show_default=True, help="Tokens per text.")
@click.option("--freeze-layers", type=int, help="Train only the layers above the bottom N (and the head); the "
              "frozen ones run once per text, not every step (full's default: half the layers of a BERT-family encoder).")
@click.option("--label-names", is_flag=True, help="Also train on each label's name as an example text (one row per label).")
@click.option("--threads", type=int, help="torch threads (fix it for bit-identical reruns across machines).")
@click.option("--no-prepare", is_flag=True, help="Skip building the fast-classify graph and cascade now "
              "(then the first classify builds the graph).")
@click.option("--where", default=None, metavar="EXPR", help="Train only on documents for which EXPR holds, "
              "e.g. \"label = 'negative'\" (columns: inhouse datasets show).")
@click.option("--no-abstain", is_flag=True, help="Never answer 'other': always the most likely label.")
@click.option("--abstain-target", type=float, default=None,
              help="Abstain by confidence alone, turning away this share of in-scope validation rows (e.g. 0.2). "
              "Default: confidence and distance to the training rows, tuned on classes left out of them.")
@click.option("--abstain-max-loss", type=float, default=None, metavar="SHARE",
              help="What abstaining may cost in in-scope accuracy, as a share (default 0.01: one point). Raise it "
              "(e.g. 0.02) to turn away more texts of intents never trained on, at more good answers turned away.")
@click.option("--other-label", default="other", show_default=True, help="The answer when the model abstains.")
@click.option("--out-of-scope", "out_of_scope", multiple=True, metavar="LABEL",
              help="Rows with this label are out of scope: learnt from, and answered as --other-label (repeat).")
@json_option
@pass_ctx
def train_cmd(ctx, dataset, name, base, method, label_col, split, shots, seed, epochs, max_steps, batch_size,
              learning_rate, val_fraction, min_examples, max_seq_length, freeze_layers, label_names, threads, where,
              no_abstain, abstain_target, abstain_max_loss, other_label, out_of_scope, no_prepare, as_json) -> None:
    """Train a classifier on a dataset's labels and save it as a new version.

    The model can abstain: on the validation rows (carved from the training
    rows, never the test split) training sets the confidence under which it
    answers 'other' instead of a label; rows whose label is given with
    --out-of-scope are learnt from and set that threshold too.

    \b
    Example:
      $ inhouse train --dataset air --name complaints --method head --label-col negative_reason \\
          --where "label = 'negative'"
      $ inhouse train --dataset banking77 --name intents --method head
      trained intents@1 (head on minilm-l6): 9003 train / 1000 val rows, 77 labels,
      val accuracy 91.7%, macro-F1 0.915, 52.3 s, sha256 64067f5f3839
    """
    from ..service.training import train, training_arguments

    if abstain_max_loss is not None and (abstain_target is not None or no_abstain):
        raise UsageError("--abstain-max-loss bounds the default rule (confidence and distance); it does not apply "
                         f"with {'--no-abstain' if no_abstain else '--abstain-target'}.",
                         fix="Give one of them.")

    args = training_arguments(dict(base=base, method=method, label_col=label_col, split=None if split == "all" else split,
                             shots=shots, seed=seed, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
                             learning_rate=learning_rate, val_fraction=val_fraction, min_examples=min_examples,
                             max_seq_length=max_seq_length, freeze_layers=freeze_layers, label_names=label_names,
                             num_threads=threads,
                             where=where, abstain=not no_abstain, other_label=other_label,
                             out_of_scope=list(out_of_scope) or None,
                             **({"abstain_target": abstain_target, "abstain_rule": "quantile"}
                                if abstain_target is not None else {}),
                             **({"abstain_max_loss": abstain_max_loss} if abstain_max_loss is not None else {})))
    r = train(ctx.ws, dataset, name, args, prepare=not no_prepare)
    if as_json:
        emit_json(r.to_dict())
        return
    m = r.val_metrics
    click.echo(f"trained {r.ref} ({r.method} on {r.base}): {r.n_train} train / {r.n_val} val rows, {len(r.labels)} labels, "
               f"val accuracy {_pct(m.get('accuracy'))}, macro-F1 {m.get('macro_f1', 0):.3f}, {r.train_seconds:.1f} s, "
               f"sha256 {r.sha256[:12]}")
    a = r.abstain or {}
    if a.get("threshold") is not None:
        oos = f", out-of-scope recall {_pct(a['val_out_of_scope_recall'])}" if a.get("val_out_of_scope_recall") is not None else ""
        d = a.get("distance") or {}
        how = (f"when (1 - confidence) + {d['weight']:g} x distance to the nearest training row is over "
               f"{d['threshold']:.3f}" if d else f"under confidence {a['threshold']:.3f}")
        click.echo(f"abstains ('{a['label']}') {how} ({a.get('rule')} rule): on "
                   f"validation {_pct(a.get('val_in_scope_abstain_rate'))} of in-scope rows{oos}; --no-abstain turns it off")
    if r.prepared:
        click.echo(prepared_line(r.prepared))


@cli.command("eval")
@click.argument("model")
@click.option("--dataset", required=True)
@click.option("--split", default="test", show_default=True, help="Split to evaluate on ('all' for every row).")
@click.option("--label-col", default="label", show_default=True)
@click.option("--out", type=click.Path(file_okay=False), help="Folder for the confusion PNG and a JSON report (default: the workspace's runs/).")
@click.option("--where", default=None, metavar="EXPR", help="Evaluate only on documents for which EXPR holds.")
@click.option("--no-abstain", is_flag=True, help="Score the model's most likely label, never 'other'.")
@json_option
@pass_ctx
def eval_cmd(ctx, model, dataset, split, label_col, out, where, no_abstain, as_json) -> None:
    """Measure MODEL[@VERSION] on labelled rows, beside the zero-shot base model.

    \b
    Example:
      $ inhouse eval intents --dataset banking77
      intents@1 on banking77/test (3080 rows): accuracy 93.1%, macro-F1 0.931, ECE 0.021
      zero-shot minilm-l6 on the same rows: accuracy 62.2%, macro-F1 0.612
    """
    from ..analysis.evaluate import evaluate

    r = evaluate(ctx.ws, model, dataset, None if split == "all" else split, label_col=label_col, out=out,
                 where=where, abstain=not no_abstain)
    for w in r["warnings"]:
        click.echo(f"warning: {w}", err=True)
    if as_json:
        emit_json(r)
        return
    click.echo(f"{r['model']} on {dataset}/{split}{' where ' + where if where else ''} ({r['n']} rows): accuracy "
               f"{_pct(r['accuracy'])}, macro-F1 {r['macro_f1']:.3f}, ECE {r['ece']:.3f}")
    a = r.get("abstain") or {}
    if a.get("enabled"):
        oos = (f"; {a['out_of_scope_rows']} rows with labels it never saw: abstained on {_pct(a['out_of_scope_recall'])}"
               if a.get("out_of_scope_recall") is not None else "")
        click.echo(f"abstained ('{a['label']}') on {_pct(a['abstain_rate'])}: in-scope accuracy "
                   f"{_pct(a.get('in_scope_accuracy'))} ({_pct(a.get('in_scope_accuracy_answered'))} of those answered, "
                   f"{_pct(a.get('in_scope_abstain_rate'))} abstained){oos}")
    z = r["zero_shot"]
    click.echo(f"zero-shot {z['model']} on the same rows: accuracy {_pct(z['accuracy'])}, macro-F1 {z['macro_f1']:.3f}")
    worst = sorted(((k, v) for k, v in r["per_class"].items() if v["support"]),
                   key=lambda kv: (kv[1]["f1"], kv[0]))[:5]  # labels with test rows; 'other' has none in scope
    click.echo("weakest labels: " + ", ".join(f"{k} (F1 {v['f1']:.2f})" for k, v in worst))
    for c in r["top_confusions"][:5]:
        click.echo(f"  {c['count']:>4} x {c['true']} -> {c['predicted']}")
    if r["confusion_matrix_png"]:
        click.echo(f"confusion matrix: {r['confusion_matrix_png']}")


@cli.command("explain-weights")
@click.argument("model")
@click.option("--against", help="A base model or another version (default: the version's base).")
@click.option("--chart", type=click.Path(dir_okay=False), help="Write a bar chart of change per layer (PNG).")
@json_option
@pass_ctx
def explain_weights_cmd(ctx, model, against, chart, as_json) -> None:
    """Show how much fine-tuning changed each layer of MODEL[@VERSION].

    \b
    Example:
      $ inhouse explain-weights intents@2
      intents@2 (full) vs minilm-l6: 2.1% relative change, 62.0% of 22.7M weights moved
      LAYER                 CHANGE   MOVED
      encoder.layer.5       3.40%    99.9%
    """
    from ..analysis.explain import weight_changes

    r = weight_changes(ctx.ws, model, against, chart=chart)
    if as_json:
        emit_json(r)
        return
    o = r["overall"]
    if r.get("classes") is not None:
        click.echo(f"{r['model']} (head on the frozen {r['against']}): no encoder weight changed, so no relative "
                   "change to show; the trained head decides:")
    else:
        click.echo(f"{r['model']} ({r['method']}) vs {r['against']}: {o['relative_change']:.2%} relative change, "
                   f"{o['changed_share']:.1%} of {o['n_params'] / 1e6:.1f}M weights moved")
    if r.get("note"):
        click.echo(r["note"])
    for c in r.get("classes") or []:
        click.echo(f"  {c['label']}: words " + ", ".join(f"{w['word']} (+{w['pull']:.2f})" for w in c["words"]))
        for e in c["examples"][:2]:
            click.echo(f"      e.g. \"{' '.join(str(e['text']).split())[:90]}\" (logit {e['logit']:.2f})")
    if r["layers"] and r.get("encoder_changed", True):
        click.echo(f"{'LAYER':<34}{'CHANGE':>9}{'MOVED':>9}")
        for l in r["layers"]:
            click.echo(f"{l['layer']:<34}{l['relative_change']:>9.2%}{l['changed_share']:>9.1%}")
    if r["lora"]:
        lo = r["lora"]
        click.echo(f"LoRA: {lo['n_adapters']} adapters, rank {lo['ranks']}, {lo['adapter_params']:,} adapter weights; "
                   "largest ||BA||: " + ", ".join(f"{a['module']} {a['BA_norm']:.3g}"
                                                  for a in sorted(lo["adapters"], key=lambda a: -a["BA_norm"])[:3]))
    h = r["head"]
    click.echo(f"head: W {h['shape'][0]}x{h['shape'][1]}, ||W|| {h['W_norm']:.3g}, ||b|| {h['b_norm']:.3g}")
    if r.get("chart_png"):
        click.echo(f"chart: {r['chart_png']}")


@cli.command("explain")
@click.argument("model")
@click.argument("text")
@click.option("--k", type=int, default=5, show_default=True, help="How many scores and examples to show.")
@json_option
@pass_ctx
def explain_cmd(ctx, model, text, k, as_json) -> None:
    """Predict TEXT with MODEL[@VERSION] and show the training examples behind it.

    \b
    Example:
      $ inhouse explain intents "my card never came" --k 3
      card_arrival (0.91) by intents@1
      scores: card_arrival 0.910, card_delivery_estimate 0.050, lost_or_stolen_card 0.010
      nearest training examples with that label:
        0.912  [card_arrival] (ticket_id T-0042) My card still hasn't arrived
      ...

    Examples are shown by your ids (the --id-col of the training dataset's
    ingest), or by their row in the ingested file; --json adds the doc_id.
    """
    from ..analysis.explain import explain

    r = explain(ctx.ws, model, text, k=k)
    if as_json:
        emit_json(r)
        return
    guess = (f" — abstained: best guess {r['best_in_scope']} is under the threshold {r['abstain_threshold']:.3f}"
             if r.get("abstained") else "")
    click.echo(f"{r['label']} ({r['score']:.2f}) by {r['model']}{guess}")
    click.echo("scores: " + ", ".join(f"{s['label']} {s['score']:.3f}" for s in r["top_k"]))
    for key, title in (("supporting", "nearest training examples with that label"), ("nearest_other", "nearest with other labels")):
        click.echo(f"{title}:")
        for e in r[key]:
            key = e.get(r["id_column"])
            ref = f"{r['id_column']} {key}" if key is not None else "label name" if e["doc_id"] < 0 else f"doc_id {e['doc_id']}"
            text = e["text"] if e["text"] is not None else "(text no longer in the dataset)"
            click.echo(f"  {e['similarity']:.3f}  [{e['label']}] ({ref}) {text}")


@cli.command("classify")
@click.argument("model")
@click.option("--dataset", help="Classify every document of this dataset (kept as its prediction set) ...")
@click.option("--input", "input_path", type=click.Path(dir_okay=False),
              help="... or every row of a file, read as ingest reads it (.csv, .tsv, .jsonl, .parquet, .txt; .gz).")
@click.option("--text-col", default="text", show_default=True, help="Text column of --input.")
@click.option("--id-col", help="Your id column of --input, copied to the output (every row also gets `row`).")
@click.option("--encoding", default="utf-8", show_default=True, help="Text encoding of --input (e.g. cp1252).")
@click.option("--split", help="Only this split of --dataset.")
@click.option("--output", type=click.Path(dir_okay=False),
              help="Output file: .csv, .parquet or .jsonl (required with --input).")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: ONNX Runtime on every core here; ray: a Ray Data job (pip install 'inhouse[ray]').")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="Join this Ray cluster (e.g. 127.0.0.1:6379); without it a local Ray is started and stopped.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1), help="Ray actors.")
@click.option("--backend", type=click.Choice(["auto", "onnx", "torch"]), default="auto", show_default=True,
              help="auto: the version's ONNX graph (int8 when it agrees with torch on >= 99.5%, else fp32), "
                   "torch when it has none.")
@click.option("--chunk-rows", default=16_384, show_default=True, type=click.IntRange(min=1),
              help="Rows per chunk: memory bound and checkpoint unit.")
@click.option("--no-cache", is_flag=True, hidden=True, help="Kept for compatibility; chunks are always kept.")
@click.option("--where", default=None, metavar="EXPR", help="Only documents of --dataset for which EXPR holds.")
@click.option("--no-abstain", is_flag=True, help="Always answer the most likely label, never 'other'.")
@click.option("--no-cascade", is_flag=True, help="The transformer answers every text (no static-embedding cascade).")
@json_option
@pass_ctx
def classify_cmd(ctx, model, dataset, input_path, text_col, id_col, encoding, split, output, top_k, engine,
                 ray_address, workers, backend, chunk_rows, no_cache, where, no_abstain, no_cascade, as_json) -> None:
    """Predict a label for every row, in input order, with the model version that made it.

    One output row per input row. Each carries `row`, the 1-based data row of
    the file (header not counted; the same numbering as ingest's), your id
    (--id-col of --input, or the --id-col the dataset was ingested with) and
    `error`: empty when fine, else why the row got no label (e.g. "empty text",
    "malformed row"). --dataset outputs also carry the internal `doc_id`.

    With --dataset the predictions are kept in the workspace, keyed by
    (dataset, model sha256): run again, only documents without one are
    computed, and `trends/summarize --by prediction`, `discover --within
    prediction` use them. Killed at any moment, the same command continues
    where it stopped. Runs on the version's ONNX graph (int8, checked against
    the torch model and cached per version) in streamed chunks.

    \b
    Example:
      $ inhouse classify intents --input new.csv --id-col ticket_id --output preds.csv
      wrote 1200 predictions by intents@1 to preds.csv (4.1 s, 2,904 docs/s, onnx-int8); 2 rows without a label ...
      $ head -2 preds.csv
      ticket_id,row,label,score,top_labels,top_scores,error,model,model_sha256
      T-0001,1,card_arrival,0.91,"[""card_arrival"", ...]","[0.91, ...]",,intents@1,64067f5f...
      $ inhouse classify intents@production --dataset tickets --json     # stored; --output to export too
      $ inhouse classify intents --dataset tickets --engine ray --ray-address 10.0.0.5:6379
    """
    from ..service.classify import classify

    r = classify(ctx.ws, model, output=output, dataset=dataset, input_path=input_path, text_col=text_col,
                 id_col=id_col, split=split, encoding=encoding, where=where, top_k=top_k, chunk_rows=chunk_rows,
                 engine=engine, backend=backend, ray_address=ray_address, workers=workers, abstain=not no_abstain,
                 cascade=not no_cascade)
    if as_json:
        emit_json(r)
        return
    where = f"to {r['output']}" if r["output"] else f"for dataset {dataset} (stored; {r['reused']} reused)"
    line = (f"wrote {r['rows']} predictions by {r['model']} {where} ({r['seconds']:.1f} s, "
            f"{r['docs_per_second'] or 0:,.0f} docs/s, {r['backend']})")
    if r.get("abstain_label"):
        line += f"; abstained ('{r['abstain_label']}') on {r['abstained']}"
    if r["errors"]:
        why = ", ".join(f"{n} {reason}" for reason, n in r["error_reasons"].items())
        line += f"; {r['errors']} row{'s' if r['errors'] != 1 else ''} without a label ({why}), see its error column"
    click.echo(line)
    if r.get("fallback"):
        click.echo(f"note: {r['fallback']}")
    for note in _speed_notes(r):
        click.echo(f"note: {note}", err=True)
