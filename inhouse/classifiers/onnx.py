"""The ONNX Runtime implementation of a classifier version (``format: onnx``).

One graph holds encoder, pooling, normalisation, head and softmax; the
tokenizer files sit beside ``model.onnx`` in the version folder.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> clf = load_classifier(ws, "intents-onnx")      # an OnnxClassifier
    >>> clf.predict_proba(["where is my card"]).shape
    (1, 77)
"""

from __future__ import annotations

import threading

import numpy as np

from .. import registry
from ..errors import MissingDependency, UsageError
from ..progress import task
from ..workspace.store import Workspace
from .base import ONNX_FILE, Classifier


class OnnxClassifier(Classifier):
    """A classifier exported to ONNX: tokenizer files and ``model.onnx`` in one version folder."""

    batch_size = 64

    def __init__(self, version: registry.Version, *, ws: Workspace | None = None, threads: int | None = None):
        try:
            import onnxruntime as ort
            from transformers import AutoTokenizer
        except ImportError as e:  # pragma: no cover - depends on the install
            raise MissingDependency("onnxruntime", "onnx", "Running an ONNX model") from e
        super().__init__(version)
        self.ws = ws
        manifest = self.manifest
        self._tokenize_lock = threading.Lock()  # fast tokenizers refuse concurrent calls
        self.max_length = int((manifest.get("onnx") or {}).get("max_length", 256))
        self.tokenizer = AutoTokenizer.from_pretrained(str(version.path), local_files_only=True)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(version.path / ONNX_FILE), opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def approx_bytes(self) -> int:
        return int((self.version.path / ONNX_FILE).stat().st_size)

    def _run(self, texts: list[str]) -> tuple[np.ndarray, ...]:
        """Probabilities, embeddings and (graphs of the distance rule) distances of a batch."""
        texts = self.prepare(texts)
        with self._tokenize_lock:
            enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
        feeds = {k: np.asarray(enc[k], dtype=np.int64) for k in self.inputs}
        names = ["probabilities", "embeddings"] + (["distance"] if "distance" in self.outputs else [])
        return tuple(self.session.run(names, feeds))

    def _batched(self, texts: list[str], which: int, desc: str) -> np.ndarray:
        texts = list(texts)
        out = []
        with task(desc, total=len(texts), unit="text") as t:
            for i in range(0, len(texts), self.batch_size):
                batch = texts[i:i + self.batch_size]
                out.append(self._run(batch)[which])
                t.advance(len(batch))
        if not out:
            return np.zeros((0, len(self.labels)) if which == 0 else (0, 0) if which == 1 else (0,), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)

    def predict_proba(self, texts: list[str], hashes: list[str] | None = None) -> np.ndarray:
        """Class probabilities, shape (len(texts), len(labels)), columns in ``labels`` order."""
        return self._batched(texts, 0, f"classifying with {self.ref} (onnx)")

    def predict_scores(self, texts: list[str], hashes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and (distance rule) the graph's distance output, in one pass."""
        if not self.needs_distance:
            return self.predict_proba(texts, hashes), None
        if "distance" not in self.outputs:
            raise UsageError(f"{self.ref} abstains by distance, but its ONNX graph has no 'distance' output.",
                             fix="Export it again with this inhouse: inhouse models export --format onnx")
        texts, probs, dist = list(texts), [], []
        with task(f"classifying with {self.ref} (onnx)", total=len(texts), unit="text") as t:
            for i in range(0, len(texts), self.batch_size):
                p, _, d = self._run(texts[i:i + self.batch_size])
                probs.append(p)
                dist.append(d)
                t.advance(len(p))
        if not probs:
            return np.zeros((0, len(self.labels)), np.float32), np.zeros(0, np.float32)
        return np.concatenate(probs).astype(np.float32), np.concatenate(dist).astype(np.float32)

    def embed(self, texts: list[str], hashes: list[str] | None = None) -> np.ndarray:
        """The L2-normalised sentence vectors the head sees."""
        return self._batched(texts, 1, f"embedding with {self.ref} (onnx)")


def onnx_path(version: registry.Version):
    return version.path / ONNX_FILE
