"""Background jobs: the ``jobs`` table, a progress sink that feeds it, and the worker process pool.

A request that starts long work (training, embedding, classifying a dataset,
discovery, evaluation, summaries) only inserts a ``queued`` row and returns
its id. The :class:`Dispatcher` (one thread in each server process) claims
queued rows atomically and runs each in its own worker process
(``python -m inhouse.server.worker``), at most ``max_workers`` at once. The
worker reports progress through :class:`JobSink` into the row, and writes the
result or the error at the end.

A job is never lost silently: when a server starts, a job that was ``running``
under a server that is gone (killed, crashed, power cut) is queued again and
re-run from the start (every stage is idempotent or cached: a training that
died before saving saved nothing), with a note saying so; after
``MAX_ATTEMPTS`` it is marked ``failed`` with the reason. A worker whose
server dies exits within a second (it watches its parent).

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> job = submit(ws, "embed", {"dataset": "banking77", "model": "minilm-l6"})
    >>> get(ws, job)["status"]
    'queued'
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..errors import Conflict, NotFound, UsageError
from ..progress import Event, Sink
from ..service.jobs import job_kinds
from ..service.schedules import run_due
from ..workspace.files import json_dumps, pid_alive
from ..workspace.store import Workspace, current_user

log = logging.getLogger("inhouse.server.jobs")

KINDS = job_kinds()  # the built-in kinds, for the API schema; submit accepts any registered kind
ACTIVE = ("queued", "running")
FINAL = ("done", "failed", "cancelled")
MAX_ATTEMPTS = 3


class JobCancelled(Exception):
    """Raised inside a worker when someone cancelled its job."""


# ------------------------------------------------------------------ rows ----

def _decode(r) -> dict:
    return {"id": r["id"], "kind": r["kind"], "status": r["status"], "user": r["user"],
            "params": json.loads(r["params"] or "{}"), "progress": json.loads(r["progress"] or "{}"),
            "result": json.loads(r["result"]) if r["result"] else None,
            "error": json.loads(r["error"]) if r["error"] and r["error"].startswith("{") else r["error"],
            "created_at": r["created_at"], "updated_at": r["updated_at"], "started_at": r["started_at"],
            "finished_at": r["finished_at"], "attempts": r["attempts"], "cancel_requested": bool(r["cancel_requested"]),
            "notes": json.loads(r["notes"] or "[]")}


def submit(ws: Workspace, kind: str, params: dict) -> int:
    """Queue a job; returns its id. The acting user is recorded and audited.

    The same job (kind and parameters) already queued or running is returned instead of a second one
    (reloading a page that started a training must not train twice); checked in the same transaction.
    """
    if kind not in job_kinds():
        raise UsageError(f"job kind {kind!r} is not one of {list(job_kinds())}.")
    now = time.time()
    with ws.tx() as db:
        same = db.execute("SELECT id FROM jobs WHERE kind = ? AND params = ? AND status IN ('queued', 'running') "
                          "AND cancel_requested = 0 ORDER BY id LIMIT 1", (kind, json_dumps(params))).fetchone()
        if same is not None:
            return int(same["id"])
        cur = db.execute("INSERT INTO jobs (kind, status, progress, created_at, updated_at, params, user) "
                         "VALUES (?, 'queued', '{}', ?, ?, ?, ?)", (kind, now, now, json_dumps(params), current_user()))
        job_id = int(cur.lastrowid)
        ws.audit(f"job.{kind}", f"job:{job_id}", **{k: v for k, v in params.items() if not isinstance(v, (dict, list))})
    return job_id


def get(ws: Workspace, job_id: int) -> dict:
    r = ws.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if r is None:
        raise NotFound(f"job {job_id} not found.", fix="See the jobs with: GET /jobs")
    return _decode(r)


def listing(ws: Workspace, *, status: str | None = None, kind: str | None = None, limit: int = 50,
            offset: int = 0) -> list[dict]:
    where, args = [], []
    if status:
        where.append("status = ?")
        args.append(status)
    if kind:
        where.append("kind = ?")
        args.append(kind)
    q = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ? OFFSET ?"
    return [_decode(r) for r in ws.db.execute(q, (*args, limit, offset))]


def cancel(ws: Workspace, job_id: int) -> dict:
    """Cancel a queued job at once; ask a running one to stop (its worker is ended)."""
    with ws.tx() as db:
        r = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if r is None:
            raise NotFound(f"job {job_id} not found.", fix="See the jobs with: GET /jobs")
        if r["status"] in FINAL:
            raise Conflict(f"job {job_id} is already {r['status']}; there is nothing to cancel.")
        now = time.time()
        if r["status"] == "queued":
            db.execute("UPDATE jobs SET status = 'cancelled', cancel_requested = 1, finished_at = ?, updated_at = ? "
                       "WHERE id = ?", (now, now, job_id))
        else:
            db.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?", (now, job_id))
        ws.audit("job.cancel", f"job:{job_id}", was=r["status"])
    return get(ws, job_id)


def _add_note(db, job_id: int, note: str) -> None:
    r = db.execute("SELECT notes FROM jobs WHERE id = ?", (job_id,)).fetchone()
    notes = json.loads(r["notes"] or "[]") + [{"at": time.time(), "note": note}]
    db.execute("UPDATE jobs SET notes = ? WHERE id = ?", (json_dumps(notes), job_id))


def finish(ws: Workspace, job_id: int, status: str, *, result: dict | None = None, error: dict | None = None) -> None:
    now = time.time()
    with ws.tx() as db:
        db.execute("UPDATE jobs SET status = ?, result = ?, error = ?, finished_at = ?, updated_at = ? "
                   "WHERE id = ? AND status = 'running'",
                   (status, json_dumps(result) if result is not None else None,
                    json_dumps(error) if error is not None else None, now, now, job_id))


# --------------------------------------------------------------- progress ----

class JobSink(Sink):
    """Progress events into the job's row (at most every ``interval`` s, always at start and end).

    Also the place a worker learns it was cancelled: each write reads the
    row's ``cancel_requested`` and raises :class:`JobCancelled`.
    """

    def __init__(self, ws: Workspace, job_id: int, interval: float = 0.5):
        self.ws, self.job_id, self.interval = ws, job_id, interval
        self._last = 0.0
        self.tasks: dict[str, dict] = {}

    def emit(self, e: Event) -> None:
        self.tasks[e.desc] = {"desc": e.desc, "state": e.kind, "done": e.done, "total": e.total, "unit": e.unit,
                              "elapsed": round(e.elapsed, 3), "rate": round(e.rate, 3),
                              "eta": None if e.eta is None else round(e.eta, 1),
                              "info": {k: v for k, v in e.info.items() if isinstance(v, (int, float, str, bool))}}
        now = time.monotonic()
        if e.kind == "advance" and now - self._last < self.interval:
            return
        self._last = now
        self.write(e.desc)

    def write(self, current: str | None = None) -> None:
        progress = {"current": current, "tasks": list(self.tasks.values())[-8:]}
        cur = self.ws.db.execute("UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ? RETURNING cancel_requested",
                                 (json_dumps(progress), time.time(), self.job_id))
        row = cur.fetchone()
        cur.close()
        if row is not None and row[0]:
            raise JobCancelled(f"job {self.job_id} was cancelled")


# -------------------------------------------------------------- recovery ----

def _is_worker(pid: int | None) -> bool:
    try:
        return b"inhouse.server.worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def recover(ws: Workspace) -> list[dict]:
    """Jobs left ``running`` by a server that is gone: queue them again, or fail them with the reason."""
    out = []
    rows = ws.db.execute("SELECT id, server_pid, worker_pid, attempts, cancel_requested FROM jobs "
                         "WHERE status = 'running'").fetchall()
    for r in rows:
        if r["server_pid"] and r["server_pid"] != os.getpid() and pid_alive(r["server_pid"]):
            continue  # another live server process runs it
        if r["worker_pid"] and pid_alive(r["worker_pid"]) and _is_worker(r["worker_pid"]):
            try:
                os.kill(r["worker_pid"], signal.SIGKILL)  # an orphan from a killed server: it would race the re-run
            except OSError:
                pass
        now = time.time()
        with ws.tx() as db:
            if r["cancel_requested"]:
                status, note = "cancelled", "cancelled; the server stopped before the worker did"
            elif r["attempts"] < MAX_ATTEMPTS:
                status, note = "queued", f"the server stopped while this job ran (attempt {r['attempts']}); queued again"
            else:
                status, note = "failed", (f"the server stopped while this job ran, {r['attempts']} times; "
                                          "not retried again")
            err = json_dumps({"error": "interrupted", "message": note,
                              "fix": "Start the job again once the server runs steadily."}) if status == "failed" else None
            cur = db.execute("UPDATE jobs SET status = ?, worker_pid = NULL, server_pid = NULL, updated_at = ?, "
                             "error = COALESCE(?, error), finished_at = CASE WHEN ? = 'queued' THEN NULL ELSE ? END "
                             "WHERE id = ? AND status = 'running' AND COALESCE(server_pid, 0) = COALESCE(?, 0)",
                             (status, now, err, status, now, r["id"], r["server_pid"]))
            if cur.rowcount:
                _add_note(db, r["id"], note)
                ws.audit("job.recover", f"job:{r['id']}", user="server", status=status, attempts=r["attempts"])
                out.append({"id": r["id"], "status": status, "note": note})
    return out


# ------------------------------------------------------------- dispatcher ----

class Dispatcher:
    """Runs queued jobs in worker processes, at most ``max_workers`` at a time (one thread per server).

    Several server processes on one workspace (``inhouse serve --workers N``) each have a dispatcher, but
    only the one holding the workspace's dispatcher lock (``runs/jobs/dispatcher.lock``, an exclusive
    ``flock``) claims jobs: ``max_workers`` is the total, not per process. When its process ends, the
    lock is free and another process's dispatcher takes over (and recovers what the gone one ran).
    """

    LOCK_NAME = "dispatcher.lock"

    def __init__(self, home: Path, max_workers: int = 1, poll: float = 0.25, worker_threads: int | None = None):
        self.ws = Workspace(home)
        self.max_workers = max(1, max_workers)
        self.poll = poll
        self.worker_threads = worker_threads
        self.procs: dict[int, subprocess.Popen] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None
        self._schedules_at = 0.0

    @property
    def leading(self) -> bool:
        """Whether this dispatcher holds the workspace's dispatcher lock (and so runs jobs)."""
        return self._lock_fd is not None

    def _lead(self) -> bool:
        """Take the dispatcher lock if it is free (never waits); recover the jobs of a gone leader."""
        if self._lock_fd is not None:
            return True
        import fcntl

        fd = os.open(self.ws.dir("runs", "jobs") / self.LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        for r in recover(self.ws):
            log.warning("job %s: %s", r["id"], r["note"])
        return True

    def start(self) -> None:
        self._lead()
        self._thread = threading.Thread(target=self._loop, name="inhouse-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop dispatching; running workers are ended and their jobs queued again for the next start."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
        for job_id, p in list(self.procs.items()):
            p.terminate()
        for job_id, p in list(self.procs.items()):
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
        if self.procs:
            recover(self.ws)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor frees the lock for another process
            self._lock_fd = None
        self.ws.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception:  # the loop must survive anything (a locked database, a full disk)
                log.exception("job dispatcher")
            self._stop.wait(self.poll)

    def _tick(self) -> None:
        if not self._lead():
            return
        for job_id, p in list(self.procs.items()):
            code = p.poll()
            if code is not None:
                del self.procs[job_id]
                self._reap(job_id, code)
        running = self.ws.db.execute("SELECT id FROM jobs WHERE status = 'running' AND cancel_requested = 1 "
                                     "AND server_pid = ?", (os.getpid(),)).fetchall()
        for r in running:
            p = self.procs.get(r["id"])
            if p is not None and p.poll() is None:
                p.terminate()  # the worker may be inside a long step that reports no progress
        if time.monotonic() - self._schedules_at >= 1.0:  # due schedules: only the lock holder starts them
            self._schedules_at = time.monotonic()
            for job_id in run_due(self.ws, submit):
                log.info("schedule: started job %s", job_id)
        while len(self.procs) < self.max_workers:
            job_id = self._claim()
            if job_id is None:
                break
            self.procs[job_id] = self._spawn(job_id)

    def _claim(self) -> int | None:
        now = time.time()
        with self.ws.tx() as db:
            r = db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1").fetchone()
            if r is None:
                return None
            db.execute("UPDATE jobs SET status = 'running', server_pid = ?, attempts = attempts + 1, started_at = ?, "
                       "updated_at = ?, error = NULL WHERE id = ?", (os.getpid(), now, now, r["id"]))
        return int(r["id"])

    def _spawn(self, job_id: int) -> subprocess.Popen:
        pkg_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        if self.worker_threads:
            env["INHOUSE_WORKER_THREADS"] = str(self.worker_threads)
        log_path = self.ws.dir("runs", "jobs") / f"job-{job_id}.log"
        with open(log_path, "ab") as log_file:
            p = subprocess.Popen([sys.executable, "-m", "inhouse.server.worker", str(self.ws.home), str(job_id),
                                  str(os.getpid())], env=env, stdin=subprocess.DEVNULL, stdout=log_file,
                                 stderr=subprocess.STDOUT)
        self.ws.db.execute("UPDATE jobs SET worker_pid = ? WHERE id = ?", (p.pid, job_id))
        return p

    def _reap(self, job_id: int, code: int) -> None:
        """A worker ended; if it could not write its own end (killed, crashed), write it here."""
        r = self.ws.db.execute("SELECT status, cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if r is None or r["status"] != "running":
            return
        if r["cancel_requested"]:
            finish(self.ws, job_id, "cancelled", error={"error": "cancelled", "message": "cancelled while running",
                                                        "fix": None})
        else:
            finish(self.ws, job_id, "failed", error={
                "error": "worker_died", "message": f"the worker process ended with exit code {code} before finishing.",
                "fix": f"See the worker log in the workspace: runs/jobs/job-{job_id}.log"})
