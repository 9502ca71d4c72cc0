"""The one classifier contract, and :func:`load_classifier`, which every caller uses.

A classifier version is a registry folder (see :mod:`inhouse.registry`) whose
manifest says its ``format``:

- ``safetensors`` (made by ``inhouse train``): ``head.safetensors`` (the
  linear head, tensors ``W`` labels x dim and ``b``), and by method the encoder
  whose embeddings the head consumes: nothing for ``head`` (the frozen base
  ``manifest["base"]``, embedded through the shared cache), ``encoder/`` for
  ``setfit`` and ``full`` (a sentence-transformers or Hugging Face folder),
  ``adapter/`` for ``lora`` (a peft adapter on the base). Run by
  :class:`inhouse.classifiers.torch.TorchClassifier`.
- ``onnx`` (made by ``inhouse models export --format onnx``): one graph that
  holds encoder, pooling, head and softmax, plus the tokenizer files. Run by
  :class:`inhouse.classifiers.onnx.OnnxClassifier`.

Both also keep ``train_index.safetensors`` + ``train_rows.json`` (training
rows' embeddings and labels) for ``inhouse explain`` when trained here.

Every implementation subclasses :class:`Classifier` and implements one method,
:meth:`Classifier.predict_proba`; ``predict`` and ``decide`` are written once
here. :func:`inhouse.classifiers.load.load_classifier` verifies a version and
returns the right implementation; a classifier never changes after loading, so
it is safe to share between threads.

    >>> from inhouse.classifiers.load import load_classifier
    >>> clf = load_classifier(ws, "intents@production")
    >>> clf.predict(["I lost my card"])
    ['lost_or_stolen_card']
    >>> clf.predict_proba(["I lost my card"]).shape
    (1, 77)
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from .. import registry
from ..errors import UsageError

HEAD_FILE = "head.safetensors"
ENCODER_DIR = "encoder"
ADAPTER_DIR = "adapter"
INDEX_FILE = "train_index.safetensors"
ROWS_FILE = "train_rows.json"
ONNX_FILE = "model.onnx"
FORMATS = ("safetensors", "onnx")


class Classifier(ABC):
    """A verified classifier version, ready to predict. Subclasses implement :meth:`predict_proba`.

    Attributes every implementation has: ``version`` (the registry version),
    ``manifest``, ``labels`` (the columns of ``predict_proba``), ``method``,
    ``base`` (the base model's name, or None), ``multi_label`` and ``threshold``.
    """

    def __init__(self, version: registry.Version):
        m = version.manifest
        self.version = version
        self.manifest = m
        self.labels: list[str] = list(m.get("labels") or [])
        self.method: str = m.get("method", "?")
        self.base: str | None = (m.get("base") or {}).get("name") if isinstance(m.get("base"), dict) else None
        self.multi_label: bool = bool(m.get("multi_label"))
        self.threshold: float = float(m.get("threshold", 0.5))

    @property
    def ref(self) -> str:
        return self.version.ref

    @property
    def sha256(self) -> str:
        return self.version.sha256

    @abstractmethod
    def predict_proba(self, texts: list[str], hashes: list[str] | None = None) -> np.ndarray:
        """Probabilities, shape (len(texts), len(labels)), columns in :attr:`labels` order.

        ``hashes`` (the texts' :func:`inhouse.workspace.files.text_hash`) lets an
        implementation reuse cached embeddings; it never changes the result.
        """

    def embed(self, texts: list[str], hashes: list[str] | None = None) -> np.ndarray:
        """The vectors the head sees (for explanations); not every format has them."""
        raise UsageError(f"{self.ref} ({type(self).__name__}) cannot show its embeddings.")

    def predict(self, texts: list[str]) -> list:
        """The label of each text (a list of labels per text for multi-label models)."""
        return self.decide(self.predict_proba(list(texts)))

    def decide(self, probs: np.ndarray) -> list:
        """Labels from probabilities: argmax, or every label at or over ``threshold`` (multi-label)."""
        if self.multi_label:
            return [[self.labels[j] for j in np.flatnonzero(p >= self.threshold)] for p in probs]
        return [self.labels[j] for j in np.asarray(probs).argmax(axis=1)]

    def approx_bytes(self) -> int:
        """Memory the loaded classifier holds (for the cache's budget)."""
        return 1 << 20
