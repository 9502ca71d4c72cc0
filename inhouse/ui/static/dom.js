// Elements and widgets. Text always goes in as text nodes (never innerHTML), so data cannot become markup.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el, ...children) { el.replaceChildren(); return append(el, children); }

// -------------------------------------------------------------- roles ----
// The server refuses what a role may not do; the UI also disables those controls and says why.
const RANK = { viewer: 0, editor: 1, admin: 2 };
let current = { name: null, role: "viewer" };
export function setPrincipal(p) { current = p; document.body.dataset.role = p.role; }
export function principal() { return current; }
export function can(role) { return RANK[current.role] >= RANK[role]; }

/** A button that needs at least `role`: disabled, with the reason as its tooltip, for lower roles. */
export function button(text, onclick, { role = null, kind = "", title = null, type = "button", ...attrs } = {}) {
  const allowed = !role || can(role);
  const b = h("button", { type, class: `btn ${kind}`.trim(), title: allowed ? title : `Needs the ${role} role; you are ${current.role}.`,
    disabled: !allowed, "data-needs": role, ...attrs }, text);
  if (allowed && onclick) b.addEventListener("click", async (ev) => {
    if (b.dataset.busy) return;
    b.dataset.busy = "1"; b.classList.add("busy");
    try { await onclick(ev); } catch (e) { showError(e); } finally { delete b.dataset.busy; b.classList.remove("busy"); }
  });
  return b;
}

/** Disables every change control inside `root` for roles below `role` (forms built by hand). */
export function guard(root, role = "editor") {
  if (can(role)) return root;
  for (const el of root.querySelectorAll("input, select, textarea, button")) {
    if (el.dataset.readonlyOk !== undefined) continue;
    el.disabled = true;
    el.title = `Needs the ${role} role; you are ${current.role}.`;
  }
  return root;
}

// ---------------------------------------------------------- feedback ----
export function toast(message, kind = "info", ms = 4000) {
  let box = document.getElementById("toasts");
  if (!box) { box = h("div", { id: "toasts", role: "status" }); document.body.append(box); }
  const t = h("div", { class: `toast ${kind}` }, message);
  box.append(t);
  setTimeout(() => t.remove(), ms);
}

/** An error from the API (message and fix) or from the browser, as a toast and a returned block. */
export function showError(e) {
  console.error(e);
  toast(e.message || String(e), "error", 8000);
  return errorBox(e);
}

export function errorBox(e) {
  return h("div", { class: "error-box", role: "alert" },
    h("strong", {}, e.status ? `${e.status} ${e.kind || "error"}: ` : "Error: "), e.message || String(e),
    e.fix ? h("div", { class: "fix" }, "Fix: ", e.fix) : null);
}

export function empty(title, text, ...actions) {
  return h("div", { class: "empty" }, h("h3", {}, title), text ? h("p", {}, text) : null,
    actions.length ? h("div", { class: "actions" }, actions) : null);
}

export function spinner(text = "Loading…") { return h("div", { class: "loading" }, h("span", { class: "spin" }), text); }

/** A progress bar with a label, rate and ETA; update({done, total, unit, stage}). */
export function progress(label = "") {
  const bar = h("div", { class: "bar-fill" });
  const text = h("span", { class: "bar-text" }, label);
  const el = h("div", { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100 },
    h("div", { class: "bar" }, bar), text);
  const t0 = performance.now();
  el.update = ({ done = 0, total = null, unit = "", stage = "", message = "" } = {}) => {
    const frac = total ? Math.min(1, done / total) : null;
    bar.style.width = frac === null ? "100%" : `${(frac * 100).toFixed(1)}%`;
    bar.classList.toggle("indeterminate", frac === null);
    el.setAttribute("aria-valuenow", frac === null ? "" : Math.round(frac * 100));
    const secs = (performance.now() - t0) / 1000;
    const rate = secs > 0.5 && done ? done / secs : null;
    const eta = rate && total ? (total - done) / rate : null;
    text.textContent = [stage || label, total ? `${fmt(done)}/${fmt(total)} ${unit}` : done ? `${fmt(done)} ${unit}` : "",
      rate ? `${fmt(rate, 1)} ${unit || "it"}/s` : "", eta !== null ? `ETA ${duration(eta)}` : "", message]
      .filter(Boolean).join(" · ");
  };
  return el;
}

