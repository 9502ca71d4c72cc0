"""How far a text lies from what a version was trained on: the distance half of abstention.

A classifier's probabilities say which of its labels fits best, not whether any
fits: a text from an intent it never saw often gets one label at 0.99 (a fine-tuned
encoder says "what is the weather today" is ``app_problem`` at 0.9999). The
distance in the embedding space the head reads tells many of those texts apart:
the cosine distance to the nearest training row (k-nearest neighbours with k = 1,
Sun et al. 2022). On banking77 with 19 intents held out it separated them from
in-scope texts better than the probability (AUROC 0.924 vs 0.889) and better
than the Mahalanobis distance to class means under a shared covariance (0.81 to
0.82 for shrinkage 0 to 0.2), so that is what is stored (bench/abstention.py,
BENCHMARKS.md).

The version's ``abstain.safetensors`` (hashed with every other file) holds the
training rows' unit vectors in float16 (``reference``); the same arithmetic runs
as numpy here and inside the ONNX graph (:func:`torch_distance`), so every path
that classifies measures the same distance.

    >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], np.float32)
    >>> d = Distance.fit(X)
    >>> [round(float(v), 3) for v in d.score(np.array([[1.0, 0.0], [-1.0, -1.0]], np.float32))]
    [0.0, 1.707]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DISTANCE_FILE = "abstain.safetensors"
FORMAT = "inhouse.abstain.knn.v1"
KIND = "knn1-cosine"


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


@dataclass
class Distance:
    """Training rows as unit vectors: ``score(Z)`` is each row's cosine distance to the nearest of them."""

    reference: np.ndarray  # (rows, dim) float16 unit vectors

    @classmethod
    def fit(cls, X: np.ndarray) -> "Distance":
        """The reference rows (the training rows' embeddings, as the head reads them)."""
        return cls(_unit(X).astype(np.float16))

    def score(self, Z: np.ndarray, batch: int = 256) -> np.ndarray:
        """1 - the largest cosine similarity of each row to a reference row, float32 (0: a training row).

        ``batch`` rows at a time: 256 rows' similarities to ~10,000 references stay in the core's cache
        (0.55 CPU-s per 16,384 rows against 0.94 at 1,024 and 2.1 at 4,096, 9,000 x 256 float32 references)."""
        Z = _unit(Z)
        R = self.__dict__.get("_f32")
        if R is None:  # converted once (the classifier is loaded once and shared; a race converts twice)
            R = self.__dict__["_f32"] = self.reference.astype(np.float32)
        out = np.zeros(len(Z), np.float32)
        for i in range(0, len(Z), batch):
            out[i:i + batch] = 1.0 - (Z[i:i + batch] @ R.T).max(axis=1)
        return out

    def save(self, path: Path) -> None:
        from safetensors.numpy import save_file

        save_file({"reference": np.ascontiguousarray(self.reference, np.float16)}, str(path),
                  metadata={"format": FORMAT})

    @classmethod
    def load(cls, path: Path) -> "Distance":
        from safetensors import safe_open
        from safetensors.numpy import load_file

        with safe_open(str(path), framework="numpy") as f:
            fmt = (f.metadata() or {}).get("format")
        if fmt != FORMAT:
            from ..errors import UsageError

            raise UsageError(f"{path}: abstention tensors of format {fmt!r}; this inhouse reads {FORMAT!r}.",
                             fix="Use the inhouse version that trained this model.")
        return cls(load_file(str(path))["reference"])


def load_distance(folder: Path, section: dict) -> Distance | None:
    """The version's distance model when its manifest's ``abstain.distance`` names one, else None (older versions)."""
    d = section.get("distance") if isinstance(section.get("distance"), dict) else None
    if not d:
        return None
    return Distance.load(Path(folder) / d.get("file", DISTANCE_FILE))


def torch_distance(dist: Distance):
    """The same distance as a torch module, for the ONNX graph (float32, no quantization: see onnx_export)."""
    import torch

    class NearestRow(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("reference", torch.from_numpy(np.ascontiguousarray(dist.reference, np.float32)))

        def forward(self, emb):
            z = torch.nn.functional.normalize(emb, dim=-1)
            return 1.0 - (z @ self.reference.T).max(dim=1).values

    return NearestRow()
