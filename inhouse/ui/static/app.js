// The shell: sign-in, navigation, and a hash router that loads one screen module per route.
import { api, whenSignedOut } from "./api.js";
import { h, clear, setPrincipal, principal, badge, errorBox, spinner, field, button } from "./dom.js";

// [pattern, module, nav key]; ":name" captures a path segment (decoded)
const ROUTES = [
  ["/", "home", "home"],
  ["/datasets", "home", "home"],
  ["/import", "import", "import"],
  ["/explore", "pick", "explore"],
  ["/label", "pick", "label"],
  ["/datasets/:name", "explore", "explore"],
  ["/datasets/:name/docs/:doc", "explore", "explore"],
  ["/datasets/:name/label", "label", "label"],
  ["/train", "train", "train"],
  ["/train/:job", "train", "train"],
  ["/models", "deploy", "deploy"],
  ["/models/:name", "deploy", "deploy"],
  ["/analyze", "analyze", "analyze"],
  ["/analyze/:run", "analyze", "analyze"],
  ["/jobs", "jobs", "jobs"],
  ["/access", "access", "access"],
];

const NAV = [
  ["home", "#/", "Overview"], ["import", "#/import", "Import"], ["explore", "#/explore", "Explore"],
  ["label", "#/label", "Label"], ["train", "#/train", "Train"], ["deploy", "#/models", "Deploy"],
  ["analyze", "#/analyze", "Analyze"], ["jobs", "#/jobs", "Jobs"], ["access", "#/access", "Access"],
];

export function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#/, "") || "/";
  const [path, search = ""] = raw.split("?");
  const query = Object.fromEntries(new URLSearchParams(search));
  const parts = path.split("/").filter(Boolean);
  for (const [pattern, module, nav] of ROUTES) {
    const pp = pattern.split("/").filter(Boolean);
    if (pp.length !== parts.length) continue;
    const params = {};
    if (pp.every((p, i) => (p.startsWith(":") ? ((params[p.slice(1)] = decodeURIComponent(parts[i])), true) : p === parts[i]))) {
      return { module, nav, params, query, path };
    }
  }
  return null;
}

const root = document.getElementById("app");
let cleanup = null;
let seq = 0;

function shell(navKey) {
  const me = principal();
  const main = h("main", { id: "view", tabindex: "-1" });
  clear(root,
    h("header", { class: "topbar" },
      h("a", { href: "#/", class: "brand" }, h("img", { src: "/ui/favicon.svg", alt: "" }), "inhouse"),
      h("nav", { class: "nav", "aria-label": "main" }, NAV.map(([k, href, text]) =>
        h("a", { href, class: k === navKey ? "active" : "", "data-nav": k }, text))),
      h("div", { class: "who" }, h("span", { class: "user" }, me.name), " ", badge(me.role, me.role === "viewer" ? "muted" : "info"),
        button("Keys ?", () => showKeys(), { kind: "small link", title: "Keyboard shortcuts (?)" }),
        button("Sign out", async () => { await api.del("/session"); location.hash = "#/signin"; location.reload(); }, { kind: "small link" }))),
    me.role === "viewer" ? h("div", { class: "banner" }, "You are signed in as a viewer: you can see everything; changes need an editor or admin token.") : null,
    main);
  return main;
}

async function route() {
  const mine = ++seq;
  if (cleanup) { try { cleanup(); } catch (e) { console.error(e); } cleanup = null; }
  if (location.hash.startsWith("#/signin")) return signIn();
  let me;
  try { me = await api.get("/me"); } catch (e) {
    if (mine !== seq) return;
    if (e.status === 401) return signIn();
    return clear(root, errorBox(e));
  }
  if (mine !== seq) return;  // a newer navigation started while this one waited: it draws the page, not this one
  setPrincipal(me);
  const r = parseHash();
  if (!r) { const v = shell(null); return clear(v, errorBox({ message: `no screen at ${location.hash}.`, fix: "Go to the overview." })); }
  const view = shell(r.nav);
  view.append(spinner());
  try {
    const mod = await import(`./screens/${r.module}.js`);
    if (mine !== seq) return;
    clear(view);
    if (r.params.name) localStorage.setItem("inhouse.dataset", r.params.name);  // where Explore and Label lead next
    const out = await mod.render(view, r.params, r.query, r);
    if (mine !== seq) { if (typeof out === "function") out(); return; }
    cleanup = typeof out === "function" ? out : null;
    view.focus({ preventScroll: true });
  } catch (e) {
    if (mine !== seq) return;
    clear(view, errorBox(e));
  }
}

