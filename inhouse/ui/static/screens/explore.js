// Explore a dataset: its header (rows, labels, splits, time range), the topics of a discovery run (themes first, with a
// granularity control: themes ↔ sub-topics, fewer or more themes; a click-through into the sub-topics of each category
// when the run was made within a column), full-text search
// with filters and paging, and one document's detail page (#/datasets/NAME/docs/ID).
import { formatLinks } from "../downloads.js";
import { api } from "../api.js";
import { h, clear, card, table, stat, badge, field, select, button, errorBox, spinner, empty,
  can, fmt, pct, when, truncate, toast } from "../dom.js";
import { jobPanel } from "../job.js";

const PAGE = 25;
const enc = encodeURIComponent;

export async function render(view, params, query) {
  if (params.doc !== undefined) return renderDoc(view, params.name, params.doc, query);
  return renderDataset(view, params.name, query);
}

// --------------------------------------------------------------- dataset ----

async function renderDataset(view, name, query) {
  const [ds, runs, models] = await Promise.all([api.get(`/datasets/${enc(name)}`), api.get(`/datasets/${enc(name)}/topics`),
    api.get("/models").catch(() => ({ models: [] }))]);
  const state = { q: query.q || "", label: query.label || "", from: query.from || "", to: query.to || "",
    model: query.model || "", predicted: query.predicted || "", offset: Number(query.offset) || 0,
    topic: query.topic ?? "", topicRun: query.topic_run || "", topicName: query.topic_name || "" };
  const saveState = () => {
    const { topicRun, topicName, ...rest } = state;
    const keep = Object.fromEntries(Object.entries({ ...rest, offset: state.offset || "", run: topicsState.run || "",
      parent: topicsState.parent || "", level: topicsState.level || "", themes: topicsState.nThemes || "",
      theme: topicsState.theme ?? "", topic_run: topicRun, topic_name: topicName }).filter(([, v]) => v !== "" && v !== null && v !== undefined));
    const qs = new URLSearchParams(keep).toString();
    history.replaceState(null, "", `#/datasets/${enc(name)}${qs ? `?${qs}` : ""}`);
    sessionStorage.setItem(`inhouse.explore.${name}`, qs ? `?${qs}` : "");
  };
  const topicsState = { run: query.run ? Number(query.run) : null, parent: query.parent || null,
    level: query.level === "topics" ? "topics" : null, nThemes: Number(query.themes) || null,
    theme: query.theme !== undefined && query.theme !== "" ? Number(query.theme) : null };

  // header
  const labels = Object.entries(ds.labels || {});
  const splits = Object.entries(ds.splits || {});
  const tr = ds.time_range || {};
  view.append(h("div", { class: "page-head" }, h("h1", {}, name),
    h("span", { class: "muted" }, `created ${when(ds.created_at)}`),
    h("div", { class: "actions row" },
      h("a", { class: "btn", href: `#/datasets/${enc(name)}/label` }, "Label"),
      h("a", { class: "btn", href: `#/train?dataset=${enc(name)}` }, "Train"),
      h("a", { class: "btn", href: `#/analyze?dataset=${enc(name)}` }, "Analyze"))));
  view.append(h("div", { class: "stats ds-stats" },
    stat("documents", fmt(ds.rows), ds.distinct_texts !== undefined ? `${fmt(ds.distinct_texts)} distinct texts` : null),
    stat("labelled", fmt(ds.rows - (ds.unlabelled || 0)), `${labels.length} labels · ${fmt(ds.unlabelled || 0)} unlabelled`),
    stat("splits", splits.length ? splits.map(([k, v]) => `${k} ${fmt(v)}`).join(" · ") : "none"),
    stat("time range", tr.min ? `${tr.min.slice(0, 10)} → ${tr.max.slice(0, 10)}` : "no time column"),
    stat("quarantined", fmt(ds.quarantined || 0), ds.quarantined ? "rows kept aside at import" : null)));
  if (labels.length) {
    const max = Math.max(...labels.map(([, v]) => v));
    view.append(card("Labels", h("div", { class: "label-bars" }, labels.slice(0, 30).map(([l, n]) =>
      h("button", { type: "button", class: "label-bar", title: `Show the documents labelled ${l}`, "data-readonly-ok": "",
        onclick: () => { labelSel.value = l; state.label = l; state.offset = 0; loadDocs(); docsCard.scrollIntoView({ block: "start" }); } },
        h("span", { class: "lb-name" }, l), h("span", { class: "lb-track" }, h("span", { class: "lb-fill", style: { width: `${(100 * n / max).toFixed(1)}%` } })),
        h("span", { class: "lb-n" }, fmt(n))))),
      labels.length > 30 ? h("p", { class: "muted" }, `… and ${labels.length - 30} more labels (use the label filter below).`) : null));
  }

  // topics
  const topicsBox = h("div", { class: "topics-box" });
  const jobBox = h("div");
  const withinOptions = [["", "the whole dataset"], ...Object.keys(ds.label_columns || {}).map((c) => [c, `each ${c} category`]),
    ...Object.entries(ds.metadata_columns || {}).filter(([, m]) => m.distinct && m.distinct <= 100).map(([c]) => [c, `each ${c} value`])];
  const within = select(withinOptions, "", { id: "discover-within", "aria-label": "Discover topics within" });
  const encoders = (models.base_models || []).filter((m) => ["sentence-transformers", "hf", "static", "onnx"].includes(m.kind));
  const lastModel = runs.runs?.[0]?.model;  // default: the encoder of the latest run, else minilm-l6
  const encoderSel = select(encoders.map((m) => [m.name, m.name]),
    encoders.some((m) => m.name === lastModel) ? lastModel : encoders.some((m) => m.name === "minilm-l6") ? "minilm-l6" : encoders[0]?.name,
    { id: "discover-model", "aria-label": "Embedding model", title: "The embedding model that places similar texts together" });
  const discoverBtn = button("Discover topics", () => discover(), { role: "editor", kind: "primary", id: "discover" });
  within.disabled = encoderSel.disabled = !can("editor");
  const topicsCard = card(null, h("div", { class: "topics-head" }, h("h2", {}, "Topics"),
    h("div", { class: "row" }, h("label", { class: "row muted" }, "in", within),
      encoders.length > 1 ? h("label", { class: "row muted" }, "with", encoderSel) : null, discoverBtn)), jobBox, topicsBox);
  view.append(topicsCard);

  async function discover() {
    const body = within.value ? { within: within.value } : {};
    if (encoderSel.value) body.model = encoderSel.value;
    const job = await api.post(`/datasets/${enc(name)}/topics`, body);
    const panel = jobPanel(job.job_id, within.value ? `Discovering sub-topics within ${within.value}` : "Discovering topics");
    clear(jobBox, panel.el);
    try {
      const done = await panel.done;
      const runId = done.result?.run_id;
      toast(`Topics found${done.result?.n_topics ? `: ${done.result.n_topics}` : ""}.`, "good");
      Object.assign(topicsState, { run: runId || null, parent: null, nThemes: null, theme: null });
      clear(jobBox);
      await loadTopics();
    } catch (e) { /* the panel shows the error */ }
  }

  async function loadTopics() {
    clear(topicsBox, spinner("Loading topics…"));
    const list = (await api.get(`/datasets/${enc(name)}/topics`)).runs;
    if (!list.length) {
      clear(topicsBox, empty("No topics yet — run discovery",
        can("editor") ? "Discovery groups similar documents into topics (a few seconds for thousands of texts on a CPU). " +
          "Press “Discover topics”; to find the sub-topics of each label, choose it under “in” first."
          : "An editor can run topic discovery; you will see the topics here."));
      return;
    }
    const runId = topicsState.run && list.some((r) => r.run_id === topicsState.run) ? topicsState.run : list[0].run_id;
    topicsState.run = runId;
    let run;
    try {
      run = await api.get(`/datasets/${enc(name)}/topics/${runId}${topicsState.nThemes ? `?n_themes=${topicsState.nThemes}` : ""}`);
    } catch (e) {
      if (!topicsState.nThemes) throw e;
      toast(e.message, "bad");  // a run that cannot be regrouped: show its own themes
      topicsState.nThemes = null;
      run = await api.get(`/datasets/${enc(name)}/topics/${runId}`);
    }
    const runSel = select(list.map((r) => [String(r.run_id), `run ${r.run_id} · ${r.n_topics} topics${r.within ? ` within ${r.within}` : ""} · ${when(r.created_at)}`]),
      String(runId), { id: "topic-run", "aria-label": "Discovery run", "data-readonly-ok": "" });
    runSel.addEventListener("change", () => {
      Object.assign(topicsState, { run: Number(runSel.value), parent: null, nThemes: null, theme: null }); saveState(); loadTopics(); });
    const meta = h("div", { class: "row muted topics-meta" }, runSel,
      `${fmt(run.n_documents)} documents · ${run.themes?.length ? `${run.themes.length} themes · ` : ""}${run.n_topics} topics · ${fmt(run.n_outliers)} outliers · model ${run.model} · download`,
      formatLinks(`/datasets/${enc(name)}/topics/${runId}/download`, `topics-${name}-run${runId}`));
    if (run.within) {
      clear(topicsBox, meta, renderWithin(run));
    } else if (run.themes?.length) {
      clear(topicsBox, meta, granularity(run), topicsState.level === "topics" ? topicGrid(run, run.topics) : renderThemes(run));
    } else {
      clear(topicsBox, meta, topicGrid(run, run.topics));
    }
    saveState();
  }

  // themes first; the control goes finer (more themes, or the sub-topics themselves) or coarser, via ?n_themes=
  function granularity(run) {
    const n = run.themes.length;
    const go = (changes) => { Object.assign(topicsState, changes); saveState(); loadTopics(); };
    const level = (id, value, text) => h("button", { type: "button", id, "data-readonly-ok": "", "aria-pressed": String((topicsState.level || "themes") === value),
      class: `btn small${(topicsState.level || "themes") === value ? " primary" : ""}`, onclick: () => go({ level: value === "themes" ? null : value, theme: null }) }, text);
    const themesOnly = topicsState.level !== "topics";
    return h("div", { class: "row granularity", role: "group", "aria-label": "Granularity" },
      h("span", { class: "muted" }, "Show"), level("level-themes", "themes", `Themes (${n})`), level("level-topics", "topics", `Sub-topics (${run.n_topics})`),
      themesOnly ? h("span", { class: "row theme-count" },
        h("button", { type: "button", class: "btn small", id: "themes-coarser", "data-readonly-ok": "", disabled: n <= 2, title: "Fewer, broader themes",
          onclick: () => go({ nThemes: Math.max(2, n - Math.max(1, Math.floor(n / 4))), theme: null }) }, "− Coarser"),
        h("span", { id: "themes-count" }, `${n} themes`),
        h("button", { type: "button", class: "btn small", id: "themes-finer", "data-readonly-ok": "", disabled: n >= run.n_topics, title: "More, narrower themes",
          onclick: () => go({ nThemes: Math.min(run.n_topics, n + Math.max(1, Math.floor(n / 4))), theme: null }) }, "Finer +"),
        topicsState.nThemes ? h("button", { type: "button", class: "btn small link", id: "themes-auto", "data-readonly-ok": "",
          onclick: () => go({ nThemes: null, theme: null }) }, `as found (${run.themes_chosen ?? "auto"})`) : null) : null);
  }

  function renderThemes(run) {
    const open = run.themes.find((th) => th.theme === topicsState.theme);
    if (open) {
      const subs = run.topics.filter((t) => t.theme === open.theme);
      return h("div", {}, h("nav", { class: "crumbs", "aria-label": "topic path" },
        h("a", { href: "#", id: "themes-up", onclick: (e) => { e.preventDefault(); topicsState.theme = null; saveState(); loadTopics(); } }, "All themes"),
        " › ", h("strong", {}, open.name), h("span", { class: "muted" }, ` · ${subs.length} sub-topics, ${fmt(open.size)} documents`)),
        topicGrid(run, subs));
    }
    return h("div", { class: "topic-grid theme-grid" }, run.themes.map((th) => {
      const subs = run.topics.filter((t) => t.theme === th.theme).sort((a, b) => b.size - a.size);
      return h("article", { class: "theme-card", "data-theme": th.theme },
        h("div", { class: "tc-head" }, h("strong", { class: "tc-name" }, th.name), badge(`${subs.length} sub-topic${subs.length === 1 ? "" : "s"}`, "info")),
        h("div", { class: "tc-size" }, `${fmt(th.size)} documents · ${pct(th.share)}`,
          h("span", { class: "lb-track" }, h("span", { class: "lb-fill", style: { width: `${Math.min(100, th.share * 100 * 3).toFixed(1)}%` } }))),
        h("div", { class: "kw" }, subs.slice(0, 4).map((t) => badge(truncate(t.name, 40), "muted")),
          subs.length > 4 ? h("span", { class: "muted" }, ` +${subs.length - 4} more`) : null),
        h("ul", { class: "reps" }, (th.representative_texts || []).slice(0, 2).map((text, i) =>
          h("li", {}, h("a", { href: `#/datasets/${enc(name)}/docs/${th.representative_docs[i]}` }, truncate(text, 140))))),
        h("div", { class: "row tc-actions" }, h("button", { type: "button", class: "btn small theme-open", "data-readonly-ok": "",
          onclick: () => { topicsState.theme = th.theme; saveState(); loadTopics(); } }, subs.length === 1 ? "Its sub-topic" : `Its ${subs.length} sub-topics`)));
    }));
  }

  function renderWithin(run) {
    const groups = new Map();
    for (const t of run.topics) {
      const p = t.parent ?? "(none)";
      if (!groups.has(p)) groups.set(p, []);
      groups.get(p).push(t);
    }
    const parent = topicsState.parent && groups.has(topicsState.parent) ? topicsState.parent : null;
    if (!parent) {
      return h("div", {}, h("p", { class: "muted" }, `Sub-topics were found within each ${run.within} category. Open a category to see its sub-topics.`),
        h("div", { class: "topic-grid" }, [...groups.entries()].sort((a, b) => sum(b[1]) - sum(a[1])).map(([p, ts]) =>
          h("a", { class: "topic-card parent-card", href: "#", "data-parent": p, onclick: (e) => { e.preventDefault(); topicsState.parent = p; saveState(); loadTopics(); } },
            h("div", { class: "tc-head" }, h("strong", {}, p), badge(`${ts.length} sub-topics`, "info")),
            h("div", { class: "muted" }, `${fmt(sum(ts))} documents`),
            h("div", { class: "kw" }, ts.slice().sort((a, b) => b.size - a.size).slice(0, 3).map((t) => badge(t.name, "muted")))))));
    }
    const ts = groups.get(parent);
    return h("div", {}, h("nav", { class: "crumbs", "aria-label": "topic path" },
      h("a", { href: "#", id: "topics-up", onclick: (e) => { e.preventDefault(); topicsState.parent = null; saveState(); loadTopics(); } }, `All ${run.within} categories`),
      " › ", h("strong", {}, parent), h("span", { class: "muted" }, ` · ${ts.length} sub-topics, ${fmt(sum(ts))} documents`)),
      topicGrid(run, ts));
  }

  function topicGrid(run, topics, limit = 8) {
    const sorted = topics.slice().sort((a, b) => b.size - a.size);
    const grid = h("div", { class: "topic-grid" }, sorted.slice(0, limit).map(topicCard));
    if (sorted.length <= limit) return grid;
    const more = h("button", { type: "button", class: "btn", id: "topics-more", "data-readonly-ok": "", onclick: () => {
      grid.append(...sorted.slice(limit).map(topicCard)); more.remove(); } }, `Show all ${sorted.length} topics`);
    return h("div", {}, grid, h("div", { class: "row topics-more" }, more));

    function topicCard(t) { return h("article", { class: "topic-card", "data-topic": t.topic },
      h("div", { class: "tc-head" }, h("strong", { class: "tc-name" }, t.name), h("span", { class: "muted" }, `#${t.topic}`)),
      h("div", { class: "tc-size" }, `${fmt(t.size)} documents · ${pct(t.share)}${t.parent ? ` of ${t.parent}` : ""}`,
        h("span", { class: "lb-track" }, h("span", { class: "lb-fill", style: { width: `${Math.min(100, t.share * 100 * 3).toFixed(1)}%` } }))),
      h("div", { class: "kw" }, t.keywords.slice(0, 6).map((k) => badge(k, "muted"))),
      h("ul", { class: "reps" }, (t.representative_texts || []).slice(0, 3).map((text, i) =>
        h("li", {}, h("a", { href: `#/datasets/${enc(name)}/docs/${t.representative_docs[i]}` }, truncate(text, 140))))),
      h("div", { class: "row tc-actions" },
        h("a", { class: "btn small primary", href: `#/datasets/${enc(name)}/label?topic=${t.topic}&run=${run.run_id}` }, "Label this topic"),
        h("button", { type: "button", class: "btn small topic-docs", "data-readonly-ok": "", onclick: () => {
          Object.assign(state, { topic: String(t.topic), topicRun: String(run.run_id), topicName: t.name, offset: 0 });
          loadDocs(); docsCard.scrollIntoView({ block: "start" }); } }, "Documents")));
    }
  }

  // documents
  const searchInput = h("input", { type: "search", id: "doc-search", placeholder: "Search the texts…  (press / to focus)", value: state.q,
    "aria-label": "Search documents", "data-readonly-ok": "" });
  const labelSel = select([["", "any label"], ["__none__", "(unlabelled)"], ...labels.map(([l]) => [l, l])],
    state.label, { id: "filter-label", "aria-label": "Label filter", "data-readonly-ok": "" });
  const fromIn = h("input", { type: "date", id: "filter-from", value: state.from, "aria-label": "From date", "data-readonly-ok": "" });
  const toIn = h("input", { type: "date", id: "filter-to", value: state.to, "aria-label": "To date (exclusive)", "data-readonly-ok": "" });
  const versions = (models.models || []).map((m) => m.ref || `${m.name}@${m.version}`);
  const modelSel = select([["", versions.length ? "no model" : "no model (none trained yet)"], ...versions.map((v) => [v, v])], state.model, { id: "filter-model", "aria-label": "Model", "data-readonly-ok": "" });
  const predSel = select([["", "any prediction"], ...labels.map(([l]) => [l, l])], state.predicted, { id: "filter-predicted", "aria-label": "Predicted label", "data-readonly-ok": "" });
  predSel.disabled = !state.model;
  const docsBox = h("div", { class: "docs-box" });
  const pager = h("div", { class: "row pager" });
  const filters = h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); apply(); } },
    field("Search", searchInput), field("Label", labelSel), field("From", fromIn), field("To", toIn),
    field("Model", modelSel), field("Predicted", predSel),
    h("div", { class: "filter-actions" }, h("button", { type: "submit", class: "btn primary", "data-readonly-ok": "" }, "Search"),
      h("button", { type: "button", class: "btn link", "data-readonly-ok": "", onclick: () => {
        searchInput.value = ""; labelSel.value = ""; fromIn.value = ""; toIn.value = ""; modelSel.value = ""; predSel.value = ""; apply(); } }, "Clear")));
  const topicChip = h("div", { class: "topic-chip" });
  const docsCard = card("Documents", filters, topicChip, docsBox, pager);
  view.append(docsCard);
  for (const el of [labelSel, fromIn, toIn, predSel]) el.addEventListener("change", apply);
  modelSel.addEventListener("change", async () => {
    predSel.disabled = !modelSel.value;
    if (!modelSel.value) predSel.value = "";
    await predictedOptions();
    apply();
  });
  if (state.model) predictedOptions();

  // the "Predicted" choices are the chosen model's own labels (it may know labels the dataset lacks, or fewer)
  async function predictedOptions() {
    const keep = predSel.value;
    let names = labels.map(([l]) => l);
    if (modelSel.value) {
      try {
        const m = (await api.get(`/versions/${enc(modelSel.value)}`)).manifest || {};
        names = m.labels || names;
        if (m.abstain && m.abstain.threshold !== null && m.abstain.threshold !== undefined) names = [...names, m.abstain.label || "other"];
      } catch (e) { /* keep the dataset's */ }
    }
    predSel.replaceChildren(...[["", "any prediction"], ...names.map((l) => [l, l])]
      .map(([v, t]) => h("option", { value: v, selected: v === keep }, t)));
  }

  function apply() {
    Object.assign(state, { q: searchInput.value.trim(), label: labelSel.value, from: fromIn.value, to: toIn.value,
      model: modelSel.value, predicted: modelSel.value ? predSel.value : "", offset: 0, topic: "", topicRun: "", topicName: "" });
    loadDocs();
  }

  let docSeq = 0;
  async function loadDocs() {
    const mine = ++docSeq;
    saveState();
    clear(docsBox, spinner("Searching…"));
    clear(pager);
    const inTopic = state.topic !== "" && state.topic !== undefined;
    filters.classList.toggle("off", inTopic);
    for (const el of filters.querySelectorAll("input, select, button")) el.disabled = inTopic || (el === predSel && !state.model);
    clear(topicChip, inTopic ? h("div", { class: "row" }, "Documents of topic ", badge(`#${state.topic} ${state.topicName}`, "info"),
      h("span", { class: "muted" }, ` (run ${state.topicRun}), most typical first`),
      button("Show all documents", () => { Object.assign(state, { topic: "", topicRun: "", topicName: "", offset: 0 }); loadDocs(); },
        { kind: "small", id: "topic-clear", "data-readonly-ok": "" })) : null);
    if (inTopic) return loadTopicDocs(mine);
    const q = { q: state.q, limit: PAGE, offset: state.offset, time_from: state.from, time_to: state.to,
      model: state.model, predicted: state.model ? state.predicted : "" };
    if (state.label === "__none__") q.unlabelled = "true"; else q.label = state.label;
    let res;
    try { res = await api.get(`/datasets/${enc(name)}/documents`, q); } catch (e) {
      if (mine !== docSeq) return;
      clear(docsBox, e.kind === "not_classified" ? classifyFirst(e, state.model) : errorBox(e));
      return;
    }
    if (mine !== docSeq) return;
    const mq = state.model ? `?model=${enc(state.model)}` : "";
    const cols = [
      { key: "doc_id", label: "#", num: true },
      { key: "text", label: "Text", render: (d) => h("span", { class: "doc-cell" }, highlight(truncate(d.text, 220), state.q)) },
      { key: "label", label: "Label", render: (d) => d.label ? badge(d.label) : h("span", { class: "muted" }, "—") },
      { key: "time", label: "Time", render: (d) => d.time ? d.time.slice(0, 16).replace("T", " ") : null },
      { key: "split", label: "Split" },
    ];
    if (res.predictions) cols.push({ key: "predicted", label: `Predicted (${res.predictions.model})`,
      render: (d) => h("span", {}, badge(d.predicted, d.label ? (d.label === d.predicted ? "good" : "bad") : "info"), " ", h("span", { class: "muted" }, pct(d.predicted_score, 0))) });
    clear(docsBox, h("p", { class: "muted result-count" }, res.total ? `${fmt(res.total)} documents match.` : ""),
      table(cols, res.documents, { onRow: (d) => { location.hash = `#/datasets/${enc(name)}/docs/${d.doc_id}${mq}`; },
        empty: "No document matches: loosen the search or clear the filters." }));
    pageButtons(res);
  }

  // the model has no stored predictions on this dataset: offer the classify job (the filter never computes them)
  function classifyFirst(e, model) {
    const box = h("div", { class: "classify-first", "data-model": model },
      h("p", {}, e.message), h("p", { class: "muted" }, "The Predicted filter reads the predictions classify stored; " +
        "classifying computes only the documents that have none yet and keeps them for every later filter."));
    box.append(button(`Classify this dataset with ${model}`, async () => {
      let job;
      try { job = await api.post("/classify/jobs", { model, dataset: name, format: null }); } catch (err) { box.append(errorBox(err)); return; }
      const panel = jobPanel(job.job_id, `Classifying ${name} with ${model}`);
      box.replaceChildren(panel.el);
      try { await panel.done; } catch { return; }
      if (box.isConnected && state.model === model) loadDocs();
    }, { role: "editor", kind: "primary", id: "classify-first" }));
    if (!can("editor")) box.append(h("p", { class: "muted" }, "An editor can start it."));
    return box;
  }

  async function loadTopicDocs(mine) {
    let res;
    try {
      res = await api.get(`/datasets/${enc(name)}/topics/${enc(state.topicRun)}/documents`, { topic: state.topic, limit: PAGE, offset: state.offset });
    } catch (e) { if (mine === docSeq) clear(docsBox, errorBox(e)); return; }
    if (mine !== docSeq) return;
    clear(docsBox, h("p", { class: "muted result-count" }, `${fmt(res.total)} documents in this topic.`),
      table([
        { key: "doc_id", label: "#", num: true },
        { key: "text", label: "Text", render: (d) => h("span", { class: "doc-cell" }, truncate(d.text, 220)) },
        { key: "similarity", label: "Typical", num: true, digits: 2 },
        { key: "label", label: "Label", render: (d) => d.label ? badge(d.label) : h("span", { class: "muted" }, "—") },
        { key: "time", label: "Time", render: (d) => d.time ? d.time.slice(0, 16).replace("T", " ") : null },
      ], res.documents, { onRow: (d) => { location.hash = `#/datasets/${enc(name)}/docs/${d.doc_id}`; }, empty: "This topic has no documents." }));
    pageButtons(res);
  }

  function pageButtons(res) {
    const last = Math.min(res.offset + res.limit, res.total);
    if (res.total <= PAGE) return;
    pager.append(
      h("button", { type: "button", class: "btn small", disabled: res.offset === 0, "data-readonly-ok": "", id: "page-prev",
        onclick: () => { state.offset = Math.max(0, state.offset - PAGE); loadDocs(); } }, "← Previous"),
      h("span", { class: "muted" }, `${fmt(res.offset + 1)}–${fmt(last)} of ${fmt(res.total)}`),
      h("button", { type: "button", class: "btn small", disabled: last >= res.total, "data-readonly-ok": "", id: "page-next",
        onclick: () => { state.offset += PAGE; loadDocs(); } }, "Next →"));
  }

  const onKey = (e) => {
    if (e.key === "/" && !e.ctrlKey && !e.metaKey && !e.altKey && !/^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement?.tagName || "")) {
      e.preventDefault(); searchInput.focus(); searchInput.select();
    }
  };
  document.addEventListener("keydown", onKey);
  loadTopics().catch((e) => clear(topicsBox, errorBox(e)));
  loadDocs();
  return () => document.removeEventListener("keydown", onKey);
}

