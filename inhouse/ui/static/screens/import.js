// Import: pick a file, preview its first rows, map its columns (guessed), name the dataset, upload with progress,
// then the import summary with the quarantined rows (row number, reason, raw content).
import { formatLinks } from "../downloads.js";
import { api, upload } from "../api.js";
import { h, clear, card, table, stat, badge, field, select, button, errorBox, spinner, progress, showError,
  guard, can, fmt, truncate, duration, empty } from "../dom.js";

const ROLES = [
  ["text", "Text", "The documents themselves (required)."],
  ["label", "Label", "A category per row, if the file has one (e.g. intent)."],
  ["time", "Time", "When each row happened: enables trends."],
  ["id", "Id", "Your unique id per row: re-imports and exports keep it."],
  ["split", "Split", "train/test values, if the file has them."],
];
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const ACCEPT = ".csv,.tsv,.jsonl,.ndjson,.json,.xlsx,.parquet,.txt,.gz";

export async function render(view) {
  view.append(h("div", { class: "page-head" }, h("h1", {}, "Import data"),
    h("span", { class: "muted" }, "CSV, TSV, JSON Lines, JSON, Excel (.xlsx), Parquet or plain text (also .gz)")));
  if (!can("editor")) {
    view.append(empty("Importing needs an editor", "You are signed in as a viewer: you can explore the datasets that are " +
      "there. Ask an admin for an editor token to import files.", h("a", { class: "btn", href: "#/" }, "See the datasets")));
    return;
  }
  const input = h("input", { type: "file", accept: ACCEPT, id: "import-file", "aria-label": "File to import" });
  const pickMsg = h("div", { class: "import-pick-msg" });
  const stage = h("div", { class: "import-stage" });
  view.append(card("1. Choose a file", h("div", { class: "row" }, input,
    h("small", { class: "help" }, "Only the first rows are read for the preview; nothing is stored until you import.")), pickMsg), stage);

  input.addEventListener("change", async () => {
    clear(stage); clear(pickMsg);
    const file = input.files[0];
    if (!file) return;
    clear(pickMsg, spinner(`Reading the first rows of ${file.name}…`));
    const form = new FormData();
    form.append("file", file, file.name);
    let pv;
    try { pv = await api.form("/datasets/preview", form); } catch (e) { clear(pickMsg, errorBox(e)); return; }
    if (pv.suggested_delimiter) {
      // the header read as one column: read the file again with the separator it seems to use, and say so
      const again = new FormData();
      again.append("file", file, file.name);
      again.append("delimiter", pv.suggested_delimiter);
      try {
        const pv2 = await api.form("/datasets/preview", again);
        if (pv2.columns.length > 1) pv = { ...pv2, delimiter: pv.suggested_delimiter };
      } catch (e) { /* keep the first preview and its warning */ }
    }
    clear(pickMsg, h("span", { class: "muted" }, `${file.name} · ${fmt(file.size)} bytes · ${pv.format.toUpperCase()} · `
      + `${pv.columns.length} columns · first ${fmt(pv.rows_read)} rows read`
      + (pv.delimiter ? ` · separated by ${pv.delimiter === "\t" ? "tabs" : `'${pv.delimiter}'`}` : "")));
    const existing = await api.get("/datasets").then((r) => r.datasets.map((d) => d.name), () => []);
    showPreview(stage, file, pv, new Set(existing));
  });
  return () => {};
}