function signIn() {
  document.body.dataset.role = "";
  const input = h("input", { type: "password", name: "token", autocomplete: "current-password", placeholder: "ih_…", required: true, "data-readonly-ok": "" });
  const msg = h("div");
  const form = h("form", { class: "signin card" },
    h("h1", {}, h("img", { src: "/ui/favicon.svg", alt: "" }), " inhouse"),
    h("p", { class: "muted" }, "Own your language models: discover topics, label, fine-tune, deploy and analyze — on this machine."),
    field("API token", input, "Ask an admin, or create one on the server: inhouse tokens create NAME --role editor"),
    msg, h("button", { type: "submit", class: "btn primary" }, "Sign in"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(msg);
    try {
      await api.post("/session", { token: input.value });
      input.value = "";
      let next = sessionStorage.getItem("inhouse.next") || "#/";
      sessionStorage.removeItem("inhouse.next");
      if (next.startsWith("#/signin")) next = "#/";
      if (location.hash === next) route();
      else location.hash = next;  // the hashchange routes, once
    } catch (err) { clear(msg, errorBox(err)); }
  });
  clear(root, h("div", { class: "signin-wrap" }, form));
  input.focus();
}

// ------------------------------------------------------------ keyboard ----
// "g" then a letter goes to a screen; "?" lists every key. Screens add their own (Label: 1-9 u s n; a document: j k).
const GO = { o: ["#/", "Overview"], i: ["#/import", "Import"], e: ["#/explore", "Explore"], l: ["#/label", "Label"],
  t: ["#/train", "Train"], d: ["#/models", "Deploy"], a: ["#/analyze", "Analyze"], j: ["#/jobs", "Jobs"], c: ["#/access", "Access"] };
const SCREEN_KEYS = [["/", "search (Explore)"], ["1–9", "give the numbered label (Label, one at a time)"], ["u", "undo the last label"],
  ["s", "skip this document"], ["n", "a new label"], ["j / k, ← / →", "next / previous document"], ["Esc", "close a dialog"]];
let gAt = 0;

function showKeys() {
  if (document.querySelector("dialog.keys")) return;
  const rows = [...Object.entries(GO).map(([k, [, name]]) => [`g then ${k}`, name]), ...SCREEN_KEYS];
  const dlg = h("dialog", { class: "modal keys", "aria-label": "Keyboard shortcuts" }, h("h3", {}, "Keyboard shortcuts"),
    h("table", { class: "table" }, h("tbody", {}, rows.map(([k, what]) => h("tr", {}, h("td", {}, h("kbd", {}, k)), h("td", {}, what))))),
    h("div", { class: "actions" }, h("button", { type: "button", class: "btn", onclick: () => { dlg.close(); dlg.remove(); } }, "Close")));
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
}

window.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || !document.querySelector(".topbar")) return;
  if (e.target.closest?.("input, textarea, select, [contenteditable], dialog")) return;
  if (e.key === "?") { e.preventDefault(); e.stopImmediatePropagation(); showKeys(); return; }
  if (e.key === "g") { gAt = Date.now(); e.stopImmediatePropagation(); return; }
  if (gAt && Date.now() - gAt < 1500 && GO[e.key]) {
    e.preventDefault(); e.stopImmediatePropagation();  // the screen's own keys (j, l, ...) do not also fire
    gAt = 0; location.hash = GO[e.key][0];
    return;
  }
  gAt = 0;
}, { capture: true });

whenSignedOut(() => {
  if (!location.hash.startsWith("#/signin")) { sessionStorage.setItem("inhouse.next", location.hash || "#/"); location.hash = "#/signin"; }
});
window.addEventListener("hashchange", route);
route();
