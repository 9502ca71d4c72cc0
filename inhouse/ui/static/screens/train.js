// Train: choose data, base model and method, start a training job, watch it, then see how the new version does
// beside the general (zero-shot) model, per class, in a confusion matrix, and how far its weights moved.
import { api } from "../api.js";
import { jobPanel } from "../job.js";
import { barChart, heatmap, PALETTE } from "../charts.js";
import { h, clear, card, stat, badge, field, select, button, guard, empty, errorBox, table, can, fmt, pct, duration, when } from "../dom.js";

// the methods and the training arguments come from the library's registry and TrainingArguments
// (GET /training/methods), so a newly registered method or argument shows here without editing this file
export const fetchTrainingSchema = () => api.get("/training/methods");
// arguments the form asks for above the advanced options (or that name the job itself)
const MAIN_ARGS = new Set(["base", "method", "label_col"]);
const HINTS = {
  epochs: "Passes over the training rows (not used by head).", learning_rate: "Of the encoder (setfit, full, lora).",
  seed: "Same seed, same data, same result.", shots: "Use at most this many examples per label.",
  split: "Train on rows of this split; empty: every labelled row.",
  where: "Train only on documents for which this filter holds, e.g. label = 'negative'.",
  out_of_scope: "Labels whose rows are out of scope (comma-separated).", lora_targets: "Comma-separated module names.",
  abstain_max_loss: "What abstaining may cost in in-scope accuracy (0.01: one point). Raise it to turn away more texts unlike the training rows.",
};

// the registry's rule (inhouse/registry/core.py check_name)
export function nameProblem(name) {
  if (!name) return "Give the model a name.";
  if (name.length > 200) return "At most 200 characters.";
  if (name.trim() !== name) return "No spaces at the start or end.";
  if (name.startsWith(".")) return "It may not start with '.'.";
  if (/[@/\\\x00-\x1f\x7f]/.test(name)) return "Use letters, digits, '-', '_' or '.', without '@', '/' or '\\'.";
  return null;
}

export async function render(view, params, query) {
  if (params.job) return jobView(view, params.job);
  return form(view, query);
}

