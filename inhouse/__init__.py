"""inhouse: own your language models.

Discover topics in your own text, fine-tune open models on the labels, pin
immutable versions, and run pipelines over millions of documents, with data
that never leaves the machine. The CLI and (later) the server are thin doors
over the functions listed in ``__all__``.
"""

from . import netguard as _netguard

_netguard.install()  # before anything imports huggingface_hub

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    ColumnNotFound, Conflict, InhouseError, InputError, IntegrityError, MissingDependency,
    NetworkBlocked, NotFound, UsageError,
)
from .store import Workspace, read_documents  # noqa: E402

__all__ = [
    "__version__",
    "Workspace", "read_documents",
    "InhouseError", "UsageError", "InputError", "ColumnNotFound", "NotFound", "IntegrityError",
    "NetworkBlocked", "MissingDependency", "Conflict",
]
