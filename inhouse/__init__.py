"""inhouse: own your language models.

Discover topics in your own text, fine-tune open models on the labels, pin
immutable versions, and run pipelines over millions of documents, with data
that never leaves the machine (``with inhouse.offline():`` refuses every
non-loopback connection inside a host program). The CLI and (later) the server are thin doors
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

# Only defaults, and only telemetry: set before any library that reads them loads (ONNX Runtime's native
# telemetry never passes through Python's sockets). The socket guard itself is not turned on by an import (a
# host program keeps its network): the CLI, the server and the job workers turn it on, a host program uses
# ``with inhouse.offline():``.
_netguard.telemetry_off()

from .errors import (  # noqa: E402
    ColumnNotFound,
    Conflict,
    InhouseError,
    InputError,
    IntegrityError,
    MissingDependency,
    NetworkBlocked,
    NotFound,
    UsageError,
)
from .netguard import offline  # noqa: E402
from .version import __version__  # noqa: E402
from .workspace.documents import read_documents  # noqa: E402
from .workspace.store import Workspace  # noqa: E402

# public name -> module that defines it (imported on first use). A stage whose
# module and main function share a name (ingest, train, evaluate, explain,
# trends, summarize) is exported as the module: ``inhouse.ingest.ingest(...)``,
# so the name means the same thing before and after the submodule is imported.
_LAZY = {
    "IngestResult": "data.ingest", "list_datasets": "data.datasets", "describe_dataset": "data.datasets",
    "remove_dataset": "data.datasets",
    "list_models": "models.catalog", "get_model": "models.catalog", "add_model": "models.catalog",
    "load_generator": "models.generators", "Generator": "models.generators",
    "load_encoder": "models.encoders", "Encoder": "models.encoders",
    "embed_texts": "models.embeddings", "embed_dataset": "models.embeddings",
    "discover": "topics.discover", "DiscoveryResult": "topics.runs", "load_discovery": "topics.runs",
    "label_docs": "data.labels", "label_topic": "topics.labeling", "undo": "data.labels",
    "TrainingArguments": "training.arguments", "TrainResult": "training.train",
    "Classifier": "classifiers.base", "load_classifier": "classifiers.load",
    "classify": "service.classify", "classify_texts": "classifiers.predict",
    "weight_changes": "analysis.explain",
    "resolve": "registry", "set_alias": "registry", "remove_alias": "registry", "remove_version": "registry",
    "versions": "registry", "record_evaluation": "registry",
    "diff_versions": "analysis.diff", "export_version": "exchange.export", "import_version": "exchange.export",
    "TrendsResult": "analysis.trends", "Summary": "analysis.summarize",
    "matching_doc_ids": "workspace.filters", "label_columns": "workspace.labelsets",
    "compare_topics": "topics.compare", "export_documents": "data.datasets",
}
_STAGE_MODULES = {"ingest": "data.ingest", "train": "training.train", "evaluate": "analysis.evaluate",
                  "explain": "analysis.explain", "trends": "analysis.trends", "summarize": "analysis.summarize",
                  "registry": "registry"}

__all__ = [
    "__version__", "Workspace", "read_documents", "offline",
    "InhouseError", "UsageError", "InputError", "ColumnNotFound", "NotFound", "IntegrityError",
    "NetworkBlocked", "MissingDependency", "Conflict",
    *_LAZY, *_STAGE_MODULES,
]


def __getattr__(name: str):
    if name in _STAGE_MODULES:
        return import_module(f".{_STAGE_MODULES[name]}", __name__)
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'inhouse' has no attribute {name!r}")
