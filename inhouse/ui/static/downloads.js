// Download links for a table in the formats people open: the server converts it (?format=csv|xlsx|parquet),
// and cells that a spreadsheet would run as a formula (=, +, -, @) arrive as text.
import { h } from "./dom.js";

export const FORMATS = [["csv", "CSV"], ["xlsx", "Excel"], ["parquet", "Parquet"]];

export function formatLinks(href, stem) {
  const sep = href.includes("?") ? "&" : "?";
  return h("span", { class: "formats small" }, " as ", FORMATS.flatMap(([f, label], i) => [i ? " · " : "",
    h("a", { href: `${href}${sep}format=${f}`, download: `${stem}.${f}`, "data-format": f }, label)]));
}
