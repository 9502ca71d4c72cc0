// The REST API, as the browser calls it: same origin, signed by the HttpOnly session cookie.
// Every change also carries X-Inhouse-Client, which the server demands of cookie-signed changes (CSRF).

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status; this.kind = body?.error || "error"; this.fix = body?.fix || null; this.body = body;
  }
}

const HEADERS = { "X-Inhouse-Client": "web-ui", Accept: "application/json" };
let onUnauthorized = () => {};
export function whenSignedOut(fn) { onUnauthorized = fn; }

export function qs(query) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null && v !== "") p.append(k, v);
  const s = p.toString();
  return s ? `?${s}` : "";
}

async function request(method, path, { query, json, form } = {}) {
  const init = { method, headers: { ...HEADERS }, credentials: "same-origin" };
  if (json !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(json); }
  if (form !== undefined) init.body = form;
  let res;
  try { res = await fetch(path + qs(query), init); } catch (e) {
    throw new ApiError(0, { error: "offline", message: `could not reach the inhouse server (${e.message}).`,
      fix: "Check that inhouse serve is still running, then reload the page." });
  }
  const type = res.headers.get("content-type") || "";
  const body = type.includes("json") ? await res.json() : await res.text();
  if (res.status === 401 && path !== "/session") onUnauthorized();
  if (!res.ok) throw new ApiError(res.status, typeof body === "object" ? body : { message: body });
  return body;
}

export const api = {
  get: (path, query) => request("GET", path, { query }),
  post: (path, json, query) => request("POST", path, { json, query }),
  put: (path, json, query) => request("PUT", path, { json, query }),
  patch: (path, json, query) => request("PATCH", path, { json, query }),
  del: (path, query) => request("DELETE", path, { query }),
  form: (path, form, query) => request("POST", path, { form, query }),
};

/** Upload a multipart form with upload progress (fetch cannot report it). onProgress(sentBytes, totalBytes). */
export function upload(path, form, onProgress = () => {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    for (const [k, v] of Object.entries(HEADERS)) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : null);
    xhr.onerror = () => reject(new ApiError(0, { message: "the upload was interrupted.", fix: "Check the server, then retry." }));
    xhr.onload = () => {
      let body; try { body = JSON.parse(xhr.responseText); } catch { body = { message: xhr.responseText }; }
      if (xhr.status === 401) onUnauthorized();
      xhr.status < 300 ? resolve(body) : reject(new ApiError(xhr.status, body));
    };
    xhr.send(form);
  });
}

/**
 * Follows a job through its server-sent events until it ends.
 * onEvent(job) gets each progress snapshot; resolves with the final job (status done) or rejects with an
 * ApiError carrying the job's error (failed, cancelled).
 */
export function watchJob(jobId, onEvent = () => {}) {
  return new Promise((resolve, reject) => {
    const es = new EventSource(`/jobs/${jobId}/events`);
    let ended = false;
    const finish = (job) => {
      ended = true; es.close();
      if (job.status === "done") resolve(job);
      else reject(Object.assign(new ApiError(409, job.error || { error: job.status, message: `job ${jobId} ${job.status}.` }), { job }));
    };
    es.addEventListener("progress", (e) => onEvent(JSON.parse(e.data)));
    es.addEventListener("end", (e) => { const job = JSON.parse(e.data); onEvent(job); finish(job); });
    es.onerror = async () => {
      if (ended) return;
      es.close();
      // the stream broke (server restart, proxy): fall back to polling the job until it ends
      try {
        for (;;) {
          const job = await api.get(`/jobs/${jobId}`);
          onEvent(job);
          if (["done", "failed", "cancelled"].includes(job.status)) return finish(job);
          await new Promise((r) => setTimeout(r, 1000));
        }
      } catch (err) { reject(err); }
    };
  });
}
