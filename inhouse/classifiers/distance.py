"""How far a text lies from what a version was trained on: the distance half of abstention.

A classifier's probabilities say which of its labels fits best, not whether any
fits: a text from an intent it never saw often gets one label at 0.99 (a fine-tuned
encoder says "what is the weather today" is ``app_problem`` at 0.9999). The
distance in the embedding space the head reads tells those texts apart: the
Mahalanobis distance to the nearest class mean under one covariance shared by
all classes (Lee et al. 2018; for intents, Podolskiy et al. 2021), measured on
banking77 against k-nearest-neighbour distances (bench/abstention.py,
BENCHMARKS.md).

It is stored whitened, so scoring is one matrix product and one nearest centre:
with the shared precision ``P = L Lᵀ`` (Cholesky), ``transform = L`` and
``centres = means @ L``, and the distance of ``z`` is
``min_c ||z @ L - centres[c]||²``. The tensors live in the version's
``abstain.safetensors`` (hashed with every other file), and the same arithmetic
runs as numpy here and inside the ONNX graph (:func:`torch_distance`), so every
path that classifies measures the same distance.

    >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], np.float32)
    >>> d = Distance.fit(X, np.array([0, 0, 1, 1]), 2)
    >>> bool(d.score(np.array([[0.95, 0.05]], np.float32))[0] < d.score(np.array([[-1.0, -1.0]], np.float32))[0])
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DISTANCE_FILE = "abstain.safetensors"
FORMAT = "inhouse.abstain.mahalanobis.v1"
SHRINK = 0.05  # share of the average variance added to the covariance's diagonal (few rows, many dimensions)


@dataclass
class Distance:
    """Whitened class centres: ``score(Z)`` is each row's squared Mahalanobis distance to the nearest one."""

    transform: np.ndarray  # (dim, dim), the Cholesky factor of the shared precision
    centres: np.ndarray  # (classes with rows, dim), class means @ transform

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, n_classes: int, shrink: float = SHRINK) -> "Distance":
        """Class means and one shared covariance (shrunk toward its average variance) from rows ``X`` of class ``y``."""
        X = np.asarray(X, dtype=np.float64)
        present = [c for c in range(n_classes) if (y == c).any()]
        means = np.stack([X[y == c].mean(0) for c in present])
        pos = {c: i for i, c in enumerate(present)}
        R = X - means[[pos[c] for c in y]]
        S = R.T @ R / max(1, len(R) - len(present))
        avg = float(np.trace(S)) / S.shape[0] or 1.0
        S = (1 - shrink) * S + shrink * avg * np.eye(S.shape[0])
        L = np.linalg.cholesky(np.linalg.inv(S))
        return cls(L.astype(np.float32), (means @ L).astype(np.float32))

    def score(self, Z: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of each row to its nearest class mean, float32."""
        Z = np.asarray(Z, dtype=np.float32)
        if len(Z) == 0:
            return np.zeros(0, np.float32)
        W = Z @ self.transform
        d = (W * W).sum(1)[:, None] - 2.0 * (W @ self.centres.T) + (self.centres * self.centres).sum(1)[None, :]
        return np.maximum(d.min(axis=1), 0.0).astype(np.float32)

    def save(self, path: Path) -> None:
        from safetensors.numpy import save_file

        save_file({"transform": np.ascontiguousarray(self.transform, np.float32),
                   "centres": np.ascontiguousarray(self.centres, np.float32)}, str(path), metadata={"format": FORMAT})

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
        t = load_file(str(path))
        return cls(t["transform"], t["centres"])


def load_distance(folder: Path, section: dict) -> Distance | None:
    """The version's distance model when its manifest's ``abstain.distance`` names one, else None (older versions)."""
    d = section.get("distance") if isinstance(section.get("distance"), dict) else None
    if not d:
        return None
    return Distance.load(Path(folder) / d.get("file", DISTANCE_FILE))


def torch_distance(dist: Distance):
    """The same distance as a torch module, for the ONNX graph (float32, no quantization: see onnx_export)."""
    import torch

    class Mahalanobis(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("transform", torch.from_numpy(np.ascontiguousarray(dist.transform, np.float32)))
            self.register_buffer("centres", torch.from_numpy(np.ascontiguousarray(dist.centres, np.float32)))

        def forward(self, emb):
            w = emb @ self.transform
            d = (w * w).sum(1, keepdim=True) - 2.0 * (w @ self.centres.T) + (self.centres * self.centres).sum(1)[None, :]
            return torch.clamp(d.min(dim=1).values, min=0.0)

    return Mahalanobis()
