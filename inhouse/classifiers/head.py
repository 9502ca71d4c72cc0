"""The linear head of a classifier version: softmax (one label) or sigmoid (several) over embeddings.

    >>> h = Head(np.eye(2, dtype=np.float32), np.zeros(2, np.float32))
    >>> np.round(h.proba(np.array([[3.0, 0.0]])).astype(float), 3).tolist()
    [[0.953, 0.047]]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# ----------------------------------------------------------------- head ----

@dataclass
class Head:
    """A linear layer over embeddings: softmax (one label) or sigmoid (several)."""

    W: np.ndarray
    b: np.ndarray
    multi_label: bool = False
    threshold: float = 0.5

    def logits(self, X: np.ndarray) -> np.ndarray:
        return X.astype(np.float32) @ self.W.T.astype(np.float32) + self.b.astype(np.float32)

    def proba(self, X: np.ndarray) -> np.ndarray:
        z = self.logits(X)
        if self.multi_label:
            return 1.0 / (1.0 + np.exp(-z))
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> None:
        from safetensors.numpy import save_file

        save_file({"W": np.ascontiguousarray(self.W, dtype=np.float32), "b": np.ascontiguousarray(self.b, dtype=np.float32)},
                  str(path), metadata={"format": "inhouse.head.v1"})

    @classmethod
    def load(cls, path: Path, multi_label: bool = False, threshold: float = 0.5) -> "Head":
        from safetensors.numpy import load_file

        t = load_file(str(path))
        return cls(t["W"], t["b"], multi_label, threshold)

