// Deploy: trained models, their versions and evaluations, a diff of two versions, promotion to production
// (compare-and-set, behind a confirmation that shows what changes) and the alias history. The loop of issue 20 §4:
// "Retrain on the current labels" trains like production (POST /versions/{ref}/retrain); its job page links back
// here with ?compare=NAME@N, which compares that version with production at once and offers to promote it.
import { api } from "../api.js";
import { divergingChart } from "../charts.js";
import { jobPanel } from "../job.js";
import { h, clear, card, stat, badge, field, select, button, empty, errorBox, table, confirmDialog, toast, can, fmt, pct, when, truncate } from "../dom.js";

const enc = encodeURIComponent;
// diffs already computed on this page (the promote dialog reuses the one the user just looked at). A diff runs
// as a job on the server (both versions classify the same documents: seconds to minutes); `show` gets the job's
// progress panel while it runs.
const diffs = new Map();
function getDiff(q, show = () => {}) {
  const key = JSON.stringify(q);
  if (!diffs.has(key)) diffs.set(key, (async () => {
    const job = await api.post("/diff/jobs", { ...q, split: q.split || null });
    const panel = jobPanel(job.job_id, `Comparing ${q.old} and ${q.new} on ${q.dataset}`);
    show(panel.el);
    return (await panel.done).result;
  })().catch((e) => { diffs.delete(key); throw e; }));
  return diffs.get(key);
}

export async function render(view, params, query = {}) {
  if (params.name) return modelView(view, params.name, query);
  return listView(view);
}

// ------------------------------------------------------------------ list ----
async function listView(view) {
  const r = await api.get("/models");
  const rows = r.models || [];
  view.append(h("div", { class: "page-head" }, h("h1", {}, "Trained models"),
    h("div", { class: "actions" }, can("editor") ? h("a", { class: "btn primary", href: "#/train" }, "Train a model") : null)));
  if (!rows.length) {
    view.append(empty("No trained models yet", "Train a classifier on a labelled dataset; its versions, evaluations and production alias appear here.",
      h("a", { class: "btn primary", href: "#/train" }, "Train a model")));
    return;
  }
  const byName = new Map();
  for (const v of rows) { if (!byName.has(v.name)) byName.set(v.name, []); byName.get(v.name).push(v); }
  const models = [...byName.entries()].map(([name, vs]) => {
    const prod = vs.find((v) => (v.aliases || []).includes("production"));
    const scored = vs.filter((v) => typeof v.metrics?.macro_f1 === "number");
    const best = scored.sort((a, b) => b.metrics.macro_f1 - a.metrics.macro_f1)[0];
    const latest = vs.reduce((a, b) => (a.version > b.version ? a : b));
    return { name, versions: vs.length, production: prod?.version ?? null, best, latest };
  });
  view.append(card(null, table([
    { key: "name", label: "Model", render: (m) => h("a", { href: `#/models/${enc(m.name)}` }, m.name) },
    { key: "versions", label: "Versions", num: true },
    { key: "production", label: "Production", render: (m) => m.production ? badge(`@${m.production}`, "good") : badge("none", "muted") },
    { key: "best", label: "Best macro-F1", render: (m) => m.best ? `${fmt(m.best.metrics.macro_f1, 3)} (@${m.best.version} on ${m.best.metrics.on})` : "not evaluated" },
    { key: "latest", label: "Latest", render: (m) => `@${m.latest.version} · ${m.latest.method} · ${when(m.latest.created_at)}` },
  ], models, { onRow: (m) => { location.hash = `#/models/${enc(m.name)}`; } })));
}

// ----------------------------------------------------------------- model ----
function scoreOf(v) {
  const e = (v.evaluations || [])[0];
  return e ? { macro_f1: e.metrics.macro_f1, accuracy: e.metrics.accuracy, on: `${e.dataset}/${e.split || "all"}` } : null;
}

