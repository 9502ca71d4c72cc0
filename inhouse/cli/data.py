"""``inhouse init``, ``inhouse ingest`` and ``inhouse datasets ...``: getting text in."""

from __future__ import annotations

import click

from ..data import datasets as datasets_api
from ..data import ingest as ingest_api
from ..errors import InputError, UsageError
from . import cli, emit_json, json_option, pass_ctx


@cli.command("init")
@json_option
@pass_ctx
def init_cmd(ctx, as_json: bool) -> None:
    """Create the workspace folder (if needed) and print where it is.

    \b
    Example:
      $ inhouse init
      workspace: /home/me/.local/share/inhouse (schema 2)
    """
    ws = ctx.ws
    if as_json:
        emit_json({"home": str(ws.home), "schema_version": ws.schema_version(), "datasets": ws.dataset_names()})
        return
    click.echo(f"workspace: {ws.home} (schema {ws.schema_version()})")


@cli.command("ingest")
@click.argument("path", type=click.Path(dir_okay=True))
@click.option("--dataset", "-d", required=True, help="Dataset to add the rows to (created if new).")
@click.option("--text-col", "text_cols", multiple=True, default=["text"], show_default=True,
              help="Column with the document text; repeat to join several (--text-col subject --text-col body). "
                   "A column holding a list of turns makes one document per conversation.")
@click.option("--label-col", help="Column with the label(s); empty means unlabelled.")
@click.option("--time-col", help="Column with a timestamp: ISO 8601, 'May 30, 2011', '30/05/2011', Excel serial "
                                "days, epoch seconds or milliseconds (naive = UTC).")
@click.option("--time-format", metavar="STRFTIME", help="Read --time-col with this strftime format, e.g. '%d.%m.%Y %H:%M'.")
@click.option("--dayfirst/--monthfirst", default=None,
              help="Order of dates like 05/06/2011 (default: settled by the file's dates, e.g. one with 30 in it).")
@click.option("--sheet", help="Sheet of an .xlsx file: its name or number (default: the first).")
@click.option("--unescape-html", is_flag=True, help="Decode HTML entities (&rsquo; -> ’) and strip markup from texts.")
@click.option("--speaker", "speakers", multiple=True, metavar="NAME",
              help="Conversations: only the turns of this speaker make the text (repeat for several).")
@click.option("--id-col", help="Column with your own id for each row (kept as source_id).")
@click.option("--split-col", help="Column with the split name (train/test/...).")
@click.option("--label-sep", help="Split multi-label values on this separator, e.g. '|'.")
@click.option("--redact-pii", is_flag=True, help="Mask e-mails, phones, card numbers and IBANs before storing.")
@click.option("--max-chars", type=int, default=100_000, show_default=True,
              help="Longer texts go to the quarantine.")
@click.option("--encoding", default="utf-8", show_default=True,
              help="Text encoding of the file, e.g. cp1252, latin-1, utf-16.")
@click.option("--delimiter", help="Field separator of a .csv/.tsv file (default ',' / tab), e.g. ';' or '\\t'.")
@click.option("--max-record-lines", type=int, default=ingest_api.MAX_RECORD_LINES, show_default=True,
              help="Lines one quoted CSV field may span before its opening quote is taken as stray.")
@click.option("--on-duplicate-id", type=click.Choice(["quarantine", "keep-first", "keep-last"]),
              default="quarantine", show_default=True,
              help="With --id-col: what to do with a row whose id was already used (in the file or the dataset).")
@click.option("--max-quarantine-share", type=float, default=0.10, show_default=True,
              help="Exit with code 3 when more than this share of rows is quarantined (1.0: never).")
@click.option("--replace", is_flag=True,
              help="Read a file already in the dataset again and swap its previous ingest's documents for the new ones.")
