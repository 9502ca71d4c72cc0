// Jobs: every background job (kind, status, who, created, duration), refreshed live while one runs; a job's
// progress (jobPanel, with Cancel for editors), a failed job's message and fix, and a classify job's output file.
import { formatLinks } from "../downloads.js";
import { api } from "../api.js";
import { jobPanel } from "../job.js";
import { h, clear, card, table, badge, select, button, duration, when, errorBox, empty, truncate } from "../dom.js";

const KINDS = ["", "train", "retrain", "embed", "classify", "discover", "evaluate", "summarize", "pipeline", "pipeline-file", "diff"];
const STATUSES = ["", "queued", "running", "done", "failed", "cancelled"];
const ACTIVE = new Set(["queued", "running"]);
const tone = (s) => (s === "done" ? "good" : s === "failed" ? "bad" : s === "running" ? "info" : s === "cancelled" ? "warn" : "muted");

function took(j) {
  if (!j.started_at) return null;
  return (j.finished_at || Date.now() / 1000) - j.started_at;
}

function what(j) {
  const p = j.params || {};
  return truncate([p.dataset && `dataset ${p.dataset}`, p.model && `model ${p.model}`, p.name && `name ${p.name}`,
    p.args?.method && `method ${p.args.method}`, p.every && `per ${p.every}`].filter(Boolean).join(" · "), 90);
}

function outcome(j) {
  if (j.status === "failed" && j.error) return h("span", { class: "job-error" }, truncate(j.error.message || String(j.error), 90));
  if (j.status !== "done") return j.progress?.current ? h("span", { class: "muted" }, j.progress.current) : null;
  if (j.kind === "classify" && j.result?.output) return h("span", {}, h("a", { href: `/jobs/${j.id}/output`, download: "", "data-output": j.id }, "Download output"),
    formatLinks(`/jobs/${j.id}/output`, `predictions-job${j.id}`));
  if (j.kind === "classify") return h("a", { href: `#/datasets/${encodeURIComponent(j.params?.dataset || "")}?model=${encodeURIComponent(j.result?.model || "")}` }, "Explore the predictions");
  if (j.kind === "diff" && j.result?.new) return h("a", { href: `#/models/${encodeURIComponent(j.result.new.ref.split("@")[0])}` }, `${j.result.flipped} of ${j.result.documents} flip`);
  if (j.kind === "pipeline-file" && j.result?.skipped) return h("span", { class: "muted" }, truncate(j.result.skipped, 90));
  if ((j.kind === "pipeline" || j.kind === "pipeline-file") && j.result?.run_id) return h("a", { href: `#/analyze/${j.result.run_id}` }, `Dashboard of run #${j.result.run_id}`);
  if ((j.kind === "train" || j.kind === "retrain") && j.result?.ref) return h("a", { href: `#/models/${encodeURIComponent(j.result.ref.split("@")[0])}` }, j.result.ref);
  return h("span", { class: "muted" }, "done");
}

export async function render(view, params, query) {
  view.classList.add("screen-jobs");
  const kind = select(KINDS.map((k) => [k, k || "any kind"]), query.kind || "", { name: "kind", "data-readonly-ok": "" });
  const status = select(STATUSES.map((s) => [s, s || "any status"]), query.status || "", { name: "status", "data-readonly-ok": "" });
  const listBox = h("div");
  const detail = h("div", { class: "job-detail" });
  const live = h("span", { class: "muted small live" });
  let timer = null, selected = null, stopped = false;

  const show = (j) => {
    selected = j.id;
    const title = `${j.kind} job #${j.id}`;
    if (ACTIVE.has(j.status)) {
      const p = jobPanel(j.id, title);
      p.done.then(refresh, refresh);
      clear(detail, card(null, p.el, h("p", { class: "muted small" }, what(j), ` · by ${j.user || "—"} · created ${when(j.created_at)}`)));
    } else {
      clear(detail, card(title,
        h("p", {}, badge(j.status, tone(j.status)), " ", what(j), ` · by ${j.user || "—"} · created ${when(j.created_at)} · took ${duration(took(j))}`),
        j.status === "failed" && j.error ? errorBox({ message: j.error.message || String(j.error), fix: j.error.fix, status: null }) : null,
        (j.notes || []).length ? h("ul", { class: "muted small" }, j.notes.map((n) => h("li", {}, `${when(n.at)}: ${n.note}`))) : null,
        h("p", {}, outcome(j))));
    }
    detail.scrollIntoView({ block: "nearest" });
  };

  async function refresh() {
    if (stopped) return;
    clearTimeout(timer);
    let jobs;
    try { jobs = (await api.get("/jobs", { kind: kind.value || null, status: status.value || null, limit: 100 })).jobs; }
    catch (e) { clear(listBox, errorBox(e)); return; }
    if (stopped) return;
    const active = jobs.some((j) => ACTIVE.has(j.status));
    live.textContent = active ? "● live: refreshing every 2 s while a job runs" : "";
    clear(listBox, jobs.length ? table([
      { key: "id", label: "Job", render: (j) => `#${j.id}` },
      { key: "kind", label: "Kind" },
      { key: "status", label: "Status", render: (j) => badge(j.status, tone(j.status)) },
      { key: "what", label: "On", render: (j) => what(j) || "—" },
      { key: "user", label: "Who" },
      { key: "created_at", label: "Created", render: (j) => when(j.created_at) },
      { key: "duration", label: "Duration", render: (j) => duration(took(j)) },
      { key: "outcome", label: "Result", render: outcome },
    ], jobs, { onRow: show }) : empty(kind.value || status.value ? "No jobs match" : "No jobs yet",
      "Long work runs as a job: training, embedding, classifying a dataset, discovering topics, evaluating, pipelines. Start one from Train or Analyze.",
      h("a", { class: "btn", href: "#/train" }, "Train a model"), h("a", { class: "btn", href: "#/analyze" }, "Run a pipeline")));
    if (selected) listBox.querySelector(`tbody tr:nth-child(${jobs.findIndex((j) => j.id === selected) + 1})`)?.classList.add("selected");
    if (active) timer = setTimeout(refresh, 2000);
  }

  kind.addEventListener("change", refresh);
  status.addEventListener("change", refresh);
  view.append(h("div", { class: "page-head" }, h("h1", {}, "Jobs"), live,
    h("div", { class: "actions row" }, kind, status, button("Refresh", refresh, { kind: "small" }))));
  view.append(detail, card(null, listBox));
  await refresh();
  if (query.job) {
    try { show(await api.get(`/jobs/${encodeURIComponent(query.job)}`)); } catch (e) { clear(detail, errorBox(e)); }
  }
  return () => { stopped = true; clearTimeout(timer); };
}
