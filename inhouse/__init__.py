"""inhouse: own your language models.

Discover topics in your own text, fine-tune open models on the labels, pin
immutable versions, and run pipelines over millions of documents, with data
that never leaves the machine. The CLI and (later) the server are thin doors
over the functions listed in ``__all__``; everything else may change.

Heavy modules (torch, transformers) load only when one of their names is first
used, so ``import inhouse`` and ``inhouse --help`` stay fast.

    >>> import inhouse
    >>> ws = inhouse.Workspace.open("/tmp/example-ws")
    >>> inhouse.ingest.ingest(ws, "tickets.csv", "tickets", label_col="intent").stored
    1200
"""

from importlib import import_module

from . import netguard as _netguard

_netguard.install()  # before anything imports huggingface_hub

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    ColumnNotFound, Conflict, InhouseError, InputError, IntegrityError, MissingDependency,
    NetworkBlocked, NotFound, UsageError,
)
from .store import Workspace, read_documents  # noqa: E402

# public name -> module that defines it (imported on first use). A stage whose
# module and main function share a name (ingest, train, evaluate, explain,
# trends, summarize) is exported as the module: ``inhouse.ingest.ingest(...)``,
# so the name means the same thing before and after the submodule is imported.
_LAZY = {
    "IngestResult": "ingest", "list_datasets": "ingest", "describe_dataset": "ingest", "remove_dataset": "ingest",
    "list_models": "models", "get_model": "models", "add_model": "models", "load_generator": "models",
    "load_encoder": "embed", "embed_texts": "embed", "embed_dataset": "embed", "Encoder": "embed",
    "discover": "topics", "DiscoveryResult": "topics", "load_discovery": "topics",
    "label_docs": "labels", "label_topic": "labels", "undo": "labels",
    "TrainingArguments": "train", "TrainResult": "train",
    "Classifier": "infer", "classify": "infer", "classify_texts": "infer",
    "load_classifier": "backends", "weight_changes": "explain",
    "resolve": "registry", "set_alias": "registry", "remove_alias": "registry", "remove_version": "registry",
    "versions": "registry", "record_evaluation": "registry",
    "diff_versions": "diff", "export_version": "export", "import_version": "export",
    "TrendsResult": "trends", "Summary": "summarize",
}
_STAGE_MODULES = ("ingest", "train", "evaluate", "explain", "trends", "summarize", "registry")

__all__ = [
    "__version__", "Workspace", "read_documents",
    "InhouseError", "UsageError", "InputError", "ColumnNotFound", "NotFound", "IntegrityError",
    "NetworkBlocked", "MissingDependency", "Conflict",
    *_LAZY, *_STAGE_MODULES,
]


def __getattr__(name: str):
    if name in _STAGE_MODULES:
        return import_module(f".{name}", __name__)
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'inhouse' has no attribute {name!r}")