@click.option("--chunk-rows", type=int, default=100_000, show_default=True, help="Rows per Parquet part.")
@json_option
@pass_ctx
def ingest_cmd(ctx, path: str, dataset: str, text_cols: tuple, label_col: str | None, time_col: str | None,
               time_format: str | None, dayfirst: bool | None, sheet: str | None, unescape_html: bool,
               speakers: tuple, id_col: str | None, split_col: str | None, label_sep: str | None, redact_pii: bool,
               max_chars: int, encoding: str, delimiter: str | None, max_record_lines: int, on_duplicate_id: str,
               max_quarantine_share: float, replace: bool, chunk_rows: int, as_json: bool) -> None:
    """Add the rows of a CSV, TSV, JSONL, JSON, Excel (.xlsx), Parquet or text file to a dataset.

    Other columns are kept as metadata; header names that are blank, repeated,
    padded or built-in (text, time, label, row...) are renamed (column_1,
    label_2) and the ingest says so. Bad rows go to a quarantine file with
    their row number and reason; ingesting the same file again adds nothing
    (add --replace to read it again with other options). When more than
    --max-quarantine-share of the rows were quarantined, the good rows are
    still stored, and the command prints the summary, says how to undo it and
    exits with code 3 (with --json: the result plus an "error" field).

    \b
    Example:
      $ inhouse ingest banking77.csv --dataset banking77 --label-col label --split-col split
      banking77.csv -> 'banking77' (ingest #1): read 13,083, stored 13,083, duplicates 0, quarantined 0 [0.7s]
      $ inhouse ingest export.csv -d tickets --delimiter ';' --id-col ticket_id --on-duplicate-id keep-last
      $ inhouse ingest banking77.csv -d banking77 --label-col label --replace
      $ inhouse ingest reviews.tsv -d reviews --text-col Text --time-col Date      # Date like 'May 30, 2011'
      $ inhouse ingest tickets.xlsx -d tickets --sheet 2 --text-col subject --text-col body --unescape-html
      $ inhouse ingest calls.jsonl -d calls --text-col turns --speaker customer
    """
    res = ingest_api.ingest(ctx.ws, path, dataset, text_col=list(text_cols),
                            time_format=time_format, dayfirst=dayfirst, sheet=sheet, unescape_html=unescape_html,
                            speaker=list(speakers) or None, label_col=label_col, time_col=time_col,
                            id_col=id_col, split_col=split_col, redact_pii=redact_pii, max_chars=max_chars,
                            label_sep=label_sep, chunk_rows=chunk_rows, encoding=encoding, delimiter=delimiter,
                            max_record_lines=max_record_lines, on_duplicate_id=on_duplicate_id,
                            max_quarantine_share=max_quarantine_share, replace=replace)
    if as_json:
        emit_json(res.to_dict())
    else:
        _print_ingest(res, click.format_filename(path))
    if res.error:
        if not as_json:
            click.echo(f"error: {res.error}", err=True)
        raise SystemExit(InputError.exit_code)


def _print_ingest(res, name: str) -> None:
    if res.skipped:
        click.echo(res.note)
        return
    click.echo(f"{name} -> {res.dataset!r} (ingest #{res.ingest_id}): read {res.read:,}, stored {res.stored:,}, "
               f"duplicates {res.duplicates:,}, quarantined {res.quarantined:,} [{res.seconds:.1f}s]")
    if res.replaced_ingest is not None:
        click.echo(f"replaced ingest #{res.replaced_ingest} ({res.replaced_documents:,} documents)")
    if res.user_labels_on_removed:
        click.echo(f"labels set by people on removed documents: {res.user_labels_on_removed:,}; carried to the same "
                   f"row/id with the same text: {res.user_labels_carried:,}; dropped: {res.user_labels_dropped:,}")
    if res.duplicate_ids:
        examples = ", ".join(f"{e['id']!r} (row {e['row']}, before at row {e['previous_row']}"
                             + (f" of ingest #{e['previous_ingest']}" if e["previous_ingest"] else "") + ")"
                             for e in res.duplicate_id_examples[:3])
        done = {"quarantine": "quarantined", "keep-first": "left out (kept the first)",
                "keep-last": "kept (earlier rows with the id removed)"}[res.on_duplicate_id]
        click.echo(f"duplicate ids: {res.duplicate_ids:,} rows reuse an id ({res.duplicate_ids_same_text:,} with the "
                   f"same text), {done}; e.g. {examples}")
        if res.superseded or res.removed_earlier:
            click.echo(f"superseded rows of this file: {res.superseded:,}; documents of earlier ingests removed: "
                       f"{res.removed_earlier:,}")
    if res.blank_lines:
        click.echo(f"skipped {res.blank_lines:,} blank lines")
    if res.day_order:
        click.echo(f"dates read {res.day_order}")
    if res.conversations:
        click.echo(f"conversations: {res.conversations:,}")
    if res.redacted:
        click.echo("masked: " + ", ".join(f"{n:,} {kind}" for kind, n in res.redacted.items()))
    if res.quarantined:
        reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(res.quarantine_reasons.items(), key=lambda x: -x[1]))
        click.echo(f"quarantined rows ({reasons}) are in {res.quarantine_file}")
    for w in res.warnings:
        click.echo(f"warning: {w}")


