"""Text encoders behind one method, :meth:`Encoder.encode_batch`.

Batching, normalisation, progress and thread safety live in the base class
once; :func:`load_encoder` keeps loaded encoders in a bounded, locked cache.
Use :func:`inhouse.models.embeddings.embed_texts` to embed through the
workspace's embedding cache.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> enc = load_encoder(ws, "minilm-l6")
    >>> enc.encode(["card not working", "where is my card"]).shape
    (2, 384)
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from ..cache import ModelCache, module_bytes
from ..errors import UsageError
from ..progress import task
from ..workspace.store import Workspace
from .catalog import BUILTIN_KINDS, DEFAULT_ENCODER, BaseModel, get_model, register_kind, unregister_kind


class Encoder(ABC):
    """Turns texts into vectors. Subclasses implement :meth:`encode_batch`."""

    batch_size = 64

    def __init__(self, model: BaseModel):
        self.model = model
        self.name = model.name
        self.sha256 = model.sha256
        self._lock = threading.Lock()  # tokenizers and some backends refuse concurrent calls

    @abstractmethod
    def encode_batch(self, texts: list[str]) -> np.ndarray:
        """Vectors for one batch of texts, shape (len(texts), dim)."""

    @property
    def dim(self) -> int:
        with self._lock:
            return int(self.encode_batch(["dimension probe"]).shape[1])

    def approx_bytes(self) -> int:
        """Memory the loaded encoder holds (for the cache's budget)."""
        return max(module_bytes(getattr(self, "st", None)), self.model.size)

    def encode(self, texts: list[str], *, normalize: bool = True, desc: str | None = None) -> np.ndarray:
        """Vectors for any number of texts, in batches, with progress; L2-normalised by default."""
        out: list[np.ndarray] = []
        with task(desc or f"embedding with {self.name}", total=len(texts), unit="text") as t:
            for i in range(0, len(texts), self.batch_size):
                batch = texts[i:i + self.batch_size]
                with self._lock:
                    out.append(np.asarray(self.encode_batch(batch), dtype=np.float32))
                t.advance(len(batch))
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = np.concatenate(out)
        if normalize:
            norms = np.linalg.norm(vecs, axis=1, keepdims=True)
            vecs = vecs / np.maximum(norms, 1e-12)
        return vecs


class SentenceTransformerEncoder(Encoder):
    """A sentence-transformers folder, or a plain Hugging Face encoder (mean pooling).

    Batches handed to sentence-transformers are large so that it can sort them
    by length and pad little; it runs them in mini-batches of ``mini_batch``.
    """

    batch_size = 512
    mini_batch = 32

    def __init__(self, model: BaseModel, st_model=None):
        super().__init__(model)
        if st_model is None:
            from sentence_transformers import SentenceTransformer

            st_model = SentenceTransformer(model.path, device="cpu", local_files_only=True)
        self.st = st_model

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        return self.st.encode(texts, batch_size=self.mini_batch, convert_to_numpy=True,
                              show_progress_bar=False, normalize_embeddings=False)


class WordLlamaEncoder(Encoder):
    """WordLlama static embeddings: very fast, weights inside the wheel."""

    batch_size = 512

    def __init__(self, model: BaseModel):
        super().__init__(model)
        from wordllama import WordLlama

        self.wl = WordLlama.load(cache_dir=Path(model.path), disable_download=True)

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.wl.embed(texts, norm=False), dtype=np.float32)


class OnnxEncoder(Encoder):
    """An ONNX sentence encoder with a tokenizer beside it (mean pooling over tokens)."""

    def __init__(self, model: BaseModel):
        super().__init__(model)
        import onnxruntime as ort
        from transformers import AutoTokenizer

        path = Path(model.path)
        folder = path.parent if path.is_file() else path
        onnx_file = path if path.is_file() else sorted(path.glob("*.onnx"))[0]
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(onnx_file), opts, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="np")
        feeds = {k: v.astype(np.int64) for k, v in enc.items() if k in self.inputs}
        hidden = self.session.run(None, feeds)[0]
        if hidden.ndim == 2:
            return hidden
        mask = enc["attention_mask"][..., None].astype(np.float32)
        return (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)


ENCODERS = {"sentence-transformers": SentenceTransformerEncoder, "hf": SentenceTransformerEncoder,
            "static": WordLlamaEncoder, "onnx": OnnxEncoder}
_loaded = ModelCache("encoders")


def register_encoder(kind: str):
    """Class decorator: base models of ``kind`` load as this :class:`Encoder` (``inhouse models add --kind``).

    >>> @register_encoder("hashed")
    ... class Hashed(Encoder):
    ...     def encode_batch(self, texts): ...
    >>> "hashed" in ENCODERS
    True
    >>> unregister_encoder("hashed")
    """
    def add(cls: type[Encoder]) -> type[Encoder]:
        register_kind(kind, embeds=True)
        ENCODERS[kind] = cls
        return cls

    return add


def unregister_encoder(kind: str) -> None:
    if kind not in BUILTIN_KINDS:
        ENCODERS.pop(kind, None)
        unregister_kind(kind)


def load_encoder(ws: Workspace, name: str = DEFAULT_ENCODER) -> Encoder:
    """Load (once per process) a base model as an encoder."""
    model = get_model(ws, name)
    if model.kind not in ENCODERS:
        raise UsageError(f"model {name!r} is a {model.kind} model and cannot embed text.",
                         fix=f"Use an embedding model such as {DEFAULT_ENCODER!r} or 'wordllama'.")
    return _loaded.get_or_load(model.sha256, lambda: ENCODERS[model.kind](model), size=lambda e: e.approx_bytes())

