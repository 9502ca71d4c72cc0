// Access: who you are and what your role may do; for admins, API tokens (create: the secret shown once; revoke
// behind a confirmation) and the audit log (who did what, when, to what; filtered by user and action).
import { api } from "../api.js";
import { h, clear, card, table, badge, field, select, button, can, principal, when, truncate, errorBox, toast, confirmDialog } from "../dom.js";

const ROLE_TEXT = {
  viewer: "sees everything: datasets, topics, models, evaluations, runs and jobs; changes nothing.",
  editor: "also imports data, labels, trains, moves aliases, runs pipelines and cancels jobs.",
  admin: "also manages API tokens and reads the audit log.",
};
const enc = encodeURIComponent;

export async function render(view) {
  view.classList.add("screen-access");
  const me = principal();
  view.append(h("div", { class: "page-head" }, h("h1", {}, "Access")));
  view.append(card("You",
    h("p", { class: "whoami" }, "Signed in as ", h("strong", {}, me.name), " with the role ", badge(me.role, me.role === "viewer" ? "muted" : "info"), "."),
    h("ul", { class: "roles" }, Object.entries(ROLE_TEXT).map(([r, t]) =>
      h("li", { class: r === me.role ? "mine" : "" }, badge(r, r === me.role ? "info" : "muted"), " ", t))),
    h("p", { class: "muted small" }, "Your token is kept in an HttpOnly session cookie for 12 hours; scripts on this page cannot read it. ",
      "Everything here is also in the REST API (/docs) and the CLI (inhouse tokens, inhouse audit).")));
  if (!can("admin")) {
    view.append(card("Audit log and API tokens", h("p", { class: "needs-admin" },
      "The audit log and API tokens need an admin. Ask an admin to look something up, or for a token with another role ",
      "(on the server: ", h("code", {}, "inhouse tokens create NAME --role editor"), ").")));
    return;
  }
  const tokensBox = h("div");
  const auditBox = h("div");
  const reloadAudit = await audit(auditBox);
  await tokens(tokensBox, reloadAudit);
  view.append(tokensBox, auditBox);
}

// ---------------------------------------------------------- tokens ----
async function tokens(box, reloadAudit) {
  const list = h("div");
  const secret = h("div", { class: "secret-area" });
  const name = h("input", { name: "token-name", placeholder: "e.g. dashboard-bot", maxlength: 64, required: true });
  const role = select(["viewer", "editor", "admin"], "viewer", { name: "token-role" });
  const load = async () => {
    const ts = (await api.get("/tokens")).tokens;
    clear(list, table([
      { key: "name", label: "Name" },
      { key: "role", label: "Role", render: (t) => badge(t.role, t.role === "admin" ? "warn" : t.role === "editor" ? "info" : "muted") },
      { key: "prefix", label: "Starts with", render: (t) => h("code", {}, `${t.prefix}…`) },
      { key: "created_by", label: "Created by" },
      { key: "created_at", label: "Created", render: (t) => when(t.created_at) },
      { key: "last_used_at", label: "Last used", render: (t) => when(t.last_used_at) },
      { key: "revoke", label: "", render: (t) => button("Revoke", async () => {
        const ok = await confirmDialog({ title: `Revoke the token ${t.name}?`, danger: true, confirm: "Revoke",
          body: h("div", {}, h("p", {}, `Every program and person using the ${t.role} token `, h("strong", {}, t.name),
            " is refused from the next request on."),
            t.name === principal().name ? h("p", { class: "access-warn-own" }, "This is the token you are signed in with: you will be signed out.") : null,
            h("p", { class: "muted" }, "This cannot be undone; create a new token instead.")) });
        if (!ok) return;
        await api.del(`/tokens/${enc(t.name)}`);
        toast(`Token ${t.name} revoked.`, "good");
        await load(); await reloadAudit();
      }, { role: "admin", kind: "small danger", "data-revoke": t.name }) },
    ], ts, { empty: "No live tokens." }));
  };
  const create = button("Create token", async () => {
    clear(secret);
    try {
      const t = await api.post("/tokens", { name: name.value.trim(), role: role.value });
      const out = h("input", { class: "secret", readonly: true, value: t.token, "aria-label": "the new token", "data-readonly-ok": "" });
      const copy = button("Copy", async () => {
        out.select();
        try { await navigator.clipboard.writeText(t.token); } catch { document.execCommand("copy"); }
        toast("Copied.", "good", 2000);
      }, { kind: "small" });
      clear(secret, h("div", { class: "secret-box", role: "status" },
        h("strong", {}, `The ${t.role} token ${t.name}: copy it now — it is shown only this once.`),
        h("div", { class: "row" }, out, copy),
        h("small", { class: "muted" }, "Programs send it as Authorization: Bearer TOKEN; people paste it on the sign-in page.")));
      name.value = "";
      await load(); await reloadAudit();
    } catch (e) { secret.append(errorBox(e)); throw e; }
  }, { role: "admin", kind: "primary" });
  clear(box, card("API tokens",
    h("form", { class: "token-form row", onsubmit: (e) => { e.preventDefault(); create.click(); } },
      field("Name", name), field("Role", role), create),
    secret, list));
  await load();
}

// ----------------------------------------------------------- audit ----
async function audit(box) {
  const user = h("input", { name: "audit-user", placeholder: "any user", "data-readonly-ok": "" });
  const action = h("input", { name: "audit-action", placeholder: "e.g. token. or models.", list: "audit-actions", "data-readonly-ok": "" });
  const actions = h("datalist", { id: "audit-actions" });
  const list = h("div");
  const more = h("div");
  let offset = 0;
  const LIMIT = 50;
  const load = async (append = false) => {
    if (!append) offset = 0;
    const ev = (await api.get("/audit", { user: user.value.trim() || null, action: action.value.trim() || null, limit: LIMIT, offset })).events;
    const rows = table([
      { key: "at", label: "When", render: (e) => when(e.at) },
      { key: "user", label: "Who" },
      { key: "action", label: "Action", render: (e) => h("code", {}, e.action) },
      { key: "target", label: "Target" },
      { key: "details", label: "Details", render: (e) => h("span", { class: "muted small" }, truncate(Object.entries(e.details || {}).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" "), 120)) },
    ], ev, { empty: "No audit events match." });
    if (append) { const tb = rows.querySelector("tbody"); if (tb) list.querySelector("tbody")?.append(...tb.children); } else clear(list, rows);
    const seen = new Set([...actions.children].map((o) => o.value));
    for (const e of ev) for (const a of [e.action, e.action.split(".")[0] + "."]) if (!seen.has(a)) { seen.add(a); actions.append(h("option", { value: a })); }
    offset += ev.length;
    clear(more, ev.length === LIMIT ? button("Load more", () => load(true), { kind: "small" }) : null);
  };
  const form = h("form", { class: "audit-filter row", onsubmit: (e) => { e.preventDefault(); load(); } },
    field("User", user), field("Action (prefix)", action), actions,
    h("button", { type: "submit", class: "btn", "data-readonly-ok": "" }, "Filter"),
    button("Clear", () => { user.value = ""; action.value = ""; return load(); }, { kind: "link" }));
  clear(box, card("Audit log", h("p", { class: "muted small" }, "Every change, by whom and when: tokens, imports, labels, trainings, alias moves, jobs and their cancels."), form, list, more));
  await load();
  return () => load();
}