// ------------------------------------------------------------------ form ----
async function form(view, query) {
  const [ds, models, schema] = await Promise.all([api.get("/datasets"), api.get("/models"), fetchTrainingSchema()]);
  const METHODS = schema.methods || [];
  const datasets = ds.datasets || [];
  view.append(h("div", { class: "page-head" }, h("h1", {}, "Train a classifier"),
    h("div", { class: "actions" }, h("a", { href: "#/models" }, "Trained models →"))));
  if (!datasets.length) {
    view.append(empty("No datasets to train on", "Import a file with texts and labels first (or label a dataset's topics), then come back.",
      h("a", { class: "btn primary", href: "#/import" }, "Import data")));
    return;
  }
  // classification needs an encoder: generative (gguf) models are left out
  const bases = (models.base_models || []).filter((m) => m.kind !== "gguf");
  const pick = datasets.some((d) => d.name === query.dataset) ? query.dataset : datasets[0].name;

  const dsSel = select(datasets.map((d) => [d.name, `${d.name} (${fmt(d.rows)} documents)`]), pick, { name: "dataset" });
  const labelSel = select([], null, { name: "label_col" });
  const dsInfo = h("div", { class: "train-dsinfo muted" });
  const nameIn = h("input", { name: "name", type: "text", autocomplete: "off", spellcheck: "false" });
  const nameMsg = h("small", { class: "train-name-msg", role: "status" });
  const baseSel = select(bases.map((m) => [m.name, `${m.name} — ${m.description || m.kind}`]), bases[0]?.name, { name: "base" });
  const methodBox = h("fieldset", { class: "train-methods" }, h("legend", {}, "Method"),
    METHODS.map((m, i) => h("label", { class: "train-method" },
      h("input", { type: "radio", name: "method", value: m.name, checked: i === 0 }),
      h("span", {}, h("strong", {}, m.title), " ", h("code", {}, m.name), h("br"), h("small", { class: "muted" }, m.description)))));
  const adv = Object.fromEntries((schema.arguments || []).filter((a) => !MAIN_ARGS.has(a.name)).map((a) => [a.name, argInput(a)]));
  const advanced = h("details", { class: "train-advanced" }, h("summary", {}, "Advanced options"),
    h("div", { class: "train-adv-grid" },
      (schema.arguments || []).filter((a) => adv[a.name]).map((a) => field(a.name.replace(/_/g, " "), adv[a.name], HINTS[a.name] || `${a.type}${a.nullable ? ", empty: the method's default" : ""}`))));
  const msg = h("div");

  let nameTouched = false;
  const checkName = () => { const p = nameProblem(nameIn.value); nameMsg.textContent = p || ""; nameMsg.className = `train-name-msg ${p ? "bad" : ""}`; nameIn.setAttribute("aria-invalid", p ? "true" : "false"); return !p; };
  nameIn.addEventListener("input", () => { nameTouched = true; checkName(); });

  async function loadDataset() {
    const name = dsSel.value;
    if (!nameTouched) nameIn.value = `${name}-classifier`;
    checkName();
    clear(dsInfo, "Loading…");
    try {
      const d = await api.get(`/datasets/${encodeURIComponent(name)}`);
      const cols = Object.entries(d.label_columns || {}).filter(([, c]) => c.labelled > 0);
      clear(labelSel, ...(cols.length ? cols : [["label", { labelled: 0, distinct: 0 }]]).map(([c, info]) =>
        h("option", { value: c }, `${c} (${fmt(info.labelled)} labelled, ${fmt(info.distinct)} labels)`)));
      const splits = Object.entries(d.splits || {}).map(([k, v]) => `${k} ${fmt(v)}`).join(", ");
      clear(dsInfo, `${fmt(d.rows)} documents · splits: ${splits || "none"}`,
        cols.length ? null : h("span", { class: "bad" }, " · no labels yet: ", h("a", { href: `#/datasets/${encodeURIComponent(name)}/label` }, "label it first")));
      if (!d.splits?.train) adv.split.value = "";
    } catch (e) { clear(dsInfo, errorBox(e)); }
  }
  dsSel.addEventListener("change", loadDataset);
  // a static (word-vector) encoder has no transformer to fine-tune: only the head can be trained on it
  const methodNote = h("small", { class: "muted train-method-note" });
  methodBox.append(methodNote);
  const onBase = () => {
    const kind = bases.find((b) => b.name === baseSel.value)?.kind;
    const headOnly = kind === "static";
    for (const r of methodBox.querySelectorAll("input[name=method]")) {
      r.disabled = (headOnly && r.value !== "head") || !can("editor");
      if (r.disabled && r.checked) methodBox.querySelector("input[value=head]").checked = true;
    }
    methodNote.textContent = headOnly ? `${baseSel.value} is a static embedding model (no transformer layers): only 'head' can be trained on it.` : "";
  };
  baseSel.addEventListener("change", onBase);
  onBase();

  const start = button("Start training", async () => {
    clear(msg);
    if (!checkName()) { nameIn.focus(); return; }
    const body = { dataset: dsSel.value, name: nameIn.value, base: baseSel.value, label_col: labelSel.value,
      method: methodBox.querySelector("input[name=method]:checked").value };
    for (const a of schema.arguments || []) {
      if (!adv[a.name]) continue;
      const v = argValue(a, adv[a.name]);
      if (v !== undefined) body[a.name] = v;
    }
    try {
      const job = await api.post("/training", body);
      location.hash = `#/train/${job.job_id}`;
    } catch (e) { clear(msg, errorBox(e)); }
  }, { role: "editor", kind: "primary", id: "train-start" });

  const f = h("form", { class: "card train-form", onsubmit: (e) => e.preventDefault() },
    h("div", { class: "grid-2" },
      h("div", {}, field("Dataset", dsSel), dsInfo, field("Label column", labelSel, "The column with the labels to learn."),
        field("Model name", nameIn, "Each training adds a version NAME@1, NAME@2, …"), nameMsg,
        field("Base model", baseSel, "The encoder to start from (generative models are not listed: they do not classify).")),
      h("div", {}, methodBox, advanced)),
    msg, h("div", { class: "actions" }, start));
  view.append(guard(f, "editor"));
  view.append(recentTraining());
  await loadDataset();
}

