"""Models (base and trained), versions, aliases (compare-and-set), diff, evaluations, training, weight changes."""

from __future__ import annotations

from typing import get_args, get_origin

from fastapi import APIRouter, Query, Request
from pydantic import Field, create_model, field_validator

from .. import registry
from ..errors import UsageError
from ..models.catalog import list_models as base_models
from ..service import training as training_service
from ..service import registry as registry_service
from ..service import retrain as retrain_service
from .auth import role
from .common import BIG, Body, JobAccepted, accepted, ws_of

router = APIRouter()


@router.get("/models", tags=["models"], summary="Base models and trained versions", **role("viewer"))
def list_models(request: Request, name: str | None = Query(None, description="Only this trained model.")) -> dict:
    ws = ws_of(request)
    base = [] if name else [m.to_dict() for m in base_models(ws)]
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
    """The move answers at once; the version's fast-classify artifacts are built by a ``prepare`` job
    (``prepare_job``), so nobody waits on an ONNX export behind a button."""
    ws = ws_of(request)
    out = registry_service.move_alias(ws, name, alias, body.version, expected=body.expected_current, prepare=False)
    if registry_service.needs_prepare(ws, out["ref"]):
        out["prepare_job"] = accepted(ws, "prepare", {"ref": out["ref"]}).model_dump()
    return out


@router.delete("/models/{name}/aliases/{alias}", tags=["aliases"], summary="Remove an alias (compare-and-set)",
               **role("editor"))
def remove_alias(request: Request, name: str, alias: str,
                 expected_current: int = Query(..., ge=1, le=2**62, description="The version it points to now.")) -> dict:
    r = registry_service.remove_alias(ws_of(request), name, alias, expected=expected_current)
    return {k: r[k] for k in ("name", "alias", "removed", "was")}


# ------------------------------------------------------------ diff & eval ----

LABEL_COL = ("The gold labels' column (default: the one the new version learnt, on its own dataset; else label).")


@router.get("/diff", tags=["evaluations"], summary="Compare two versions on a few documents (more: POST /diff/jobs)",
            **role("viewer"))
def diff(request: Request, old: str = Query(..., max_length=300), new: str = Query(..., max_length=300),
         dataset: str = Query(..., max_length=200), split: str | None = Query(None, max_length=200),
         limit: int | None = Query(None, ge=1, le=1_000_000), examples: int = Query(10, ge=0, le=1000),
         label_col: str | None = Query(None, max_length=200, description=LABEL_COL)) -> dict:
    """Inside the request only up to 2,000 documents; beyond that 409, whose fix is the diff job."""
    from ..service.diff import inline_diff

    return inline_diff(ws_of(request), old, new, dataset, split=split or None, limit=limit, examples=examples,
                       label_col=label_col or None)


class DiffRequest(Body):
    old: str = Field(..., max_length=300, description="NAME@N or NAME@ALIAS: the version in use")
    new: str = Field(..., max_length=300, description="The candidate version")
    dataset: str = Field(..., max_length=200)
    split: str | None = Field(None, max_length=200, description="null: every row")
    limit: int | None = Field(None, ge=1, le=100_000_000, description="At most this many documents (the first).")
    examples: int = Field(10, ge=0, le=1000)
    label_col: str | None = Field(None, max_length=200, description=LABEL_COL)


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

# Bounds on what a request may ask for (the dataclass's own checks still run); a TrainingArguments field
# without an entry gets its type's bounds, so a field added to the dataclass is in the API at once.
TRAIN_LIMITS: dict[str, dict] = {
    "shots": {"ge": 1, "le": 1_000_000}, "seed": {"ge": 0, "le": 2**31 - 1}, "epochs": {"gt": 0, "le": 1000},
    "max_steps": {"ge": 1, "le": 10_000_000}, "min_steps": {"ge": 0, "le": 10_000_000},
    "batch_size": {"ge": 2, "le": 4096}, "learning_rate": {"gt": 0, "le": 1}, "head_learning_rate": {"gt": 0, "le": 1},
    "val_fraction": {"ge": 0, "lt": 1}, "min_examples": {"ge": 0, "le": 1_000_000},
    "max_seq_length": {"ge": 8, "le": 8192}, "num_threads": {"ge": 1, "le": 1024}, "patience": {"ge": 0, "le": 1000},
    "lora_r": {"ge": 1, "le": 1024}, "lora_alpha": {"ge": 1, "le": 4096}, "abstain_target": {"ge": 0, "lt": 0.5},
}
TYPE_LIMITS = {int: {"ge": -BIG, "le": BIG}, float: {"allow_inf_nan": False}, str: {"max_length": 20_000},
               list: {"max_length": 10_000}}


