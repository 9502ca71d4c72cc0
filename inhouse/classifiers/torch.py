"""The PyTorch implementation of a classifier version (``format: safetensors``).

The head is numpy (``probs = softmax(emb @ W.T + b)``); the embeddings come from
the version's tuned encoder (``full``, ``setfit``), its LoRA adapter on the
base (``lora``), or the frozen base through the shared embedding cache
(``head``). See :mod:`inhouse.classifiers.base` for the files.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> clf = load_classifier(ws, "intents@1")      # a TorchClassifier
    >>> clf.predict(["my card has not arrived"])
    ['card_arrival']
"""

from __future__ import annotations

import numpy as np

from ..cache import module_bytes
from ..errors import IntegrityError, UsageError
from ..models.catalog import get_model
from ..registry import Version
from ..workspace.store import Workspace
from .backbone import (
    Backbone,
    base_backbone,
    frozen_embeddings,
    load_backbone,
    load_lora_backbone,
)
from .base import ADAPTER_DIR, ENCODER_DIR, HEAD_FILE, Classifier
from .distance import load_distance
from .head import Head


class TorchClassifier(Classifier):
    """A trained classifier version, ready to predict.

    Load it with :func:`inhouse.classifiers.base.load_classifier`, which verifies
    the files first and caches the result.
    """

    def __init__(self, ws: Workspace, version: Version, head: Head, backbone: Backbone | None):
        super().__init__(version)
        self.ws, self.head = ws, head
        self._backbone = backbone
        ab = self.manifest.get("abstain") if isinstance(self.manifest.get("abstain"), dict) else {}
        self.distance = load_distance(version.path, ab) if self.needs_distance else None

    @classmethod
    def from_version(cls, ws: Workspace, v: Version) -> "TorchClassifier":
        """Build from a version whose files were verified (see ``load_classifier``)."""
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

    def embed(self, texts: list[str], hashes: list[str] | None = None) -> np.ndarray:
        """The embeddings the head consumes, shape (len(texts), dim)."""
        if not texts:
            return np.zeros((0, self.head.W.shape[1]), dtype=np.float32)
        if self._backbone is None:
            enc = self.manifest.get("encoder", {})
            return frozen_embeddings(self.ws, self.base, list(texts), hashes, max_length=enc.get("max_length", 128),
                                     prepare=self.text_prep is not None)
        return self._backbone.embed(list(texts), desc=f"embedding with {self.version.ref}")

    def predict_proba(self, texts: list[str], hashes: list[str] | None = None) -> np.ndarray:
        """Probabilities, shape (len(texts), len(labels)), columns in :attr:`labels` order."""
        return self.head.proba(self.embed(texts, hashes))

    def predict_scores(self, texts: list[str], hashes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and (distance rule) each text's distance to the training rows, from one embedding."""
        return self.scores_of(self.embed(texts, hashes))

    def scores_of(self, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and distance of embeddings the head reads."""
        return self.head.proba(emb), (self.distance.score(emb) if self.distance is not None else None)

    def approx_bytes(self) -> int:
        d = self.distance
        return int(self.head.W.nbytes + self.head.b.nbytes + (module_bytes(self._backbone) if self._backbone else 0)
                   + (3 * d.reference.nbytes if d is not None else 0))  # float16, and its float32 copy

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
        return base_backbone(self.ws, self.base, self.manifest.get("encoder", {}).get("max_length", 128))