function showPreview(stage, file, pv, existing) {
  const selects = {};
  const previewBox = h("div", { class: "import-preview-table" });
  const drawPreview = () => {
    const roleOf = {};
    for (const [role] of ROLES) if (selects[role].value) roleOf[selects[role].value] = role;
    clear(previewBox, h("table", { class: "table import-rows" },
      h("thead", {}, h("tr", {}, pv.columns.map((c) => h("th", { class: roleOf[c] ? `mapped role-${roleOf[c]}` : "" },
        c, roleOf[c] ? h("span", { class: "role-tag" }, roleOf[c]) : null)))),
      h("tbody", {}, pv.rows.map((r) => h("tr", {}, pv.columns.map((c) => {
        const v = r[c];
        return h("td", { class: roleOf[c] ? `mapped role-${roleOf[c]}` : "", title: typeof v === "string" && v.length > 80 ? v : null },
          v === null || v === undefined || v === "" ? h("span", { class: "muted" }, "—") : truncate(typeof v === "object" ? JSON.stringify(v) : String(v), 80));
      }))))));
  };

  const mapping = h("div", { class: "import-map" });
  for (const [role, label, help] of ROLES) {
    const guess = pv.guess[role];
    const s = select([["", role === "text" ? "(choose a column)" : "(none)"], ...pv.columns.map((c) => [c, c])], guess ?? "",
      { name: `${role}_col`, id: `map-${role}` });
    s.addEventListener("change", () => { drawPreview(); check(); });
    selects[role] = s;
    mapping.append(field(label, s, [help, " ", h("span", { class: "guess-note" }, guess ? `Guessed: ${pv.notes[role]}.` : pv.notes[role] ? `${pv.notes[role]}.` : "")]));
  }
  const name = h("input", { type: "text", name: "dataset", id: "dataset-name", value: pv.dataset, maxlength: 100,
    spellcheck: false, autocomplete: "off" });
  const nameMsg = h("small", { class: "help" });
  const pii = h("input", { type: "checkbox", name: "redact_pii", id: "redact-pii" });
  const go = button("Import", () => doImport(), { role: "editor", kind: "primary", id: "import-go" });
  const issues = h("div", { class: "import-issues" });

  const valueChecks = h("div", { class: "import-checks" });
  const showChecks = () => {
    const found = [];
    for (const role of ["text", "time"]) {
      const col = selects[role].value;
      const c = col && pv.checks?.[col]?.[role];
      if (c) found.push([role, col, c]);
    }
    clear(valueChecks, found.length ? h("div", { class: "warn-box" },
      h("strong", {}, "With this mapping, these rows of the preview would be quarantined:"),
      h("ul", {}, found.map(([role, col, c]) => h("li", {}, `${role} = ${col}: ${fmt(c.count)} of the first ${fmt(pv.rows_read)} rows, e.g. `,
        c.examples.slice(0, 3).map((e, i) => [i ? "; " : "", h("span", { class: "check-row" }, `row ${e.row}`), `: ${e.reason} (${e.detail})`])))),
      h("div", { class: "fix" }, "Fix: correct those values in the file, or choose another column. The other rows are imported either way.")) : null);
  };

  const check = () => {
    showChecks();
    const problems = [];
    const n = name.value.trim();
    if (!NAME_RE.test(n)) problems.push("The dataset name must be letters, digits, '.', '_' or '-' (up to 100), starting with a letter or digit.");
    if (!selects.text.value) problems.push("Choose the column that holds the text.");
    const used = ROLES.map(([r]) => selects[r].value).filter(Boolean);
    const dup = used.find((c, i) => used.indexOf(c) !== i);
    if (dup) problems.push(`Column ${dup} is mapped twice; each column can have one role.`);
    clear(nameMsg, NAME_RE.test(n) ? (existing.has(n)
      ? "This dataset exists: the rows are added to it (the same file is never imported twice)."
      : "Letters, digits, '.', '_' and '-'.") : h("span", { class: "bad-text" }, "Not an allowed name."));
    name.setAttribute("aria-invalid", NAME_RE.test(n) ? "false" : "true");
    clear(issues, problems.map((p) => h("div", { class: "bad-text" }, p)));
    go.disabled = problems.length > 0;
    return !problems.length;
  };
  name.addEventListener("input", check);

  const probs = pv.problems?.length ? h("div", { class: "warn-box" },
    h("strong", {}, `${pv.problems.length} of the first ${fmt(pv.rows_read)} rows cannot be read; `
      + "they will be quarantined (kept aside with their row number and reason), the others imported."),
    h("ul", {}, pv.problems.slice(0, 5).map((p) => h("li", {}, `row ${p.row}${p.line ? ` (line ${p.line})` : ""}: ${p.reason} — ${p.detail}`)))) : null;

  const result = h("div", { class: "import-result" });
  const form = h("form", { class: "import-form", onsubmit: (e) => { e.preventDefault(); if (!go.disabled) go.click(); } },
    valueChecks,
    h("div", { class: "grid import-grid" },
      h("div", {}, h("h3", {}, "Columns"), mapping),
      h("div", {}, h("h3", {}, "Dataset"), field("Dataset name", name, nameMsg),
        h("label", { class: "check" }, pii, " Redact personal data (e-mails, phone numbers, card and account numbers) before storing"),
        issues, h("div", { class: "actions" }, go))));

  clear(stage,
    card(`2. Preview: ${pv.source}`, pv.warnings?.map((w) => h("div", { class: "warn-box" }, w)), probs,
      pv.partial ? h("p", { class: "muted" }, "Large file: the preview read its beginning only.") : null, previewBox),
    card("3. Map columns and import", guard(form, "editor")), result);
  drawPreview();
  check();

  async function doImport() {
    if (!check()) return;
    const fd = new FormData();
    fd.append("file", file, file.name);
    fd.append("dataset", name.value.trim());
    fd.append("text_col", selects.text.value);
    for (const role of ["label", "time", "id", "split"]) if (selects[role].value) fd.append(`${role}_col`, selects[role].value);
    fd.append("redact_pii", pii.checked ? "true" : "false");
    if (pv.delimiter) fd.append("delimiter", pv.delimiter);
    const bar = progress("Uploading");
    const box = card("Importing", bar);
    clear(result, box);
    box.scrollIntoView({ block: "nearest" });
    let res;
    try {
      res = await upload("/datasets", fd, (sent, total) => {
        bar.update({ done: sent, total, unit: "B", stage: sent === total ? "Uploaded; reading and storing the rows…" : "Uploading" });
      });
    } catch (e) { clear(result, card("Import failed", errorBox(e))); showError(e); return; }
    await showSummary(result, res);
  }
}

