// Analyze: run a pipeline on a dataset (model version, time bucket, summaries), watch it, then its dashboard:
// category volumes over time, emerging/declining categories and sub-topics, one summary per category, the cost
// against closed APIs, the model's drift (abstain rate, confidence, category mix against its evaluation and the
// earlier runs, with a chart over runs), and the downloads (outputs and the HTML report).
import { formatLinks } from "../downloads.js";
import { api } from "../api.js";
import { jobPanel } from "../job.js";
import { lineChart } from "../charts.js";
import { h, clear, card, table, empty, stat, badge, field, select, button, guard, can, fmt, pct, duration, when, truncate, errorBox, toast } from "../dom.js";

const EVERY = [["day", "day"], ["week", "week"], ["month", "month"]];
const enc = encodeURIComponent;

export async function render(view, params, query) {
  view.classList.add("screen-analyze");
  let alive = true;
  if (params.run) await dashboard(view, params.run);
  else await start(view, query, () => alive);
  return () => { alive = false; };
}

// ------------------------------------------------------------ start ----
function modelOptions(versions) {
  const opts = [];
  const byName = {};
  for (const v of versions.filter((v) => v.labels > 0)) (byName[v.name] ||= []).push(v);
  for (const [name, vs] of Object.entries(byName)) {
    for (const v of vs) for (const a of v.aliases || []) opts.push([`${name}@${a}`, `${name}@${a} → version ${v.version}`]);
    for (const v of [...vs].sort((a, b) => b.version - a.version)) opts.push([v.ref, `${v.ref} (${v.method || "?"}, ${when(v.created_at)})`]);
  }
  return opts;
}

async function start(view, query, alive) {
  const [ds, models, runs, active] = await Promise.all([api.get("/datasets"), api.get("/models"), api.get("/pipelines"),
    api.get("/jobs", { kind: "pipeline", limit: 20 })]);
  view.append(h("div", { class: "page-head" }, h("h1", {}, "Analyze"),
    h("span", { class: "muted" }, "Classify a dataset with your model, then see what people write about, what grows and what it cost.")));
  const datasets = ds.datasets || [];
  const mopts = modelOptions(models.models || []);
  if (!datasets.length) {
    view.append(empty("No datasets yet — import a CSV or run the demo",
      "A pipeline runs on an imported dataset with a time column. Import a file first (or run inhouse demo on the server).",
      h("a", { class: "btn primary", href: "#/import" }, "Import data")));
  } else if (!mopts.length) {
    view.append(empty("No trained model yet — train one first",
      "Analyze classifies every document with one of your trained models. Label a dataset, then train (the fast head method takes seconds).",
      h("a", { class: "btn primary", href: "#/train" }, "Train a model")));
  } else {
    view.append(form(datasets, mopts, (models.base_models || []).filter((m) => m.kind === "gguf"), query, alive,
      () => schedulesCard(sched)));
  }
  const sched = h("div", { class: "schedules" });
  view.append(sched);
  await schedulesCard(sched);
  const running = (active.jobs || []).filter((j) => j.status === "queued" || j.status === "running");
  if (running.length) {
    const box = card("Running now");
    for (const j of running) box.append(follow(j.id, `Pipeline on ${j.params.dataset}`, alive).el);
    view.append(box);
  }
  const rows = runs.runs || [];
  view.append(card("Pipeline runs", rows.length ? table([
    { key: "id", label: "Run", render: (r) => h("a", { href: `#/analyze/${r.id}` }, `#${r.id}`) },
    { key: "dataset", label: "Dataset" },
    { key: "model", label: "Model" },
    { key: "every", label: "Bucket" },
    { key: "documents", label: "Documents", num: true },
    { key: "emerging", label: "Emerging", num: true, title: "categories and sub-topics" },
    { key: "declining", label: "Declining", num: true },
    { key: "drift_status", label: "Drift", render: (r) => driftBadge(r.drift_status) },
    { key: "user", label: "By" },
    { key: "started_at", label: "Started", render: (r) => when(r.started_at) },
    { key: "seconds", label: "Took", render: (r) => duration(r.seconds) },
  ], rows, { onRow: (r) => { location.hash = `#/analyze/${r.id}`; } })
    : empty("No pipeline runs yet", datasets.length && mopts.length
      ? "Choose a dataset and a model version above and press Run pipeline: the dashboard opens when it finishes."
      : "Once a dataset and a trained model exist, run a pipeline here.")));
}

