"""The pipeline report: one self-contained HTML file (inline SVG charts, no script, no network).

Sections (each a ``<section id=...>``): ``volumes`` (documents per category
over time), ``changes`` (emerging and declining categories and sub-topics with
their share before and after and q-value), ``summaries`` (one per category,
with representative documents named by the user's ids), ``subtopics`` (inside
each category), ``candidates`` (what the model turned away, grouped into
candidate new categories with growth and examples), ``model`` (the pinned version and its recorded evaluations
against the general model), ``drift`` (abstain rate, confidence and category mix of the run's new
documents against the version's evaluation and earlier runs, see :mod:`inhouse.analysis.drift`) and ``cost`` (this run's, and the hosted-API
equivalent). The Parquet outputs sit beside the file.
"""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path

from .. import registry
from ..analysis.trends import thin_labels, window_label
from ..workspace.files import atomic_write_text

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#7f7f7f"]
COST_MARK = "<!-- run-cost -->"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{border-bottom:2px solid #eee;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;width:100%;margin:.6rem 0}th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #eee;vertical-align:top}
th{background:#fafafa}.num{text-align:right;font-variant-numeric:tabular-nums}.up{color:#c0392b;font-weight:600}
.down{color:#1f5fa8;font-weight:600}.muted{color:#777}.card{border:1px solid #eee;border-radius:6px;padding:.6rem .9rem;margin:.6rem 0}
code{background:#f4f4f4;padding:0 .25rem;border-radius:3px}ul{margin:.3rem 0}
"""


def esc(v) -> str:
    return html.escape("" if v is None else str(v))


def pct(v) -> str:
    return "-" if v is None else f"{v:.1%}"


def line_chart(periods: list[str], series: list[tuple[str, list[float]]], *, width: int = 1000, height: int = 320,
               fmt=lambda v: f"{v:,.0f}") -> str:
    """An inline SVG line chart: one coloured line per series, a legend, the first and last period."""
    if not periods or not series:
        return "<p class='muted'>no data</p>"
    left, right, top, bottom = 56, 230, 12, 36
    w, h = width - left - right, height - top - bottom
    ymax = max([max(v) for _, v in series if v] + [1e-9])
    n = len(periods)

    def x(i):
        return left + (w * i / (n - 1) if n > 1 else w / 2)

    def y(v):
        return top + h - h * v / ymax

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' width='100%' role='img'>",
             f"<rect x='{left}' y='{top}' width='{w}' height='{h}' fill='#fcfcfc' stroke='#ddd'/>"]
    for k in range(5):
        v = ymax * k / 4
        parts.append(f"<line x1='{left}' x2='{left + w}' y1='{y(v):.1f}' y2='{y(v):.1f}' stroke='#eee'/>"
                     f"<text x='{left - 6}' y='{y(v) + 4:.1f}' font-size='11' text-anchor='end'>{esc(fmt(v))}</text>")
    label = max(len(str(p)) for p in periods) * 11 * 0.62 + 10  # width of an 11-px label, and a gap
    for i in thin_labels(n, w, label):
        parts.append(f"<text x='{x(i):.1f}' y='{top + h + 16}' font-size='11' text-anchor='middle'>{esc(periods[i])}</text>")
    for j, (name, values) in enumerate(series):
        c = PALETTE[j % len(PALETTE)]
        pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(f"<polyline fill='none' stroke='{c}' stroke-width='2' points='{pts}'><title>{esc(name)}</title></polyline>")
        ly = top + 14 + j * 18
        parts.append(f"<rect x='{left + w + 12}' y='{ly - 9}' width='12' height='12' fill='{c}'/>"
                     f"<text x='{left + w + 30}' y='{ly + 1}' font-size='12'>{esc(name[:30])}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _volumes(trends: dict | None) -> str:
    if not trends:
        return "<p class='muted'>no trends step in this pipeline.</p>"
    cats = sorted(trends["categories"], key=lambda c: -c["total"])
    shown = cats[:10]
    chart = line_chart(trends["periods"], [(c["name"], c["counts"]) for c in shown])
    rest = f"<p class='muted'>{len(cats) - len(shown)} smaller categories not drawn.</p>" if len(cats) > len(shown) else ""
    return (f"<p>Documents per {esc(trends['every'])} and category ({trends['documents']:,} documents, "
            f"{len(trends['periods'])} {esc(trends['every'])}s; recent window: {esc(window_label(trends))}).</p>"
            + chart + rest)


def _change_rows(cats: list[dict], level: str) -> list[str]:
    rows = []
    for c in cats:
        if c["status"] == "stable":
            continue
        cls, mark = ("up", "▲ emerging") if c["status"] == "emerging" else ("down", "▼ declining")
        where = f"{esc(c['parent'])} / " if c.get("parent") else ""
        ratio = "new" if c["share_ratio"] is None else f"×{c['share_ratio']:.2f}"
        rows.append(f"<tr><td class='{cls}'>{mark}</td><td>{level}</td><td>{where}{esc(c['name'])}</td>"
                    f"<td class='num'>{pct(c['share_baseline'])}</td><td class='num'>{pct(c['share_recent'])}</td>"
                    f"<td class='num'>{ratio}</td><td class='num'>{c['q_value']:.2g}</td>"
                    f"<td class='num'>{c['total']:,}</td></tr>")
    return rows


def _changes(trends_result: dict | None) -> str:
    if not trends_result:
        return "<p class='muted'>no trends step in this pipeline.</p>"
    rows = _change_rows(trends_result["categories"]["categories"], "category")
    if trends_result.get("subtopics"):
        rows += _change_rows(trends_result["subtopics"]["categories"], "sub-topic")
    head = ("<tr><th>status</th><th>level</th><th>category / sub-topic</th><th class='num'>share before</th>"
            "<th class='num'>share recent</th><th class='num'>ratio</th><th class='num'>q-value</th>"
            "<th class='num'>documents</th></tr>")
    t = trends_result["categories"]
    note = (f"<p>Recent window ({esc(window_label(t))}) against the periods before; "
            f"two-proportion test, Benjamini–Hochberg q-values, flagged at q &lt; {t['alpha']} and a share ratio of "
            f"at least {t['min_ratio']}. A sub-topic's share is of all documents, not of its category: one whose "
            f"category grew around it is not declining.</p>")
    if not rows:
        return note + "<p>Nothing emerging or declining.</p>"
    return note + f"<table>{head}{''.join(rows)}</table>"


def _summaries(result: dict | None) -> str:
    if not result:
        return "<p class='muted'>no summarize step in this pipeline.</p>"
    out = [_summary_counts(result)]
    for s in result["summaries"]:
        docs = "".join(f"<li>{esc(t)} <span class='muted'>({esc(s['id_column'])} {esc(i)})</span></li>"
                       for t, i in zip(s["texts"], s["ids"]))
        writer = f" — written by {esc(s['model'])}" if s.get("model") and s["kind"] == "abstractive" else ""
        text = "" if s["kind"] == "extractive" else f"<p>{esc(s['summary'])}</p>"
        if s.get("model") and s["kind"] == "extractive":  # the model's text failed the check: say so, never a gap
            text = (f"<p class='muted'>No sentence by {esc(s['model'])} passed the check against these documents; "
                    "the representative documents below are the summary.</p>")
        text += "".join(f"<p class='muted small'>note: {esc(n)}</p>" for n in s.get("notes") or [])
        out.append(f"<div class='card'><h3>{esc(s['name'])} <span class='muted'>{s['size']:,} documents, "
                   f"{pct(s['share'])}</span></h3><p><b>keywords:</b> {esc(', '.join(s['keywords'][:10]))}{writer}</p>"
                   f"{text}<p><b>representative documents:</b></p><ul>{docs}</ul></div>")
    return "".join(out)


def _summary_counts(result: dict) -> str:
    if not result.get("generated_kept") and not result.get("fell_back"):
        return ""
    return (f"<p>Every sentence a model wrote was checked against its category's documents (each content word and "
            f"number must appear in them): {result['generated_kept']} generated summaries kept, "
            f"{result['fell_back']} fell back to the extractive summary; {result.get('sentences_kept', 0)} sentences "
            f"kept, {result.get('sentences_dropped', 0)} dropped.</p>")


def _topic_rows(result: dict, topics: list[dict]) -> str:
    return "".join(
        f"<tr><td class='num'>{t['topic']}</td><td>{esc(t['name'])}</td><td class='num'>{t['size']:,}</td>"
        f"<td class='num'>{pct(t['share'])}</td><td>{esc(', '.join(t['keywords'][:6]))}</td>"
        f"<td>{esc((t.get('representative_texts') or [''])[0][:120])} <span class='muted'>"
        f"({esc(result.get('id_column'))} {esc((t.get('representative_ids') or [''])[0])})</span></td></tr>"
        for t in sorted(topics, key=lambda t: -t["size"]))


def _themes(result: dict) -> str:
    """A discovery over the whole dataset: its themes first (largest first), each with its sub-topics under it."""
    by_id = {t["topic"]: t for t in result["topics"]}
    out = [f"<p>{len(result['themes'])} themes over {len(result['topics'])} sub-topics; each theme is a group of whole "
           "sub-topics (<code>inhouse discover --n-themes N</code> for coarser or finer themes).</p>"]
    for th in sorted(result["themes"], key=lambda th: (-th["size"], th["theme"])):
        out.append(f"<h3 class='theme'>{esc(th['name'])} <span class='muted'>({th['size']:,} documents, "
                   f"{pct(th['share'])}; {len(th['topics'])} sub-topics)</span></h3>"
                   "<table><tr><th class='num'>topic</th><th>name</th><th class='num'>size</th>"
                   "<th class='num'>share</th><th>keywords</th><th>example</th></tr>"
                   + _topic_rows(result, [by_id[k] for k in th["topics"] if k in by_id]) + "</table>")
    return "".join(out)


def _subtopics(result: dict | None) -> str:
    if not result:
        return "<p class='muted'>no discover step in this pipeline.</p>"
    if result.get("themes"):
        return _themes(result)
    by_parent: dict = {}
    for t in result["topics"]:
        by_parent.setdefault(t.get("parent"), []).append(t)
    out = []
    for parent, topics in sorted(by_parent.items(), key=lambda kv: -sum(t["size"] for t in kv[1])):
        rows = _topic_rows(result, topics)
        out.append(f"<h3>{esc(parent)}</h3><table><tr><th class='num'>topic</th><th>name</th><th class='num'>size</th>"
                   f"<th class='num'>share of category</th><th>keywords</th><th>example</th></tr>{rows}</table>")
    return "".join(out)


def spark(values: list[float], *, width: int = 120, height: int = 24) -> str:
    """A tiny inline SVG bar chart of ``values`` (a candidate's documents per period)."""
    if not values:
        return ""
    top = max(values) or 1
    w = width / len(values)
    bars = "".join(f"<rect x='{i * w:.1f}' y='{height - height * v / top:.1f}' width='{max(w - 1, 1):.1f}' "
                   f"height='{height * v / top:.1f}' fill='#9467bd'><title>{v:,}</title></rect>"
                   for i, v in enumerate(values))
    return (f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' width='{width}' "
            f"height='{height}'>{bars}</svg>")


def _growth(g: dict | None) -> str:
    if not g:
        return "<td class='muted'>-</td><td></td>"
    cls = {"emerging": "up", "declining": "down"}.get(g["status"], "")
    mark = {"emerging": "▲ ", "declining": "▼ "}.get(g["status"], "")
    ratio = "new" if g.get("share_ratio") is None else f"×{g['share_ratio']:.2f}"
    return (f"<td class='{cls}'>{mark}{pct(g['share_baseline'])} → {pct(g['share_recent'])} ({ratio}, "
            f"q {g['q_value']:.2g})</td><td>{spark(g.get('counts') or [])}</td>")


def _answered(answered: dict | None) -> str:
    """The labels a candidate's answered documents got, most first (the first three, then how many more)."""
    items = sorted((answered or {}).items(), key=lambda kv: -kv[1])
    if not items:
        return "<span class='muted'>none</span>"
    more = sum(n for _, n in items[3:])
    return esc(", ".join(f"{k} {n:,}" for k, n in items[:3]) + (f", {more:,} other" if more else ""))


def _candidates(result: dict | None) -> str:
    if not result or result.get("enabled") is False:
        return "<p class='muted'>candidates were turned off in this pipeline.</p>"
    away = "/".join(result.get("turned_away_labels") or ["other"])
    review = result.get("review") or {}
    unsure = (f" and {result.get('unsure') or 0:,} more answered while unsure (best probability under "
              f"{review['confidence_below']:.2f}, the level {pct(review.get('validation_share') or 0)} of its "
              f"validation rows fall under)") if review.get("confidence_below") is not None else ""
    head = (f"<p>{result['turned_away']:,} of {result['documents']:,} documents were turned away by "
            f"{esc(result['model'])} (answered {esc(away)}){unsure}: what its labels do not cover. Grouped by the topic "
            f"discovery of every run (discovery run {esc(result.get('discovery_run'))}), they are "
            f"{len(result['candidates'])} candidate new categories, those with the most documents it turned away "
            "first (a group it mostly answered with its labels, unsure, is where those labels blur more than a "
            "category they miss). Make one a label from the Analyze screen (its documents then wait in the "
            "labelling queue for a person to confirm).</p>")
    if result.get("growth_note"):
        head += f"<p class='muted'>No growth: {esc(result['growth_note'])}.</p>"
    elif result.get("every"):
        head += (f"<p class='muted'>Growth: share of all documents in the recent {esc(result['every'])}s against "
                 f"the ones before (two-proportion test, Benjamini–Hochberg q-value).</p>")
    if not result["candidates"]:
        return head
    rows = []
    for c in result["candidates"]:
        ex = "".join(f"<li>{esc(t[:200])} <span class='muted'>({esc(result.get('id_column'))} {esc(i)})</span></li>"
                     for t, i in zip(c["representative_texts"][:3], c["representative_ids"]))
        rows.append(f"<tr><td class='num'>{c['candidate']}</td><td><b>{esc(c['name'])}</b><br><span class='muted'>"
                    f"{esc(', '.join(c['keywords'][:6]))}</span><ul>{ex}</ul></td><td class='num'>{c['size']:,}</td>"
                    f"<td class='num'>{c.get('turned_away', 0):,}</td><td>{_answered(c.get('answered_as'))}</td>"
                    f"<td class='num'>{pct(c['share'])}</td>{_growth(c.get('growth'))}</tr>")
    return (head + "<table><tr><th class='num'>candidate</th><th>name, keywords, examples</th>"
            "<th class='num'>documents</th><th class='num'>turned away</th><th>the rest answered as</th>"
            "<th class='num'>share of those grouped</th><th>growth</th><th>per period</th>"
            "</tr>" + "".join(rows) + "</table>")


def _model(run) -> str:
    v = run.version
    if v is None:
        return "<p class='muted'>no classify step in this pipeline.</p>"
    c = run.results.get("classify") or {}
    m = v.manifest
    base = (m.get("base") or {}).get("name")
    lines = [f"<p><b>{esc(v.ref)}</b> (sha256 <code>{esc(v.sha256)}</code>), method {esc(m.get('method'))}, base "
             f"{esc(base)}, {len(m.get('labels') or [])} labels; resolved once at the start of this run.</p>",
             f"<p>Inference: {esc(c.get('backend'))}"
             + (f", agreement with the torch model {c['agreement_with_torch']:.2%} on {c.get('parity_texts')} texts"
                if c.get("agreement_with_torch") is not None else "")
             + (f"; {esc(c['fallback'])}" if c.get("fallback") else "") + ".</p>"]
    evals = registry.evaluations(run.ws, v)
    if not evals:
        lines.append(f"<p class='muted'>No evaluation is recorded for this version: run "
                     f"<code>inhouse eval {esc(v.ref)} --dataset D --split test</code>.</p>")
    else:
        rows = []
        for e in evals:
            mt = e["metrics"]
            zs = mt.get("zero_shot") or {}
            gain = (mt.get("accuracy") - zs["accuracy"]) if zs.get("accuracy") is not None and mt.get("accuracy") is not None else None
            rows.append(f"<tr><td>{esc(e['dataset'])}:{esc(e['split'])}</td><td class='num'>{pct(mt.get('accuracy'))}</td>"
                        f"<td class='num'>{mt.get('macro_f1', float('nan')):.3f}</td><td class='num'>{pct(zs.get('accuracy'))}</td>"
                        f"<td class='num'>{zs.get('macro_f1', float('nan')):.3f}</td>"
                        f"<td class='num'>{'-' if gain is None else f'{gain:+.1%}'}</td><td class='num'>{mt.get('n', '')}</td></tr>")
        lines.append("<table><tr><th>evaluated on</th><th class='num'>accuracy</th><th class='num'>macro-F1</th>"
                     f"<th class='num'>general model ({esc(base)}) accuracy</th><th class='num'>its macro-F1</th>"
                     "<th class='num'>gain</th><th class='num'>n</th></tr>" + "".join(rows) + "</table>")
    return "".join(lines)


def _drift_rows(d: dict) -> str:
    rows = []
    names = {"abstain_rate": ("abstain rate (other)", pct), "confidence": ("mean confidence", lambda v: f"{v:.3f}"),
             "mix": ("category mix", None)}
    for key, a in (d.get("against") or {}).items():
        for name, m in (a.get("metrics") or {}).items():
            what, f = names[name]
            if m.get("value") is None or (name != "mix" and m.get("baseline") is None):
                continue
            mark = "<span class='up'>▲ drift</span>" if m["flagged"] else "ok"
            if name == "mix":
                values = (f"<td colspan='2'>{esc(m['distance'])} distance {m['value']:.3f}; "
                          + esc(", ".join(f"{x['label']} {pct(x['baseline'])}→{pct(x['share'])}" for x in m["movers"]))
                          + "</td><td class='num'>-</td>")
            else:
                values = (f"<td class='num'>{f(m['value'])}</td><td class='num'>{f(m['baseline'])}</td>"
                          f"<td class='num'>{m['change']:+.3f}</td>")
            rows.append(f"<tr><td>{esc(a.get('label'))}</td><td>{what}</td>{values}<td class='num'>{m['p_value']:.2g}</td>"
                        f"<td class='num'>{m['threshold']}</td><td>{mark}</td></tr>")
    return "".join(rows)


def _drift(run) -> str:
    d = run.drift
    if not d:
        return "<p class='muted'>no classify step in this pipeline, so no drift.</p>"
    w, p, t = d.get("window") or {}, d.get("profile") or {}, d["thresholds"]
    head = (f"<p><b>{esc(d['status'])}</b>: {w.get('documents', 0):,} new documents (doc ids {w.get('from_doc_id')}–"
            f"{w.get('to_doc_id')}) classified by {esc(d['model'])}"
            + (f"; abstain rate {pct(p['abstain_rate'])}, mean confidence {p['mean_confidence']:.3f}"
               if p.get("n") else "") + (f". {esc(d['note'])}" if d.get("note") else "") + ".</p>")
    reasons = "".join(f"<li class='up'>{esc(r)}</li>" for r in d["reasons"])
    note = (f"<p class='muted'>Flagged when a metric moves by at least its threshold (abstain rate {t['abstain_rate']}, "
            f"mean confidence {t['confidence']}, mix {t['mix']} as {t['distance']} distance) and the move is "
            f"significant at {t['alpha']} (two-proportion z-test, Welch's t-test, chi-square test); windows under "
            f"{t['min_documents']} documents are not judged. Set them in the pipeline file's <code>drift:</code> key.</p>")
    rows = _drift_rows(d)
    table = ("<table><tr><th>against</th><th>metric</th><th class='num'>this run</th><th class='num'>baseline</th>"
             "<th class='num'>change</th><th class='num'>p-value</th><th class='num'>threshold</th><th>flag</th></tr>"
             + rows + "</table>") if rows else ""
    ev = (d.get("against") or {}).get("evaluation") or {}
    missing = f"<p class='muted'>{esc(ev['note'])}</p>" if ev.get("note") else ""
    return head + (f"<ul>{reasons}</ul>" if reasons else "") + table + missing + _drift_chart(run) + note


def _drift_chart(run) -> str:
    from ..analysis.drift import history

    d = run.drift
    past = [h for h in history(run.ws, run.spec.name, run.spec.dataset) if h.get("abstain_rate") is not None]
    p = d.get("profile") or {}
    if not past or p.get("abstain_rate") is None:
        return ""
    points = past + [{"run_id": "this", "abstain_rate": p["abstain_rate"], "mean_confidence": p["mean_confidence"]}]
    labels = [f"run {h['run_id']}" for h in points]
    series = [("abstain rate", [h["abstain_rate"] for h in points]),
              ("mean confidence", [h["mean_confidence"] or 0.0 for h in points])]
    return "<p>Over this pipeline's runs:</p>" + line_chart(labels, series, height=240, fmt=lambda v: f"{v:.2f}")


def cost_table(cost: dict | None, title: str) -> str:
    if not cost:
        return f"<p class='muted'>{esc(title)}: not recorded.</p>"
    api = cost.get("api") or {}
    rows = "".join(f"<tr><td>{esc(k)}</td><td class='num'>{a['input_tokens']:,}</td><td class='num'>{a['output_tokens']:,}</td>"
                   f"<td class='num'>{a['cost']:.4f} {esc(a['currency'])}</td><td>{esc(a['price_read_on'])}</td></tr>"
                   for k, a in api.items())
    reused = f" ({cost['reused']:,} more reused from stored predictions, not billed)" if cost.get("reused") else ""
    return (f"<h3>{esc(title)}</h3><p>{cost['documents']:,} documents computed{reused}, {cost['tokens']:,} tokens, "
            f"{cost['cpu_seconds']:.1f} CPU s, {cost['wall_seconds']:.1f} s wall, "
            f"{cost.get('docs_per_second') or 0:,.0f} docs/s, peak memory {cost['peak_rss_mb']:,.0f} MB; "
            "on this machine: no per-token charge.</p>"
            + ("<table><tr><th>the same tokens on</th><th class='num'>input tokens</th><th class='num'>output tokens</th>"
               f"<th class='num'>would cost</th><th>price read on</th></tr>{rows}</table>" if rows else ""))


def write_report(run, path: Path, *, title: str | None = None) -> Path:
    spec = run.spec
    r = run.results
    trends = (r.get("trends") or {}).get("categories")
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = title or f"{spec.name}: {spec.dataset}"
    files = ", ".join(f"<code>{esc(p.name)}</code>" for p in sorted(path.parent.glob("*.parquet")))
    classify_cost = (r.get("classify") or {}).get("cost")
    body = [
        f"<h1>{esc(title)}</h1><p class='muted'>pipeline <code>{esc(spec.path.name)}</code>, dataset "
        f"<code>{esc(spec.dataset)}</code>, model <b>{esc(run.version.ref if run.version else '-')}</b>"
        f"{' (sha256 ' + esc(run.version.sha256[:16]) + ')' if run.version else ''}, made {when}. "
        f"Outputs beside this file: {files or 'none'}.</p>",
        "<section id='volumes'><h2>Category volumes over time</h2>" + _volumes(trends) + "</section>",
        "<section id='changes'><h2>Emerging and declining</h2>" + _changes(r.get("trends")) + "</section>",
        "<section id='summaries'><h2>What each category is about</h2>" + _summaries(r.get("summarize")) + "</section>",
        "<section id='subtopics'><h2>" + ("Themes and their sub-topics" if (r.get("discover") or {}).get("themes")
                                          else "Sub-topics inside each category") + "</h2>"
        + _subtopics(r.get("discover")) + "</section>",
        *(["<section id='candidates'><h2>What the labels miss: candidate new categories</h2>"
            + _candidates(r.get("candidates")) + "</section>"] if "candidates" in r else []),
        "<section id='model'><h2>Model version and evaluation</h2>" + _model(run) + "</section>",
        "<section id='drift'><h2>Drift: is the model still seeing what it was built for?</h2>" + _drift(run)
        + "</section>",
        "<section id='cost'><h2>Cost</h2>" + cost_table(classify_cost, "classify (this run)") + COST_MARK + "</section>",
    ]
    doc = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>"
           f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>")
    atomic_write_text(path, doc)
    return path


def add_run_footer(path: Path, run_id: int, cost: dict) -> None:
    """Put the whole run's cost in place once the run is recorded."""
    text = path.read_text(encoding="utf-8")
    block = cost_table(cost, f"the whole pipeline run (run {run_id})")
    atomic_write_text(path, text.replace(COST_MARK, block, 1))
