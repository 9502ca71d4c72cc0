"""Transformer encoders with pooling: texts in, the embeddings a classifier head consumes out.

A :class:`Backbone` wraps a Hugging Face model and its tokenizer with mean
(sentence encoders) or last-token (causal LMs) pooling. :func:`load_backbone`
gives a fresh, trainable copy of a base model or of a version's ``encoder/``;
:func:`base_backbone` a shared, frozen one (bounded cache); and
:func:`frozen_embeddings` the untuned base's vectors, through the embedding
cache when the base is an embedding model.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> load_backbone(ws, "minilm-l6").dim
    384
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..cache import ModelCache
from ..errors import MissingDependency, UsageError
from ..models.catalog import EMBEDDING_KINDS, get_model
from ..models.embeddings import embed_texts, prepare_text
from ..models.encoders import load_encoder
from ..progress import task
from ..workspace.store import Workspace

CAUSAL_TYPES = {"llama", "mistral", "qwen2", "qwen3", "gpt2", "phi", "phi3", "gemma", "gemma2", "gemma3_text",
                "olmo", "olmo2", "stablelm", "falcon", "gpt_neox", "smollm3", "granite"}


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
        self.frozen: list = []  # modules freeze_bottom() froze: kept in eval mode
        self.frozen_layers = 0
        self._tokenize_lock = threading.Lock()  # fast tokenizers refuse concurrent calls ("Already borrowed")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"
        if getattr(transformer.config, "pad_token_id", None) is None:
            transformer.config.pad_token_id = tokenizer.pad_token_id

    @property
    def dim(self) -> int:
        return int(self.transformer.config.hidden_size)

    def tokenize(self, texts: list[str]) -> dict:
        with self._tokenize_lock:
            return self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt")

    def forward(self, batch: dict):
        mask = batch["attention_mask"]
        return self.pool(self.transformer(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state, mask)

    def pool(self, hidden, mask):
        """The text vectors from the last hidden states (padding ignored)."""
        torch = _torch()
        if self.pooling == "last":
            last = mask.sum(1) - 1
            pooled = hidden[torch.arange(hidden.shape[0]), last]
        else:
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled

    # ------------------------------------------- frozen bottom layers ----

    def layers(self) -> tuple[Any, list] | None:
        """``(embeddings, transformer layers)`` for encoders that can be run layer by layer (the BERT
        family, MiniLM included); ``None`` for the others."""
        enc = getattr(self.transformer, "encoder", None)
        if getattr(self.transformer, "embeddings", None) is None or not hasattr(enc, "layer"):
            return None
        return self.transformer.embeddings, list(enc.layer)

    def freeze_bottom(self, k: int) -> None:
        """Freeze the embeddings and the bottom ``k`` layers: no gradients, and no dropout even in
        training mode, so that what they compute for a text never changes (and can be cached)."""
        parts = self.layers()
        if parts is None:
            raise UsageError(f"freezing bottom layers needs an encoder of the BERT family; "
                             f"{type(self.transformer).__name__} is not one.", fix="Use --freeze-layers 0 with this base.")
        emb, layers = parts
        if not 0 <= k < len(layers):
            raise UsageError(f"--freeze-layers must be in [0, {len(layers) - 1}] for this base "
                             f"({len(layers)} layers), found {k}.", fix="Leave at least one layer to train.")
        self.frozen = [emb, *layers[:k]] if k else []
        self.frozen_layers = k
        for m in self.frozen:
            m.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.frozen:
            m.eval()
        return self

    def bottom(self, batch: dict, k: int):
        """The hidden states after the embeddings and the bottom ``k`` layers (see :meth:`top`)."""
        emb, layers = self.layers()
        h = emb(input_ids=batch["input_ids"])
        mask = self._mask(h, batch["attention_mask"])
        for layer in layers[:k]:
            h = layer(h, mask)
        return h

    def top(self, hidden, attention_mask, k: int):
        """The pooled vectors from the states after layer ``k``: the layers above it, then pooling.
        ``top(bottom(b, k), b["attention_mask"], k)`` equals ``forward(b)``."""
        _, layers = self.layers()
        mask = self._mask(hidden, attention_mask)
        for layer in layers[k:]:
            hidden = layer(hidden, mask)
        return self.pool(hidden, attention_mask)

    def _mask(self, hidden, attention_mask):
        from transformers.masking_utils import create_bidirectional_mask

        return create_bidirectional_mask(config=self.transformer.config, inputs_embeds=hidden,
                                         attention_mask=attention_mask)

    def embed(self, texts: list[str], batch_size: int = 64, desc: str | None = None) -> np.ndarray:
        """Embeddings without gradients, batched by length, in input order.

        The module's train/eval mode is left as it is (it may be shared by other
        threads): callers that train put it in eval mode before embedding.
        """
        torch = _torch()
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode(), task(desc or "embedding", total=len(texts), unit="text") as t:
            for i in range(0, len(texts), batch_size):
                idx = order[i:i + batch_size]
                out[idx] = self(self.tokenize([texts[j] for j in idx])).float().numpy()
                t.advance(len(idx))
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

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> load_backbone(ws, "minilm-l6").dim
    384
    """
    if folder is not None:
        if (Path(folder) / "modules.json").exists():
            return _from_st(str(folder), max_length)
        return _from_hf(str(folder), max_length, pooling=pooling, normalize=normalize)
    model = get_model(ws, base)
    loader = BACKBONE_LOADERS.get(model.kind)
    if loader is not None:
        return loader(Path(model.path), max_length, pooling=pooling, normalize=normalize)
    raise UsageError(f"base model {base!r} is a {model.kind} model; fine-tuning needs a transformer.",
                     fix="Use --method head with it, or a base such as 'minilm-l6' or a registered Hugging Face folder.")


def _gguf_backbone(path: Path, max_length: int, **pooling) -> Backbone:
    gguf = path if path.is_file() else sorted(path.glob("*.gguf"))[0]
    return _from_hf(str(gguf.parent), max_length, gguf_file=gguf.name, **pooling)


# base-model kind -> how to load it as a trainable transformer (kinds not here can only train a head)
BACKBONE_LOADERS = {
    "sentence-transformers": lambda path, max_length, **_: _from_st(str(path), max_length),
    "hf": lambda path, max_length, **pooling: _from_hf(str(path), max_length, **pooling),
    "gguf": _gguf_backbone,
}


def frozen_embeddings(ws: Workspace, base: str, texts: list[str], hashes: list[str] | None = None,
                      *, max_length: int = 128, prepare: bool = False) -> np.ndarray:
    """Embeddings from the untuned base: the shared cache for embedding models, else a backbone.

    ``prepare``: embed :func:`inhouse.models.embeddings.prepare_text` of each text, as
    ``embed`` and ``discover`` do (one cache entry per text for every stage).
    """
    model = get_model(ws, base)
    if prepare:
        texts = [prepare_text(t) for t in texts]
        hashes = None
    if model.kind in EMBEDDING_KINDS:
        return embed_texts(ws, load_encoder(ws, base), texts, hashes)
    return base_backbone(ws, base, max_length).embed(texts, desc=f"embedding with {base}")


_bases = ModelCache("base backbones")


def base_backbone(ws: Workspace, base: str, max_length: int = 128) -> Backbone:
    """A frozen base encoder in eval mode, shared (bounded cache): never train or modify it."""
    model = get_model(ws, base)
    return _bases.get_or_load((model.sha256, max_length),
                              lambda: load_backbone(ws, base, max_length=max_length).eval())

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

