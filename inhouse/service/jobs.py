"""Job kinds: what a queued job of each kind runs, in one table the server's queue and workers read.

A kind is a function ``(ws, job_id, params) -> JSON-able dict`` registered with
:func:`job_kind`; the worker process (``inhouse.server.worker``) looks it up by the
job's kind, so a new kind is one function and its decorator, and ``POST`` routes
and ``GET /jobs?kind=`` accept it.

    >>> @job_kind("echo")
    ... def echo(ws, job_id, params):
    ...     return dict(params)
    >>> "echo" in job_kinds()
    True
    >>> unregister_job_kind("echo")
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import InhouseError, UsageError
from ..workspace.store import Workspace

Runner = Callable[[Workspace, int, dict], dict]
_KINDS: dict[str, Runner] = {}


def job_kind(name: str):
    """Decorator: run jobs of kind ``name`` with the function."""
    if name in _KINDS:
        raise UsageError(f"job kind {name!r} is already registered.")

    def add(fn: Runner) -> Runner:
        _KINDS[name] = fn
        return fn

    return add


def unregister_job_kind(name: str) -> None:
    _KINDS.pop(name, None)


def job_kinds() -> tuple[str, ...]:
    return tuple(_KINDS)


def run_job(ws: Workspace, job_id: int, kind: str, params: dict) -> dict:
    """Do the work of one job with the same functions the CLI uses; returns a JSON-able result."""
    runner = _KINDS.get(kind)
    if runner is None:
        raise InhouseError(f"job kind {kind!r} has no runner; kinds are {list(_KINDS)}.")
    return runner(ws, job_id, params)


def output_path(ws: Workspace, job_id: int, fmt: str) -> str:
    return str(ws.dir("runs", "jobs") / f"job-{job_id}-predictions.{fmt}")


@job_kind("train")
def train_job(ws: Workspace, job_id: int, p: dict) -> dict:
    from .training import train, training_arguments

    return train(ws, p["dataset"], p["name"], training_arguments(p.get("args", {}))).to_dict()


@job_kind("retrain")
def retrain_job(ws: Workspace, job_id: int, p: dict) -> dict:
    """POST /versions/{ref}/retrain: a version's training arguments on its dataset's current labels."""
    from .retrain import retrain

    return retrain(ws, p["like"], expected_sha256=p.get("like_sha256"))


@job_kind("prepare")
def prepare_job(ws: Workspace, job_id: int, p: dict) -> dict:
    """After an alias moved over the API: the version's ONNX graph, int8 verdict and cascade, built once."""
    from .registry import prepare

    return prepare(ws, p["ref"])


@job_kind("embed")
def embed_job(ws: Workspace, job_id: int, p: dict) -> dict:
    from .models import embed

    return embed(ws, p["dataset"], p["model"], split=p.get("split"))[0].to_dict()


@job_kind("classify")
def classify_job(ws: Workspace, job_id: int, p: dict) -> dict:
    """POST /classify/jobs: the one classify engine every door runs (the dataset's prediction set is kept)."""
    from .classify import classify

    fmt = p.get("format", "parquet")
    return classify(ws, p["model"], dataset=p["dataset"], split=p.get("split"), where=p.get("where"),
                    top_k=p.get("top_k", 3), abstain=p.get("abstain", True),
                    output=output_path(ws, job_id, fmt) if fmt else None)


@job_kind("diff")
def diff_job(ws: Workspace, job_id: int, p: dict) -> dict:
    """POST /diff/jobs: two versions compared on a dataset, with progress."""
    from .diff import diff

    return diff(ws, p["old"], p["new"], p["dataset"], split=p.get("split"), limit=p.get("limit"),
                examples=p.get("examples", 10), label_col=p.get("label_col"))


@job_kind("discover")
def discover_job(ws: Workspace, job_id: int, p: dict) -> dict:
    from .topics import DISCOVER_OPTIONS, discover

    d = discover(ws, p["dataset"], **{k: p.get(k) for k in DISCOVER_OPTIONS}).to_dict()
    d["topics"] = d["topics"][:200]
    return d


@job_kind("evaluate")
def evaluate_job(ws: Workspace, job_id: int, p: dict) -> dict:
    from ..analysis.evaluate import evaluate

    return evaluate(ws, p["model"], p["dataset"], p.get("split"), label_col=p.get("label_col", "label"))


@job_kind("summarize")
def summarize_job(ws: Workspace, job_id: int, p: dict) -> dict:
    from .analysis import summarize

    out = summarize(ws, p["dataset"], by=p.get("by", "label"), llm=p.get("llm"), n_docs=p.get("n_docs", 5),
                    run=p.get("run"), split=p.get("split"), categories=p.get("categories"), where=p.get("where"))
    return {**out, "summaries": [s.to_dict() for s in out["summaries"]]}


@job_kind("pipeline")
def pipeline_job(ws: Workspace, job_id: int, p: dict) -> dict:
    from .pipelines import run_dashboard_pipeline

    return run_dashboard_pipeline(ws, job_id, p)


@job_kind("pipeline-file")
def pipeline_file_job(ws: Workspace, job_id: int, p: dict) -> dict:
    """A schedule's pipeline, started by the server when it is due (``inhouse pipeline schedule``)."""
    from .schedules import run_scheduled

    return run_scheduled(ws, job_id, int(p["schedule"]))