function recentTraining() {
  const box = card("Recent training jobs", h("p", { class: "muted" }, "Loading…"));
  api.get("/jobs", { kind: "train", limit: 8 }).then((r) => {
    const rows = (r.jobs || []).filter((j) => j.kind === "train");
    box.replaceChildren(h("h2", {}, "Recent training jobs"), table([
      { key: "id", label: "Job", render: (j) => h("a", { href: `#/train/${j.id}` }, `#${j.id}`) },
      { key: "name", label: "Model", render: (j) => j.result?.ref || j.params?.name },
      { key: "method", label: "Method", render: (j) => j.params?.args?.method },
      { key: "status", label: "Status", render: (j) => badge(j.status, j.status === "done" ? "good" : j.status === "failed" ? "bad" : "info") },
      { key: "created_at", label: "Started", render: (j) => when(j.created_at) },
    ], rows, { empty: "No training jobs yet." }));
  }, (e) => box.append(errorBox(e)));
  return box;
}

// one input per training argument, by its type; the default shows as the value (or the placeholder when none)
function argInput(a) {
  if (a.type === "bool") return h("input", { name: a.name, type: "checkbox", checked: !!a.default });
  if (a.type === "int" || a.type === "float") {
    return h("input", { name: a.name, type: "number", step: a.type === "int" ? "1" : "any",
      value: a.default ?? "", placeholder: a.default == null ? "method default" : "" });
  }
  const value = Array.isArray(a.default) ? a.default.join(", ") : (a.default ?? "");
  return h("input", { name: a.name, type: "text", value, placeholder: a.default == null ? "none" : "", spellcheck: "false" });
}

// what the request sends for an argument: undefined leaves the library's default, null where the field allows it
function argValue(a, input) {
  if (a.type === "bool") return input.checked === !!a.default ? undefined : input.checked;
  const raw = input.value.trim();
  if (raw === "") return a.nullable && a.default != null ? null : undefined;
  if (a.type === "int" || a.type === "float") return Number(raw) === a.default ? undefined : Number(raw);
  if (a.type === "list") return raw.split(",").map((x) => x.trim()).filter(Boolean);
  return raw === a.default ? undefined : raw;
}

// ------------------------------------------------------------- job view ----
async function jobView(view, jobId) {
  if (!/^\d+$/.test(jobId)) { view.append(errorBox({ message: `'${jobId}' is not a job number.`, fix: "Open a training job from the list on #/train." })); return; }
  const job = await api.get(`/jobs/${jobId}`);
  const p = job.params || {}, args = p.args || {};
  view.append(h("div", { class: "page-head" }, h("h1", {}, job.kind === "retrain" ? `Retraining ${p.name} like ${p.like}` : `Training ${p.name || ""}`),
    badge(args.method || "?", "info"), h("span", { class: "muted" }, `on ${p.dataset} · base ${args.base || "default"}`),
    h("div", { class: "actions" }, h("a", { href: "#/train" }, "← New training"))));
  if (job.kind !== "train" && job.kind !== "retrain") { view.append(errorBox({ message: `job ${jobId} is a ${job.kind} job, not training.`, fix: "See it on the Jobs screen." })); return; }
  const live = h("div", { class: "train-live" });
  const results = h("div", { class: "train-results" });
  view.append(live, results);
  let final = job;
  if (!["done", "failed", "cancelled"].includes(job.status)) {
    const panel = jobPanel(jobId, `Training ${p.name} (${args.method})`);
    const method = ((await fetchTrainingSchema().catch(() => ({}))).methods || []).find((m) => m.name === args.method);
    live.append(card("Progress", panel.el,
      h("p", { class: "muted train-what" }, `Learning the labels of column '${args.label_col || "label"}' from ${p.dataset}` +
        `${args.split ? `/${args.split}` : ""} rows${args.shots ? ` (at most ${args.shots} per label)` : ""}, seed ${args.seed ?? 0}. `,
        method ? method.description : ""),
      h("p", { class: "muted" }, "You can leave this page: the job keeps running on the server; come back to it from the Train or Jobs screen.")));
    try { final = await panel.done; } catch { return; }
    if (!view.isConnected) return;
  } else if (job.status !== "done") {
    live.append(errorBox(job.error || { message: `job ${jobId} ${job.status}.` }));
    return;
  }
  await showResults(results, final.result, p);
}

async function evaluationOf(ref, dataset, split) {
  const r = await api.get(`/versions/${encodeURIComponent(ref)}/evaluations`);
  return (r.evaluations || []).find((e) => e.dataset === dataset && e.split === (split || "")) || null;
}

