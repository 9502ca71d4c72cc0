"""Models (base and trained), versions, aliases (compare-and-set), diff, evaluations, training, weight changes."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request
from pydantic import Field

from .. import registry
from ..errors import UsageError
from ..models import catalog as models_api
from .auth import role
from .common import Body, JobAccepted, accepted, ws_of

router = APIRouter()


@router.get("/models", tags=["models"], summary="Base models and trained versions", **role("viewer"))
def list_models(request: Request, name: str | None = Query(None, description="Only this trained model.")) -> dict:
    ws = ws_of(request)
    base = [] if name else [m.to_dict() for m in models_api.list_models(ws)]
    return {"base_models": base, "models": registry.catalog(ws, name)}


@router.get("/models/{name}", tags=["models"], summary="A trained model: its versions and aliases", **role("viewer"))
def show_model(request: Request, name: str) -> dict:
    ws = ws_of(request)
    rows = registry.catalog(ws, name)
    if not rows:
        registry.resolve(ws, name)  # NotFound naming the models there are
    return {"name": name, "aliases": registry.aliases(ws, name), "versions": rows}


@router.get("/models/{name}/history", tags=["models"], summary="Saves, alias moves, evaluations, removals",
            **role("viewer"))
def model_history(request: Request, name: str) -> dict:
    ws = ws_of(request)
    events = registry.history(ws, name)
    if not events:
        registry.resolve(ws, name)
    return {"name": name, "events": events}


@router.get("/versions/{ref}", tags=["models"], summary="One version: manifest, aliases, evaluations, integrity",
            **role("viewer"))
def show_version(request: Request, ref: str) -> dict:
    return registry.describe(ws_of(request), ref)


@router.delete("/versions/{ref}", tags=["models"], summary="Remove a version (refused while an alias points to it)",
               **role("admin"))
def remove_version(request: Request, ref: str) -> dict:
    v = registry.remove_version(ws_of(request), ref)
    return {"removed": v.ref, "sha256": v.sha256}


@router.get("/versions/{ref}/evaluations", tags=["evaluations"], summary="Recorded evaluations of a version",
            **role("viewer"))
def version_evaluations(request: Request, ref: str) -> dict:
    ws = ws_of(request)
    v = registry.resolve(ws, ref)
    return {"ref": v.ref, "sha256": v.sha256, "evaluations": registry.evaluations(ws, v)}


# ---------------------------------------------------------------- aliases ----

class AliasMove(Body):
    version: int = Field(..., ge=1, le=2**62, description="The version number the alias should point to.")
    expected_current: int | None = Field(..., ge=1, le=2**62, description="The version the alias points to now as you saw it "
                                         "(null: not set yet). The move happens only if that is still so; else 409.")


@router.get("/models/{name}/aliases", tags=["aliases"], summary="Aliases of a model", **role("viewer"))
def list_aliases(request: Request, name: str) -> dict:
    ws = ws_of(request)
    registry.resolve(ws, name)
    return {"name": name, "aliases": registry.aliases(ws, name)}


@router.put("/models/{name}/aliases/{alias}", tags=["aliases"], summary="Move an alias (compare-and-set)",
            **role("editor"))
def move_alias(request: Request, name: str, alias: str, body: AliasMove) -> dict:
    ws = ws_of(request)
    v = registry.set_alias(ws, f"{name}@{body.version}", alias, expected=body.expected_current)
    return {"name": v.name, "alias": alias, "version": v.version, "ref": v.ref, "sha256": v.sha256,
            "previous": body.expected_current}


@router.delete("/models/{name}/aliases/{alias}", tags=["aliases"], summary="Remove an alias (compare-and-set)",
               **role("editor"))
def remove_alias(request: Request, name: str, alias: str,
                 expected_current: int = Query(..., ge=1, le=2**62, description="The version it points to now.")) -> dict:
    was = registry.remove_alias(ws_of(request), name, alias, expected=expected_current)  # checked in its transaction
    return {"name": name, "alias": alias, "removed": True, "was": was}


# ------------------------------------------------------------ diff & eval ----

@router.get("/diff", tags=["evaluations"], summary="Compare two versions on a few documents (more: POST /diff/jobs)",
            **role("viewer"))
def diff(request: Request, old: str = Query(..., max_length=300), new: str = Query(..., max_length=300),
         dataset: str = Query(..., max_length=200), split: str | None = Query(None, max_length=200),
         limit: int | None = Query(None, ge=1, le=1_000_000), examples: int = Query(10, ge=0, le=1000)) -> dict:
    """Inside the request only up to 2,000 documents; beyond that 409, whose fix is the diff job."""
    from ..service.diff import inline_diff

    return inline_diff(ws_of(request), old, new, dataset, split=split or None, limit=limit, examples=examples)


class DiffRequest(Body):
    old: str = Field(..., max_length=300, description="NAME@N or NAME@ALIAS: the version in use")
    new: str = Field(..., max_length=300, description="The candidate version")
    dataset: str = Field(..., max_length=200)
    split: str | None = Field(None, max_length=200, description="null: every row")
    limit: int | None = Field(None, ge=1, le=100_000_000, description="At most this many documents (the first).")
    examples: int = Field(10, ge=0, le=1000)


@router.post("/diff/jobs", tags=["evaluations"], summary="Compare two versions on a dataset, as a job",
             status_code=202, **role("viewer"))
def start_diff(request: Request, body: DiffRequest) -> JobAccepted:
    """Both versions classify the same documents (tens of seconds on real data): the job reports progress and
    its result is the diff (GET /jobs/{id}). A viewer may start one: reading a diff changes nothing but the
    run log, as GET /diff did inside the request."""
    ws = ws_of(request)
    registry.resolve(ws, body.old)
    registry.resolve(ws, body.new)
    ws.dataset(body.dataset)
    return accepted(ws, "diff", {**body.model_dump(), "split": body.split or None})


class EvaluateRequest(Body):
    model: str = Field(..., max_length=300, description="NAME, NAME@N or NAME@ALIAS")
    dataset: str = Field(..., max_length=200)
    split: str | None = Field("test", description="null: every row")
    label_col: str = "label"


@router.post("/evaluations", tags=["evaluations"], summary="Start an evaluation job", status_code=202,
             **role("editor"))
def start_evaluation(request: Request, body: EvaluateRequest) -> JobAccepted:
    ws = ws_of(request)
    registry.resolve(ws, body.model)
    ws.dataset(body.dataset)
    return accepted(ws, "evaluate", body.model_dump())


# --------------------------------------------------------------- training ----

class TrainRequest(Body):
    dataset: str = Field(..., max_length=200)
    name: str = Field(..., max_length=200, description="Model name; each training adds a version NAME@N.")
    base: str = "minilm-l6"
    method: Literal["head", "setfit", "full", "lora"] = "full"
    label_col: str = "label"
    split: str | None = Field("train", description="null: every row")
    shots: int | None = Field(None, ge=1, le=1_000_000)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    epochs: float | None = Field(None, gt=0, le=1000)
    max_steps: int | None = Field(None, ge=1, le=10_000_000)
    batch_size: int = Field(32, ge=2, le=4096)
    learning_rate: float | None = Field(None, gt=0, le=1)
    val_fraction: float = Field(0.1, ge=0, lt=1)
    min_examples: int = Field(0, ge=0, le=1_000_000)
    max_seq_length: int = Field(128, ge=8, le=8192)
    label_names: bool = False
    threads: int | None = Field(None, ge=1, le=1024)


@router.post("/training", tags=["training"], summary="Start a training job", status_code=202, **role("editor"))
def start_training(request: Request, body: TrainRequest) -> JobAccepted:
    from ..training.arguments import TrainingArguments

    ws = ws_of(request)
    ws.dataset(body.dataset)
    models_api.get_model(ws, body.base)
    registry.check_name(body.name)
    args = {k: v for k, v in body.model_dump(exclude={"dataset", "name", "threads"}).items()
            if v is not None or k == "split"}  # split null means every row
    if body.threads:
        args["num_threads"] = body.threads
    try:
        TrainingArguments(**args).resolved()
    except TypeError as e:
        raise UsageError(f"training arguments: {e}") from None
    return accepted(ws, "train", {"dataset": body.dataset, "name": body.name, "args": args})


# ---------------------------------------------------------------- weights ----

@router.get("/versions/{ref}/weights", tags=["models"], summary="How far training moved the weights, per layer",
            **role("viewer"))
def version_weights(request: Request, ref: str,
                    against: str | None = Query(None, max_length=300, description="A base model or another version "
                                                "(default: the version's own base)."),
                    tensors: bool = Query(False, description="Also list every tensor (long for full fine-tunes).")) -> dict:
    """Relative change ``||W_tuned - W_base|| / ||W_base||`` per encoder layer and overall, the share of weights
    that moved, LoRA adapters' ranks and norms, and the classifier head's norms. For ``head`` versions the
    encoder is the frozen base: 0 change, and ``classes`` lists what pulls hardest toward each class."""
    from ..analysis.explain import weight_changes

    if len(ref) > 300:
        raise UsageError(f"the version reference is {len(ref)} characters long; expected at most 300.",
                         fix="Use NAME, NAME@N or NAME@ALIAS.")
    out = weight_changes(ws_of(request), ref, against)
    if not tensors:
        out.pop("tensors", None)
    return out