async function modelView(view, name, query = {}) {
  diffs.clear();
  const [m, hist, ds] = await Promise.all([api.get(`/models/${enc(name)}`), api.get(`/models/${enc(name)}/history`), api.get("/datasets")]);
  const versions = await Promise.all(m.versions.map(async (row) => {
    const [d, ev] = await Promise.all([api.get(`/versions/${enc(row.ref)}`), api.get(`/versions/${enc(row.ref)}/evaluations`)]);
    return { ...row, base: d.manifest?.base?.name, integrity: d.integrity, evaluations: ev.evaluations || [], manifest: d.manifest };
  }));
  versions.sort((a, b) => b.version - a.version);
  const prodVersion = m.aliases?.production ?? null;
  const trainDs = versions[0]?.dataset?.name;
  view.append(h("div", { class: "page-head" }, h("h1", {}, name),
    prodVersion ? badge(`production → @${prodVersion}`, "good") : badge("no production version", "muted"),
    h("div", { class: "actions" }, h("a", { href: "#/models" }, "← All models"),
      can("editor") ? h("a", { class: "btn", href: `#/train${trainDs ? `?dataset=${enc(trainDs)}` : ""}` }, "Train another version") : null)));

  const rerender = () => { clear(view); return modelView(view, name); };
  if (prodVersion) view.append(retrainCard(`${name}@${prodVersion}`));
  view.append(card("Versions", table([
    { key: "version", label: "Version", render: (v) => h("strong", {}, `@${v.version}`) },
    { key: "aliases", label: "Aliases", render: (v) => h("span", { class: "row" }, (v.aliases || []).map((a) => badge(a, a === "production" ? "good" : "info"))) },
    { key: "eval", label: "Evaluation", render: (v) => { const s = scoreOf(v); return s ? `macro-F1 ${fmt(s.macro_f1, 3)} · accuracy ${pct(s.accuracy)} on ${s.on}` : evaluateButton(v, rerender); } },
    { key: "method", label: "Method" }, { key: "base", label: "Base" },
    { key: "dataset", label: "Trained on", render: (v) => v.dataset ? `${v.dataset.name}/${v.dataset.split || "all"} (${fmt(v.dataset.n_rows)})` : "—" },
    { key: "created", label: "Created", render: (v) => h("span", {}, v.created_by, h("br"), h("small", { class: "muted" }, when(v.created_at))) },
    { key: "sha256", label: "sha256", render: (v) => h("code", { title: v.sha256 }, v.sha256.slice(0, 12)) },
    { key: "act", label: "", render: (v) => v.version === prodVersion ? badge("in production", "good")
      : button("Promote to production", () => promote(name, v, versions, prodVersion, rerender), { role: "editor", kind: "small", "data-version": v.version }) },
  ], versions)));

  const compare = versions.find((v) => v.ref === query.compare);
  view.append(diffCard(name, versions, prodVersion, ds.datasets || [], trainDs, compare, rerender));
  view.append(historyCard(hist.events || []));
}

// an unevaluated version: measure it on its training dataset's test rows (a job), then show the page again
function evaluateButton(v, rerender) {
  const ds = v.dataset?.name;
  const box = h("span", { class: "deploy-eval" }, h("span", { class: "muted" }, "not evaluated "));
  if (ds) box.append(button(`Evaluate on ${ds}/test`, async () => {
    const job = await api.post("/evaluations", { model: v.ref, dataset: ds, split: "test", label_col: v.dataset.label_col || "label" });
    const panel = jobPanel(job.job_id, `Evaluating ${v.ref}`);
    box.replaceChildren(panel.el);
    await panel.done;
    await rerender();
  }, { role: "editor", kind: "small" }));
  return box;
}