// Schedules: the pipelines the server runs by itself (made here or with inhouse pipeline schedule FILE).
async function schedulesCard(box) {
  const { schedules } = await api.get("/schedules");
  const act = (s, what) => button(what[0].toUpperCase() + what.slice(1), async () => {
    if (what === "remove") await api.del(`/schedules/${s.id}`); else await api.post(`/schedules/${s.id}/${what}`, {});
    await schedulesCard(box);
  }, { role: "editor" });
  const last = (s) => !s.last ? "—" : s.last.status === "done"
    ? (s.last.run_id ? h("span", {}, h("a", { href: `#/analyze/${s.last.run_id}` }, `run #${s.last.run_id}`), " ",
      s.last.drift === "flagged" ? driftBadge("flagged") : null) : s.last.skipped || "done")
    : truncate(`${s.last.status}${s.last.error ? ": " + s.last.error : ""}`, 120);
  clear(box);
  box.append(card("Schedules", table([
    { key: "name", label: "Name" },
    { key: "every", label: "Every" },
    { key: "paused", label: "State", render: (s) => badge(s.paused ? "paused" : "active", s.paused ? "" : "good") },
    { key: "next_at", label: "Next run", render: (s) => when(s.next_at) },
    { key: "last_at", label: "Last run", render: (s) => when(s.last_at) },
    { key: "last", label: "Last result", render: last },
    { key: "id", label: "", render: (s) => h("span", { class: "row" }, act(s, s.paused ? "resume" : "pause"), act(s, "remove")) },
  ], schedules, { empty: "No schedules. Choose Repeat every above, or: inhouse pipeline schedule FILE.yaml --every 1h" })));
}

function follow(jobId, title, alive) {
  const panel = jobPanel(jobId, title);
  panel.done.then((job) => {
    if (alive() && job.result?.run_id) location.hash = `#/analyze/${job.result.run_id}`;
  }, () => {});
  return panel;
}

function form(datasets, mopts, llms, query, alive, onScheduled = null) {
  const names = datasets.map((d) => d.name);
  const dsSel = select(names, names.includes(query.dataset) ? query.dataset : names[0], { name: "dataset" });
  const prod = mopts.find(([v]) => v.endsWith("@production"));
  const mSel = select(mopts, (prod || mopts[0])[0], { name: "model" });
  const every = select(EVERY, "week", { name: "every" });
  const summ = select([["extractive", "Extractive (keywords, examples)"],
    ...llms.map((m) => [`llm:${m.name}`, `Written by ${m.name} (local LLM, slower)`]),
    ["none", "No summaries"]], "extractive", { name: "summaries" });
  const subs = h("input", { type: "checkbox", name: "subtopics", checked: true });
  const recentFrom = h("input", { type: "date", name: "recent_from" }), until = h("input", { type: "date", name: "until" });
  const area = h("div", { class: "run-area" });
  const body = () => {
    const [kind, llm] = summ.value.startsWith("llm:") ? ["llm", summ.value.slice(4)] : [summ.value, null];
    return { dataset: dsSel.value, model: mSel.value, every: every.value, summaries: kind, llm, subtopics: subs.checked,
      recent_from: recentFrom.value || null, until: until.value || null };
  };
  const go = button("Run pipeline", async () => {
    clear(area);
    try {
      const job = await api.post("/pipelines", body());
      toast(`Pipeline job ${job.job_id} started.`, "good");
      area.append(follow(job.job_id, `Pipeline on ${dsSel.value} with ${mSel.value}`, alive).el);
    } catch (e) { area.append(errorBox(e)); throw e; }
  }, { role: "editor", kind: "primary" });
  const repeat = h("input", { type: "text", name: "repeat", placeholder: "1d, 6h or 0 6 * * 1-5", size: 18 });
  const plan = button("Schedule", async () => {
    clear(area);
    try {
      const s = await api.post("/schedules", { every: repeat.value.trim(), pipeline: body() });
      toast(`Schedule ${s.id} made: next run ${when(s.next_at)}.`, "good");
      if (onScheduled) onScheduled();
    } catch (e) { area.append(errorBox(e)); throw e; }
  }, { role: "editor", title: "The server runs this pipeline again and again while it runs." });
  const el = card("Run a pipeline",
    h("div", { class: "analyze-form" },
      field("Dataset", dsSel, "Its documents are classified; it needs a time column."),
      field("Model version", mSel, "An alias (e.g. production) is resolved once when the run starts."),
      field("Time bucket", every, "Volumes and trends per day, week or month."),
      field("Recent from", recentFrom, "Optional: compare from this date on with everything before (default: the last quarter)."),
      field("Until", until, "Optional: leave out documents after this date."),
      field("Summaries", summ, llms.length ? "One summary per category: its keywords and most representative messages, or written by a local LLM." : "One summary per category: its keywords and most representative messages (no local LLM is installed)."),
      h("label", { class: "check" }, subs, " Find sub-topics inside each category and flag the emerging ones")),
    h("div", { class: "row" }, go, can("editor") ? null : h("span", { class: "muted" }, "Running a pipeline needs the editor role.")),
    h("div", { class: "row" }, field("Repeat every", repeat, "Ns, Nm, Nh, Nd or a cron expression in UTC; the server runs it while it runs."), plan),
    area);
  return guard(el, "editor");
}

