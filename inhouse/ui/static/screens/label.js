// Label: turn topics into labels in one action (rename, merge), label documents one at a time from a queue
// (number keys 1-9, then 0 and a digit for labels 10-19, a/Enter accepts the model's suggestion, u undo, s skip,
// n new label or filter), label counts per class (updated as you label), and the labelling batches with undo.
import { api } from "../api.js";
import { barChart } from "../charts.js";
import { h, clear, card, table, empty, badge, button, field, select, confirmDialog, toast, errorBox, showError, guard,
  fmt, pct, when, truncate, can, spinner } from "../dom.js";

const enc = encodeURIComponent;
const KEYS = "123456789";
const CHORD = "0"; // 0 then a digit d: label 10 + d (labels 10 to 19)

/** The key (or chord) that picks label number i (0-based): "1".."9", then "0 0".."0 9"; null beyond. */
export function keyFor(i) {
  if (i < 9) return KEYS[i];
  return i < 19 ? `${CHORD} ${i - 9}` : null;
}

export async function render(view, params, query) {
  const name = params.name;
  const base = `/datasets/${enc(name)}`;
  const ds = await api.get(base);
  const cols = Object.entries(ds.label_columns || {}).filter(([, c]) => c.kind !== "metadata").map(([k]) => k);
  // from a candidate new category (Analyze): a label set that may be new, its label first, the queue on its documents
  if (query.candidate && query.col && !cols.includes(query.col)) cols.push(query.col);
  const st = {
    col: query.col && cols.includes(query.col) ? query.col : "label",
    mode: query.mode === "docs" ? "docs" : "topics",
    ds, run: null, selected: query.topic !== undefined ? Number(query.topic) : null,
    queue: [], current: null, seen: new Set(), skipped: [], undoStack: [], extra: [], info: null, orders: {},
    chord: false, live: {}, candidate: query.candidate || null,
  };
  if (query.new) { st.orders[st.col] = [query.new]; st.extra.push(query.new); }

  // ------------------------------------------------------------- frame ----
  const headCount = h("span", { class: "muted" });
  const colSelect = select(cols.map((c) => [c, c === "label" && ds.columns?.label ? `label (file column ${ds.columns.label})` : c]),
    st.col, { "aria-label": "label column", "data-readonly-ok": "" });
  colSelect.append(h("option", { value: "__new__" }, "+ a label set of your own…"));
  const newCol = h("input", { type: "text", placeholder: "name, e.g. complaint", "aria-label": "name of the new label set", maxlength: 200, hidden: true, size: 18 });
  const useCol = async (c) => {
    st.col = c; st.queue = []; st.current = null;
    await refreshSide();
    if (st.mode === "docs") await nextDoc();
    if (st.run) drawTopics();
  };
  colSelect.addEventListener("change", async () => {
    if (colSelect.value === "__new__") { newCol.hidden = false; newCol.focus(); return; }
    newCol.hidden = true;
    await useCol(colSelect.value);
  });
  newCol.addEventListener("keydown", async (e) => {
    if (e.key !== "Enter" || !newCol.value.trim()) return;
    const c = newCol.value.trim();
    if (!cols.includes(c)) { cols.push(c); colSelect.insertBefore(h("option", { value: c }, `${c} (new)`), colSelect.lastChild); }
    colSelect.value = c; newCol.hidden = true; newCol.value = "";
    await useCol(c);
  });
  const modeTopics = h("button", { type: "button", class: "btn", "data-mode": "topics", "data-readonly-ok": "" }, "Topics → labels");
  const modeDocs = h("button", { type: "button", class: "btn", "data-mode": "docs", "data-readonly-ok": "" }, "One at a time");
  modeTopics.addEventListener("click", () => setMode("topics"));
  modeDocs.addEventListener("click", () => setMode("docs"));
  view.append(h("div", { class: "page-head" },
    h("h1", {}, "Label · ", name),
    headCount,
    h("div", { class: "actions row" }, h("span", { class: "segmented", role: "group", "aria-label": "mode" }, modeTopics, modeDocs),
      field("Label column", colSelect), newCol,
      h("a", { href: `#/datasets/${enc(name)}` }, "Explore"), h("a", { href: `#/train?dataset=${enc(name)}` }, "Train"))));

  const mainCol = h("div", { class: "label-main" });
  const counts = h("div", { class: "label-counts" });
  const batches = h("div");
  view.append(h("div", { class: "label-layout" }, mainCol,
    h("aside", { class: "label-side" }, card("Labels per class", counts), card("Labelling batches", batches))));

  const topicsPane = h("div", { class: "topics-pane" });
  const docsPane = h("div", { class: "docs-pane" });
  mainCol.append(topicsPane, docsPane);

  function setMode(m) {
    st.mode = m;
    modeTopics.classList.toggle("primary", m === "topics");
    modeDocs.classList.toggle("primary", m === "docs");
    modeTopics.setAttribute("aria-pressed", String(m === "topics"));
    modeDocs.setAttribute("aria-pressed", String(m === "docs"));
    topicsPane.hidden = m !== "topics";
    docsPane.hidden = m !== "docs";
    if (m === "docs" && !st.current) nextDoc();
  }

  // --------------------------------------------------- counts & batches ----
  async function refreshSide() {
    const [d, b] = await Promise.all([api.get(base), api.get(`${base}/labels`, { limit: 30 })]);
    st.ds = d;
    st.live = {};
    if (st.current && st.mode === "docs") for (const el of docBox.querySelectorAll(".label-btn .label-count")) {
      el.textContent = fmt(countOf(el.closest(".label-btn").dataset.label));
    }
    const lc = d.label_columns?.[st.col];
    headCount.textContent = `${fmt(d.rows)} documents · ${fmt(d.rows - (lc?.labelled ?? 0))} unlabelled in ${st.col}`;
    const values = d.label_columns?.[st.col]?.values || {};
    const items = Object.entries(values).sort((a, z) => z[1] - a[1]).map(([label, value]) => ({ label, value }));
    clear(counts, items.length ? barChart(items, { width: 420, title: `labels per class in ${st.col}` })
      : h("p", { class: "muted" }, `No labels in ${st.col} yet: label a topic, or documents one at a time.`),
      h("p", { class: "muted small" }, `${fmt(d.label_columns?.[st.col]?.labelled ?? 0)} of ${fmt(d.rows)} documents labelled in ${st.col}.`));
    clear(batches, table([
      { key: "label", label: "Label", render: (r) => h("span", {}, r.label, r.column !== "label" ? h("span", { class: "muted" }, ` (${r.column})`) : null) },
      { key: "count", label: "Docs", num: true },
      { key: "user", label: "Who, when", render: (r) => h("span", { title: when(r.created_at) }, r.user, h("br"),
        h("span", { class: "muted nowrap" }, when(r.created_at).slice(5, 16))) },
      { key: "source", label: "From", render: (r) => sourceText(r.source) },
      { key: "undo", label: "", render: (r) => r.undone_at ? badge("undone", "muted")
        : button("Undo batch", () => undoBatch(r), { role: "editor", kind: "small", "data-batch": r.batch }) },
    ], b.batches, { empty: "No labelling yet." }));
    return d;
  }

  function sourceText(s) {
    const m = /^topic:(\d+):(-?\d+)$/.exec(s || "");
    return m ? h("span", { title: `topic ${m[2]} of discovery run ${m[1]}` }, `topic ${m[2]}`) : s;
  }

  async function undoBatch(b) {
    const ok = await confirmDialog({ title: `Undo batch ${b.batch}?`, danger: true, confirm: "Undo batch",
      body: h("p", {}, `The label "${b.label}" goes away from ${fmt(b.count)} document${b.count === 1 ? "" : "s"} (set by ${b.user}, ${when(b.created_at)}); `
        + "the labels they had before come back. The batch stays in the history." ) });
    if (!ok) return;
    await api.post(`/labels/${enc(b.batch)}/undo`, {});
    toast(`Undid ${b.batch}: ${fmt(b.count)} × ${b.label}`);
    st.undoStack = st.undoStack.filter((x) => x.batch !== b.batch);
    await refreshSide();
  }

  // Label with an overwrite confirmation when the API refuses to replace labels that came with the file.
  async function labelWith(body, where) {
    const payload = { ...body, into: st.col === "label" ? undefined : st.col };
    try {
      return await api.post(`${base}/labels`, payload);
    } catch (e) {
      if (!(e.status === 409 && /came from the file/.test(e.message || ""))) throw e;
      const ok = h("div", {}, errorBox(e));
      clear(where, ok);
      const go = await confirmDialog({ title: "Overwrite labels from the file?", danger: true, confirm: "Overwrite",
        body: h("div", {}, h("p", {}, e.message), h("p", { class: "muted" }, "The file's labels stay in the history: undo the batch to bring them back.")) });
      if (!go) return null;
      clear(where);
      return api.post(`${base}/labels`, { ...payload, overwrite: true });
    }
  }

  // ------------------------------------------------------------ topics ----
  async function loadTopics() {
    clear(topicsPane, spinner("Loading topics…"));
    let runs;
    try { runs = (await api.get(`${base}/topics`)).runs; } catch (e) { return clear(topicsPane, errorBox(e)); }
    if (!runs.length) {
      return clear(topicsPane, empty("No topics discovered yet",
        "Discover the topics of this dataset first; then each topic becomes a label in one click. "
        + `Start it on the Explore screen, or on the server: inhouse discover --dataset ${name}`,
        h("a", { class: "btn primary", href: `#/datasets/${enc(name)}` }, "Go to Explore"),
        h("button", { type: "button", class: "btn", onclick: () => setMode("docs") }, "Label one at a time instead")));
    }
    const wanted = query.run && runs.some((r) => String(r.run_id) === String(query.run)) ? Number(query.run) : runs[0].run_id;
    st.run = await api.get(`${base}/topics/${wanted}`);
    drawTopics();
  }

  function drawTopics() {
    const run = st.run;
    const visible = run.topics.filter((t) => t.merged_into === null || t.merged_into === undefined);
    const themeName = new Map((run.themes || []).map((th) => [th.theme, th.name]));
    if (st.selected === null || !visible.some((t) => t.topic === st.selected)) {
      const merged = run.topics.find((t) => t.topic === st.selected);
      st.selected = merged && merged.merged_into !== null && merged.merged_into !== undefined ? merged.merged_into : visible[0]?.topic ?? null;
    }
    const list = h("ul", { class: "topic-list", role: "listbox", "aria-label": "topics" }, visible.map((t) => {
      const li = h("li", { role: "option", tabindex: "0", "aria-selected": String(t.topic === st.selected), "data-topic": t.topic,
        class: t.topic === st.selected ? "selected" : "" },
        h("div", { class: "topic-name" }, t.name, t.name_source?.startsWith("person:") ? badge("named", "info") : null,
          t.merged?.length ? badge(`+${t.merged.length} merged`, "warn") : null),
        h("div", { class: "topic-meta muted" }, `#${t.topic} · ${fmt(t.size)} docs · ${pct(t.share_of_all ?? t.share)}`
          + (themeName.has(t.theme) ? ` · theme: ${themeName.get(t.theme)}` : "")));
      const pick = () => { st.selected = t.topic; drawTopics(); topicsPane.querySelector(".topic-detail input")?.focus(); };
      li.addEventListener("click", pick);
      li.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); pick(); } });
      return li;
    }));
    const t = run.topics.find((x) => x.topic === st.selected);
    clear(topicsPane, h("p", { class: "muted" }, `Discovery run ${run.run_id} · ${fmt(run.n_documents)} documents · `
      + (themeName.size ? `${themeName.size} themes · ` : "") + `${visible.length} topics`
      + (run.n_outliers ? ` · ${fmt(run.n_outliers)} outliers` : "") + ` · ${when(run.created_at)}`),
      h("div", { class: "topics-grid" }, card("Topics", list), t ? topicDetail(t) : card("Topic", h("p", { class: "muted" }, "Choose a topic."))));
    topicsPane.querySelector(".topic-list li.selected")?.scrollIntoView({ block: "nearest" });
  }

  function topicDetail(t) {
    const run = st.run;
    const out = h("div", { class: "topic-result" });
    const labelInput = h("input", { type: "text", value: t.name, "aria-label": "label for this topic", maxlength: 200, class: "topic-label-input" });
    const doLabel = button(`Label all ${fmt(t.size)} documents`, async () => {
      const label = labelInput.value.trim();
      if (!label) throw new Error("Type a label first.");
      clear(out);
      const b = await labelWith({ label, topic: t.topic, run: run.run_id }, out);
      if (!b) return;
      clear(out, h("div", { class: "ok-box", role: "status" }, `Labelled ${fmt(b.count)} documents as "${b.label}" in ${b.column}`,
        b.replaced_ingest_labels ? ` (replaced ${fmt(b.replaced_ingest_labels)} labels from the file)` : "", ". ",
        button("Undo", async () => { await api.post(`/labels/${enc(b.batch)}/undo`, {}); clear(out, h("p", { class: "muted" }, `Undid ${b.batch}.`)); await refreshSide(); }, { role: "editor", kind: "small" })));
      await refreshSide();
    }, { role: "editor", kind: "primary", "data-action": "label-topic" });
    labelInput.addEventListener("keydown", (e) => { if (e.key === "Enter") doLabel.click(); });

    const nameInput = h("input", { type: "text", value: t.name, "aria-label": "topic name", maxlength: 200 });
    const rename = button("Rename", async () => {
      await api.put(`${base}/topics/${run.run_id}/${t.topic}/name`, { name: nameInput.value });
      toast(`Topic ${t.topic} is now "${nameInput.value.trim()}"`);
      st.run = await api.get(`${base}/topics/${run.run_id}`);
      drawTopics();
    }, { role: "editor", "data-action": "rename" });
    nameInput.addEventListener("keydown", (e) => { if (e.key === "Enter") rename.click(); });

    const others = run.topics.filter((x) => x.topic !== t.topic && (x.merged_into === null || x.merged_into === undefined));
    const mergeSel = select([["", "Merge another topic into this one…"], ...others.map((x) => [String(x.topic), `#${x.topic} ${truncate(x.name, 40)} (${fmt(x.size)})`])],
      "", { "aria-label": "topic to merge in" });
    const merge = button("Merge in", async () => {
      if (!mergeSel.value) throw new Error("Choose the topic to merge into this one.");
      const other = run.topics.find((x) => String(x.topic) === mergeSel.value);
      const ok = await confirmDialog({ title: `Merge topic ${other.topic} into topic ${t.topic}?`, confirm: "Merge",
        body: h("p", {}, `"${other.name}" (${fmt(other.size)} docs) joins "${t.name}" (${fmt(t.size)} docs): labelling, trends and summaries `
          + "treat them as one topic. You can unmerge it later.") });
      if (!ok) return;
      await api.post(`${base}/topics/${run.run_id}/merges`, { topic: other.topic, into: t.topic });
      st.run = await api.get(`${base}/topics/${run.run_id}`);
      drawTopics();
    }, { role: "editor", "data-action": "merge" });

    const mergedRows = (t.merged || []).map((m) => {
      const mt = run.topics.find((x) => x.topic === m);
      return h("li", {}, `#${m} ${mt ? mt.name : ""} (${fmt(mt?.size)} docs) `, button("Unmerge", async () => {
        await api.post(`${base}/topics/${run.run_id}/unmerge`, { topic: m });
        st.run = await api.get(`${base}/topics/${run.run_id}`);
        drawTopics();
      }, { role: "editor", kind: "small link", "data-unmerge": m }));
    });

    const edit = h("details", { class: "topic-edit", open: st.editOpen }, h("summary", {}, "Rename or merge"),
      h("div", { class: "row" }, field("Topic name", nameInput), rename),
      h("div", { class: "row" }, mergeSel, merge));
    edit.addEventListener("toggle", () => { st.editOpen = edit.open; });
    const examples = [...(t.representative_texts || [])];
    for (const m of t.merged || []) {
      const mt = run.topics.find((x) => x.topic === m);
      if (mt) examples.push(...(mt.representative_texts || []).slice(0, 2));
    }
    return guard(card(null,
      h("div", { class: "topic-detail" },
        h("h2", {}, `Topic ${t.topic}: `, t.name),
        h("p", { class: "muted" }, `${fmt(t.size)} documents (${pct(t.share_of_all ?? t.share)} of the run)`,
          t.name_source?.startsWith("person:") ? ` · named by ${t.name_source.slice(7)}` : ` · named from ${t.name_source}`),
        h("div", { class: "keywords" }, (t.keywords || []).map((k) => h("span", { class: "kw" }, k))),
        mergedRows.length ? h("div", { class: "merged-in" }, h("strong", {}, "Merged into this topic: "), h("ul", {}, mergedRows)) : null,
        h("h3", {}, "Examples"),
        h("ul", { class: "examples" }, examples.slice(0, 6).map((x) => h("li", { class: "doc-text" }, truncate(x, 300)))),
        h("div", { class: "label-topic" },
          h("label", { class: "field grow" }, h("span", { class: "field-label" }, `Label all ${fmt(t.size)} documents as`), labelInput),
          doLabel),
        h("p", { class: "muted small" }, `Writes into the label column ${st.col}; one batch you can undo.`),
        out,
        edit)));
  }

  // -------------------------------------------------------- one at a time ----
  const strategySel = select([["auto", "auto"], ["uncertainty", "uncertainty"], ["diversity", "diversity"]], query.strategy || "auto",
    { "aria-label": "queue strategy", "data-readonly-ok": "" });
  const modelInput = h("input", { type: "text", placeholder: "model version (optional), e.g. intents@2", value: query.model || "",
    "aria-label": "model for uncertainty sampling", "data-readonly-ok": "", size: 28 });
  const reload = h("button", { type: "button", class: "btn small", "data-readonly-ok": "" }, "Refresh queue");
  reload.addEventListener("click", () => { st.queue = []; st.current = null; nextDoc(); });
  strategySel.addEventListener("change", () => reload.click());
  modelInput.addEventListener("keydown", (e) => { if (e.key === "Enter") reload.click(); });
  const queueInfo = h("div", { class: "queue-info muted" });
  const docBox = h("div", { class: "doc-box" });
  const lastLine = h("div", { class: "last-line muted", role: "status" });
  const legend = h("div", { class: "legend muted", "aria-label": "keyboard shortcuts" },
    h("kbd", {}, "1"), "–", h("kbd", {}, "9"), " assign · ", h("kbd", {}, "0"), " then a digit: labels 10–19 · ",
    h("kbd", {}, "a"), "/", h("kbd", {}, "Enter"), " accept the suggestion · ", h("kbd", {}, "u"), " undo last · ",
    h("kbd", {}, "s"), " skip · ", h("kbd", {}, "n"), " new label or filter");
  docsPane.append(card(null, h("div", { class: "row queue-controls" }, field("Suggest by", strategySel), modelInput, reload), queueInfo),
    card(null, docBox, lastLine, legend));

  // The number keys stay put while you label: the order is fixed when a column is first shown (most used
  // first), and labels that appear later (a topic labelled, a new label typed) go to the end.
  function labelSet() {
    const order = (st.orders[st.col] ||= []);
    const values = st.ds.label_columns?.[st.col]?.values || {};
    for (const [k] of Object.entries(values).sort((a, z) => z[1] - a[1])) if (!order.includes(k)) order.push(k);
    for (const x of st.extra) if (!order.includes(x)) order.push(x);
    return order;
  }

  // counts per label: the server's, plus what was labelled here since it last answered (shown at once)
  function countOf(l) {
    const values = st.ds.label_columns?.[st.col]?.values || {};
    return (values[l] || 0) + (st.live[`${st.col}\u0000${l}`] || 0);
  }
  function bump(l, by) { const k = `${st.col}\u0000${l}`; st.live[k] = (st.live[k] || 0) + by; }

  async function nextDoc() {
    if (st.queue.length) { st.current = st.queue.shift(); return renderDoc(); }
    clear(docBox, spinner("Finding the most useful next documents…"));
    try {
      const exclude = [...st.seen].slice(-2000).join(",");
      st.info = await api.get(`${base}/queue`, { strategy: strategySel.value, model: modelInput.value.trim() || undefined,
        limit: 20, exclude, label_col: st.col === "label" ? undefined : st.col, candidate: st.candidate || undefined });
    } catch (e) { st.current = null; clear(queueInfo); return clear(docBox, errorBox(e)); }
    clear(queueInfo, badge(st.info.strategy, "info"), " ", st.info.reason,
      st.info.vectors ? ` · vectors: ${st.info.vectors}` : "",
      st.candidate ? h("span", { class: "queue-candidate" }, ` · only the ${fmt(st.info.candidate_documents)} documents of candidate ${st.candidate} (${fmt(st.info.unlabelled)} without a label in ${st.col}) `,
        h("button", { type: "button", class: "btn small", "data-readonly-ok": "", onclick: () => { st.candidate = null; reload.click(); } }, "Show all documents")) : "");
    st.queue = st.info.items.filter((d) => !st.seen.has(d.doc_id));
    st.current = st.queue.shift() || null;
    renderDoc();
  }

  function renderDoc() {
    const d = st.current;
    if (!d) {
      return clear(docBox, empty("Nothing left to label here",
        st.skipped.length ? `Every unlabelled document was labelled or skipped (${st.skipped.length} skipped).` : "Every document has a label in this column.",
        h("button", { type: "button", class: "btn", onclick: () => { st.seen = new Set(); st.skipped = []; reload.click(); } }, "Show skipped ones again")));
    }
    const labels = labelSet();
    const newInput = h("input", { type: "text", placeholder: "new label or filter…", "aria-label": "new label", maxlength: 200,
      class: "new-label", list: "label-choices" });
    const choices = h("datalist", { id: "label-choices" }, labels.map((l) => h("option", { value: l })));
    // typing filters the buttons; Enter takes the only match, else the text as typed (a new label)
    const matches = () => { const q = newInput.value.trim().toLowerCase(); return q ? labels.filter((l) => l.toLowerCase().includes(q)) : labels; };
    newInput.addEventListener("input", () => {
      const m = new Set(matches());
      for (const b of docBox.querySelectorAll(".label-btn")) b.hidden = !m.has(b.dataset.label);
    });
    newInput.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && newInput.value.trim()) {
        e.preventDefault();
        const m = matches(), typed = newInput.value.trim();
        assign(m.length === 1 && !labels.includes(typed) ? m[0] : typed);
      }
      if (e.key === "Escape") { newInput.value = ""; newInput.dispatchEvent(new Event("input")); newInput.blur(); }
    });
    const shown = labels.slice(0, 19);
    const suggestion = d.predicted ? h("div", { class: "suggestion row" },
      button(h("span", {}, h("kbd", {}, "a"), " Accept: ", h("b", {}, d.predicted)), () => assign(d.predicted),
        { role: "editor", kind: "small accept-btn", "data-label": d.predicted }),
      h("span", { class: "muted small" }, d.top?.length ? `margin to the runner-up ${pct(d.score, 0)}` : "")) : null;
    clear(docBox,
      h("div", { class: "doc-head muted" }, `Document ${d.doc_id}`, d.predicted ? ` · model says ${d.predicted}` : "",
        d.top?.length ? ` (${d.top.map((x) => `${x.label} ${pct(x.p, 1)}`).join(", ")})` : ""),
      h("div", { class: "doc-big doc-text", "data-doc": d.doc_id }, d.text),
      suggestion,
      h("div", { class: "label-buttons" },
        shown.map((l, i) => button(h("span", {}, h("kbd", {}, keyFor(i)), " ", l, " ", h("span", { class: "muted small label-count" }, fmt(countOf(l)))),
          () => assign(l), { role: "editor", kind: "label-btn", "data-label": l })),
        labels.length > shown.length ? h("span", { class: "muted" }, `+${labels.length - shown.length} more: type to filter with `, h("kbd", {}, "n")) : null),
      choices,
      h("div", { class: "row" }, newInput, button("Add label", () => newInput.value.trim() && assign(newInput.value.trim()), { role: "editor", kind: "small" }),
        button("Skip (s)", () => skip(), { kind: "small", "data-readonly-ok": "" }), button("Undo (u)", () => undoLast(), { role: "editor", kind: "small" })),
      labels.length ? null : h("p", { class: "muted" }, "No labels yet: press ", h("kbd", {}, "n"), " and type the first one."));
    guard(docBox);
    st.newInput = newInput;
  }

  async function assign(label) {
    const d = st.current;
    if (!d || !can("editor")) return;
    const b = await labelWith({ label, doc_ids: [d.doc_id] }, docBox);
    if (!b) return renderDoc();
    if (!labelSet().includes(label)) st.extra.push(label);
    bump(label, 1);
    st.seen.add(d.doc_id);
    st.undoStack.push({ batch: b.batch, doc: d, label });
    lastLine.textContent = `Last: document ${d.doc_id} → ${label} (u to undo)`;
    await refreshSide();
    await nextDoc();
  }

  async function skip() {
    if (!st.current) return;
    st.seen.add(st.current.doc_id);
    st.skipped.push(st.current.doc_id);
    await nextDoc();
  }

  async function undoLast() {
    const last = st.undoStack.pop();
    if (!last) { toast("Nothing to undo in this session."); return; }
    await api.post(`/labels/${enc(last.batch)}/undo`, {});
    bump(last.label, -1);
    lastLine.textContent = `Undid: document ${last.doc.doc_id} is no longer ${last.label}`;
    if (st.current) st.queue.unshift(st.current);
    st.current = last.doc;
    st.seen.delete(last.doc.doc_id);
    renderDoc();
    await refreshSide();
  }

  let busy = false;
  async function onKey(e) {
    if (st.mode !== "docs" || e.ctrlKey || e.metaKey || e.altKey) return;
    const tag = (e.target?.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || document.querySelector("dialog[open]")) return;
    const k = e.key;
    if (k === "Enter" && tag === "button") return;  // Enter on a focused button is that button's click
    let act = null;
    if (st.chord) {  // 0 was pressed: a digit picks label 10 + digit, anything else cancels
      st.chord = false;
      legend.classList.remove("chord");
      if (/^[0-9]$/.test(k)) {
        const l = labelSet()[9 + Number(k)];
        e.preventDefault();
        if (l && can("editor")) act = () => assign(l);
        else return;
      }
    }
    if (act) { /* the chord's label */ }
    else if (k === CHORD && labelSet().length > 9) { e.preventDefault(); st.chord = true; legend.classList.add("chord"); return; }
    else if (KEYS.includes(k)) {
      const l = labelSet()[Number(k) - 1];
      if (l && can("editor")) act = () => assign(l);
    } else if ((k === "a" || k === "Enter") && st.current?.predicted && can("editor")) act = () => assign(st.current.predicted);
    else if (k === "s") act = skip;
    else if (k === "u" && can("editor")) act = undoLast;
    else if (k === "n" && can("editor")) { e.preventDefault(); st.newInput?.focus(); return; }
    if (!act) return;
    e.preventDefault();
    if (busy) return;
    busy = true;
    try { await act(); } catch (err) { showError(err); } finally { busy = false; }
  }
  document.addEventListener("keydown", onKey);

  setMode(st.mode);
  await Promise.all([refreshSide(), loadTopics()]);
  return () => document.removeEventListener("keydown", onKey);
}
