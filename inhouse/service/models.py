"""Base models: the kinds there are (built-in and registered encoders), for ``inhouse models add --kind``.

    >>> model_kinds()[:5]
    ['sentence-transformers', 'hf', 'static', 'onnx', 'gguf']
"""

from __future__ import annotations


def model_kinds() -> list[str]:
    """Every base-model kind, built-in first (an encoder registered with
    :func:`inhouse.models.encoders.register_encoder` adds its kind)."""
    from ..models.catalog import KINDS

    return list(KINDS)