async function showResults(box, res, p) {
  const ref = res.ref, dataset = p.dataset, labelCol = p.args?.label_col || "label";
  const nameUrl = `#/models/${encodeURIComponent(res.model)}`;
  box.append(card(`Trained ${ref}`,
    h("div", { class: "stats" }, stat("validation accuracy", pct(res.val_metrics?.accuracy)), stat("validation macro-F1", fmt(res.val_metrics?.macro_f1, 3)),
      stat("training rows", fmt(res.n_train)), stat("validation rows", fmt(res.n_val)), stat("time", duration(res.train_seconds))),
    h("p", { class: "muted" }, `sha256 ${res.sha256.slice(0, 12)} · ${res.labels.length} labels · method ${res.method} on ${res.base}`),
    res.like ? h("p", { class: "train-like" }, `Trained like ${res.like.ref}: the same arguments, method and base model, on the labels of today`,
      res.labels_added?.length ? `, with ${res.labels_added.length} new: ${res.labels_added.join(", ")}.` : ".") : null,
    h("div", { class: "row" },
      res.like ? h("a", { class: "btn primary train-compare-prod", href: `${nameUrl}?compare=${encodeURIComponent(ref)}` }, "Compare with production →") : null,
      h("a", { class: "btn", href: nameUrl }, "Compare with another version / promote →"))));
  const evalBox = h("div", { class: "train-eval" });
  const weightBox = h("div", { class: "train-weights" });
  box.append(evalBox, weightBox);
  showWeights(weightBox, ref, res.method);
  if (res.like) {  // a retraining: the next step is the diff against production, which measures both on the test rows
    evalBox.append(card("Evaluation", h("p", { class: "muted" }, `Compare with production classifies ${dataset}'s test rows with ${ref} and ` +
      `${res.like.ref} and scores both; to see ${ref} beside the zero-shot model, evaluate it on the model page.`)));
    return;
  }
  const d = await api.get(`/datasets/${encodeURIComponent(dataset)}`);
  const split = d.splits?.test ? "test" : null;
  if (!split) {
    evalBox.append(card("Evaluation", empty("No held-out test rows", `${dataset} has no 'test' split, so the model cannot be measured on rows it did not see. ` +
      "Import data with a split column (rows marked test), then evaluate on the model's page.", h("a", { class: "btn", href: nameUrl }, "Model page"))));
    return;
  }
  let ev = await evaluationOf(ref, dataset, split);
  if (!ev) {
    if (!can("editor")) {
      evalBox.append(card("Evaluation", empty("Not evaluated yet", "An editor can evaluate this version on the test rows (it starts automatically for the person who trained it).")));
      return;
    }
    const started = await api.post("/evaluations", { model: ref, dataset, split, label_col: labelCol });
    const panel = jobPanel(started.job_id, `Evaluating ${ref} on ${dataset}/${split}`);
    evalBox.append(card("Evaluation", panel.el));
    try { await panel.done; } catch { return; }
    ev = await evaluationOf(ref, dataset, split);
    evalBox.replaceChildren();
  }
  if (ev) renderEvaluation(evalBox, ev.metrics, `${dataset}/${split}`, ref);
}

