"""The training methods there are: one table that the CLI's choices, the REST schema and the UI read.

A method is a :class:`inhouse.training.methods.Method` subclass (one ``fit``)
plus its entry here: a name, what a person reads when choosing it, and the
defaults it gives the ``None`` fields of :class:`TrainingArguments`. Built-in
methods are listed by ``module:Class`` and imported on first use, so reading
the list (``inhouse train --help``) loads no torch. A new method is one file and
one :func:`register_method`:

    >>> from inhouse.training.methods import Method
    >>> @register_method("centroid", title="Nearest centroid", description="One mean vector per label.")
    ... class Centroid(Method):
    ...     def fit(self, ws, data, args): ...
    >>> "centroid" in method_names()
    True
    >>> unregister_method("centroid")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module

from ..errors import UsageError

DEFAULT_METHOD = "full"


@dataclass(frozen=True)
class MethodSpec:
    """A registered training method: its name, its words for people, its defaults, its class."""

    name: str
    title: str
    description: str
    target: str | type  # the Method subclass, or "package.module:Class" imported on first use
    defaults: dict = field(default_factory=dict)

    def load(self) -> type:
        if isinstance(self.target, str):
            module, _, attr = self.target.partition(":")
            return getattr(import_module(module), attr)
        return self.target

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "description": self.description,
                "defaults": dict(self.defaults)}


_BUILTIN = [
    MethodSpec("head", "Head only", "Trains just a linear classifier on the base model's frozen embeddings: the "
               "encoder is not changed. Seconds on a CPU.", "inhouse.training.methods:HeadMethod", {"freeze_layers": 0}),
    MethodSpec("setfit", "SetFit", "Fine-tunes the encoder contrastively on pairs of your examples (same label "
               "close, different labels apart), then fits the classifier head. Good with few labels per class; "
               "minutes.", "inhouse.training.methods:SetFitMethod",
               {"epochs": 1.0, "learning_rate": 5e-5, "head_learning_rate": 2e-3, "freeze_layers": 0}),
    MethodSpec("full", "Full fine-tune", "Trains the encoder's upper layers together with the classifier head (the "
               "bottom half stays frozen and is computed once). Usually the most accurate with enough labels; "
               "minutes.", "inhouse.training.methods:FullMethod",
               {"epochs": 5.0, "learning_rate": 1e-4, "head_learning_rate": 2e-3}),
    MethodSpec("lora", "LoRA", "Freezes the encoder and trains small low-rank adapter matrices inside it (plus the "
               "head). Far fewer trainable weights than a full fine-tune; also for causal LMs.",
               "inhouse.training.methods:LoraMethod",
               {"epochs": 3.0, "learning_rate": 1e-3, "head_learning_rate": 2e-3, "freeze_layers": 0}),
]
_METHODS: dict[str, MethodSpec] = {m.name: m for m in _BUILTIN}


def register_method(name: str, *, title: str, description: str, defaults: dict | None = None):
    """Class decorator: make a ``Method`` subclass trainable as ``--method NAME`` (and in REST and the UI)."""
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise UsageError(f"training method name {name!r}: use letters, digits, '-' or '_'.")
    if name in _METHODS:
        raise UsageError(f"training method {name!r} is already registered.",
                         fix="Choose another name, or unregister_method() the old one first.")

    def add(cls: type) -> type:
        cls.name = name
        _METHODS[name] = MethodSpec(name, title, description, cls, dict(defaults or {}))
        return cls

    return add


def unregister_method(name: str) -> None:
    _METHODS.pop(name, None)


def method_names() -> list[str]:
    """The registered methods' names, built-ins first.

    >>> method_names()[:4]
    ['head', 'setfit', 'full', 'lora']
    """
    return list(_METHODS)


def methods() -> list[MethodSpec]:
    return list(_METHODS.values())


def get_method(name: str) -> MethodSpec:
    """The method registered as ``name``; a :class:`UsageError` naming the others if there is none."""
    spec = _METHODS.get(name)
    if spec is None:
        raise UsageError(f"method {name!r} is unknown; methods are {method_names()}.",
                         fix=f"Use --method {DEFAULT_METHOD} (the default) or one of the others.")
    return spec
