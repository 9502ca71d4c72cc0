"""Base models: the kinds there are (built-in and registered encoders), for ``inhouse models add --kind``.

    >>> model_kinds()[:5]
    ['sentence-transformers', 'hf', 'static', 'onnx', 'gguf']
"""

from __future__ import annotations

from ..models.catalog import DEFAULT_ENCODER  # noqa: F401  (the CLI's --model default)
from ..workspace.store import Workspace


def model_kinds() -> list[str]:
    """Every base-model kind, built-in first (an encoder registered with
    :func:`inhouse.models.encoders.register_encoder` adds its kind)."""
    from ..models.catalog import KINDS

    return list(KINDS)


def embed(ws: Workspace, dataset: str, model: str = DEFAULT_ENCODER, *, split: str | None = None,
          where: str | None = None):
    """Embed every document of ``dataset`` (cached, resumable) and record the run's cost:
    ``(EmbedResult, cost)``. ``inhouse embed`` and the embed job call this."""
    from ..models.embeddings import embed_dataset
    from ..pipeline.costing import metered

    (result, _, _), cost = metered(ws, "embed", lambda: embed_dataset(ws, dataset, model, split=split, where=where),
                                   dataset, model, split, reused=lambda out: out[0].reused)
    return result, cost
