// Overview: datasets, models and recent jobs, with the next step for a first-time user.
import { api } from "../api.js";
import { h, card, table, empty, stat, badge, fmt, when, can } from "../dom.js";

export async function render(view) {
  const [ds, models, jobs] = await Promise.all([api.get("/datasets"), api.get("/models"), api.get("/jobs", { limit: 8 })]);
  const datasets = ds.datasets, trained = models.models || [];
  const names = [...new Set(trained.map((m) => m.name))];
  const running = (jobs.jobs || []).filter((j) => j.status === "running" || j.status === "queued").length;
  view.append(h("div", { class: "page-head" }, h("h1", {}, "Overview"),
    h("div", { class: "actions" }, can("editor") ? h("a", { class: "btn primary", href: "#/import" }, "Import data") : null)));
  view.append(h("div", { class: "stats" }, stat("datasets", fmt(datasets.length)),
    stat("documents", fmt(datasets.reduce((a, d) => a + d.rows, 0))), stat("trained models", fmt(names.length)),
    stat("versions", fmt(trained.length)), stat("jobs running", fmt(running))));
  if (!datasets.length) {
    view.append(empty("No datasets yet — import a CSV or run the demo",
      "Upload a CSV, TSV, JSON Lines or Parquet file of your texts (e.g. customer conversations), or fill a workspace " +
      "with the demo's contact-center corpus on the server: inhouse demo",
      can("editor") ? h("a", { class: "btn primary", href: "#/import" }, "Import a file") : h("span", { class: "muted" }, "An editor can import data.")));
  } else {
    view.append(card("Datasets", table([
      { key: "name", label: "Dataset", render: (d) => h("a", { href: `#/datasets/${encodeURIComponent(d.name)}` }, d.name) },
      { key: "rows", label: "Documents", num: true },
      { key: "quarantined", label: "Quarantined", num: true },
      { key: "created_at", label: "Created", render: (d) => when(d.created_at) },
      { key: "next", label: "", render: (d) => h("span", { class: "row" },
        h("a", { href: `#/datasets/${encodeURIComponent(d.name)}` }, "Explore"),
        h("a", { href: `#/datasets/${encodeURIComponent(d.name)}/label` }, "Label"),
        h("a", { href: `#/train?dataset=${encodeURIComponent(d.name)}` }, "Train"),
        h("a", { href: `#/analyze?dataset=${encodeURIComponent(d.name)}` }, "Analyze")) },
    ], datasets)));
  }
  const grid = h("div", { class: "grid-2" });
  grid.append(card("Models", names.length ? table([
    { key: "name", label: "Model", render: (m) => h("a", { href: `#/models/${encodeURIComponent(m.name)}` }, m.name) },
    { key: "versions", label: "Versions", num: true },
    { key: "production", label: "production", render: (m) => m.production ? badge(`@${m.production}`, "good") : badge("none", "muted") },
  ], names.map((n) => {
    const vs = trained.filter((m) => m.name === n);
    const prod = vs.find((v) => (v.aliases || []).includes("production"));
    return { name: n, versions: vs.length, production: prod ? prod.version : null };
  })) : h("p", { class: "muted" }, "No trained models yet. Label a dataset, then train one: ", h("a", { href: "#/train" }, "Train"), ".")));
  grid.append(card("Recent jobs", table([
    { key: "id", label: "Job", render: (j) => h("a", { href: "#/jobs" }, `#${j.id}`) },
    { key: "kind", label: "Kind" },
    { key: "status", label: "Status", render: (j) => badge(j.status, j.status === "done" ? "good" : j.status === "failed" ? "bad" : "info") },
    { key: "created_at", label: "Created", render: (j) => when(j.created_at) },
  ], jobs.jobs || [], { empty: "No jobs yet." })));
  view.append(grid);
}