// -------------------------------------------------------- dashboard ----
function direction(status) {
  return status === "emerging" ? badge("▲ emerging", "bad") : badge("▼ declining", "info");
}

async function dashboard(view, runId) {
  const d = await api.get(`/pipelines/${enc(runId)}`);
  const v = d.volumes;
  const report = d.report ? `/pipelines/${d.id}/files/${enc(d.report)}` : null;
  view.append(h("div", { class: "page-head" },
    h("h1", {}, `Analysis of ${d.dataset}`),
    h("span", { class: "muted" }, `run #${d.id} · model ${d.model} · ${v ? "per " + v.every : ""} · ${when(d.started_at)} by ${d.user || "—"}`),
    h("div", { class: "actions row" },
      report ? h("a", { class: "btn", href: report, download: d.report, "data-download": "report" }, "Download report") : null,
      h("a", { class: "btn", href: "#/analyze" }, "All runs"),
      d.model ? h("a", { class: "btn analyze-retrain", href: `#/models/${enc(String(d.model).split("@")[0])}`, title: "Retrain the model on the labels as they are now, compare with production, promote" }, "Retrain & promote") : null,
      h("a", { class: "btn primary", href: `#/analyze?dataset=${enc(d.dataset)}` }, "New run"))));
  const emerging = d.flagged.filter((f) => f.status === "emerging"), declining = d.flagged.filter((f) => f.status === "declining");
  const t = d.throughput || {};
  view.append(h("div", { class: "stats" },
    stat("documents", fmt(d.documents)),
    stat(v ? `${v.every}s` : "periods", v ? fmt(v.periods.length) : "—", v ? (v.recent_from ? `recent window: ${v.recent_from} – ${v.until || "end"}` : `recent window: last ${v.recent_periods}`) : null),
    stat("emerging", fmt(emerging.length), "categories and sub-topics"),
    stat("declining", fmt(declining.length)),
    stat("throughput", t.docs_per_second ? `${fmt(t.docs_per_second)} docs/s` : "—",
      t.computed ? `classified ${fmt(t.computed)} on ${t.backend}` : t.documents ? "predictions reused from an earlier run" : null),
    stat("run time", duration(d.seconds))));

  // volumes
  if (v && v.series.length) {
    const shown = v.series.slice(0, 12);
    const marks = Object.fromEntries(v.series.filter((s) => s.status !== "stable").map((s) => [s.name, s.status]));
    view.append(card(`Category volumes per ${v.every}`,
      h("div", { class: "chart-box" }, lineChart(v.periods, shown.map((s) => ({ name: s.name, values: s.counts })),
        { title: `documents per ${v.every} and category`, yLabel: "documents", marks })),
      h("p", { class: "muted small" }, `${fmt(v.documents)} documents over ${v.periods.length} ${v.every}s. `,
        "▲ thick line: emerging; ▼ dashed: declining (recent ", String(v.recent_periods), ` ${v.every}s against the ones before). `,
        v.series.length > shown.length ? `${v.series.length - shown.length} smaller ${v.series.length - shown.length === 1 ? "category" : "categories"} not drawn.` : "")));
  } else {
    view.append(card("Category volumes", h("p", { class: "muted" }, "This run has no trends step, so there are no volumes over time.")));
  }

  // flagged
  view.append(card("Emerging and declining", d.flagged.length ? table([
    { key: "status", label: "Direction", render: (f) => direction(f.status) },
    { key: "level", label: "Level", render: (f) => (f.level === "subtopic" ? "sub-topic" : "category") },
    { key: "name", label: "Category / sub-topic", render: (f) => f.parent ? h("span", {}, h("span", { class: "muted" }, `${f.parent} / `), f.name) : f.name },
    { key: "share", label: "Share before → after", render: (f) => h("span", { class: `share ${f.status}` }, `${pct(f.share_baseline)} → ${pct(f.share_recent)}`) },
    { key: "share_ratio", label: "Ratio", render: (f) => (f.share_ratio === null ? "new" : `×${fmt(f.share_ratio, 2)}`) },
    { key: "q_value", label: "q-value", render: (f) => Number(f.q_value).toPrecision(2) },
    { key: "total", label: "Documents", num: true },
  ], d.flagged) : h("p", { class: "muted" }, "Nothing emerging or declining: every category's share in the recent window is within chance of the periods before."),
  v ? h("p", { class: "muted small" }, `Two-proportion test with Benjamini–Hochberg q-values; flagged at q < ${v.alpha} and a share ratio of at least ${v.min_ratio}. Shares of sub-topics are within their category.`) : null));

  view.append(driftCard(d));

  // summaries
  view.append(card("What each category is about", d.summaries.length ? h("div", { class: "summaries" }, d.summaries.map((s) =>
    h("article", { class: "summary-card" },
      h("h3", {}, s.name, " ", marksOf(d, s.name)),
      h("div", { class: "muted small" }, `${fmt(s.size)} documents · ${pct(s.share)}`),
      s.kind === "abstractive" && s.summary ? h("p", { class: "summary-text" }, s.summary, h("span", { class: "muted small" }, ` — written by ${s.model}`))
        : s.model ? h("p", { class: "muted small summary-fallback" }, `No sentence by ${s.model} passed the check against these documents; the examples below are the summary.`) : null,
      h("div", { class: "keywords" }, (s.keywords || []).slice(0, 8).map((k) => badge(k, "muted"))),
      h("ul", { class: "examples" }, (s.texts || []).slice(0, 3).map((x, i) => h("li", {}, truncate(x, 140),
        s.ids?.[i] !== undefined && s.ids?.[i] !== null ? h("span", { class: "muted small" }, ` (${s.id_column || "id"} ${s.ids[i]})`) : null))))))
    : h("p", { class: "muted" }, "This run wrote no summaries (summaries were turned off).")));

  if (d.candidates) view.append(await candidatesCard(d));

  // cost + downloads
  const grid = h("div", { class: "grid-2" });
  grid.append(costCard(d), filesCard(d));
  view.append(grid);
  view.append(card("Steps", table([
    { key: "name", label: "Step" },
    { key: "status", label: "Status", render: (s) => badge(s.status, s.status === "done" ? "good" : "muted") },
    { key: "seconds", label: "Seconds", num: true, digits: 1 },
    { key: "rows", label: "Rows", num: true },
    { key: "reason", label: "Note" },
  ], d.steps)));
}

