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


def _output_path(ws: Workspace, job_id: int, fmt: str) -> str:
    return str(ws.dir("runs", "jobs") / f"job-{job_id}-predictions.{fmt}")


def run_kind(ws: Workspace, job_id: int, kind: str, p: dict) -> dict:
    """Do the work of one job with the same Python API the CLI uses; returns a JSON-able result."""
    if kind == "train":
        from ..training.arguments import TrainingArguments
        from ..training.train import train

        return train(ws, p["dataset"], p["name"], TrainingArguments(**p.get("args", {}))).to_dict()
    if kind == "embed":
        from ..models.embeddings import embed_dataset

        return embed_dataset(ws, p["dataset"], p["model"], split=p.get("split"))[0].to_dict()
    if kind == "classify":
        from ..classifiers.predict import classify

        return classify(ws, p["model"], output=_output_path(ws, job_id, p.get("format", "parquet")),
                        dataset=p["dataset"], split=p.get("split"), top_k=p.get("top_k", 3))
    if kind == "discover":
        from ..topics.discover import discover

        opts = {k: p[k] for k in ("within", "model", "seed", "n_topics", "outliers", "llm", "split", "min_topic_size",
                                "n_themes")
                if p.get(k) is not None}
        res = discover(ws, p["dataset"], **opts)
        d = res.to_dict()
        d["topics"] = d["topics"][:200]
        return d
    if kind == "evaluate":
        from ..analysis.evaluate import evaluate

        return evaluate(ws, p["model"], p["dataset"], p.get("split"), label_col=p.get("label_col", "label"))
    if kind == "summarize":
        from ..analysis.summarize import summarize

        out = summarize(ws, p["dataset"], by=p.get("by", "label"), llm=p.get("llm"), n_docs=p.get("n_docs", 5),
                        run=p.get("run"), split=p.get("split"), categories=p.get("categories"))
        return {"dataset": p["dataset"], "by": p.get("by", "label"), "run_id": out[0].run_id if out else None,
                "summaries": [s.to_dict() for s in out]}
    if kind == "pipeline":
        return run_pipeline_job(ws, job_id, p)
    raise InhouseError(f"job kind {kind!r} has no runner")


def run_pipeline_job(ws: Workspace, job_id: int, p: dict) -> dict:
    """POST /pipelines: the pipeline file of the checked choices, run like ``inhouse pipeline run``."""
    from ..pipeline.dashboard import check_request, price_all_documents, write_spec
    from ..pipeline.runner import run_pipeline
    from ..progress import task

    req = check_request(ws, p)
    path = write_spec(ws, f"job-{job_id}", req)
    n = 2 + (req["summaries"] != "none") + bool(req["subtopics"]) + 1
    with task("pipeline steps", total=n, unit="step") as t:
        r = run_pipeline(ws, path, on_step=lambda s: t.advance(1, step=s["name"], status=s["status"]))
    try:
        price_all_documents(ws, r["run_id"])
    except Exception:  # the run is recorded and its report written; only the closed-API comparison is missing
        traceback.print_exc()
    return {k: r[k] for k in ("run_id", "name", "dataset", "model", "model_sha256", "steps", "seconds")}


def cost(t0: float) -> dict:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall_seconds": round(time.time() - t0, 3), "cpu_seconds": round(ru.ru_utime + ru.ru_stime, 3),
            "max_rss_mb": round(ru.ru_maxrss / 1024, 1)}


def main(argv: list[str]) -> int:
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