def _base_type(t) -> type:
    args = [a for a in get_args(t) if a is not type(None)] or [t]
    return get_origin(args[0]) or args[0]


def _check_method(cls, v: str) -> str:
    if v not in training_service.method_names():
        raise ValueError(f"method {v!r} is unknown; methods are {training_service.method_names()}")
    return v


def train_request_model() -> type[Body]:
    """POST /training's body: dataset, name and every :class:`TrainingArguments` field, read from the dataclass.

    ``method`` lists the registered methods in the schema (read when the schema is built); ``threads`` is
    the older name of ``num_threads``.
    """
    fields: dict = {
        "dataset": (str, Field(..., max_length=200)),
        "name": (str, Field(..., max_length=200, description="Model name; each training adds a version NAME@N.")),
        "threads": (int | None, Field(None, ge=1, le=1024, description="The older name of num_threads.")),
    }
    for name, (typ, default) in training_service.argument_types().items():
        limits = TRAIN_LIMITS.get(name, TYPE_LIMITS.get(_base_type(typ), {}))
        extra = {}
        if name == "method":
            extra["json_schema_extra"] = lambda schema: schema.update(enum=training_service.method_names())
        if name == "split":
            extra["description"] = "null: every row"
        fields[name] = (typ, Field(default, **limits, **extra))
    return create_model("TrainRequest", __base__=Body,
                        __validators__={"known_method": field_validator("method")(_check_method)}, **fields)


TrainRequest = train_request_model()


@router.get("/training/methods", tags=["training"], summary="The training methods and every training argument",
            **role("viewer"))
def training_methods(request: Request) -> dict:
    """What the train form offers: the registered methods (name, title, description, defaults) and the
    arguments of ``POST /training`` (name, type, default), both read from the library."""
    return {"methods": training_service.methods(), "default_method": TrainRequest.model_fields["method"].default,
            "arguments": training_service.argument_fields()}


@router.post("/training", tags=["training"], summary="Start a training job", status_code=202, **role("editor"))
def start_training(request: Request, body: TrainRequest) -> JobAccepted:  # type: ignore[valid-type]
    ws = ws_of(request)
    sent = body.model_fields_set
    args = {k: v for k, v in body.model_dump(exclude={"dataset", "name", "threads"}).items()
            if v is not None or k in sent}  # an explicit null means the library's default (split: every row)
    if body.threads and "num_threads" not in sent:
        args["num_threads"] = body.threads
    training_service.check(ws, body.dataset, body.name, training_service.training_arguments(args))
    return accepted(ws, "train", {"dataset": body.dataset, "name": body.name, "args": args})


# ---------------------------------------------------------------- retrain ----

@router.get("/versions/{ref}/retrain", tags=["training"], summary="What retraining like this version would do",
            **role("viewer"))
def retrain_plan(request: Request, ref: str) -> dict:
    """The version copied (a bare name: its production version), its training arguments, method and base
    model, and the labels of its dataset's label column now against those it learnt (``labels_added``)."""
    return retrain_service.plan(ws_of(request), _short(ref))


@router.post("/versions/{ref}/retrain", tags=["training"], summary="Retrain like this version on the current labels",
             status_code=202, **role("editor"))
def start_retrain(request: Request, ref: str) -> JobAccepted:
    """A training job with exactly this version's arguments, method and base model, on its dataset's labels
    as they are now; the job's result is the new version (``ref``) with ``like`` (this one). Compare them
    with ``POST /diff/jobs``; promote with ``PUT /models/{name}/aliases/production``."""
    ws = ws_of(request)
    v = retrain_service.source(ws, _short(ref))
    p = retrain_service.plan(ws, v.ref)
    return accepted(ws, "retrain", {"like": v.ref, "like_sha256": v.sha256, "dataset": p["dataset"],
                                    "name": v.name, "args": p["args"]})


def _short(ref: str) -> str:
    if len(ref) > 300:
        raise UsageError(f"the version reference is {len(ref)} characters long; expected at most 300.",
                         fix="Use NAME, NAME@N or NAME@ALIAS.")
    return ref


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

    out = weight_changes(ws_of(request), _short(ref), against)
    if not tensors:
        out.pop("tensors", None)
    return out