// ------------------------------------------------------------------ diff ----
function diffCard(name, versions, prodVersion, datasets, trainDs, compare, rerender) {
  const refs = versions.map((v) => [v.ref, `${v.ref}${(v.aliases || []).length ? " (" + v.aliases.join(", ") + ")" : ""}`]);
  const newest = compare?.ref || versions[0]?.ref;
  const older = prodVersion && `${name}@${prodVersion}` !== newest ? `${name}@${prodVersion}` : versions.find((v) => v.ref !== newest)?.ref;
  const oldSel = select(refs, older || newest, { name: "old", "data-readonly-ok": "" });
  const newSel = select(refs, newest, { name: "new", "data-readonly-ok": "" });
  const dsSel = select(datasets.map((d) => d.name), compare?.dataset?.name || trainDs, { name: "dataset", "data-readonly-ok": "" });
  const splitSel = select([["test", "test"]], "test", { name: "split", "data-readonly-ok": "" });
  const out = h("div", { class: "deploy-diff-out" });
  const loadSplits = async () => {
    try {
      const d = await api.get(`/datasets/${enc(dsSel.value)}`);
      const sp = Object.keys(d.splits || {});
      clear(splitSel, ...[...sp.map((s) => [s, `${s} (${fmt(d.splits[s])})`]), ["", "every row"]].map(([v, t]) => h("option", { value: v, selected: v === (sp.includes("test") ? "test" : "") }, t)));
    } catch (e) { clear(out, errorBox(e)); }
  };
  dsSel.addEventListener("change", loadSplits);
  const ready = datasets.length ? loadSplits() : Promise.resolve();
  const run = button("Compare", async () => {
    clear(out, h("p", { class: "muted" }, "Classifying with both versions…"));
    try {
      const d = await getDiff({ old: oldSel.value, new: newSel.value, dataset: dsSel.value, split: splitSel.value, examples: 25 },
        (panel) => clear(out, panel));
      clear(out, renderDiff(d), promoteFromDiff(name, d, versions, prodVersion, rerender));
    } catch (e) { clear(out, errorBox(e)); }
  }, { kind: "primary", id: "diff-run" });
  if (compare && prodVersion && compare.version !== prodVersion) ready.then(() => run.click());  // ?compare=NAME@N: against production
  return card("Compare two versions",
    h("p", { class: "muted" }, "Both versions label the same documents; see which predictions flip and how each class's score moves."),
    h("div", { class: "deploy-diff-form" }, field("Old", oldSel), field("New", newSel), field("Dataset", dsSel), field("Split", splitSel), run),
    versions.length < 2 ? h("p", { class: "muted" }, "Only one version so far: train another to compare.") : null, out);
}

export function renderDiff(d) {
  const met = d.metrics || {};
  const delta = (k) => met[k] ? `${met[k].delta >= 0 ? "+" : ""}${fmt(met[k].delta, 3)}` : "—";
  const per = (d.per_class || []).filter((r) => r.support === undefined || r.support > 0 || r.count_delta);
  const hasGold = (d.labelled || 0) > 0;
  return h("div", { class: "deploy-diff", "data-flipped": d.flipped },
    h("div", { class: "stats" },
      stat("predictions flip", `${fmt(d.flipped)} of ${fmt(d.documents)}`, `agreement ${pct(d.agreement)}`),
      hasGold ? stat("fixed", fmt(d.fixed), "old wrong, new right") : null,
      hasGold ? stat("broken", fmt(d.broken), "old right, new wrong") : null,
      met.accuracy ? stat("accuracy", `${pct(met.accuracy.old)} → ${pct(met.accuracy.new)}`, delta("accuracy")) : null,
      met.macro_f1 ? stat("macro-F1", `${fmt(met.macro_f1.old, 3)} → ${fmt(met.macro_f1.new, 3)}`, delta("macro_f1")) : null),
    d.labels_added?.length ? h("p", {}, "Labels added: ", d.labels_added.join(", ")) : null,
    d.labels_removed?.length ? h("p", {}, "Labels removed: ", d.labels_removed.join(", ")) : null,
    newLabels(d),
    h("h3", {}, hasGold ? `F1 change per class (${d.new.ref} − ${d.old.ref})` : `Change in predicted count per class`),
    divergingChart(per.map((r) => ({ label: r.label, value: hasGold ? r.f1_delta : r.count_delta })),
      { title: "per-class change", format: (v) => (hasGold ? (v >= 0 ? "+" : "") + v.toFixed(3) : (v >= 0 ? "+" : "") + v) }),
    h("h3", {}, `Examples that flip (${fmt(d.examples.length)} shown, surest first)`),
    table([
      { key: "text", label: "Text", render: (e) => truncate(e.text, 140) },
      { key: "old", label: d.old.ref, render: (e) => `${e.old} (${fmt(e.old_score, 2)})` },
      { key: "new", label: d.new.ref, render: (e) => `${e.new} (${fmt(e.new_score, 2)})` },
      { key: "gold", label: "Gold" },
      { key: "verdict", label: "", render: (e) => e.verdict ? badge(e.verdict, e.verdict === "fixed" ? "good" : e.verdict === "broken" ? "bad" : "warn") : null },
    ], d.examples, { empty: "No prediction flips: both versions answer the same on these documents." }));
}