@cli.group("datasets")
def datasets_group() -> None:
    """List, inspect and remove datasets."""


@datasets_group.command("list")
@json_option
@pass_ctx
def list_cmd(ctx, as_json: bool) -> None:
    """List datasets with their size.

    \b
    Example:
      $ inhouse datasets list
      NAME          ROWS  INGESTS  QUARANTINED  CREATED
      banking77   13,083        1            0  2025-01-05 10:00:00
    """
    items = datasets_api.list_datasets(ctx.ws)
    if as_json:
        emit_json({"datasets": items})
        return
    if not items:
        click.echo("no datasets yet; add one with: inhouse ingest FILE --dataset NAME")
        return
    width = max(12, *(len(d["name"]) + 2 for d in items))
    click.echo(f"{'NAME':<{width}}{'ROWS':>11}{'INGESTS':>9}{'QUARANTINED':>13}  CREATED")
    for d in items:
        created = (d["created_at"] or "").replace("T", " ")[:19]
        click.echo(f"{d['name']:<{width}}{d['rows']:>11,}{d['ingests']:>9}{d['quarantined']:>13,}  {created}")


@datasets_group.command("show")
@click.argument("name")
@click.option("--top", type=int, default=20, show_default=True, help="How many labels to print (all with --json).")
@json_option
@pass_ctx
def show_cmd(ctx, name: str, top: int, as_json: bool) -> None:
    """Rows, labels, splits, time range, ingests and quarantine of a dataset.

    \b
    Example:
      $ inhouse datasets show banking77
      banking77: 13,083 documents (13,083 distinct texts) in 1 part
      labels (77): card_payment_fee_charged 187, direct_debit_payment_not_recognised 182, ...
      splits: train 10,003, test 3,080
    """
    d = datasets_api.describe_dataset(ctx.ws, name)
    if as_json:
        emit_json(d)
        return
    click.echo(f"{d['name']}: {d['rows']:,} documents ({d['distinct_texts']:,} distinct texts) in {d['parts']} "
               f"part{'s' if d['parts'] != 1 else ''}")
    labels = list(d["labels"].items())
    if labels:
        shown = ", ".join(f"{k} {n:,}" for k, n in labels[:top])
        more = f", ... ({len(labels) - top} more)" if len(labels) > top else ""
        click.echo(f"labels ({len(labels)}): {shown}{more}")
    click.echo(f"unlabelled: {d['unlabelled']:,}" + (f" (labels set by people: {d['user_labels']:,})"
                                                     if d["user_labels"] else ""))
    if d["splits"] or d["no_split"]:
        splits = [f"{s} {n:,}" for s, n in d["splits"].items()] + ([f"none {d['no_split']:,}"] if d["no_split"] else [])
        click.echo("splits: " + ", ".join(splits))
    if d["time_range"]:
        click.echo(f"time: {d['time_range']['min']} .. {d['time_range']['max']}")
    _print_columns("label columns", d.get("label_columns") or {}, top)
    _print_columns("metadata columns", d.get("metadata_columns") or {}, top)
    click.echo(f"quarantined: {d['quarantined']:,}")
    click.echo("ingests:")
    for i in d["ingests"]:
        counts = f"stored {i['stored']:,}, quarantined {i['quarantined']:,}" if i["status"] == "done" else i.get("error", "")
        click.echo(f"  #{i['id']} {i['status']:<8}{(i['started_at'] or '').replace('T', ' ')[:19]}  {i['file']}  {counts}")
        if i["quarantine_file"]:
            click.echo(f"     quarantine: {i['quarantine_file']}")


