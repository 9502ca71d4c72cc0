"""The one classifier contract, and :func:`load_classifier`, which every caller uses.

A classifier version is a registry folder (see :mod:`inhouse.registry`) whose
manifest says its ``format``:

- ``safetensors`` (made by ``inhouse train``): ``head.safetensors`` (the
  linear head, tensors ``W`` labels x dim and ``b``), and by method the encoder
  whose embeddings the head consumes: nothing for ``head`` (the frozen base
  ``manifest["base"]``, embedded through the shared cache), ``encoder/`` for
  ``setfit`` and ``full`` (a sentence-transformers or Hugging Face folder),
  ``adapter/`` for ``lora`` (a peft adapter on the base). Run by
  :class:`inhouse.classifiers.torch.TorchClassifier`.
- ``onnx`` (made by ``inhouse models export --format onnx``): one graph that
  holds encoder, pooling, head and softmax, plus the tokenizer files. Run by
  :class:`inhouse.classifiers.onnx.OnnxClassifier`.

Both also keep ``train_index.safetensors`` + ``train_rows.json`` (training
rows' embeddings and labels) for ``inhouse explain`` when trained here.

Every implementation subclasses :class:`Classifier` and implements one method,
:meth:`Classifier.predict_proba`; ``predict`` and ``decide`` are written once
here, so every format decides alike, abstention included: a version whose
manifest has ``abstain.threshold`` answers ``abstain.label`` (``other``) when
its highest in-scope probability is under the threshold, when its most
likely label is one the user marked out of scope (``abstain.out_of_scope``),
or, with ``abstain.distance`` (versions trained since the distance rule), when
``(1 - that probability) + weight * distance`` to the nearest training row is
over ``abstain.distance.threshold`` (:mod:`inhouse.classifiers.distance`;
``predict_scores`` gives probabilities and that distance together). :func:`inhouse.classifiers.load.load_classifier` verifies a version and
returns the right implementation; a classifier never changes after loading, so
it is safe to share between threads.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> from inhouse.classifiers.load import load_classifier
    >>> clf = load_classifier(ws, "intents@production")
    >>> clf.predict(["I lost my card"])
    ['lost_or_stolen_card']
    >>> clf.predict_proba(["I lost my card"]).shape
    (1, 77)
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from .. import registry
from ..errors import UsageError

HEAD_FILE = "head.safetensors"
ENCODER_DIR = "encoder"
ADAPTER_DIR = "adapter"
INDEX_FILE = "train_index.safetensors"
ROWS_FILE = "train_rows.json"
ONNX_FILE = "model.onnx"
FORMATS = ("safetensors", "onnx")


class DecisionRule:
    """How a version turns probabilities into answers, read from its (hashed) manifest alone.

    The classifiers and the pipeline's ONNX engine share it, so every path
    abstains, prepares text and picks labels the same way.
    """

    def __init__(self, m: dict):
        self.labels: list[str] = list(m.get("labels") or [])
        self.multi_label: bool = bool(m.get("multi_label"))
        self.threshold: float = float(m.get("threshold", 0.5))
        enc = m.get("encoder") if isinstance(m.get("encoder"), dict) else {}
        self.text_prep: str | None = enc.get("text")  # how texts are prepared before embedding (None: as they are)
        ab = m.get("abstain") if isinstance(m.get("abstain"), dict) else {}
        t = ab.get("threshold")
        self.abstain_threshold: float | None = None if t is None else float(t)
        dist = ab.get("distance") if isinstance(ab.get("distance"), dict) else {}
        d = dist.get("threshold")
        # the distance rule (inhouse.training.abstain): abstain where (1 - best in-scope probability)
        # + distance_weight * distance > distance_threshold. None for versions made before it: probability alone
        self.distance_threshold: float | None = None if d is None else float(d)
        self.distance_weight: float = float(dist.get("weight", 1.0))
        self.other_label: str = str(ab.get("label") or "other")
        self.out_of_scope: list[str] = [str(x) for x in ab.get("out_of_scope") or []]
        self.in_scope = np.array([l not in set(self.out_of_scope) for l in self.labels], dtype=bool)

    def prepare(self, texts: list[str]) -> list[str]:
        """Texts as the model reads them: :func:`inhouse.models.embeddings.prepare_text` when it was trained so."""
        if self.text_prep is None:
            return list(texts)
        from ..models.embeddings import TEXT_PREP, prepare_text

        if self.text_prep != TEXT_PREP:
            raise UsageError(f"{getattr(self, 'ref', 'this version')} reads text by rule {self.text_prep!r}; this inhouse knows {TEXT_PREP!r}.",
                             fix="Use the inhouse version that trained it.")
        return [prepare_text(t) for t in texts]

    @property
    def can_abstain(self) -> bool:
        """Whether this version ever answers :attr:`other_label` (a threshold, or labels marked out of scope)."""
        return not self.multi_label and (self.abstain_threshold is not None or self.distance_threshold is not None
                                         or not self.in_scope.all())

    def best_in_scope(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Column and probability of the most likely in-scope label of each row."""
        p = np.where(self.in_scope[None, :], np.asarray(probs, dtype=np.float64), -1.0)
        j = p.argmax(axis=1)
        return j, p[np.arange(len(p)), j]

    @property
    def needs_distance(self) -> bool:
        """Whether :meth:`abstains` needs each text's distance to the training rows (the distance rule)."""
        return self.can_abstain and self.distance_threshold is not None

    def abstains(self, probs: np.ndarray, distance: np.ndarray | None = None) -> np.ndarray:
        """True where the model is not confident enough to answer (single-label models with abstention):
        its best in-scope probability is under the threshold, its most likely label is out of scope, or
        (the distance rule) ``(1 - that probability) + distance_weight * distance`` is over the distance
        threshold: unsure, far from every training row, or some of both."""
        probs = np.asarray(probs)
        if not self.can_abstain or len(probs) == 0:
            return np.zeros(len(probs), dtype=bool)
        _, top = self.best_in_scope(probs)
        out = ~self.in_scope[probs.argmax(axis=1)]
        if self.abstain_threshold is not None:
            out |= top < self.abstain_threshold
        if self.distance_threshold is not None:
            if distance is None:
                raise ValueError(f"{getattr(self, 'ref', 'this version')} abstains by distance: pass each text's "
                                 "distance (Classifier.predict_scores) with its probabilities.")
            out |= (1.0 - top) + self.distance_weight * np.asarray(distance, dtype=np.float64) > self.distance_threshold
        return out

    def decide(self, probs: np.ndarray, *, abstain: bool = True, distance: np.ndarray | None = None) -> list:
        """Labels from probabilities: every label at or over ``threshold`` (multi-label), else the most
        likely in-scope label, or :attr:`other_label` where the model abstains (``abstain=False``: never)."""
        if self.multi_label:
            return [[self.labels[j] for j in np.flatnonzero(p >= self.threshold)] for p in probs]
        probs = np.asarray(probs)
        j, _ = self.best_in_scope(probs)
        labels = [self.labels[k] for k in j]
        if abstain:
            for i in np.flatnonzero(self.abstains(probs, distance)):
                labels[i] = self.other_label
        return labels