// what the new version covers that the old one did not: its added labels, scored on its own validation rows
function newLabels(d) {
  const rows = d.new_labels || [];
  if (!rows.length) return null;
  const answered = (r) => Object.entries(r.old_answers || {}).map(([k, n]) => `${k} ${fmt(n)}`).join(", ") || "—";
  return h("div", { class: "deploy-new-labels" },
    h("h3", {}, `What ${d.new.ref} now covers: labels ${d.old.ref} does not have`),
    table([
      { key: "label", label: "Label", render: (r) => h("span", {}, h("strong", {}, r.label), r.candidate
        ? h("span", { class: "muted small deploy-from-candidate" }, ` from candidate ${r.candidate.discovery_run}:${r.candidate.candidate}`) : null) },
      { key: "vf1", label: "Validation F1", num: true, render: (r) => r.validation ? fmt(r.validation.f1, 3) : "—" },
      { key: "vp", label: "Precision", num: true, render: (r) => r.validation ? fmt(r.validation.precision, 3) : "—" },
      { key: "vr", label: "Recall", num: true, render: (r) => r.validation ? fmt(r.validation.recall, 3) : "—" },
      { key: "vn", label: "Validation rows", num: true, render: (r) => r.validation ? fmt(r.validation.support) : "0" },
      { key: "docs", label: `F1 on ${d.dataset}/${d.split || "all"}`, num: true, render: (r) => r.on_documents ? `${fmt(r.on_documents.new_f1, 3)} (${fmt(r.on_documents.support)} rows)` : "—" },
      { key: "predicted", label: "Documents given it", num: true },
      { key: "old", label: `${d.old.ref} answered them as`, render: answered },
    ], rows),
    h("p", { class: "muted" }, "Validation rows: the labelled rows training held out of this version's training (never the test split)."));
}

// under a diff: promote its new version (the same confirmation as the versions table's buttons)
function promoteFromDiff(name, d, versions, prodVersion, rerender) {
  const v = versions.find((x) => x.ref === d.new.ref);
  if (!v || !rerender) return null;
  if (v.version === prodVersion) return h("p", { class: "muted" }, `${v.ref} is the production version.`);
  return h("div", { class: "actions deploy-diff-promote" },
    button(`Promote ${v.ref} to production`, () => promote(name, v, versions, prodVersion, rerender), { role: "editor", kind: "primary" }));
}

// ---------------------------------------------------------------- retrain ----
// the production version's arguments, method and base model on its dataset's labels as they are now
function retrainCard(ref) {
  const box = card("Retrain on the current labels", h("p", { class: "muted" }, "Reading the labels…"));
  box.classList.add("deploy-retrain");
  api.get(`/versions/${enc(ref)}/retrain`).then((p) => {
    const added = p.labels_added.map((l) => `${l} (${fmt(p.label_rows[l])} rows)`);
    clear(box, h("h2", {}, "Retrain on the current labels"),
      h("p", {}, `Train the next version of ${p.name} exactly like ${p.like.ref}: method ${p.method} on ${p.base}, `,
        `the same arguments (seed ${p.args.seed}), on the labels of column '${p.label_col}' of ${p.dataset} as they are now: `,
        `${fmt(p.rows)} labelled rows (${p.like.ref} learnt from ${fmt(p.rows_before)}).`),
      added.length ? h("p", { class: "deploy-retrain-added" }, h("strong", {}, "New labels since then: "), added.join(", ")) : null,
      p.labels_removed.length ? h("p", {}, "Labels no longer present: ", p.labels_removed.join(", ")) : null,
      p.changed ? null : h("p", { class: "muted" }, `The labelled rows are the ones ${p.like.ref} learnt from: retraining would give the same model.`),
      p.already ? h("p", { class: "deploy-retrain-already" }, `${p.already} was trained like ${p.like.ref} on exactly these labels: `,
        h("a", { href: `#/models/${enc(p.name)}?compare=${enc(p.already)}` }, `compare ${p.already} with production`), ".") : null,
      h("div", { class: "actions" }, button(`Retrain like ${p.like.ref}`, async () => {
        try {
          const job = await api.post(`/versions/${enc(p.like.ref)}/retrain`, {});
          location.hash = `#/train/${job.job_id}`;
        } catch (err) { box.append(errorBox(err)); }
      }, { role: "editor", kind: p.changed ? "primary" : "", id: "retrain-start" })));
  }, (e) => box.append(errorBox(e)));
  return box;
}