function sum(ts) { return ts.reduce((a, t) => a + t.size, 0); }

/** The text with each occurrence of q marked (as text nodes and <mark> elements; never markup from data). */
function highlight(text, q) {
  if (!q) return text;
  const out = [];
  const low = text.toLowerCase(), ql = q.toLowerCase();
  let i = 0;
  for (let j = low.indexOf(ql); j >= 0 && ql; j = low.indexOf(ql, i)) {
    out.push(text.slice(i, j), h("mark", {}, text.slice(j, j + q.length)));
    i = j + q.length;
  }
  out.push(text.slice(i));
  return out;
}

// -------------------------------------------------------------- document ----

async function renderDoc(view, name, docId, query) {
  const models = await api.get("/models").catch(() => ({ models: [] }));
  const versions = (models.models || []).map((m) => m.ref || `${m.name}@${m.version}`);
  const model = query.model || "";
  let d;
  try {
    d = await api.get(`/datasets/${enc(name)}/documents/${enc(docId)}`, { model });
  } catch (e) {
    view.append(h("p", {}, h("a", { href: `#/datasets/${enc(name)}` }, `← ${name}`)), errorBox(e));
    return;
  }
  const modelSel = select([["", "no model"], ...versions.map((v) => [v, v])], model, { id: "doc-model", "aria-label": "Model", "data-readonly-ok": "" });
  modelSel.addEventListener("change", () => {
    location.hash = `#/datasets/${enc(name)}/docs/${enc(docId)}${modelSel.value ? `?model=${enc(modelSel.value)}` : ""}`;
  });
  const nav = (delta) => `#/datasets/${enc(name)}/docs/${d.doc_id + delta}${model ? `?model=${enc(model)}` : ""}`;
  view.append(h("div", { class: "page-head" },
    h("a", { href: `#/datasets/${enc(name)}${sessionStorage.getItem(`inhouse.explore.${name}`) || ""}`, id: "back-to-dataset" }, `← ${name}`), h("h1", {}, `Document ${d.doc_id}`),
    h("div", { class: "actions row" }, d.doc_id > 0 ? h("a", { class: "btn small", href: nav(-1) }, "← Previous") : null,
      h("a", { class: "btn small", href: nav(1) }, "Next →"))));
  const facts = [
    ["Label", d.labels.length ? d.labels.map((l) => badge(l)) : h("span", { class: "muted" }, "unlabelled")],
    ["Time", d.time ? when(d.time) : "—"], ["Split", d.split || "—"],
    ["Your id", d.source_id || "—"], ["Row in the file", d.source_row ?? "—"], ["Import", d.ingest_id ? `#${d.ingest_id}` : "—"],
    ...Object.entries(d.meta || {}).map(([k, v]) => [k, v === null ? "—" : typeof v === "object" ? JSON.stringify(v) : String(v)]),
  ];
  view.append(h("div", { class: "grid-2 doc-grid" },
    card("Text", h("div", { class: "doc-text", id: "doc-text" }, d.text)),
    h("div", {},
      card("Details", h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))),
      card("Topics", d.topics.length ? table([
        { key: "run_id", label: "Run", render: (t) => `#${t.run_id}${t.within ? ` within ${t.within}` : ""}` },
        { key: "name", label: "Topic", render: (t) => t.topic < 0 ? h("span", { class: "muted" }, "outlier") : h("span", {}, t.parent ? `${t.parent} › ` : "", h("strong", {}, t.name)) },
        { key: "similarity", label: "Similarity", num: true, digits: 2 },
        { key: "label", label: "", render: (t) => t.topic < 0 ? null : h("a", { href: `#/datasets/${enc(name)}/label?topic=${t.topic}&run=${t.run_id}` }, "Label topic") },
      ], d.topics) : h("p", { class: "muted" }, "Not in a discovery run yet: run “Discover topics” on the dataset page.")),
      card("Prediction", field("Model", modelSel, versions.length ? null : "No trained model yet: train one on the Train page."),
        d.prediction ? h("div", { class: "pred" }, h("p", {}, "Predicted ", badge(d.prediction.label, "info"), ` with ${pct(d.prediction.score)}`,
          d.label ? [" · ", d.label === d.prediction.label ? badge("agrees with the label", "good") : badge(`label is ${d.label}`, "bad")] : null),
          h("div", { class: "label-bars" }, d.prediction.top.map((p) => h("div", { class: "label-bar static" },
            h("span", { class: "lb-name" }, p.label), h("span", { class: "lb-track" }, h("span", { class: "lb-fill", style: { width: `${(p.score * 100).toFixed(1)}%` } })),
            h("span", { class: "lb-n" }, pct(p.score)))))) : h("p", { class: "muted" }, "Choose a model version to see its prediction.")))));
  const onKey = (e) => {
    if (/^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement?.tagName || "")) return;
    if (e.key === "ArrowRight" || e.key === "j") location.hash = nav(1);
    else if ((e.key === "ArrowLeft" || e.key === "k") && d.doc_id > 0) location.hash = nav(-1);
  };
  document.addEventListener("keydown", onKey);
  return () => document.removeEventListener("keydown", onKey);
}


