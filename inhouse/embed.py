"""Text embeddings with a cache keyed by (model hash, text hash).

An :class:`Encoder` needs one method, :meth:`Encoder.encode_batch`; batching,
normalisation, progress and the cache live here once. Identical texts are
embedded once, and every later run or experiment on the same model reuses them.

    >>> enc = load_encoder(ws, "minilm-l6")
    >>> embed_texts(ws, enc, ["card not working", "where is my card"]).shape
    (2, 384)
"""

from __future__ import annotations

import threading
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import UsageError
from .models import DEFAULT_ENCODER, BaseModel, get_model
from .progress import task
from .store import Workspace, atomic_path, read_documents, text_hash


class Encoder(ABC):
    """Turns texts into vectors. Subclasses implement :meth:`encode_batch`."""

    batch_size = 64

    def __init__(self, model: BaseModel):
        self.model = model
        self.name = model.name
        self.sha256 = model.sha256

    @abstractmethod
    def encode_batch(self, texts: list[str]) -> np.ndarray:
        """Vectors for one batch of texts, shape (len(texts), dim)."""

    @property
    def dim(self) -> int:
        return int(self.encode_batch(["dimension probe"]).shape[1])

    def encode(self, texts: list[str], *, normalize: bool = True, desc: str | None = None) -> np.ndarray:
        """Vectors for any number of texts, in batches, with progress; L2-normalised by default."""
        out: list[np.ndarray] = []
        with task(desc or f"embedding with {self.name}", total=len(texts), unit="text") as t:
            for i in range(0, len(texts), self.batch_size):
                batch = texts[i:i + self.batch_size]
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
_loaded: dict[str, Encoder] = {}
_lock = threading.Lock()


def load_encoder(ws: Workspace, name: str = DEFAULT_ENCODER) -> Encoder:
    """Load (once per process) a base model as an encoder."""
    model = get_model(ws, name)
    if model.kind not in ENCODERS:
        raise UsageError(f"model {name!r} is a {model.kind} model and cannot embed text.",
                         fix=f"Use an embedding model such as {DEFAULT_ENCODER!r} or 'wordllama'.")
    with _lock:
        if model.sha256 not in _loaded:
            _loaded[model.sha256] = ENCODERS[model.kind](model)
        return _loaded[model.sha256]


# ------------------------------------------------------------------ cache ----

class EmbeddingCache:
    """Vectors on disk under ``embeddings/<model sha256[:16]>/``, keyed by text hash.

    Each write adds one Parquet part (text_hash, vector); parts are immutable,
    so readers in other processes never see half a file.
    """

    def __init__(self, ws: Workspace, model_sha256: str):
        self.dir = ws.dir("embeddings", model_sha256[:16])

    def parts(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.parquet"))

    def get(self, hashes: list[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``hashes``."""
        parts = self.parts()
        if not parts or not hashes:
            return {}
        import duckdb
        import pyarrow as pa

        con = duckdb.connect()
        con.register("wanted", pa.table({"h": pa.array(sorted(set(hashes)), pa.string())}))
        files = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in parts) + "]"
        tbl = con.sql(
            f"SELECT p.text_hash, any_value(p.vector) AS vector FROM read_parquet({files}) p "
            "JOIN wanted w ON p.text_hash = w.h GROUP BY p.text_hash"
        ).to_arrow_table()
        con.close()
        if tbl.num_rows == 0:
            return {}
        col = tbl.column("vector").combine_chunks()
        dim = len(col[0])
        flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, dim)
        return dict(zip(tbl.column("text_hash").to_pylist(), flat))

    def put(self, hashes: list[str], vectors: np.ndarray) -> None:
        if not hashes:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        dim = vectors.shape[1]
        vec = pa.FixedSizeListArray.from_arrays(pa.array(vectors.astype(np.float32).ravel()), dim)
        table = pa.table({"text_hash": pa.array(hashes, pa.string()), "vector": vec})
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        with atomic_path(self.dir / name) as tmp:
            pq.write_table(table, tmp)


def embed_texts(ws: Workspace, encoder: Encoder, texts: list[str], hashes: list[str] | None = None,
                *, stats: dict | None = None) -> np.ndarray:
    """Embeddings for ``texts`` (normalised), computing only those not cached."""
    hashes = hashes if hashes is not None else [text_hash(t) for t in texts]
    cache = EmbeddingCache(ws, encoder.sha256)
    found = cache.get(hashes)
    todo: dict[str, str] = {}
    for h, t in zip(hashes, texts):
        if h not in found and h not in todo:
            todo[h] = t
    if todo:
        keys = list(todo)
        vecs = encoder.encode([todo[k] for k in keys])
        # write in slices so an interrupted run keeps what it finished
        cache.put(keys, vecs)
        found.update(zip(keys, vecs))
    if stats is not None:
        stats.update(computed=len(todo), reused=len(set(hashes)) - len(todo))
    if not hashes:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([found[h] for h in hashes])


@dataclass
class EmbedResult:
    dataset: str
    model: str
    model_sha256: str
    documents: int
    unique_texts: int
    computed: int
    reused: int
    dim: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def embed_dataset(ws: Workspace, dataset: str, model: str = DEFAULT_ENCODER, *, split: str | None = None,
                  chunk: int = 20_000) -> tuple[EmbedResult, np.ndarray, np.ndarray]:
    """Embed every document of a dataset; returns (result, doc_ids, vectors).

    Work is cached in chunks, so an interrupted run resumes where it stopped.
    """
    t0 = time.time()
    encoder = load_encoder(ws, model)
    df = read_documents(ws, dataset, columns=["doc_id", "text", "text_hash"], split=split)
    texts, hashes = df["text"].tolist(), df["text_hash"].tolist()
    computed = reused = 0
    blocks = []
    for i in range(0, len(texts), chunk):
        stats: dict = {}
        blocks.append(embed_texts(ws, encoder, texts[i:i + chunk], hashes[i:i + chunk], stats=stats))
        computed += stats["computed"]
        reused += stats["reused"]
    vecs = np.concatenate(blocks) if blocks else np.zeros((0, 0), dtype=np.float32)
    result = EmbedResult(dataset, model, encoder.sha256, len(texts), len(set(hashes)), computed,
                         len(set(hashes)) - computed, int(vecs.shape[1]) if vecs.size else 0,
                         round(time.time() - t0, 3))
    ws.record_run("embed", {"dataset": dataset, "model": model, "split": split}, result.to_dict(),
                  model=model, model_sha256=encoder.sha256, started_at=t0)
    return result, df["doc_id"].to_numpy(), vecs