// --------------------------------------------------------------- promote ----
async function promote(name, v, versions, prodVersion, rerender) {
  const cur = versions.find((x) => x.version === prodVersion);
  const sNew = scoreOf(v), sCur = cur ? scoreOf(cur) : null;
  const summary = h("div", { class: "deploy-promote-diff" }, h("p", { class: "muted" }, "Comparing the two versions…"));
  const scoreText = (s) => s ? `macro-F1 ${fmt(s.macro_f1, 3)}, accuracy ${pct(s.accuracy)} on ${s.on}` : "not evaluated";
  const body = h("div", { class: "deploy-promote" },
    h("p", {}, `Clients that call ${name}@production will get the new version from their next request.`),
    h("table", { class: "table" }, h("tbody", {},
      h("tr", {}, h("th", {}, "Now"), h("td", {}, cur ? `${cur.ref} (${cur.method}, ${cur.sha256.slice(0, 12)})` : "no production version"), h("td", {}, sCur ? scoreText(sCur) : "")),
      h("tr", {}, h("th", {}, "After"), h("td", {}, h("strong", {}, `${v.ref} (${v.method}, ${v.sha256.slice(0, 12)})`)), h("td", {}, scoreText(sNew))))),
    summary);
  if (cur) {
    const ds = v.dataset?.name;
    api.get(`/datasets/${enc(ds)}`).then((d) => getDiff({ old: cur.ref, new: v.ref, dataset: ds, split: d.splits?.test ? "test" : "", examples: 25 },
      (panel) => clear(summary, panel)))
      .then((d) => clear(summary, h("p", { class: "deploy-flips" }, h("strong", {}, `${fmt(d.flipped)} of ${fmt(d.documents)} predictions flip`),
        ` on ${d.dataset}/${d.split || "all"}`, d.labelled ? ` (${fmt(d.fixed)} fixed, ${fmt(d.broken)} broken; macro-F1 ${fmt(d.metrics.macro_f1.old, 3)} → ${fmt(d.metrics.macro_f1.new, 3)})` : "", "."),
        d.metrics?.macro_f1?.delta < 0 ? h("p", { class: "deploy-worse" }, `⚠ ${v.ref} scores lower than ${cur.ref} on these rows: it breaks more answers than it fixes.`) : null))
      .catch((e) => clear(summary, errorBox(e)));
  } else clear(summary, h("p", {}, "This sets production for the first time."));
  const ok = await confirmDialog({ title: `Promote ${v.ref} to production?`, body, confirm: `Promote @${v.version}` });
  if (!ok) return;
  try {
    await api.put(`/models/${enc(name)}/aliases/production`, { version: v.version, expected_current: prodVersion });
    toast(`${name}@production now points to @${v.version}.`, "good");
  } catch (e) {
    toast(`${e.message}${e.fix ? " " + e.fix : ""}`, "error", 8000);
  }
  await rerender();
}

// --------------------------------------------------------------- history ----
function historyCard(events) {
  const rows = [...events].reverse();
  const what = (e) => {
    const d = e.details || {};
    if (e.action === "models.alias") return `${e.target}: ${d.previous ? "@" + d.previous : "unset"} → @${d.version}`;
    if (e.action === "models.unalias") return `${e.target} removed (was @${d.previous})`;
    if (e.action === "models.rm") return `removed ${e.target}`;
    if (e.action === "models.save") return `saved ${e.target} (${d.method || ""}, on ${d.dataset?.name || "?"})`;
    if (e.action === "models.eval") return `evaluated ${e.target} on ${d.dataset}/${d.split || "all"}: macro-F1 ${fmt(d.macro_f1, 3)}`;
    return `${e.action} ${e.target}`;
  };
  return card("History", h("p", { class: "muted" }, "Who saved, evaluated and promoted what, newest first."),
    table([
      { key: "at", label: "When", render: (e) => when(e.at) },
      { key: "user", label: "Who" },
      { key: "action", label: "Event", render: (e) => badge(e.action.replace("models.", ""), e.action === "models.alias" ? "good" : "muted") },
      { key: "what", label: "What changed", render: what },
    ], rows, { empty: "No events yet." }));
}