// What the labels miss: the documents the model turned away or answered unsure, grouped into candidate new categories; one action
// makes a candidate a label (in a label set of the person's choice) and opens the labelling queue on its documents.
async function candidatesCard(d) {
  const c = d.candidates;
  const ds = await api.get(`/datasets/${enc(d.dataset)}`);
  const cols = Object.entries(ds.label_columns || {}).filter(([, x]) => x.kind !== "metadata").map(([k]) => k);
  const head = h("p", { class: "muted small" }, `${fmt(c.turned_away)} of ${fmt(c.documents)} documents were turned away by ${c.model} `,
    `(answered ${(c.turned_away_labels || ["other"]).join("/")})`,
    c.review ? ` and ${fmt(c.unsure || 0)} more answered while unsure (best probability under ${c.review.confidence_below.toFixed(2)}, the level ${pct(c.review.validation_share)} of its validation rows fall under)` : "",
    `: what its labels do not cover, grouped into ${fmt(c.candidates.length)} candidates, those with the most turned away first (a group mostly answered unsure is where your labels blur). `,
    c.growth_note ? `No growth: ${c.growth_note}.` : c.every ? `Growth: share of all documents in the recent ${c.every}s against the ones before.` : "");
  if (!c.candidates.length) return card("What your labels miss", head, h("p", { class: "muted" }, "No document was turned away or answered unsure."));
  const item = (x) => {
    const g = x.growth;
    const area = h("div", { class: "candidate-action" });
    const open = button("Make a label…", () => { clear(area, labelForm(d, c, x, cols)); }, { role: "editor", kind: "small", "data-candidate": x.candidate });
    return h("article", { class: "summary-card candidate", "data-candidate-card": x.candidate },
      h("h3", {}, x.name, " ", g && g.status !== "stable" ? direction(g.status) : null),
      h("div", { class: "muted small" }, `${fmt(x.size)} documents · ${fmt(x.turned_away || 0)} turned away · ${pct(x.share)} of those grouped`,
        g ? ` · ${pct(g.share_baseline)} → ${pct(g.share_recent)} of all` : ""),
      (x.turned_away || 0) * 2 < x.size ? h("div", { class: "muted small", "data-answered-as": "" }, "mostly answered, unsure: ",
        Object.entries(x.answered_as || {}).sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k, n]) => `${k} ${fmt(n)}`).join(", ")) : null,
      h("div", { class: "keywords" }, (x.keywords || []).slice(0, 8).map((k) => badge(k, "muted"))),
      h("ul", { class: "examples" }, (x.representative_texts || []).slice(0, 3).map((t, i) => h("li", {}, truncate(t, 140),
        x.representative_ids?.[i] != null ? h("span", { class: "muted small" }, ` (${c.id_column || "id"} ${x.representative_ids[i]})`) : null))),
      h("div", { class: "row" }, open), area);
  };
  return card("What your labels miss", head, h("div", { class: "summaries candidates" }, c.candidates.map(item)));
}