def _print_columns(title: str, columns: dict, top: int) -> None:
    if not columns:
        return
    click.echo(f"{title}:")
    for name, c in columns.items():
        n = c.get("labelled", c.get("non_empty", 0))
        origin = {"ingest": f"from ingest, file column {c['file_column']!r}" if c.get("file_column") else "from ingest",
                  "people": "set by people", "metadata": "from the file"}.get(c["kind"], c["kind"])
        values = list(c["values"].items())
        shown = ", ".join(f"{k} {v:,}" for k, v in values[:min(top, 8)])
        more = f", ... ({c['distinct'] - min(top, 8)} more)" if c["distinct"] > min(top, 8) else ""
        click.echo(f"  {name} ({origin}; {n:,} with a value, {c['distinct']:,} distinct): {shown}{more}")


@datasets_group.command("export")
@click.argument("name")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="Output file: .csv, .xlsx, .parquet or .jsonl (in CSV and XLSX, formulas in cells become text).")
@click.option("--where", default=None, metavar="EXPR", help="Only documents for which EXPR holds.")
@click.option("--label-col", "label_cols", multiple=True, metavar="COLUMN",
              help="Label columns to write (repeat; default: every label column).")
@json_option
@pass_ctx
def export_docs_cmd(ctx, name: str, output: str, where: str | None, label_cols: tuple, as_json: bool) -> None:
    """Write the documents of a dataset (text, ids, split, time, label columns, metadata) to a file.

    \b
    Example:
      $ inhouse datasets export air --where "label = 'negative' and airline = 'United'" --output united.csv
      wrote 2,633 documents of air to united.csv
    """
    from ..data.datasets import export_documents

    r = export_documents(ctx.ws, name, output, where=where, label_cols=list(label_cols) or None)
    if as_json:
        emit_json(r)
        return
    click.echo(f"wrote {r['rows']:,} documents of {name}{' where ' + where if where else ''} to {r['output']}")


@datasets_group.command("rm")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True,
              help="Also give up ingests marked running on another host (their process cannot be checked from here).")
@json_option
@pass_ctx
def rm_cmd(ctx, name: str, yes: bool, force: bool, as_json: bool) -> None:
    """Delete a dataset and what was derived from it: documents, ingest records, labels, quarantine files,
    prediction sets, discovery runs and topic edits, summaries, job outputs (it says what it keeps and why).

    A killed ingest on this host is cleaned up by itself; one left "running" by
    another host needs --force (an ingest still running here must be stopped).

    \b
    Example:
      $ inhouse datasets rm scratch --yes
      removed dataset 'scratch' (120 documents, 1 ingest)
      $ inhouse datasets rm scratch --yes --force
    """
    info = ctx.ws.dataset(name)  # NotFound before asking
    if not yes:
        if as_json:
            raise UsageError(f"removing dataset {info.name!r} needs confirmation.", fix="Add --yes.")
        click.confirm(f"Remove dataset {info.name!r} and all its documents?", abort=True)
    out = datasets_api.remove_dataset(ctx.ws, name, force=force)
    if as_json:
        emit_json(out)
        return
    click.echo(f"removed dataset {name!r} ({out['rows']:,} documents, {out['ingests']} "
               f"ingest{'s' if out['ingests'] != 1 else ''})")
    derived = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in out["removed"].items() if n)
    click.echo(f"  also removed what was derived from it: {derived or 'nothing'}")
    for what, why in out["kept"].items():
        click.echo(f"  kept {what}: {why}")
