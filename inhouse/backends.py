"""How a registered version becomes something that predicts.

A version's manifest says its ``format``: ``safetensors`` (the default: a
PyTorch/sentence-transformers model with a linear head, run by
:class:`inhouse.infer.Classifier`) or ``onnx`` (one ONNX graph holding encoder,
pooling, normalisation, head and softmax, run by :class:`OnnxClassifier`).
:func:`load_classifier` picks the right one, so ``classify``, ``eval``,
``models diff`` and the API accept either.

    >>> clf = load_classifier(ws, "intents@production")
    >>> clf.predict(["I lost my card"])
    ['lost_or_stolen_card']
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import registry
from .errors import MissingDependency, UsageError
from .progress import task
from .store import Workspace

ONNX_FILE = "model.onnx"


class OnnxClassifier:
    """A classifier exported to ONNX: tokenizer files and ``model.onnx`` in one version folder.

    Same interface as :class:`inhouse.infer.Classifier` for prediction:
    ``labels``, ``version``, ``sha256``, ``multi_label``, ``predict_proba(texts)``,
    ``predict(texts)``, ``decide(probs)`` and ``embed(texts)``, so
    :func:`inhouse.infer.classify_texts` runs it unchanged.

    >>> clf = OnnxClassifier(registry.load(ws, "intents-onnx"))
    >>> clf.predict_proba(["where is my card"]).shape
    (1, 77)
    """

    batch_size = 64

    def __init__(self, version: registry.Version, *, ws: Workspace | None = None, threads: int | None = None):
        try:
            import onnxruntime as ort
            from transformers import AutoTokenizer
        except ImportError as e:  # pragma: no cover - depends on the install
            raise MissingDependency("onnxruntime", "onnx", "Running an ONNX model") from e
        self.ws, self.version = ws, version
        manifest = self.manifest = version.manifest
        self.labels: list[str] = list(manifest.get("labels") or [])
        self.method: str = manifest.get("method", "?")
        self.multi_label: bool = bool(manifest.get("multi_label"))
        self.threshold: float = float(manifest.get("threshold", 0.5))
        self.max_length = int((manifest.get("onnx") or {}).get("max_length", 256))
        self.tokenizer = AutoTokenizer.from_pretrained(str(version.path), local_files_only=True)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(version.path / ONNX_FILE), opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    @property
    def ref(self) -> str:
        return self.version.ref

    @property
    def sha256(self) -> str:
        return self.version.sha256

    def _run(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
        feeds = {k: np.asarray(enc[k], dtype=np.int64) for k in self.inputs}
        probs, emb = self.session.run(["probabilities", "embeddings"], feeds)
        return probs, emb

    def _batched(self, texts: list[str], which: int, desc: str) -> np.ndarray:
        texts = list(texts)
        out = []
        with task(desc, total=len(texts), unit="text") as t:
            for i in range(0, len(texts), self.batch_size):
                batch = texts[i:i + self.batch_size]
                out.append(self._run(batch)[which])
                t.advance(len(batch))
        if not out:
            width = len(self.labels) if which == 0 else 0
            return np.zeros((0, width), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)

    def predict_proba(self, texts: list[str], hashes: list[str] | None = None) -> np.ndarray:
        """Class probabilities, shape (len(texts), len(labels)), columns in ``labels`` order."""
        return self._batched(texts, 0, f"classifying with {self.ref} (onnx)")

    def predict(self, texts: list[str]) -> list:
        """The label of each text (a list of labels per text for multi-label models)."""
        return self.decide(self.predict_proba(texts))

    def decide(self, probs: np.ndarray) -> list:
        if self.multi_label:
            return [[self.labels[j] for j in np.flatnonzero(p >= self.threshold)] for p in probs]
        return [self.labels[j] for j in probs.argmax(axis=1)]

    def embed(self, texts: list[str], hashes: list[str] | None = None) -> np.ndarray:
        """The L2-normalised sentence vectors the head sees."""
        return self._batched(texts, 1, f"embedding with {self.ref} (onnx)")


def is_onnx(version: registry.Version) -> bool:
    return version.manifest.get("format") == "onnx"


def load_classifier(ws: Workspace, ref: str | registry.Version):
    """The classifier for a reference, whatever its format; its files are verified first.

    >>> load_classifier(ws, "intents@3").version.ref
    'intents@3'
    """
    v = registry.verify(registry.resolve(ws, ref))
    if is_onnx(v):
        return OnnxClassifier(v, ws=ws)
    fmt = v.manifest.get("format", "safetensors")
    if fmt != "safetensors":
        raise UsageError(f"{v.ref}: format {fmt!r} is unknown; this inhouse reads 'safetensors' and 'onnx'.",
                         fix="Upgrade inhouse, or re-export the model from its source machine.")
    if not v.manifest.get("labels"):
        raise UsageError(f"{v.ref} is not a classifier (its manifest lists no labels).",
                         fix="Use a version made by: inhouse train")
    try:
        from .infer import Classifier
    except ImportError as e:  # pragma: no cover - infer.py ships with the package
        raise MissingDependency("inhouse.infer", "train", "Running a trained classifier") from e
    return Classifier.load(ws, v.ref)


def onnx_path(version: registry.Version) -> Path:
    return version.path / ONNX_FILE