function labelForm(d, c, x, cols) {
  const fresh = "new_categories";
  const colSel = select([...cols.map((k) => [k, k]), ...(cols.includes(fresh) ? [] : [[fresh, `${fresh} (new label set)`]])],
    fresh, { name: "label_col", "aria-label": "label set" });  // a set of its own: the file's labels stay apart
  colSel.append(h("option", { value: "__new__" }, "+ a label set of your own…"));
  const newCol = h("input", { type: "text", name: "new_label_col", placeholder: "name, e.g. new_intents", maxlength: 200, hidden: true, size: 18 });
  colSel.addEventListener("change", () => { newCol.hidden = colSel.value !== "__new__"; if (!newCol.hidden) newCol.focus(); });
  const name = h("input", { type: "text", name: "label", value: x.name, maxlength: 200, size: 36, "aria-label": "label name" });
  const out = h("div");
  const go = button("Create label and open the queue", async () => {
    const labelCol = colSel.value === "__new__" ? newCol.value.trim() : colSel.value;
    try {
      const r = await api.post(`/datasets/${enc(d.dataset)}/candidates/${c.discovery_run}/${x.candidate}/label`,
        { label_col: labelCol, label: name.value.trim() || null });
      toast(`Label ${r.label} added to ${r.label_col}: confirm its ${fmt(r.documents)} documents.`, "good");
      location.hash = r.ui;
    } catch (e) { clear(out, errorBox(e)); throw e; }
  }, { role: "editor", kind: "primary small" });
  return guard(h("div", { class: "candidate-form" },
    h("div", { class: "row" }, field("Label set", colSel), newCol, field("Label", name), go),
    h("p", { class: "muted small" }, `Nothing is labelled yet: the ${fmt(x.size)} documents wait in the labelling queue for you to confirm them one at a time.`),
    out), "editor");
}

