"""The embedding cache, keyed by (model sha256, text hash), and dataset embedding.

One embedding per text, everywhere: ``embed``, ``discover``, summaries, head
training, zero-shot evaluation and explanations embed the same text of a
document, :func:`prepare_text` of it (links, @handles and HTML entities
removed), and share one cache entry per (model, hash of that text). So
``discover`` right after ``embed`` computes nothing.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..workspace.documents import read_documents
from ..workspace.files import atomic_path, atomic_write_text, sha256_file, text_hash
from ..workspace.store import Workspace
from .catalog import DEFAULT_ENCODER
from .encoders import Encoder, load_encoder

log = logging.getLogger("inhouse.cache")

# ------------------------------------------------------------------- text ----

TEXT_PREP = "clean-v1"  # the name of :func:`prepare_text`'s rule, kept in manifests of models that use it
_URL = re.compile(r"https?://\S+|www\.\S+")
_HANDLE = re.compile(r"(?<![\w.])@\w+")
_ENTITIES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'"}


def prepare_text(text: str) -> str:
    """The text of a document as it is embedded: links, @handles and HTML entities removed.

    They name the channel, not the subject (every airline tweet starts with
    ``@united``), and would otherwise pull documents together by addressee.
    Applying it twice changes nothing more.

    >>> prepare_text("@united my bag is lost https://example.com/x &amp; nobody helps")
    'my bag is lost & nobody helps'
    """
    out = _HANDLE.sub(" ", _URL.sub(" ", text))
    for k, v in _ENTITIES.items():
        out = out.replace(k, v)
    out = " ".join(out.split())
    return out or text.strip() or text


# ------------------------------------------------------------------ cache ----

SEAL_SUFFIX = ".seal.json"
COMPACT_AT = 64  # a cache folder with this many parts is merged into one on the next write
_sealed_ok: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256 found intact in this process
_sealed_lock = threading.Lock()
_warned: set[str] = set()


class EmbeddingCache:
    """Vectors on disk under ``embeddings/<model sha256[:16]>/``, keyed by text hash.

    Each write adds one Parquet part (text_hash, vector); parts are immutable,
    so readers in other processes never see half a file. Beside each part a
    seal ``part-....parquet.seal.json`` records its sha256, size and row count,
    written before the part is renamed into place. A reader uses only parts
    whose bytes match their seal: a part without a seal (written before seals,
    or by a crashed writer), or one edited or damaged since, is skipped, logged
    and listed in :attr:`skipped`, and its vectors are computed again. Each
    part is hashed once per process per (path, size, mtime).

    The seal detects damage and edits of the data; someone who can rewrite
    both a part and its seal can still poison the cache, so the workspace
    folder must be writable only by the people who run inhouse.
    """

    require_model = False  # True: a part whose seal does not name this model (older seals) is not trusted either

    def __init__(self, ws: Workspace, model_sha256: str):
        self.dir = ws.dir("embeddings", model_sha256[:16])
        self.model_sha256 = model_sha256

    @property
    def skipped(self) -> list[Path]:
        """Parts this cache refused to read (no seal, or bytes that do not match it)."""
        return self.__dict__.setdefault("_skipped", [])  # subclasses may set only ``dir`` in __init__

    def parts(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.parquet"))

    def trusted_parts(self) -> list[Path]:
        """The parts whose bytes match their seal; the others are skipped (see the class docstring)."""
        out = []
        for p in self.parts():
            problem = _seal_problem(p) or self._model_problem(p)
            if problem is None:
                out.append(p)
                continue
            self.skipped.append(p)
            if str(p) not in _warned:
                _warned.add(str(p))
                log.warning("ignoring cache part %s: %s; its entries will be computed again", p, problem)
        return out

    def _model_problem(self, part: Path) -> str | None:
        """None if the part's seal names this cache's model (or names none and that is allowed)."""
        model = getattr(self, "model_sha256", None)
        try:
            sealed = json.loads(_seal_path(part).read_text()).get("model_sha256")
        except (ValueError, OSError, AttributeError):
            return "its seal is unreadable"
        if model is None or sealed == model or (sealed is None and not self.require_model):
            return None
        return f"its seal names model {str(sealed)[:16]}, not {model[:16]} (a foreign or older part)"

    def get(self, hashes: list[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``hashes`` (from intact parts only)."""
        parts = self.trusted_parts() if hashes else []
        if not parts or not hashes:
            return {}
        import duckdb
        import pyarrow as pa

        con = duckdb.connect()
        con.register("wanted", pa.table({"h": pa.array(sorted(set(hashes)), pa.string())}))
        for attempt in range(3):
            files = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in parts) + "]"
            try:
                tbl = con.sql(
                    f"SELECT p.text_hash, any_value(p.vector) AS vector FROM read_parquet({files}) p "
                    "JOIN wanted w ON p.text_hash = w.h GROUP BY p.text_hash"
                ).to_arrow_table()
                break
            except duckdb.IOException:  # another process compacted the parts away under us: list them again
                if attempt == 2:
                    raise
                parts = self.trusted_parts()
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
        final = self.dir / name
        with atomic_path(final) as tmp:
            pq.write_table(table, tmp)
            seal = {"sha256": sha256_file(tmp), "size": tmp.stat().st_size, "rows": len(hashes), "dim": int(dim),
                    "model_sha256": getattr(self, "model_sha256", None)}
            atomic_write_text(_seal_path(final), json.dumps(seal, sort_keys=True))  # the seal first, then the part
        if len(self.parts()) >= COMPACT_AT:
            self.compact()

    def compact(self) -> dict:
        """Merge the trusted parts into one sealed part (one row per text hash); remove the merged ones.

        Reads then open one file instead of one per write (a document view with
        ``?model=`` writes a part of one row). Parts that are not trusted are
        left for :attr:`skipped` / ``inhouse gc``. Returns ``{"parts": merged, "rows": kept}``.
        """
        parts = self.trusted_parts()
        if len(parts) < 2:
            return {"parts": 0, "rows": 0}
        import duckdb
        import pyarrow.parquet as pq

        files = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in parts) + "]"
        con = duckdb.connect()
        try:
            tbl = con.sql(f"SELECT text_hash, any_value(vector) AS vector FROM read_parquet({files}) "
                          "GROUP BY text_hash ORDER BY text_hash").to_arrow_table()
        finally:
            con.close()
        col = tbl.column("vector").combine_chunks()
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        final = self.dir / name
        with atomic_path(final) as tmp:
            pq.write_table(tbl.set_column(1, "vector", col), tmp)
            seal = {"sha256": sha256_file(tmp), "size": tmp.stat().st_size, "rows": tbl.num_rows,
                    "dim": len(col[0]) if len(col) else 0, "model_sha256": getattr(self, "model_sha256", None),
                    "compacted": len(parts)}
            atomic_write_text(_seal_path(final), json.dumps(seal, sort_keys=True))
        for p in parts:
            p.unlink(missing_ok=True)
            _seal_path(p).unlink(missing_ok=True)
        return {"parts": len(parts), "rows": tbl.num_rows}


