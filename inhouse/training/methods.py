"""Training methods (head, setfit, full, lora) behind one method, ``fit``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..classifiers.backbone import Backbone, frozen_embeddings, load_backbone
from ..classifiers.base import (
    ADAPTER_DIR,
    ENCODER_DIR,
    HEAD_FILE,
)
from ..classifiers.head import Head
from ..errors import UsageError
from ..models.catalog import get_model
from ..progress import task
from ..workspace.store import Workspace
from .arguments import C_GRID, TrainingArguments
from .data import TrainingData
from .metrics import metrics, score

# --------------------------------------------------------------- heads ----

def fit_logistic_head(X: np.ndarray, Y: np.ndarray, n_labels: int, multi_label: bool, C: float, seed: int,
                      init: Head | None = None) -> Head:
    """A logistic-regression head as W, b: softmax (or per-label sigmoid for multi-label).

    Minimises mean log-loss + ||W||^2 / (2 C n), the objective of scikit-learn's
    ``LogisticRegression(C=C)``, with full-batch L-BFGS in torch (deterministic,
    and several times faster than scikit-learn here). ``init`` warm-starts it.
    """
    import torch

    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    W = torch.zeros(n_labels, X.shape[1], requires_grad=True)
    b = torch.zeros(n_labels, requires_grad=True)
    if init is not None:
        with torch.no_grad():
            W.copy_(torch.from_numpy(init.W))
            b.copy_(torch.from_numpy(init.b))
    if multi_label:
        target = torch.from_numpy(Y.astype(np.float32))
        loss_fn = lambda z: torch.nn.functional.binary_cross_entropy_with_logits(z, target, reduction="sum") / len(X)
    else:
        target = torch.from_numpy(Y.astype(np.int64))
        loss_fn = lambda z: torch.nn.functional.cross_entropy(z, target)
    lam = 1.0 / (C * len(X))
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=200, tolerance_grad=1e-5, tolerance_change=1e-9,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = loss_fn(Xt @ W.T + b) + 0.5 * lam * (W * W).sum()
        loss.backward()
        return loss

    opt.step(closure)
    Wn, bn = W.detach().numpy().copy(), b.detach().numpy().copy()
    if not multi_label:
        missing = np.setdiff1d(np.arange(n_labels), np.unique(Y))
        bn[missing] = -1e4  # a label with no training row is never predicted
    return Head(Wn, bn, multi_label)


def choose_head(X: np.ndarray, data: TrainingData, args: TrainingArguments) -> tuple[Head, dict]:
    """Fit a head per C in the grid (or ``head_C``), keep the best on validation."""
    Xtr, Ytr = X[data.train_idx], data.y(data.train_idx)
    grid = [args.head_C] if args.head_C else list(C_GRID)
    best: tuple[float, Head, dict] | None = None
    head = None
    with task("fitting head", total=len(grid), unit="fit") as t:
        for C in grid:  # increasing C, each fit warm-started from the last
            head = fit_logistic_head(Xtr, Ytr, len(data.labels), data.multi_label, C, args.seed, init=head)
            head.threshold = args.threshold
            m = metrics(data.y(data.val_idx), head.proba(X[data.val_idx]), data.multi_label, args.threshold)
            m["C"] = C
            if best is None or score(m) > score(best[2]):
                best = (score(m), head, m)
            t.advance(1, C=C, val_accuracy=round(score(m), 4))
        # the bar ends on the figures that are kept (and stored in the version), not the last C tried
        t.advance(0, C=best[2]["C"], val_accuracy=round(best[0], 4), kept="best")
    return best[1], best[2]


# -------------------------------------------------------------- methods ----

@dataclass
class Trained:
    """A fitted model in memory, before it is saved."""

    head: Head
    val_metrics: dict
    backbone: Backbone | None = None
    encoder: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def save(self, folder: Path, method: str) -> None:
        self.head.save(folder / HEAD_FILE)
        if self.backbone is None:
            return
        if method == "lora":
            self.backbone.transformer.save_pretrained(str(folder / ADAPTER_DIR), safe_serialization=True)
        else:
            self.backbone.save(folder / ENCODER_DIR)


class Method(ABC):
    """A training method: ``fit`` turns training data into a :class:`Trained`."""

    name = ""

    @abstractmethod
    def fit(self, ws: Workspace, data: TrainingData, args: TrainingArguments) -> Trained:
        """Train on ``data.train_idx``, choose on ``data.val_idx``."""


class HeadMethod(Method):
    name = "head"

    def fit(self, ws, data, args):
        X = frozen_embeddings(ws, args.base, data.texts, data.hashes, max_length=args.max_seq_length, prepare=True)
        head, val = choose_head(X, data, args)
        return Trained(head, val, extra={"embeddings": X})


class SetFitMethod(Method):
    name = "setfit"

    def fit(self, ws, data, args):
        from .loops import contrastive_epochs, fine_tune

        bb = _trainable_backbone(ws, args)
        contrastive_epochs(bb, data, args)
        X = bb.embed(data.texts, desc="embedding with the tuned encoder")
        head, val = choose_head(X, data, args)
        if args.end_to_end_epochs:  # optionally, end-to-end fine-tuning after the contrastive phase
            head, val = fine_tune(bb, head, data, replace(args, epochs=args.end_to_end_epochs), lora=False)
            X = bb.embed(data.texts, desc="embedding with the tuned encoder")
        return Trained(head, val, bb, extra={"embeddings": X})


class FullMethod(Method):
    name = "full"

    def fit(self, ws, data, args):
        from .loops import fine_tune

        bb = _trainable_backbone(ws, args)
        bottom = _bottom_cache(bb, data, args)
        head = _probe_head(ws, bb, data, args)
        head, val = fine_tune(bb, head, data, args, lora=False, bottom=bottom)
        if bottom is not None:
            X = bottom.vectors(bb, np.arange(len(data.texts)), desc="indexing training rows")
        else:
            X = bb.embed(data.texts, desc="indexing training rows")
        return Trained(head, val, bb, extra={"embeddings": X})


class LoraMethod(Method):
    name = "lora"

    def fit(self, ws, data, args):
        from .loops import add_lora, fine_tune

        if args.freeze_layers:
            raise UsageError("--freeze-layers does not apply to lora (its base layers are all frozen already).",
                             fix="Leave it out (lora's default is 0), or use --method full.")
        bb = load_backbone(ws, args.base, max_length=args.max_seq_length)
        head = _probe_head(ws, bb, data, args)
        add_lora(bb, args)
        head, val = fine_tune(bb, head, data, args, lora=True)
        return Trained(head, val, bb, extra={"embeddings": bb.embed(data.texts, desc="indexing training rows")})


def _trainable_backbone(ws: Workspace, args: TrainingArguments) -> Backbone:
    """A fresh base backbone; the token-embedding matrix frozen unless asked otherwise.

    Freezing it (a third of MiniLM's weights, updated densely by AdamW) makes a
    CPU step about twice as fast for no measurable loss on short-text tasks.
    """
    bb = load_backbone(ws, args.base, max_length=args.max_seq_length)
    if args.freeze_embeddings:
        bb.transformer.get_input_embeddings().weight.requires_grad_(False)
    k = args.freeze_layers
    if k is None:  # the default: the bottom half of a BERT-family encoder (3 of MiniLM's 6), nothing elsewhere
        parts = bb.layers()
        k = len(parts[1]) // 2 if parts else 0
    if k:
        bb.freeze_bottom(k)
    return bb


def _bottom_cache(bb: Backbone, data: TrainingData, args: TrainingArguments):
    """The frozen bottom layers' states for every row, when layers are frozen, caching is on and they fit."""
    from .frozen import BottomCache

    if not bb.frozen_layers or not args.cache_frozen:
        return None
    return BottomCache.build(bb, data.texts, bb.frozen_layers)


def _probe_head(ws: Workspace, bb: Backbone, data: TrainingData, args: TrainingArguments) -> Head:
    """The linear-probe head fitted on frozen embeddings (cached for embedding models)."""
    if not bb.normalize:  # a causal LM's raw last-token state: no useful linear probe, start from zero
        return Head(np.zeros((len(data.labels), bb.dim), np.float32), np.zeros(len(data.labels), np.float32),
                    data.multi_label, args.threshold)
    if get_model(ws, args.base).kind == "sentence-transformers":
        X = frozen_embeddings(ws, args.base, data.texts, data.hashes, prepare=True)
    else:
        X = bb.embed(data.texts, desc="embedding with the base encoder")
    return choose_head(X, data, args)[0]