async function showSummary(result, res) {
  const ds = encodeURIComponent(res.dataset);
  const head = h("div", { class: "stats" },
    stat("stored", fmt(res.stored), "new documents"), stat("rows read", fmt(res.read)),
    stat("duplicates", fmt(res.duplicates), "texts seen before (kept)"),
    stat("quarantined", fmt(res.quarantined), res.quarantined ? "kept aside: see below" : "none"),
    stat("blank lines", fmt(res.blank_lines)), stat("took", duration(res.seconds)));
  const redacted = Object.entries(res.redacted || {});
  const box = card(`Import summary: ${res.dataset}`,
    res.skipped ? h("div", { class: "error-box" }, res.note || "This file was already imported into this dataset; nothing was added.") : null,
    res.error ? h("div", { class: "error-box" }, res.error) : null,
    head,
    redacted.length ? h("p", {}, "Redacted: ", redacted.map(([k, v]) => badge(`${k}: ${fmt(v)}`, "info"))) : null,
    (res.warnings || []).map((w) => h("p", { class: "muted" }, w)),
    h("div", { class: "row next-steps" }, h("a", { class: "btn primary", href: `#/datasets/${ds}`, id: "to-explore" }, "Explore topics"),
      h("a", { class: "btn", href: `#/datasets/${ds}/label` }, "Label"), h("a", { class: "btn", href: "#/import" }, "Import another file")));
  clear(result, box);
  if (res.quarantined) {
    const q = h("div", {}, spinner("Loading the quarantined rows…"));
    result.append(card(`Quarantined rows (${fmt(res.quarantined)})`,
      h("p", { class: "muted" }, "These rows were not imported. Each has its row number in the file (header and blank lines not counted), "
        + "the reason and its raw content: fix them in the file and import it again."),
      Object.keys(res.quarantine_reasons || {}).length ? h("p", {}, Object.entries(res.quarantine_reasons).map(([k, v]) => badge(`${k}: ${fmt(v)}`, "warn"))) : null,
      h("p", { class: "small" }, "Download every quarantined row of this dataset", formatLinks(`/datasets/${ds}/quarantine/download`, `quarantine-${ds}`)),
      q));
    try {
      const rows = [];
      for (let offset = 0; rows.length < 200; offset += 200) {
        const page = await api.get(`/datasets/${ds}/quarantine`, { limit: 200, offset });
        rows.push(...page.rows.filter((r) => r.ingest === res.ingest_id));
        if (offset + 200 >= page.total) break;
      }
      clear(q, table([
        { key: "row", label: "Row", num: true }, { key: "line", label: "Line", num: true },
        { key: "reason", label: "Reason", render: (r) => badge(r.reason, "warn") }, { key: "detail", label: "Detail" },
        { key: "raw", label: "Raw content", render: (r) => h("code", { class: "raw" }, truncate(typeof r.raw === "string" ? r.raw : JSON.stringify(r.raw), 160)) },
      ], rows, { empty: "No quarantined rows found for this import." }));
    } catch (e) { clear(q, errorBox(e)); }
  }
  box.scrollIntoView({ block: "start" });
}
