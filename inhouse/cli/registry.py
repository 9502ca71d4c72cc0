"""``inhouse models show|alias|unalias|rm|history|diff|export|import|verify|gc``: trained versions."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .. import registry
from ..errors import IntegrityError, NotFound
from . import emit_json, json_option, pass_ctx
from .models import human_size, models_group


def _when(t) -> str:
    if t is None:
        return "?"
    if isinstance(t, str):
        return t.replace("T", " ").replace("Z", " UTC")
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _num(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _flat(d: dict, skip: tuple = ()) -> str:
    return ", ".join(f"{k}={_num(v)}" for k, v in d.items() if k not in skip and not isinstance(v, (dict, list)))


def _metrics_line(metrics: dict) -> str:
    flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return "  ".join(f"{k} {_num(v)}" for k, v in flat.items()) or "(no scalar metrics)"


SHOWN = {"format_version", "name", "version", "files", "sha256", "created_at", "created_by", "libraries", "platform",
         "inhouse_version", "method", "base", "labels", "dataset", "metrics", "val_metrics", "format", "seed", "kind",
         "encoder", "training_args", "n_train", "n_val", "train_seconds", "onnx", "derived_from", "origin",
         "multi_label", "threshold"}


def _cut(text: str, width: int = 150) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _model_lines(m: dict) -> list[str]:
    base = m.get("base") or {}
    kind = m.get("kind") or "model"
    labels = m.get("labels") or []
    what = f"{kind}, method {m.get('method', '?')}, format {m.get('format', 'safetensors')}"
    what += f", {len(labels)} labels" + (" (multi-label, threshold " + _num(m.get("threshold", 0.5)) + ")" if m.get("multi_label") else "")
    if base:
        what += f", base {base.get('name')} ({str(base.get('sha256', ''))[:12]})"
    lines = [f"  model       {what}"]
    ds = m.get("dataset")
    if ds:
        ds = ds if isinstance(ds, dict) else {"name": ds}
        rows = f": {ds['n_rows']} rows" if "n_rows" in ds else ""
        if "n_train" in m:
            rows += f" ({m['n_train']} train, {m.get('n_val', 0)} validation)"
        sha = f", rows sha256 {str(ds['rows_sha256'])[:12]}" if ds.get("rows_sha256") else ""
        split = f" (split {ds['split']})" if ds.get("split") else ""
        lines.append(f"  data        {ds.get('name')}{split}{rows}{sha}")
    args = {k: v for k, v in (m.get("training_args") or {}).items() if v is not None and k not in ("method", "base")}
    if "seed" in m or args:
        secs = f", {m['train_seconds']:.1f} s" if isinstance(m.get("train_seconds"), (int, float)) else ""
        lines.append(f"  training    seed {m.get('seed', '?')}{secs}" + (f"; {_cut(_flat(args), 130)}" if args else ""))
    enc = m.get("encoder") or {}
    if enc:
        lines.append(f"  encoder     {enc.get('pooling', '?')} pooling, {'normalized' if enc.get('normalize') else 'not normalized'}, "
                     f"max {enc.get('max_length', '?')} tokens" + (", frozen" if enc.get("frozen") else ", tuned"))
    if labels:
        more = f", ... (+{len(labels) - 8})" if len(labels) > 8 else ""
        lines.append(f"  labels      {', '.join(map(str, labels[:8]))}{more}")
    return lines


def _provenance_lines(m: dict) -> list[str]:
    lines = []
    onnx = m.get("onnx") or {}
    if onnx:
        p = onnx.get("parity") or {}
        par = f", parity {p['agreement']:.1%} on {p['texts']} texts vs {p.get('against')}" if p else ""
        lines.append(f"  onnx        opset {onnx.get('opset')}, {onnx.get('quantize') or 'float32'}, max {onnx.get('max_length')} tokens{par}")
    d = m.get("derived_from")
    if d:
        lines.append(f"  derived     from {d.get('ref')} ({str(d.get('sha256', ''))[:12]}, {d.get('format')})")
    o = m.get("origin")
    if o:
        lines.append(f"  origin      {o.get('ref')} ({str(o.get('sha256', ''))[:12]}), exported {_when(o.get('exported_at'))} "
                     f"by {o.get('exported_by')}, imported from {o.get('imported_from')}")
    return lines


def render_show(d: dict) -> str:
    """The human view of ``inhouse models show``."""
    m = d["manifest"]
    lines = [f"{d['ref']}  sha256 {d['sha256'][:16]}  aliases: {', '.join(d['aliases']) or '-'}"]
    libs = m.get("libraries", {})
    lib_txt = ", ".join(f"{k} {libs[k]}" for k in ("inhouse", "torch", "transformers", "sentence-transformers") if k in libs)
    lines.append(f"  created     {_when(m.get('created_at'))} by {m.get('created_by', '?')}  ({lib_txt})")
    lines += _model_lines(m)
    for key in sorted(set(m) - SHOWN):
        val = m[key]
        text = _flat(val) if isinstance(val, dict) else (", ".join(map(str, val)) if isinstance(val, list) else str(val))
        lines.append(f"  {key:<11} {_cut(text)}")
    for title, vals in (("training", m.get("metrics")), ("validation", m.get("val_metrics"))):
        if isinstance(vals, dict) and vals:
            lines.append(f"  {title:<11} {_metrics_line(vals)}")
    for e in d["evaluations"]:
        on = e["dataset"] + (f":{e['split']}" if e["split"] else "")
        lines.append(f"  evaluated   {on}: {_metrics_line(e['metrics'])}  ({_when(e['created_at'])} by {e['user']})")
    lines += _provenance_lines(m)
    files = m.get("files", {})
    lines.append(f"  files       {len(files)} files, {human_size(d['size'])}")
    for rel, meta in list(files.items())[:6]:
        lines.append(f"              {rel}  {human_size(meta['size'])}  {meta['sha256'][:12]}")
    if len(files) > 6:
        lines.append(f"              ... and {len(files) - 6} more")
    ab = m.get("abstain") if isinstance(m.get("abstain"), dict) else {}
    if ab.get("threshold") is not None:
        oos = f"; out of scope: {', '.join(ab['out_of_scope'])}" if ab.get("out_of_scope") else ""
        dist = ab.get("distance") or {}
        how = (f"when (1 - confidence) + {dist['weight']:g} x distance to the nearest training row "
               f"> {dist['threshold']:.3f}" if dist else f"under confidence {ab['threshold']:.3f}")
        lines.append(f"  abstains    '{ab.get('label', 'other')}' {how} ({ab.get('rule', '?')} rule){oos}")
    if "train_rows.json" in files:
        lines.append("  training    keeps its training rows (embeddings, doc ids, text hashes; texts are read from "
                     "the dataset) for 'nearest examples'; leave them out with: inhouse models export "
                     f"{m.get('name', 'NAME')}@{m.get('version', 'N')} --out DIR --without-training-texts")
    lines.append(f"  integrity   {d['integrity']}")
    return "\n".join(lines)


def _base_model(ws, name: str):
    from ..models.catalog import list_models

    return next((m for m in list_models(ws) if m.name == name), None) if "@" not in name else None


@models_group.command("show")
@click.argument("ref")
@json_option
@pass_ctx
def show_cmd(ctx, ref: str, as_json: bool) -> None:
    """Show one version: manifest, aliases, evaluations, files, integrity.

    REF is NAME (production alias, else latest), NAME@3, NAME@production or a hash prefix.

    \b
    Example:
      $ inhouse models show intents@2
      intents@2  sha256 3f9a1c0b7d2e4a10  aliases: production
        created     2026-11-29 14:28:08 UTC by ana  (inhouse 0.1.0, torch 2.13.0, ...)
        method      head  format safetensors  base minilm-l6 (53aa51172d14)
        labels      77: activate_my_card, age_limit, ...
        evaluated   banking77:test: accuracy 0.912  macro_f1 0.905  (2026-11-29 14:30:00 UTC by ana)
        integrity   ok
    """
    try:
        d = registry.describe(ctx.ws, ref)
    except NotFound:
        base = _base_model(ctx.ws, ref)
        if base is None:
            raise
        if as_json:
            emit_json({"base_model": base.to_dict()})
        else:
            click.echo(f"{base.name}  base model ({base.kind}, {base.source}), {human_size(base.size)}, sha256 {base.sha256[:16]}\n"
                       f"  path        {base.path}\n  license     {base.license or '?'}\n  {base.description}".rstrip())
        return
    from ..pipeline.onnxcache import describe_artifact, read_artifact

    d["inference"] = read_artifact(ctx.ws, d["sha256"])  # the derived ONNX graph classify runs (issue 9)
    if as_json:
        emit_json(d)
    else:
        click.echo(render_show(d))
        click.echo(describe_artifact(d["inference"]))


@models_group.command("prepare")
@click.argument("ref")
@json_option
@pass_ctx
def prepare_cmd(ctx, ref: str, as_json: bool) -> None:
    """Build REF's fast-classify artifacts now (train and alias do it): ONNX graph, int8 verdict, cascade.

    \b
    Example:
      $ inhouse models prepare intents@3
    """
    from ..service.registry import prepare
    from .train import prepared_line

    r = prepare(ctx.ws, ref)
    if as_json:
        emit_json(r)
    else:
        click.echo(f"{r['ref']}: {prepared_line(r)}")


@models_group.command("alias")
@click.argument("ref")
@click.argument("alias")
@json_option
@pass_ctx
def alias_cmd(ctx, ref: str, alias: str, as_json: bool) -> None:
    """Point ALIAS (e.g. production) at the version REF, moving it if it exists.

    \b
    Example:
      $ inhouse models alias intents@3 production
      intents@production -> intents@3 (was intents@2)
    """
    from ..service.registry import move_alias

    r = move_alias(ctx.ws, ref, alias)
    before = r["previous"]
    if as_json:
        emit_json(r)
    else:
        was = f" (was {r['name']}@{before})" if before is not None and before != r["version"] else (" (unchanged)" if before == r["version"] else "")
        click.echo(f"{r['name']}@{alias} -> {r['ref']}{was}")


@models_group.command("unalias")
@click.argument("name")
@click.argument("alias")
@json_option
@pass_ctx
def unalias_cmd(ctx, name: str, alias: str, as_json: bool) -> None:
    """Remove ALIAS from model NAME.

    \b
    Example:
      $ inhouse models unalias intents staging
      removed intents@staging (was intents@2)
    """
    from ..service.registry import remove_alias

    was = remove_alias(ctx.ws, name, alias)["was"]
    if as_json:
        emit_json({"name": name, "alias": alias, "previous": was})
    else:
        click.echo(f"removed {name}@{alias} (was {name}@{was})")


@models_group.command("rm")
@click.argument("ref")
@json_option
@pass_ctx
def rm_cmd(ctx, ref: str, as_json: bool) -> None:
    """Remove one version (refused while an alias points to it).

    \b
    Example:
      $ inhouse models rm intents@1
      removed intents@1 (3f9a1c0b7d2e)
    """
    v = registry.remove_version(ctx.ws, ref)
    if as_json:
        emit_json({"removed": v.ref, "name": v.name, "version": v.version, "sha256": v.sha256})
    else:
        click.echo(f"removed {v.ref} ({v.sha256[:12]})")


def _history_line(e: dict) -> str:
    d, target, action = e["details"], e["target"], e["action"].split(".", 1)[1]
    if action == "save":
        what = f"saved      {target}  {str(d.get('sha256', ''))[:12]}  {d.get('method') or ''}"
        ds = d.get("dataset")
        what += f" on {ds.get('name') if isinstance(ds, dict) else ds}" if ds else ""
    elif action == "alias":
        was = f" (was @{d['previous']})" if d.get("previous") is not None else ""
        what = f"alias      {target} -> @{d.get('version')}{was}"
    elif action == "unalias":
        what = f"unalias    {target} (was @{d.get('previous')})"
    elif action == "rm":
        what = f"removed    {target}"
    elif action == "eval":
        scores = _flat(d, skip=("sha256", "dataset", "split"))
        what = f"evaluated  {target} on {d.get('dataset')}{':' + d['split'] if d.get('split') else ''}  {scores}"
    elif action == "import":
        what = f"imported   {target} from {d.get('source')}"
    elif action == "export":
        what = f"exported   {target} to {d.get('out')} ({d.get('format')})"
    else:
        what = f"{action:<10} {target}  {_flat(d)}"
    return f"{_when(e['at'])}  {e['user']:<10} {what}"


@models_group.command("history")
@click.argument("name")
@json_option
@pass_ctx
def history_cmd(ctx, name: str, as_json: bool) -> None:
    """Versions saved, aliases moved, evaluations and removals of NAME, oldest first.

    \b
    Example:
      $ inhouse models history intents
      2026-11-29 14:28:08 UTC  ana        saved      intents@1  3f9a1c0b7d2e  head on banking77
      2026-11-29 14:31:40 UTC  ana        alias      intents@production -> @1
      2026-11-30 09:02:11 UTC  bo         alias      intents@production -> @2 (was @1)
    """
    events = registry.history(ctx.ws, name)
    if not events:
        registry.resolve(ctx.ws, name)  # raises NotFound with the known names
    if as_json:
        emit_json({"name": name, "events": events})
        return
    for e in events:
        click.echo(_history_line(e))


@models_group.command("verify")
@click.argument("ref", required=False)
@json_option
@pass_ctx
def verify_cmd(ctx, ref: str | None, as_json: bool) -> None:
    """Check the hashes of one version, or of every version when REF is left out.

    \b
    Example:
      $ inhouse models verify
      ok   intents@1  3f9a1c0b7d2e
      BAD  intents@2  .../head.safetensors does not match its sha256 in the manifest ...
    """
    targets = [registry.resolve(ctx.ws, ref)] if ref else registry.versions(ctx.ws)
    results = []
    for v in targets:
        try:
            registry.verify(v)
            results.append({"ref": v.ref, "sha256": v.sha256, "ok": True, "error": None})
        except IntegrityError as e:
            results.append({"ref": v.ref, "sha256": v.sha256, "ok": False, "error": e.message})
    if as_json:
        emit_json({"versions": results})
    else:
        for r in results:
            click.echo(f"{'ok ' if r['ok'] else 'BAD'}  {r['ref']}  {r['error'] or r['sha256'][:12]}")
    if any(not r["ok"] for r in results):
        raise SystemExit(IntegrityError.exit_code)


@models_group.command("gc")
@json_option
@pass_ctx
def gc_cmd(ctx, as_json: bool) -> None:
    """Remove what an interrupted save left behind (temp folders, unused object folders).

    \b
    Example:
      $ inhouse models gc
      removed 1 build folders and 0 unused object folders
    """
    out = registry.gc(ctx.ws)
    if as_json:
        emit_json(out)
    else:
        click.echo(f"removed {out['builds']} build folders and {out['objects']} unused object folders")


@models_group.command("diff")
@click.argument("old")
@click.argument("new")
@click.option("--dataset", required=True, help="Dataset whose documents both versions classify.")
@click.option("--split", default=None, help="Only this split (e.g. test).")
@click.option("--limit", type=int, default=None, help="At most this many documents (the first ones).")
@click.option("--examples", type=int, default=10, show_default=True, help="Flipped examples to show.")
@click.option("--label-col", default=None, help="Gold labels' column (default: the one NEW learnt, on its own dataset).")
@json_option
@pass_ctx
def diff_cmd(ctx, old: str, new: str, dataset: str, split: str | None, limit: int | None, examples: int,
             label_col: str | None, as_json: bool) -> None:
    """Compare two versions on a dataset before promoting NEW.

    \b
    Example:
      $ inhouse models diff intents@2 intents@3 --dataset banking77 --split test
      intents@2 (3f9a1c0b) -> intents@3 (8c2e11aa) on banking77:test, 3080 documents
      agreement 96.4%  (111 flipped)
      accuracy   0.902 -> 0.915 (+0.013)   macro_f1 0.899 -> 0.913 (+0.014)
      ...
    """
    from ..analysis.diff import render_diff
    from ..service.diff import diff

    d = diff(ctx.ws, old, new, dataset, split=split, limit=limit, examples=examples, label_col=label_col)
    if as_json:
        emit_json(d)
    else:
        click.echo(render_diff(d))


@models_group.command("export")
@click.argument("ref")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Folder to create (must not exist or be empty).")
@click.option("--format", "fmt", type=click.Choice(["folder", "onnx"]), default="folder", show_default=True)
@click.option("--quantize", type=click.Choice(["int8"]), default=None, help="ONNX only: dynamic int8 quantization.")
@click.option("--without-training-texts", is_flag=True,
              help="Folder only: leave out the training rows kept for 'nearest examples' (the export gets its own hash).")
@click.option("--no-base", is_flag=True, help="Folder only: leave out the base encoder (the target must have it).")
@click.option("--check-dataset", default=None, help="ONNX only: dataset whose texts check parity (default: the training dataset).")
@click.option("--check-size", type=int, default=200, show_default=True, help="ONNX only: texts in the parity check.")
@click.option("--check-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="ONNX only: check parity on these texts instead (.txt one per line, or .csv/.parquet/.jsonl with a 'text' column).")
@click.option("--min-agreement", type=float, default=0.99, show_default=True,
              help="ONNX only: refuse the export when it agrees with the original on fewer of the check texts.")
@json_option
@pass_ctx
def export_cmd(ctx, ref: str, out: str, fmt: str, quantize: str | None, without_training_texts: bool, no_base: bool, check_dataset: str | None,
               check_size: int, check_file: str | None, min_agreement: float, as_json: bool) -> None:
    """Write a version to a self-contained folder (manifest, model card, weights) for another machine.

    \b
    Example:
      $ inhouse models export intents@3 --out /media/usb/intents-3
      exported intents@3 (folder) to /media/usb/intents-3: 4 files, 87.4 MB
      $ inhouse models export intents@3 --out intents-onnx --format onnx --quantize int8
      exported intents@3 (onnx int8) to intents-onnx: 6 files, 23.1 MB; parity 99.5% on 200 texts
    """
    from ..exchange.export import export_version

    texts = _read_texts(Path(check_file)) if check_file else None
    r = export_version(ctx.ws, ref, Path(out), format=fmt, quantize=quantize, include_base=not no_base, training_rows=not without_training_texts,
                       check_dataset=check_dataset, check_size=check_size, check_texts=texts, min_agreement=min_agreement)
    if as_json:
        emit_json(r)
        return
    kind = fmt + (f" {quantize}" if quantize else "")
    parity = r.get("parity")
    extra = f"; parity {parity['agreement']:.1%} on {parity['texts']} texts" if parity else ""
    click.echo(f"exported {r['ref']} ({kind}) to {r['out']}: {r['files']} files, {human_size(r['size'])}{extra}")


def _read_texts(path: Path) -> list[str]:
    """The texts of ``--check-file``; a file that cannot be read as its extension says is an InputError."""
    from ..classifiers.predict import read_table
    from ..errors import ColumnNotFound, InputError

    try:
        if path.suffix == ".txt":
            return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        df = read_table(path)
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: expected UTF-8 text, found a byte that is not ({e.reason} at byte {e.start}).",
                         fix="Save the file as UTF-8.") from e
    except ValueError as e:  # pandas' ParserError and pyarrow's ArrowInvalid are ValueErrors
        raise InputError(f"{path}: expected a readable {path.suffix or 'table'} file, found: {str(e).strip()[:200]}",
                         fix="Check that the file is complete and has the format its extension says.") from e
    if "text" not in df.columns:
        raise ColumnNotFound(path.name, "text", list(df.columns), "a file with a 'text' column, or a .txt file,")
    return [str(t) for t in df["text"].tolist()]


@models_group.command("import")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--name", default=None, help="Register under this name instead of the exported one.")
@click.option("--trust-code", is_flag=True,
              help="Accept model folders that name custom code (modules.json classes, auto_map). Only for code you audited.")
@json_option
@pass_ctx
def import_cmd(ctx, path: str, name: str | None, trust_code: bool, as_json: bool) -> None:
    """Register an exported folder as a new version, after checking every hash.

    \b
    Example:
      $ inhouse models import /media/usb/intents-3 --name intents
      imported intents@1 (3f9a1c0b7d2e) from /media/usb/intents-3; base minilm-l6 found by hash
    """
    from ..exchange.export import import_version

    r = import_version(ctx.ws, Path(path), name=name, trust_code=trust_code)
    if as_json:
        emit_json(r)
    else:
        click.echo(f"imported {r['ref']} ({r['sha256'][:12]}) from {r['source']}; {r['base_note']}")