export function renderEvaluation(box, m, on, ref = m.model) {
  const z = m.zero_shot || {};
  m = { ...m, model: ref };
  box.append(card(`Fine-tuned vs general model on ${on} (${fmt(m.n)} rows)`,
    h("div", { class: "train-compare", "data-testid": "compare" },
      h("div", { class: "stats" },
        stat(`${m.model} accuracy`, pct(m.accuracy), "fine-tuned"), stat(`${m.model} macro-F1`, fmt(m.macro_f1, 3), "fine-tuned"),
        stat(`${z.model} accuracy`, pct(z.accuracy), "zero-shot"), stat(`${z.model} macro-F1`, fmt(z.macro_f1, 3), "zero-shot")),
      barChart([{ label: `${m.model} (fine-tuned)`, value: m.macro_f1, color: PALETTE[0] },
        { label: `${z.model} (zero-shot)`, value: z.macro_f1, color: PALETTE[9] }], { title: "macro-F1", max: 1, format: (v) => v.toFixed(3) }),
      h("p", { class: "muted" }, "Zero-shot: the untuned base model picks the label whose name is most similar to the text. ",
        m.abstain?.enabled ? `The fine-tuned model abstains ('${m.abstain.label}') ` +
          (m.abstain.distance_threshold != null ? "when it is unsure, or the text is far from everything it was trained on" : "below its confidence threshold") +
          `: ${pct(m.abstain.abstain_rate)} of these rows; ` +
          `without abstaining it would get ${pct(m.abstain.in_scope_accuracy_without_abstaining)} right.` : ""),
      (m.warnings || []).map((w) => h("p", { class: "warn" }, "⚠ ", w)))));
  const per = Object.entries(m.per_class || {}).filter(([, v]) => v.support > 0).map(([label, v]) => ({ label, ...v, zero: z.per_class?.[label] }));
  box.append(h("div", { class: "grid-2" },
    card("Per class", table([
      { key: "label", label: "Label" }, { key: "support", label: "Rows", num: true },
      { key: "precision", label: "Precision", num: true, digits: 3 }, { key: "recall", label: "Recall", num: true, digits: 3 },
      { key: "f1", label: "F1", num: true, digits: 3 }, { key: "zero", label: "F1 zero-shot", num: true, digits: 3 },
    ], per), barChart(per.map((r) => ({ label: r.label, value: r.f1, note: `zero-shot ${fmt(r.zero, 3)}` })), { title: "F1 per class", max: 1, format: (v) => v.toFixed(2) })),
    card("Confusion matrix", m.confusion_matrix
      ? h("div", { class: "train-heatmap" }, heatmap(m.confusion_matrix.labels, m.confusion_matrix.matrix, { title: `confusion matrix of ${m.model}` }),
        h("p", { class: "muted" }, "Rows: the true label; columns: what the model answered. Off-diagonal cells are mistakes."))
      : h("p", { class: "muted" }, "This evaluation has no confusion matrix (multi-label, or recorded by an older version): evaluate again."))));
}

export async function showWeights(box, ref, method) {
  const c = card("How did the weights change?", h("p", { class: "muted" }, "Comparing with the base model…"));
  box.append(c);
  try {
    const w = await api.get(`/versions/${encodeURIComponent(ref)}/weights`);
    const body = [];
    if (w.layers?.length) {
      body.push(h("p", {}, "Each bar is one encoder layer's relative change, ‖W_tuned − W_base‖ / ‖W_base‖: how far training moved that layer's weights from the base model, as a share of their size."),
        h("div", { class: "stats" }, stat("overall change", pct(w.overall.relative_change, 2)),
        stat("weights that moved", pct(w.overall.changed_share, 1)), stat("encoder weights", fmt(w.overall.n_params))),
      barChart(w.layers.map((l) => ({ label: l.layer, value: l.relative_change, note: `${pct(l.changed_share, 1)} of ${fmt(l.n_params)} weights moved` })),
        { title: `relative weight change per layer of ${w.model} vs ${w.against}`, format: (v) => v.toFixed(4) }));
      if (w.lora) body.push(h("p", { class: "muted" }, `LoRA: ${w.lora.n_adapters} adapters of rank ${w.lora.ranks.join(", ")}, ${fmt(w.lora.adapter_params)} trainable adapter weights.`));
    } else {
      body.push(h("p", { class: "train-head-note" }, method === "head"
        ? "Method head: the encoder is the frozen base model, so every encoder layer changed by 0 — only the small linear classifier head on top was trained. Below: the size of the head's weights per label, and the words that pull hardest toward each class."
        : (w.note || "No encoder weights to compare.")));
      body.push(barChart((w.head?.largest_label_norms || []).map((r) => ({ label: r.label, value: r.norm })), { title: "head weight norm per label", format: (v) => v.toFixed(1) }));
      if (w.classes?.length) body.push(table([{ key: "label", label: "Label" }, { key: "words", label: "Pulls hardest", render: (r) => r.words.map((x) => x.word).join(", ") }], w.classes));
    }
    c.replaceChildren(h("h2", {}, "How did the weights change?"), ...body);
    c.dataset.overall = String(w.overall?.relative_change ?? "");
  } catch (e) { c.replaceChildren(h("h2", {}, "How did the weights change?"), errorBox(e)); }
}
