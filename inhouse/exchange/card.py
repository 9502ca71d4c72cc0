"""The model card (README.md) written into every export."""

from __future__ import annotations

# ------------------------------------------------------------ model card ----

def _pct(x) -> str:
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def _metric_rows(metrics: dict) -> list[str]:
    return [f"| {k} | {_pct(val)} |" for k, val in metrics.items() if isinstance(val, (int, float)) and not isinstance(val, bool)]


def model_card(m: dict) -> str:
    """The README.md of an export: intended use, data, metrics, limitations, versions, hashes."""
    ex = m["export"]
    src = ex["source"]
    labels = m.get("labels") or []
    base = m.get("base") or {}
    ds = m.get("dataset") if isinstance(m.get("dataset"), dict) else {"name": m.get("dataset")}
    onnx = m.get("onnx") or {}
    enc = m.get("encoder") or {}
    lines = [f"# {src['ref']}", "",
             f"A text classifier made with inhouse {m.get('inhouse_version', '')}: "
             f"method `{m.get('method', '?')}` on base `{base.get('name', '?')}`, {len(labels)} labels"
             + (" (multi-label)" if m.get("multi_label") else "") + ".", "",
             "| | |", "|---|---|",
             f"| Version | `{src['ref']}` |", f"| sha256 | `{src['sha256']}` |",
             f"| Export format | {ex['format']}" + (f", quantized {onnx.get('quantize')}" if onnx.get("quantize") else "") + " |",
             f"| Exported | {ex['exported_at']} by {ex['exported_by']} |",
             f"| Created | {m.get('created_at')} by {m.get('created_by')} |",
             f"| Base model | `{base.get('name')}` sha256 `{base.get('sha256')}` |",
             f"| Aliases at export | {', '.join(ex.get('aliases') or []) or '-'} |", "",
             "## Intended use", "",
             f"Assign one of the {len(labels)} labels below to short texts like those of the training dataset "
             f"`{ds.get('name')}`, for routing, tagging and counting. Check its predictions on your own data "
             "(`inhouse eval`) before relying on it, and keep a person in the loop for decisions about people.", "",
             "## Training data", "",
             f"- Dataset: `{ds.get('name')}`" + (f", split `{ds.get('split')}`" if ds.get("split") else ""),
             f"- Rows: {ds.get('n_rows', '?')} (train {m.get('n_train', '?')}, validation {m.get('n_val', '?')})",
             f"- sha256 of the exact training rows: `{ds.get('rows_sha256', '?')}`",
             f"- Seed: {m.get('seed', '?')}", "", "## Metrics", ""]
    metric_sets = [("validation (at training)", m.get("val_metrics") or {})]
    metric_sets += [(f"{e['dataset']}" + (f":{e['split']}" if e["split"] else "") + f" (evaluated by {e['user']})", e["metrics"])
                    for e in ex.get("evaluations") or []]
    for title, vals in metric_sets:
        rows = _metric_rows(vals)
        if rows:
            lines += [f"**{title}**", "", "| metric | value |", "|---|---|", *rows, ""]
    if onnx.get("parity"):
        p = onnx["parity"]
        lines += [f"ONNX parity with `{p['against']}`: {p['agreement']:.2%} of {p['texts']} texts get the same label "
                  f"(max probability difference {p['max_abs_diff']:.4f}; {p['source']}).", ""]
    lines += ["## Limitations", "",
              f"- It only knows these {len(labels)} labels and always answers one of them"
              + ("" if m.get("multi_label") else ", even for texts that fit none") + ".",
              ("- Texts are cut at the base encoder's own token limit." if enc.get("frozen") and not onnx
               else f"- Texts are cut at {onnx.get('max_length') or enc.get('max_length', '?')} tokens."),
              f"- The base model `{base.get('name')}` sets its languages and domains; quality on text unlike `{ds.get('name')}` is unknown.",
              "- Predictions reflect the labels it was trained on, including their mistakes and gaps.", ""]
    if onnx.get("quantize"):
        lines += ["- int8 quantization changes probabilities slightly; see the parity line above.", ""]
    lines += ["## Labels", "", ", ".join(f"`{l}`" for l in labels) or "-", "", "## Versions", "", "| library | version |", "|---|---|"]
    lines += [f"| {k} | {val} |" for k, val in (m.get("libraries") or {}).items()]
    lines += ["", "## Files", "", "| file | bytes | sha256 |", "|---|---|---|"]
    lines += [f"| model/{rel} | {meta['size']} | `{meta['sha256']}` |" for rel, meta in m["files"].items()]
    if ex.get("base"):
        lines += [f"| base/{rel} | {meta['size']} | `{meta['sha256']}` |" for rel, meta in ex["base"]["files"].items()]
    lines += ["", "## Use it", "", "```", "inhouse models import THIS_FOLDER --name NAME",
              "inhouse classify NAME --input texts.csv --output predictions.csv", "```", ""]
    return "\n".join(lines)