/** A modal confirmation; resolves true when confirmed. `body` is a node or text. */
export function confirmDialog({ title, body, confirm = "Confirm", danger = false }) {
  return new Promise((resolve) => {
    const close = (v) => { dlg.close(); dlg.remove(); resolve(v); };
    const ok = h("button", { type: "button", class: `btn ${danger ? "danger" : "primary"}`, onclick: () => close(true) }, confirm);
    const dlg = h("dialog", { class: "modal", "aria-label": title },
      h("h3", {}, title), h("div", { class: "modal-body" }, body),
      h("div", { class: "actions" }, h("button", { type: "button", class: "btn", onclick: () => close(false) }, "Cancel"), ok));
    dlg.addEventListener("cancel", (e) => { e.preventDefault(); close(false); });
    document.body.append(dlg);
    dlg.showModal();
    ok.focus();
  });
}

// --------------------------------------------------------- tables etc ----
/** columns: [{key, label, render?(row), num?}]; rows: objects. onRow(row) makes rows clickable. */
export function table(columns, rows, { onRow = null, empty: emptyText = "Nothing here yet.", caption = null } = {}) {
  if (!rows.length) return h("p", { class: "muted" }, emptyText);
  return h("table", { class: "table" }, caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : "" }, c.label ?? c.key)))),
    h("tbody", {}, rows.map((r) => {
      const tr = h("tr", { class: onRow ? "clickable" : "" }, columns.map((c) => {
        const v = c.render ? c.render(r) : r[c.key];
        return h("td", { class: c.num ? "num" : "" }, v === null || v === undefined ? "—" : (c.num && typeof v === "number" ? fmt(v, c.digits ?? 0) : v));
      }));
      if (onRow) { tr.tabIndex = 0; tr.addEventListener("click", () => onRow(r)); tr.addEventListener("keydown", (e) => { if (e.key === "Enter") onRow(r); }); }
      return tr;
    })));
}

export function card(title, ...children) {
  return h("section", { class: "card" }, title ? h("h2", {}, title) : null, children);
}

export function stat(label, value, note = null) {
  return h("div", { class: "stat" }, h("div", { class: "stat-value" }, value), h("div", { class: "stat-label" }, label),
    note ? h("div", { class: "stat-note" }, note) : null);
}

export function badge(text, kind = "") { return h("span", { class: `badge ${kind}`.trim() }, text); }

export function field(label, input, help = null) {
  return h("label", { class: "field" }, h("span", { class: "field-label" }, label), input, help ? h("small", { class: "help" }, help) : null);
}

export function select(options, value = null, attrs = {}) {
  return h("select", attrs, options.map((o) => {
    const [v, t] = Array.isArray(o) ? o : [o, o];
    return h("option", { value: v ?? "", selected: v === value }, t);
  }));
}

export function tabs(items, active) {
  return h("nav", { class: "tabs" }, items.map(([href, text]) => h("a", { href, class: href === active ? "active" : "" }, text)));
}

// ------------------------------------------------------------ format ----
export function fmt(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  return Number(n).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}
export function pct(x, digits = 1) { return x === null || x === undefined ? "—" : `${(x * 100).toFixed(digits)}%`; }
export function duration(s) {
  if (s === null || s === undefined) return "—";
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}
export function when(epochOrIso) {
  if (!epochOrIso) return "—";
  const d = typeof epochOrIso === "number" ? new Date(epochOrIso * 1000) : new Date(epochOrIso);
  return d.toISOString().replace("T", " ").slice(0, 16) + " UTC";
}
export function truncate(s, n = 160) { s = s ?? ""; return s.length > n ? s.slice(0, n - 1) + "…" : s; }
