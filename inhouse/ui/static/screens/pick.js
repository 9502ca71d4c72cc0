// #/explore and #/label from the navigation: straight to the dataset last worked on (or the only one), else a choice.
import { api } from "../api.js";
import { h, card, table, empty, can, fmt } from "../dom.js";

export async function render(view, params, query, route) {
  const what = route?.path === "/label" ? "label" : "explore";
  const target = (name) => `#/datasets/${encodeURIComponent(name)}${what === "label" ? "/label" : ""}`;
  const { datasets } = await api.get("/datasets");
  const last = localStorage.getItem("inhouse.dataset");
  const go = datasets.length === 1 ? datasets[0].name : datasets.some((d) => d.name === last) ? last : null;
  if (go) { location.replace(target(go)); return; }
  view.append(h("div", { class: "page-head" }, h("h1", {}, what === "label" ? "Label: choose a dataset" : "Explore: choose a dataset")));
  if (!datasets.length) {
    view.append(empty("No datasets yet — import a CSV or run the demo", "Import a file of your texts first; then its topics and documents are here.",
      can("editor") ? h("a", { class: "btn primary", href: "#/import" }, "Import a file") : null));
    return;
  }
  view.append(card(null, table([
    { key: "name", label: "Dataset", render: (d) => h("a", { href: target(d.name) }, d.name) },
    { key: "rows", label: "Documents", num: true, render: (d) => fmt(d.rows) },
  ], datasets, { onRow: (d) => { location.hash = target(d.name); } })));
}
