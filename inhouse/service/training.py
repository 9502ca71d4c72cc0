"""Training as one operation: ``inhouse train``, ``POST /training`` and the train job all call :func:`train`.

The arguments a door may give are the fields of
:class:`inhouse.training.arguments.TrainingArguments`, listed by
:func:`argument_fields`; the methods are the registered ones
(:mod:`inhouse.training.registry`), listed by :func:`methods`.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> args = training_arguments({"method": "head", "where": "label != 'other'"})
    >>> check(ws, "banking77", "intents", args)
    >>> train(ws, "banking77", "intents", args).ref
    'intents@1'
"""

from __future__ import annotations

import dataclasses
import typing

from ..errors import UsageError
from ..registry import check_name
from ..training.arguments import TrainingArguments
from ..training.registry import get_method, method_names, methods as registered_methods
from ..workspace.store import Workspace

__all__ = ["argument_fields", "argument_types", "check", "method_names", "methods", "train", "training_arguments"]


def methods() -> list[dict]:
    """The registered training methods: name, title, description, defaults (for help texts and the UI)."""
    return [m.to_dict() for m in registered_methods()]


def argument_types() -> dict[str, tuple[object, object]]:
    """Each TrainingArguments field as ``name -> (type, default)``, read from the dataclass itself."""
    hints = typing.get_type_hints(TrainingArguments)
    return {f.name: (hints[f.name], f.default if f.default is not dataclasses.MISSING else f.default_factory())
            for f in dataclasses.fields(TrainingArguments)}


def _type_name(t) -> str:
    args = [a for a in typing.get_args(t) if a is not type(None)]
    if typing.get_origin(t) is list or (args and typing.get_origin(args[0]) is list):
        return "list"
    base = args[0] if args else t
    return getattr(base, "__name__", str(base))


def argument_fields() -> list[dict]:
    """Every training argument: name, type (str, int, float, bool, list), default, whether null is allowed.

    >>> next(f for f in argument_fields() if f["name"] == "batch_size")
    {'name': 'batch_size', 'type': 'int', 'default': 32, 'nullable': False}
    """
    return [{"name": k, "type": _type_name(t), "default": d, "nullable": type(None) in typing.get_args(t)}
            for k, (t, d) in argument_types().items()]


def training_arguments(values: dict) -> TrainingArguments:
    """TrainingArguments from a door's values, checked (unknown names and bad values are UsageErrors)."""
    try:
        args = TrainingArguments(**values)
    except TypeError as e:
        raise UsageError(f"training arguments: {e}", fix=f"Known arguments: {sorted(argument_types())}") from None
    args.resolved()
    return args


def check(ws: Workspace, dataset: str, name: str, args: TrainingArguments) -> None:
    """Everything that can be checked before training starts: dataset, base model, name, arguments."""
    from ..models.catalog import get_model

    ws.dataset(dataset)
    get_model(ws, args.base)
    check_name(name)
    get_method(args.method)
    args.resolved()


def train(ws: Workspace, dataset: str, name: str, args: TrainingArguments, *, prepare: bool = True):
    """Train ``name`` on ``dataset`` and save a new version; its cost is recorded like every run's.

    With ``prepare`` the new version's fast-classify artifacts (ONNX graph with its int8 verdict, the
    cascade) are built now, once, so that no classify waits for them (``result.prepared`` says what).
    """
    from ..pipeline.costing import metered
    from ..pipeline.prepare import prepare_after
    from ..registry import resolve
    from ..training.train import train as train_model

    result, _ = metered(ws, "train", lambda: train_model(ws, dataset, name, args), dataset, args.base)
    if prepare:
        result.prepared = prepare_after(ws, resolve(ws, result.ref))
    return result
