// A running job on screen: one progress bar per task (with the server's rate and ETA), status and Cancel.
import { api, watchJob } from "./api.js";
import { h, clear, button, badge, duration, fmt, errorBox } from "./dom.js";

/**
 * Renders job `jobId` into a panel and follows it. Returns {el, done}: `done` resolves with the finished job
 * (its `result`), or rejects with the job's error (the panel shows it too).
 */
export function jobPanel(jobId, title = "Working") {
  const status = badge("queued", "muted");
  const tasks = h("div", { class: "job-tasks" });
  const cancel = button("Cancel", async () => { await api.post(`/jobs/${jobId}/cancel`); }, { role: "editor", kind: "small" });
  const el = h("div", { class: "job-panel", "data-job": jobId },
    h("div", { class: "job-head" }, h("strong", {}, title), " ", h("span", { class: "muted" }, `job ${jobId}`), " ", status, cancel),
    tasks);
  const show = (job) => {
    status.textContent = job.status;
    status.className = `badge ${job.status === "done" ? "good" : job.status === "failed" ? "bad" : job.status === "running" ? "info" : "muted"}`;
    const list = job.progress?.tasks || [];
    clear(tasks, list.map((t) => {
      const frac = t.total ? Math.min(1, t.done / t.total) : null;
      return h("div", { class: "progress" },
        h("div", { class: "bar" }, h("div", { class: `bar-fill ${frac === null && t.state !== "end" ? "indeterminate" : ""}`,
          style: { width: frac === null ? "100%" : `${(frac * 100).toFixed(1)}%` } })),
        h("span", { class: "bar-text" }, [t.desc, t.total ? `${fmt(t.done)}/${fmt(t.total)} ${t.unit}` : `${fmt(t.done)} ${t.unit}`,
          t.rate ? `${fmt(t.rate, 1)} ${t.unit}/s` : "", t.eta !== null && t.eta !== undefined && t.state !== "end" ? `ETA ${duration(t.eta)}` : "",
          t.state === "end" ? "done" : ""].filter(Boolean).join(" · ")));
    }));
  };
  const done = watchJob(jobId, show).then((job) => { cancel.remove(); return job; }, (err) => {
    cancel.remove(); el.append(errorBox(err)); throw err;
  });
  return { el, done };
}
