"""A worker process: runs one job, reports progress into its row, writes the result.

Started by :class:`inhouse.server.jobs.Dispatcher` as
``python -m inhouse.server.worker HOME JOB_ID SERVER_PID``. It exits by itself
when the server that started it is gone, so a killed server leaves no work
running behind it (the next server re-runs the job).
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import threading
import time
import traceback

from .. import netguard
from ..errors import InhouseError
from ..progress import use
from ..workspace.store import Workspace, acting_as
from . import jobs


def _watch_parent(server_pid: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != server_pid:
            os._exit(70)  # the server is gone: stop at once, the next server re-runs this job


class Terminated(BaseException):
    """SIGTERM: a cancel (the row says so) or the server shutting down (the job is queued again)."""


def _terminate(signum, frame):
    raise Terminated()


def run_kind(ws: Workspace, job_id: int, kind: str, p: dict) -> dict:
    """Do the work of one job: the runner registered for its kind (:mod:`inhouse.service.jobs`)."""
    from ..service.jobs import run_job

    return run_job(ws, job_id, kind, p)


def cost(t0: float) -> dict:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall_seconds": round(time.time() - t0, 3), "cpu_seconds": round(ru.ru_utime + ru.ru_stime, 3),
            "max_rss_mb": round(ru.ru_maxrss / 1024, 1)}


def main(argv: list[str]) -> int:
    netguard.install()  # before any library loads: telemetry off, nothing but loopback leaves
    home, job_id, server_pid = argv[0], int(argv[1]), int(argv[2])
    threading.Thread(target=_watch_parent, args=(server_pid,), daemon=True).start()
    signal.signal(signal.SIGTERM, _terminate)
    threads = os.environ.get("INHOUSE_WORKER_THREADS")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    ws = Workspace.open(home)
    job = jobs.get(ws, job_id)
    if job["status"] != "running":
        return 0
    t0 = time.time()
    sink = jobs.JobSink(ws, job_id)
    try:
        with acting_as(job["user"]), use(sink):
            sink.write("starting")
            result = run_kind(ws, job_id, job["kind"], job["params"])
            sink.write(None)
        jobs.finish(ws, job_id, "done", result={**result, "cost": cost(t0)})
        return 0
    except Terminated:
        if not jobs.get(ws, job_id)["cancel_requested"]:
            return 75  # the server is stopping: the row stays 'running' and the next start queues it again
        jobs.finish(ws, job_id, "cancelled", error={"error": "cancelled", "message": "cancelled while running",
                                                    "fix": None})
        return 0
    except jobs.JobCancelled:
        jobs.finish(ws, job_id, "cancelled", error={"error": "cancelled", "message": "cancelled while running",
                                                    "fix": None})
        return 0
    except InhouseError as e:
        from .errors import error_kind

        jobs.finish(ws, job_id, "failed", error={"error": error_kind(e), "message": e.message, "fix": e.fix,
                                                 "cost": cost(t0)})
        return 0
    except BaseException as e:  # the whole traceback goes to the job's log file, not to API clients
        traceback.print_exc()
        jobs.finish(ws, job_id, "failed", error={"error": "internal", "message": f"{type(e).__name__}: {e}"[:500],
                                                 "fix": f"See the worker log in the workspace: runs/jobs/job-{job_id}.log"})
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
