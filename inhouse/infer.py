"""Load a trained classifier version and apply it to text.

A classifier version (see :mod:`inhouse.train`) is a registry folder that
holds, besides ``manifest.json``:

- ``head.safetensors``: the linear head, tensors ``W`` (labels x dim) and ``b``
  (labels); ``probs = softmax(emb @ W.T + b)``, or ``sigmoid`` when the manifest
  says ``multi_label`` (a label is predicted when its probability reaches
  ``threshold``). The label order is ``manifest["labels"]``.
- and, by method, the encoder whose embeddings the head consumes:

  ============  =============================================================
  ``head``      nothing: the frozen base encoder ``manifest["base"]`` (name,
                sha256); embeddings come from the shared embedding cache
  ``setfit``,   ``encoder/``: a complete sentence-transformers (or Hugging
  ``full``      Face) folder saved with safetensors
  ``lora``      ``adapter/``: a peft LoRA adapter (safetensors + config) on the
                base encoder
  ============  =============================================================

- ``train_index.safetensors`` + ``train_rows.json``: the training rows'
  embeddings, doc_ids, text hashes and labels, used by ``inhouse explain``.

``manifest["encoder"]`` says how token vectors become the embedding:
``pooling`` (``mean`` or ``last`` token), ``normalize`` (L2) and ``max_length``.

    >>> clf = Classifier.load(ws, "intents@1")
    >>> clf.predict(["my card has not arrived"])
    ['card_arrival']
    >>> clf.predict_proba(["my card has not arrived"]).shape
    (1, 77)

:func:`classify_texts` is the one core of batch prediction (cache, top-k);
:func:`classify` wraps it for a dataset or a file and writes the output file.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .embed import EmbeddingCache, embed_texts, load_encoder
from .errors import ColumnNotFound, InputError, IntegrityError, MissingDependency, UsageError
from .models import EMBEDDING_KINDS, get_model
from .progress import task
from .registry import Version, load as load_version
from .store import Workspace, read_documents, text_hash, write_table

HEAD_FILE = "head.safetensors"
ENCODER_DIR = "encoder"
ADAPTER_DIR = "adapter"
INDEX_FILE = "train_index.safetensors"
ROWS_FILE = "train_rows.json"
CAUSAL_TYPES = {"llama", "mistral", "qwen2", "qwen3", "gpt2", "phi", "phi3", "gemma", "gemma2", "gemma3_text",
                "olmo", "olmo2", "stablelm", "falcon", "gpt_neox", "smollm3", "granite"}


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


# ------------------------------------------------------------- backbone ----

def _torch():
    import torch

    return torch


class Backbone(_torch().nn.Module):
    """A transformer plus pooling: texts in, the embeddings a head consumes out.

    ``pooling`` is ``mean`` (over non-padding tokens; sentence encoders) or
    ``last`` (the last non-padding token; causal language models).
    ``st`` is the sentence-transformers object when there is one (for saving).
    """

    def __init__(self, transformer, tokenizer, *, pooling: str = "mean", normalize: bool = True,
                 max_length: int = 128, st=None):
        super().__init__()
        self.transformer = transformer
        self.tokenizer = tokenizer
        self.pooling, self.normalize, self.max_length = pooling, normalize, max_length
        self._st = [st]  # in a list so that nn.Module does not register it twice
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"
        if getattr(transformer.config, "pad_token_id", None) is None:
            transformer.config.pad_token_id = tokenizer.pad_token_id

    @property
    def dim(self) -> int:
        return int(self.transformer.config.hidden_size)

    def tokenize(self, texts: list[str]) -> dict:
        return self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt")

    def forward(self, batch: dict):
        torch = _torch()
        mask = batch["attention_mask"]
        hidden = self.transformer(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
        if self.pooling == "last":
            last = mask.sum(1) - 1
            pooled = hidden[torch.arange(hidden.shape[0]), last]
        else:
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled

    def embed(self, texts: list[str], batch_size: int = 64, desc: str | None = None) -> np.ndarray:
        """Embeddings without gradients, batched by length, in input order."""
        torch = _torch()
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode(), task(desc or "embedding", total=len(texts), unit="text") as t:
                for i in range(0, len(texts), batch_size):
                    idx = order[i:i + batch_size]
                    out[idx] = self(self.tokenize([texts[j] for j in idx])).float().numpy()
                    t.advance(len(idx))
        finally:
            self.train(was_training)
        return out

    def save(self, folder: Path) -> None:
        """A sentence-transformers folder when built from one, else a Hugging Face folder."""
        st = self._st[0]
        if st is not None:
            st.save(str(folder), create_model_card=False, safe_serialization=True)
        else:
            self.transformer.save_pretrained(str(folder), safe_serialization=True)
            self.tokenizer.save_pretrained(str(folder))


def is_causal(config) -> bool:
    archs = getattr(config, "architectures", None) or []
    return any(a.endswith("ForCausalLM") for a in archs) or getattr(config, "model_type", "") in CAUSAL_TYPES


def _from_st(path: str, max_length: int) -> Backbone:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    normalize = any(type(m).__name__ == "Normalize" for m in st)
    pooling = "mean"
    for m in st:
        mode = getattr(m, "pooling_mode", None) or (m.get_config_dict().get("pooling_mode") if hasattr(m, "get_config_dict") else None)
        if mode == "lasttoken":
            pooling = "last"
    st.max_seq_length = max_length
    return Backbone(st[0].auto_model, st.tokenizer, pooling=pooling, normalize=normalize, max_length=max_length, st=st)


def _from_hf(path: str, max_length: int, gguf_file: str | None = None,
             pooling: str | None = None, normalize: bool | None = None) -> Backbone:
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    kw: dict[str, Any] = {"local_files_only": True}
    if gguf_file:
        try:
            import gguf  # noqa: F401
        except ImportError as e:
            raise MissingDependency("gguf", "train", "Fine-tuning a GGUF base model through transformers") from e
        kw["gguf_file"] = gguf_file
    config = AutoConfig.from_pretrained(path, **kw)
    causal = is_causal(config)
    tokenizer = AutoTokenizer.from_pretrained(path, **kw)
    import torch

    model = AutoModel.from_pretrained(path, config=config, dtype=torch.float32, **kw)
    pooling = pooling or ("last" if causal else "mean")
    normalize = (not causal) if normalize is None else normalize
    return Backbone(model, tokenizer, pooling=pooling, normalize=normalize, max_length=max_length)


def load_backbone(ws: Workspace, base: str, *, max_length: int = 128, folder: Path | None = None,
                  pooling: str | None = None, normalize: bool | None = None) -> Backbone:
    """A fresh, trainable copy of a base model's encoder (or of a saved ``encoder/`` folder).

    >>> load_backbone(ws, "minilm-l6").dim
    384
    """
    if folder is not None:
        if (Path(folder) / "modules.json").exists():
            return _from_st(str(folder), max_length)
        return _from_hf(str(folder), max_length, pooling=pooling, normalize=normalize)
    model = get_model(ws, base)
    path = Path(model.path)
    if model.kind == "sentence-transformers":
        return _from_st(str(path), max_length)
    if model.kind == "hf":
        return _from_hf(str(path), max_length, pooling=pooling, normalize=normalize)
    if model.kind == "gguf":
        gguf = path if path.is_file() else sorted(path.glob("*.gguf"))[0]
        return _from_hf(str(gguf.parent), max_length, gguf_file=gguf.name, pooling=pooling, normalize=normalize)
    raise UsageError(f"base model {base!r} is a {model.kind} model; fine-tuning needs a transformer.",
                     fix="Use --method head with it, or a base such as 'minilm-l6' or a registered Hugging Face folder.")


def frozen_embeddings(ws: Workspace, base: str, texts: list[str], hashes: list[str] | None = None,
                      *, max_length: int = 128) -> np.ndarray:
    """Embeddings from the untuned base: the shared cache for embedding models, else a backbone."""
    model = get_model(ws, base)
    if model.kind in EMBEDDING_KINDS:
        return embed_texts(ws, load_encoder(ws, base), texts, hashes)
    return _cached_base_backbone(ws, base, max_length).embed(texts, desc=f"embedding with {base}")


_bases: dict[tuple, Backbone] = {}
_lock = threading.Lock()


def _cached_base_backbone(ws: Workspace, base: str, max_length: int) -> Backbone:
    key = (get_model(ws, base).sha256, max_length)
    with _lock:
        if key not in _bases:
            _bases[key] = load_backbone(ws, base, max_length=max_length).eval()
        return _bases[key]


# ----------------------------------------------------------- classifier ----

class Classifier:
    """A trained classifier version, ready to predict.

    >>> clf = Classifier.load(ws, "intents")
    >>> clf.version.ref, clf.labels[:2]
    ('intents@1', ['activate_my_card', 'age_limit'])
    """

    def __init__(self, ws: Workspace, version: Version, head: Head, backbone: Backbone | None):
        self.ws, self.version, self.head = ws, version, head
        self.manifest = version.manifest
        self.labels: list[str] = list(self.manifest["labels"])
        self.method: str = self.manifest["method"]
        self.base: str = self.manifest["base"]["name"]
        self.multi_label: bool = bool(self.manifest.get("multi_label"))
        self._backbone = backbone

    @classmethod
    def load(cls, ws: Workspace, ref: str) -> "Classifier":
        """Resolve ``ref`` (``M``, ``M@3``, ``M@production``), verify its hashes and load it."""
        v = load_version(ws, ref)
        m = v.manifest
        if m.get("kind") != "classifier":
            raise UsageError(f"{v.ref} is a {m.get('kind')!r} model, not a classifier.")
        base = get_model(ws, m["base"]["name"])
        if base.sha256 != m["base"]["sha256"]:
            raise IntegrityError(f"{v.ref} was trained on base {base.name!r} sha256 {m['base']['sha256'][:16]}, "
                                 f"but {base.name!r} is now {base.sha256[:16]}.",
                                 fix=f"Register the original base files again: inhouse models add {base.name} PATH")
        head = Head.load(v.path / HEAD_FILE, bool(m.get("multi_label")), float(m.get("threshold", 0.5)))
        enc = m.get("encoder", {})
        backbone = None
        if m["method"] in ("setfit", "full"):
            backbone = load_backbone(ws, base.name, folder=v.path / ENCODER_DIR, max_length=enc.get("max_length", 128),
                                     pooling=enc.get("pooling"), normalize=enc.get("normalize"))
        elif m["method"] == "lora":
            backbone = load_lora_backbone(ws, base.name, v.path / ADAPTER_DIR, enc)
        if backbone is not None:
            backbone.pooling, backbone.normalize = enc.get("pooling", backbone.pooling), enc.get("normalize", backbone.normalize)
            backbone.eval()
        return cls(ws, v, head, backbone)

    @property
    def sha256(self) -> str:
        return self.version.sha256

    def embed(self, texts: list[str], hashes: list[str] | None = None) -> np.ndarray:
        """The embeddings the head consumes, shape (len(texts), dim)."""
        if not texts:
            return np.zeros((0, self.head.W.shape[1]), dtype=np.float32)
        if self._backbone is None:
            enc = self.manifest.get("encoder", {})
            return frozen_embeddings(self.ws, self.base, list(texts), hashes, max_length=enc.get("max_length", 128))
        return self._backbone.embed(list(texts), desc=f"embedding with {self.version.ref}")

    def predict_proba(self, texts: list[str], hashes: list[str] | None = None) -> np.ndarray:
        """Probabilities, shape (len(texts), len(labels)), columns in :attr:`labels` order."""
        return self.head.proba(self.embed(texts, hashes))

    def predict(self, texts: list[str]) -> list:
        """The label of each text (a list of labels per text for multi-label models)."""
        return self.decide(self.predict_proba(texts))

    def decide(self, probs: np.ndarray) -> list:
        if self.multi_label:
            return [[self.labels[j] for j in np.flatnonzero(p >= self.head.threshold)] for p in probs]
        return [self.labels[j] for j in probs.argmax(axis=1)]

    def encoder_module(self):
        """The torch module that makes the embeddings (tuned, or the frozen base for ``head``).

        Its ``transformer`` attribute is the Hugging Face model (a peft model for
        ``lora``); use it for weight diffs and export.
        """
        if self._backbone is not None:
            return self._backbone
        model = get_model(self.ws, self.base)
        if model.kind not in ("sentence-transformers", "hf", "gguf"):
            return None
        return _cached_base_backbone(self.ws, self.base, self.manifest.get("encoder", {}).get("max_length", 128))


def load_lora_backbone(ws: Workspace, base: str, adapter_dir: Path, enc: dict) -> Backbone:
    """The base backbone with a saved LoRA adapter attached (not merged)."""
    try:
        from peft import PeftModel
    except ImportError as e:
        raise MissingDependency("peft", "train", "A LoRA model") from e
    bb = load_backbone(ws, base, max_length=enc.get("max_length", 128), pooling=enc.get("pooling"),
                       normalize=enc.get("normalize"))
    bb.transformer = PeftModel.from_pretrained(bb.transformer, str(adapter_dir), is_trainable=False)
    return bb


# ---------------------------------------------------------- predictions ----

class PredictionCache(EmbeddingCache):
    """Probability vectors under ``predictions/<model sha256[:16]>/``, keyed by text hash."""

    def __init__(self, ws: Workspace, model_sha256: str):
        self.dir = ws.dir("predictions", model_sha256[:16])


def cached_proba(clf: Classifier, texts: list[str], hashes: list[str] | None = None, *, cache: bool = True,
                 batch_size: int = 4096) -> np.ndarray:
    """``clf.predict_proba(texts)``, reusing (and storing) probabilities cached by (model sha256, text hash).

    Work is done in slices of ``batch_size`` distinct texts and each slice is
    cached when done, so an interrupted run keeps what it finished.
    """
    hashes = hashes if hashes is not None else [text_hash(t) for t in texts]
    store = PredictionCache(clf.ws, clf.sha256) if cache else None
    found = store.get(hashes) if store else {}
    todo = list(dict.fromkeys(h for h in hashes if h not in found))
    if todo:
        first = {h: t for t, h in zip(texts, hashes)}
        with task(f"classifying with {clf.version.ref}", total=len(todo), unit="text") as t:
            for i in range(0, len(todo), batch_size):
                keys = todo[i:i + batch_size]
                probs = clf.predict_proba([first[h] for h in keys], keys)
                if store:
                    store.put(keys, probs)
                found.update(zip(keys, probs))
                t.advance(len(keys))
    if not hashes:
        return np.zeros((0, len(clf.labels)), np.float32)
    return np.stack([found[h] for h in hashes]).astype(np.float32)


def classify_texts(clf: Classifier, texts: list[str], hashes: list[str] | None = None, *,
                   top_k: int = 3, cache: bool = True, batch_size: int = 4096) -> dict:
    """Predict every text; the one core of batch prediction.

    Returns ``{"label", "score", "top_labels", "top_scores"}`` (lists in input
    order; ``labels`` too for multi-label models). Probabilities are cached by
    (model sha256, text hash), so texts seen before cost nothing.

    >>> classify_texts(clf, ["card still not here"], top_k=2)["top_labels"]
    [['card_arrival', 'card_delivery_estimate']]
    """
    probs = cached_proba(clf, texts, hashes, cache=cache, batch_size=batch_size)
    k = max(1, min(top_k, len(clf.labels)))
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    out = {
        "label": [clf.labels[r[0]] for r in top],
        "score": [float(probs[i, r[0]]) for i, r in enumerate(top)],
        "top_labels": [[clf.labels[j] for j in r] for r in top],
        "top_scores": [[round(float(probs[i, j]), 6) for j in r] for i, r in enumerate(top)],
    }
    if clf.multi_label:
        out["labels"] = clf.decide(probs)
    return out


def read_table(path: Path):
    """A CSV, Parquet or JSON Lines file as a DataFrame (by extension)."""
    import pandas as pd

    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if not path.exists():
        raise InputError(f"{path}: no such file.", fix="Check the path.")
    if suffix in (".csv", ".csv.gz", ".tsv"):
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix in (".jsonl", ".jsonl.gz", ".ndjson"):
        return pd.read_json(path, lines=True, dtype=False)
    raise InputError(f"{path}: expected a .csv, .tsv, .parquet or .jsonl file, found {suffix or 'no extension'}.",
                     fix="Convert the file, or rename it with the right extension.")


def _input_rows(ws: Workspace, dataset: str | None, input_path: str | None, text_col: str,
                id_col: str | None, split: str | None):
    import pandas as pd

    if (dataset is None) == (input_path is None):
        raise UsageError("give exactly one of --dataset or --input.", fix="Example: --dataset tickets, or --input new.csv")
    if dataset is not None:
        df = read_documents(ws, dataset, columns=["doc_id", "text", "text_hash"], split=split)
        return df["doc_id"].tolist(), df["text"].tolist(), df["text_hash"].tolist(), "doc_id"
    path = Path(input_path)
    df = read_table(path)
    if text_col not in df.columns:
        raise ColumnNotFound(path.name, text_col, list(df.columns), "--text-col")
    if id_col is not None and id_col not in df.columns:
        raise ColumnNotFound(path.name, id_col, list(df.columns), "--id-col")
    texts = ["" if pd.isna(t) else str(t) for t in df[text_col]]
    ids = df[id_col].tolist() if id_col else list(range(len(df)))
    return ids, texts, [text_hash(t) for t in texts], id_col or "row"


def classify(ws: Workspace, ref: str, *, output: str, dataset: str | None = None, input_path: str | None = None,
             text_col: str = "text", id_col: str | None = None, split: str | None = None, top_k: int = 3,
             cache: bool = True) -> dict:
    """Predict every row of a dataset or file and write one row per input, in input order.

    >>> classify(ws, "intents", dataset="banking77", output="preds.parquet")["rows"]
    13083
    """
    import pandas as pd

    from .backends import load_classifier  # picks the ONNX backend for imported ONNX versions

    t0 = time.time()
    clf = load_classifier(ws, ref)
    ids, texts, hashes, id_name = _input_rows(ws, dataset, input_path, text_col, id_col, split)
    pred = classify_texts(clf, texts, hashes, top_k=top_k, cache=cache)
    df = pd.DataFrame({id_name: ids, **pred, "model": clf.version.ref, "model_sha256": clf.sha256})
    out = Path(output)
    write_table(df, out, what="predictions")
    result = {"output": str(out), "rows": len(df), "model": clf.version.ref, "model_sha256": clf.sha256,
              "seconds": round(time.time() - t0, 3),
              "label_counts": dict(pd.Series(pred["label"], dtype=object).value_counts().head(20).items())}
    ws.record_run("classify", {"dataset": dataset, "input": input_path, "output": str(out), "top_k": top_k},
                  result, model=clf.version.ref, model_sha256=clf.sha256, started_at=t0)
    return result