class Classifier(DecisionRule, ABC):
    """A verified classifier version, ready to predict. Subclasses implement :meth:`predict_proba`.

    Attributes every implementation has: ``version`` (the registry version),
    ``manifest``, ``labels`` (the columns of ``predict_proba``), ``method``,
    ``base`` (the base model's name, or None), ``multi_label`` and ``threshold``.
    """

    def __init__(self, version: registry.Version):
        m = version.manifest
        super().__init__(m)
        self.version = version
        self.manifest = m
        self.method: str = m.get("method", "?")
        self.base: str | None = (m.get("base") or {}).get("name") if isinstance(m.get("base"), dict) else None

    @property
    def ref(self) -> str:
        return self.version.ref

    @property
    def sha256(self) -> str:
        return self.version.sha256

    @abstractmethod
    def predict_proba(self, texts: list[str], hashes: list[str] | None = None) -> np.ndarray:
        """Probabilities, shape (len(texts), len(labels)), columns in :attr:`labels` order.

        ``hashes`` (the texts' :func:`inhouse.workspace.files.text_hash`) lets an
        implementation reuse cached embeddings; it never changes the result.
        """

    def predict_scores(self, texts: list[str], hashes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """``(probabilities, distance)``: what :meth:`abstains` reads; the distance is None for versions
        without the distance rule. Implementations with embeddings compute both in one pass."""
        if self.needs_distance:
            raise UsageError(f"{self.ref} ({type(self).__name__}) abstains by distance but cannot compute it.")
        return self.predict_proba(texts, hashes), None

    def embed(self, texts: list[str], hashes: list[str] | None = None) -> np.ndarray:
        """The vectors the head sees (for explanations); not every format has them."""
        raise UsageError(f"{self.ref} ({type(self).__name__}) cannot show its embeddings.")

    def predict(self, texts: list[str], *, abstain: bool = True) -> list:
        """The label of each text (a list of labels per text for multi-label models)."""
        probs, distance = self.predict_scores(list(texts))
        return self.decide(probs, abstain=abstain, distance=distance)

    def approx_bytes(self) -> int:
        """Memory the loaded classifier holds (for the cache's budget)."""
        return 1 << 20