def _seal_path(part: Path) -> Path:
    return part.with_name(part.name + SEAL_SUFFIX)


def _seal_problem(part: Path) -> str | None:
    """None if ``part`` matches its seal, else what is wrong with it."""
    if part.is_symlink() or not part.is_file():
        return "not a regular file"
    seal_path = _seal_path(part)
    if not seal_path.is_file() or seal_path.is_symlink():
        return "it has no seal (written before seals, or by an interrupted writer)"
    try:
        seal = json.loads(seal_path.read_text())
        expected, size = str(seal["sha256"]), int(seal["size"])
    except (ValueError, KeyError, TypeError, OSError, UnicodeDecodeError):
        return "its seal is unreadable"
    st = part.stat()
    if st.st_size != size:
        return f"it is {st.st_size} bytes, its seal says {size} (edited or damaged)"
    key = (str(part), st.st_size, st.st_mtime_ns)
    with _sealed_lock:
        if _sealed_ok.get(key) == expected:
            return None
    if sha256_file(part) != expected:
        return "its sha256 does not match its seal (edited or damaged)"
    with _sealed_lock:
        _sealed_ok[key] = expected
    return None


def embed_texts(ws: Workspace, encoder: Encoder, texts: list[str], hashes: list[str] | None = None,
                *, stats: dict | None = None, prepare: bool = False) -> np.ndarray:
    """Embeddings for ``texts`` (normalised), computing only those not cached.

    With ``prepare``, each text is embedded as :func:`prepare_text` of it (and
    cached under that text's hash; ``hashes`` are then not used): the way every
    stage embeds documents. ``stats`` receives ``computed`` and ``reused``.
    """
    if prepare:
        texts = [prepare_text(t) for t in texts]
        hashes = None
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
        if cache.skipped:  # parts refused as unsealed or tampered (see EmbeddingCache)
            stats["skipped_parts"] = len(cache.skipped)
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
                  chunk: int = 20_000, where: str | None = None) -> tuple[EmbedResult, np.ndarray, np.ndarray]:
    """Embed every document of a dataset; returns (result, doc_ids, vectors).

    Each document is embedded as :func:`prepare_text` of it, the text every
    stage embeds, so ``discover``, training and summaries reuse these vectors.
    Work is cached in chunks, so an interrupted run resumes where it stopped.
    """
    t0 = time.time()
    encoder = load_encoder(ws, model)
    df = read_documents(ws, dataset, columns=["doc_id", "text"], split=split, where=where)
    texts = [prepare_text(t) for t in df["text"]]
    hashes = [text_hash(t) for t in texts]
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
    ws.record_run("embed", {"dataset": dataset, "model": model, "split": split, "where": where,
                            "text": TEXT_PREP}, result.to_dict(),
                  model=model, model_sha256=encoder.sha256, started_at=t0)
    return result, df["doc_id"].to_numpy(), vecs