// ------------------------------------------------------------ drift ----
const METRIC = { abstain_rate: "Abstain rate (other)", confidence: "Mean confidence", mix: "Category mix" };

function driftBadge(status) {
  if (!status) return "—";
  return status === "flagged" ? badge("▲ drift", "bad") : status === "ok" ? badge("no drift", "good") : badge(status.replaceAll("_", " "), "muted");
}

function driftValue(m) {
  if (m.key === "mix") return `${m.distance} distance ${fmt(m.value, 3)} · ` + (m.movers || []).map((x) => `${x.label} ${pct(x.baseline)} → ${pct(x.share)}`).join(", ");
  const f = m.key === "abstain_rate" ? (v) => pct(v) : (v) => fmt(v, 3);
  return `${f(m.value)} against ${f(m.baseline)} (${m.change > 0 ? "+" : ""}${fmt(m.change, 3)})`;
}

function driftCard(d) {
  const r = d.drift, hist = d.drift_history || [];
  if (!r) return card("Drift", h("p", { class: "muted" }, "This run did not classify, so it has no drift record."));
  const p = r.profile || {}, w = r.window || {}, t = r.thresholds;
  const rows = [];
  for (const a of Object.values(r.against || {})) {
    for (const [key, m] of Object.entries(a.metrics || {})) if (m.value !== null && m.value !== undefined && (key === "mix" || m.baseline !== null)) rows.push({ against: a.label, key, ...m });
  }
  const evalNote = r.against?.evaluation?.note;
  const shown = hist.filter((x) => x.abstain_rate !== null && x.abstain_rate !== undefined);
  const series = [{ name: "abstain rate", values: shown.map((x) => x.abstain_rate) },
    { name: "mean confidence", values: shown.map((x) => x.mean_confidence ?? 0) }];
  const ev = shown.filter((x) => x.evaluation_abstain_rate !== null && x.evaluation_abstain_rate !== undefined);
  if (ev.length === shown.length && shown.length) {
    series.push({ name: "baseline: abstain", values: shown.map((x) => x.evaluation_abstain_rate) });
    if (shown.every((x) => x.evaluation_confidence !== null && x.evaluation_confidence !== undefined)) series.push({ name: "baseline: confidence", values: shown.map((x) => x.evaluation_confidence) });
  }
  const flaggedRuns = shown.filter((x) => x.flagged).map((x) => `#${x.run_id}`);
  return card("Drift",
    h("div", { class: "drift-head row" }, driftBadge(r.status),
      h("span", {}, p.n ? `${fmt(w.documents)} new documents classified by ${r.model}: abstain rate ${pct(p.abstain_rate)}, mean confidence ${fmt(p.mean_confidence, 3)}` : (r.note || "nothing to measure"))),
    r.reasons.length ? h("ul", { class: "drift-reasons" }, r.reasons.map((x) => h("li", {}, x))) : null,
    rows.length ? table([
      { key: "against", label: "Against" },
      { key: "key", label: "Metric", render: (m) => METRIC[m.key] },
      { key: "value", label: "This run against baseline", render: driftValue },
      { key: "p_value", label: "p-value", render: (m) => Number(m.p_value).toPrecision(2) },
      { key: "threshold", label: "Threshold", num: true, digits: 2 },
      { key: "flagged", label: "", render: (m) => (m.flagged ? badge("▲ drift", "bad") : badge("ok", "good")) },
    ], rows) : null,
    evalNote ? h("p", { class: "muted small" }, evalNote) : null,
    shown.length > 1 ? h("div", { class: "chart-box drift-chart" }, lineChart(shown.map((x) => `run ${x.run_id}`), series,
      { title: "abstain rate and mean confidence over this pipeline's runs", yLabel: "share / probability", height: 240 })) : null,
    shown.length > 1 ? h("p", { class: "muted small" }, `Abstain rate and mean confidence of each run's new documents, over this pipeline's last ${shown.length} runs. ` + (flaggedRuns.length ? `Flagged: ${flaggedRuns.join(", ")}.` : "None flagged.")) : null,
    h("p", { class: "muted small" }, `Flagged when a metric moves by at least its threshold (abstain rate ${t.abstain_rate}, mean confidence ${t.confidence}, mix ${t.mix} as ${t.distance} distance) and the move is significant at ${t.alpha}; runs under ${t.min_documents} new documents are not judged. Set them in the pipeline file's drift: key.`));
}

function marksOf(d, name) {
  const f = d.flagged.find((x) => x.level === "category" && x.name === name);
  return f ? direction(f.status) : null;
}

function money(x, cur) { return `${x < 0.01 && x > 0 ? x.toFixed(5) : x.toFixed(4)} ${cur}`; }

function costCard(d) {
  const c = d.cost, a = d.cost_assumptions;
  if (!c) return card("Cost", h("p", { class: "muted" }, "No cost was recorded for this run."));
  const all = c.all_documents || { documents: c.documents, tokens: c.tokens, api: c.api };
  const apis = Object.entries(all.api || {}).sort((x, y) => y[1].cost - x[1].cost);
  const top = apis[0]?.[1];
  return card("Cost",
    h("div", { class: "cost-compare" },
      h("div", { class: "cost-side" }, h("div", { class: "cost-big good" }, "0.00 USD"),
        h("strong", {}, "This run, on this machine"),
        h("div", { class: "muted small" }, `${fmt(c.cpu_seconds, 1)} CPU s · ${fmt(c.wall_seconds, 1)} s wall · peak ${fmt(c.peak_rss_mb)} MB`)),
      top ? h("div", { class: "cost-side" }, h("div", { class: "cost-big bad" }, money(top.cost, top.currency)),
        h("strong", {}, `The same ${fmt(all.documents)} documents on ${apis[0][0]}`),
        h("div", { class: "muted small" }, `${fmt(all.tokens)} input tokens at the list price read on ${top.price_read_on}`)) : null),
    all.reused ? h("p", { class: "muted small" }, `This run reused ${fmt(all.reused)} predictions made earlier by the same model version and classified ${fmt(all.computed)} new documents; the prices below are for all ${fmt(all.documents)} documents it analyzed.`) : null,
    table([
      { key: "model", label: "Same documents on a closed API" },
      { key: "input_tokens", label: "Input tokens", num: true },
      { key: "output_tokens", label: "Output tokens", num: true },
      { key: "cost", label: "Would cost", render: (r) => h("strong", {}, money(r.cost, r.currency)) },
      { key: "price_read_on", label: "Price read on" },
    ], apis.map(([model, r]) => ({ model, ...r }))),
    h("details", { class: "assumptions" }, h("summary", {}, "Assumptions"),
      h("ul", {}, h("li", {}, a.local), h("li", {}, a.api),
        a.prices.map((p) => h("li", {}, `${p.model}: ${p.input_per_1m} ${p.currency} per million input tokens` +
          (p.output_per_1m ? `, ${p.output_per_1m} per million output tokens` : "") + ` (read on ${p.read_on}${p.source ? ", " + p.source : ""})`)),
        h("li", {}, a.change))));
}

const TABLES = ["parquet", "csv", "jsonl"];

function filesCard(d) {
  const kinds = { html: "the self-contained HTML report", parquet: "Parquet table", csv: "CSV table", jsonl: "JSON Lines" };
  const what = { predictions: "every document's predicted category", summaries: "one summary per category",
    subtopics: "sub-topics inside each category", trends: "counts and shares per period, flags",
    candidates: "candidate new categories: what the model turned away" };
  return card("Downloads", d.files.length ? h("ul", { class: "files" }, d.files.map((f) => h("li", {},
    h("a", { href: f.href, download: f.name, "data-file": f.name }, f.name), " ",
    h("span", { class: "muted small" }, `${what[f.name.split(".")[0]] || kinds[f.kind] || f.kind} · ${fmt(f.bytes / 1024, 1)} KB`),
    TABLES.includes(f.kind) ? formatLinks(f.href, f.name.split(".")[0]) : null)))
    : h("p", { class: "muted" }, "The files of this run are gone (the folder was removed). Run the pipeline again."),
  h("p", { class: "muted small" }, "The report opens in any browser without a network: charts are inline SVG."));
}
