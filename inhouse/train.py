"""Fine-tune open models on your own labels.

Four methods, one artifact format (see :mod:`inhouse.infer`):

- ``head``: frozen base embeddings (from the shared embedding cache) and a
  logistic-regression head, its C chosen on the validation split. Seconds.
- ``setfit``: contrastive fine-tuning of the encoder body for ``epochs`` (in-batch
  multiple-negatives loss with same-label negatives masked, one sampled
  positive per anchor per epoch, so cost grows with rows, not pairs), then a
  logistic-regression head on the tuned embeddings (the SetFit method);
  ``end_to_end_epochs`` > 0 adds end-to-end fine-tuning after that.
- ``full``: end-to-end fine-tuning of encoder and head (mean pooling + linear,
  cross-entropy, AdamW, linear warmup/decay). The head starts from the
  logistic-regression fit on frozen embeddings ("linear probe, then fine-tune"),
  so the first steps do not wreck the encoder with a random head.
- ``lora``: LoRA adapters (peft) on the encoder and a jointly trained head;
  works with sentence encoders and causal LMs (Hugging Face folders, or GGUF
  files dequantised through transformers' ``gguf_file=``).

Why ``full`` is the default: on banking77 (``bench/finetune_banking77.py``,
BENCHMARKS.md) it was the most accurate method both with all 9,000 training
rows (93.5% test accuracy vs 92.7% for ``head``) and with 10 examples per label
(85.2% vs 81.9%); ``setfit`` matched it with 10 examples but took 4.5 times as
long, ``lora`` was faster with 10 examples but 2 points less accurate. ``full``
costs about 1-2 CPU-seconds per step of 32 texts on 2 cores (3 epochs of 9,000
rows: ~850 steps); when minutes matter, ``head`` is the fast baseline (seconds
once embeddings are cached).

Every method carves a stratified, seeded validation split from the training
rows (``val_fraction``) for choosing C / the best epoch and a softmax
temperature (calibration); the test split is never looked at.

Determinism: the same data, base, method and seed give the same weights, hence
the same predictions and the same version sha256 (tests/test_train.py proves
it in one process; the benchmark saw identical hashes across processes). Python,
NumPy and torch are seeded, torch runs deterministic kernels, and batches come
from a seeded generator. Float sums can still differ with the number of torch
threads or another CPU; pin ``num_threads`` (``--threads``) to rule that out.

    >>> r = train(ws, "banking77", "intents", TrainingArguments(method="head"))
    >>> r.ref, round(r.val_metrics["accuracy"], 2)
    ('intents@1', 0.93)
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import InputError, UsageError
from .infer import (ADAPTER_DIR, ENCODER_DIR, HEAD_FILE, INDEX_FILE, ROWS_FILE, Backbone, Head,
                    frozen_embeddings, load_backbone)
from .models import DEFAULT_ENCODER, get_model
from .progress import task
from .registry import Version, save_version
from .store import Workspace, read_documents, sha256_bytes

METHODS = ("head", "setfit", "full", "lora")
DEFAULT_METHOD = "full"


@dataclass
class TrainingArguments:
    """Everything that decides a training run; saved whole in the manifest.

    ``None`` means "the method's default" (see :data:`METHOD_DEFAULTS`).

    >>> TrainingArguments(method="setfit", shots=8, seed=1).method
    'setfit'
    """

    base: str = DEFAULT_ENCODER
    method: str = DEFAULT_METHOD
    label_col: str = "label"
    split: str | None = "train"
    shots: int | None = None
    seed: int = 0
    epochs: float | None = None
    max_steps: int | None = None
    min_steps: int = 200
    batch_size: int = 32
    learning_rate: float | None = None
    head_learning_rate: float | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    label_smoothing: float = 0.0
    max_seq_length: int = 128
    freeze_embeddings: bool = True
    val_fraction: float = 0.1
    min_examples: int = 0
    label_names: bool = False
    patience: int = 2
    head_C: float | None = None
    end_to_end_epochs: float = 0.0
    setfit_scale: float = 20.0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_targets: list[str] | None = None
    threshold: float = 0.5
    num_threads: int | None = None

    def resolved(self) -> "TrainingArguments":
        """A copy with the method's defaults filled in and every value checked."""
        if self.method not in METHODS:
            raise UsageError(f"method {self.method!r} is unknown; methods are {list(METHODS)}.",
                             fix=f"Use --method {DEFAULT_METHOD} (the default) or one of the others.")
        out = copy.deepcopy(self)
        for k, v in METHOD_DEFAULTS[self.method].items():
            if getattr(out, k) is None:
                setattr(out, k, v)
        if out.shots is not None and out.shots < 1:
            raise UsageError(f"--shots must be at least 1, found {out.shots}.")
        if not 0 <= out.val_fraction < 1:
            raise UsageError(f"val_fraction must be in [0, 1), found {out.val_fraction}.")
        if out.batch_size < 2:
            raise UsageError(f"batch_size must be at least 2, found {out.batch_size}.")
        return out

    def to_dict(self) -> dict:
        return asdict(self)


METHOD_DEFAULTS: dict[str, dict] = {
    "head": {},
    "setfit": {"epochs": 1.0, "learning_rate": 5e-5, "head_learning_rate": 2e-3},
    "full": {"epochs": 3.0, "learning_rate": 1e-4, "head_learning_rate": 2e-3},
    "lora": {"epochs": 3.0, "learning_rate": 1e-3, "head_learning_rate": 2e-3},
}
C_GRID = (1.0, 4.0, 16.0, 64.0, 256.0)
ECE_BINS = 15


@dataclass
class TrainResult:
    """What ``train`` made: the version and how it did on validation."""

    model: str
    version: int
    sha256: str
    method: str
    base: str
    n_train: int
    n_val: int
    labels: list[str]
    val_metrics: dict
    train_seconds: float
    path: str

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"

    def to_dict(self) -> dict:
        return {**asdict(self), "ref": self.ref}


# ----------------------------------------------------------------- data ----

@dataclass
class TrainingData:
    """Labelled rows with a stratified train/validation split."""

    dataset: str
    doc_ids: list[int]
    texts: list[str]
    hashes: list[str]
    targets: list[list[str]]
    labels: list[str]
    multi_label: bool
    train_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    val_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, int))

    def y(self, idx: np.ndarray) -> np.ndarray:
        """Class indices, or a 0/1 matrix for multi-label data."""
        pos = {l: i for i, l in enumerate(self.labels)}
        if self.multi_label:
            Y = np.zeros((len(idx), len(self.labels)), dtype=np.float32)
            for r, i in enumerate(idx):
                for l in self.targets[i]:
                    Y[r, pos[l]] = 1
            return Y
        return np.array([pos[self.targets[i][0]] for i in idx], dtype=np.int64)

    def rows_sha256(self) -> str:
        """sha256 of the exact training rows: doc ids, text hashes and labels."""
        rows = [[d, h, t] for d, h, t in zip(self.doc_ids, self.hashes, self.targets)]
        return sha256_bytes(json.dumps(rows, sort_keys=True).encode())


def _targets_from(df, label_col: str, dataset: str) -> list[list[str]]:
    if label_col == "label":
        return [list(l) for l in df["labels"]]
    out, seen_keys = [], set()
    for raw in df["meta"]:
        meta = json.loads(raw) if isinstance(raw, str) and raw else (raw or {})
        seen_keys.update(meta)
        v = meta.get(label_col)
        if v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
            out.append([])
        else:
            out.append([str(x) for x in v] if isinstance(v, list) else [str(v)])
    if not seen_keys or label_col not in seen_keys:
        raise InputError(f"dataset {dataset!r}: label column {label_col!r} not found; the label columns are "
                         f"['label'] and the metadata columns {sorted(seen_keys)}.",
                         fix="Use --label-col with one of them, or ingest the file with --label-col.")
    return out


def load_training_data(ws: Workspace, dataset: str, args: TrainingArguments) -> TrainingData:
    """The labelled rows of ``args.split``, sampled (``shots``) and split (``val_fraction``)."""
    df = read_documents(ws, dataset, columns=["doc_id", "text", "text_hash", "labels", "meta", "split"])
    if args.split is not None:
        splits = sorted({s for s in df["split"].dropna().unique()})
        if args.split not in splits and splits:
            raise InputError(f"dataset {dataset!r} has no split {args.split!r}; its splits are {splits}.",
                             fix="Use --split with one of them, or --split all for every row.")
        if splits:
            df = df[df["split"] == args.split].reset_index(drop=True)
    targets = _targets_from(df, args.label_col, dataset)
    keep = [i for i, t in enumerate(targets) if t]
    if not keep:
        where = f" in split {args.split!r}" if args.split else ""
        raise InputError(f"dataset {dataset!r} has no labelled documents{where} ({len(df)} documents, "
                         f"label column {args.label_col!r}).",
                         fix="Ingest with --label-col COLUMN, label documents with `inhouse label`, or choose another --split.")
    data = TrainingData(dataset, [int(df["doc_id"][i]) for i in keep], [str(df["text"][i]) for i in keep],
                        [str(df["text_hash"][i]) for i in keep], [sorted(set(targets[i])) for i in keep], [],
                        any(len(targets[i]) > 1 for i in keep))
    _filter_and_sample(data, args)
    _split(data, args)
    if args.label_names:
        _add_label_names(data)
    return data


def label_text(label: str) -> str:
    """How a label name is read as text: ``card_arrival`` -> ``card arrival``."""
    return label.replace("_", " ").replace("-", " ").strip()


def _add_label_names(data: TrainingData) -> None:
    """One extra training row per label whose text is the label's name (doc_id -1, -2, ...).

    The name carries what zero-shot knows. On banking77 with 10 examples per label it
    did not help (84.5% vs 85.2% test accuracy for ``full``), so it is off by default.
    """
    from .store import text_hash

    start = len(data.texts)
    for i, label in enumerate(data.labels):
        data.doc_ids.append(-1 - i)
        data.texts.append(label_text(label))
        data.hashes.append(text_hash(label_text(label)))
        data.targets.append([label])
    data.train_idx = np.concatenate([data.train_idx, np.arange(start, len(data.texts))])


def _subset(data: TrainingData, rows: list[int]) -> None:
    for name in ("doc_ids", "texts", "hashes", "targets"):
        setattr(data, name, [getattr(data, name)[i] for i in rows])


def _filter_and_sample(data: TrainingData, args: TrainingArguments) -> None:
    from collections import Counter

    counts = Counter(t[0] for t in data.targets)
    if args.min_examples:
        _subset(data, [i for i, t in enumerate(data.targets) if counts[t[0]] >= args.min_examples])
        counts = Counter(t[0] for t in data.targets)
    if args.shots:
        rng = random.Random(args.seed)
        by_label: dict[str, list[int]] = {}
        for i, t in enumerate(data.targets):
            by_label.setdefault(t[0], []).append(i)
        rows = sorted(i for l in sorted(by_label) for i in rng.sample(by_label[l], min(args.shots, len(by_label[l]))))
        _subset(data, rows)
        counts = Counter(t[0] for t in data.targets)
    data.labels = sorted({l for t in data.targets for l in t})
    if len(data.labels) < 2:
        raise InputError(f"dataset {data.dataset!r}: a classifier needs at least 2 labels, found {data.labels}.",
                         fix="Label documents with more than one label, or choose another --label-col.")
    single = sorted(l for l, n in counts.items() if n < 2)
    if single and args.val_fraction > 0:
        shown = single[:10] + (["..."] if len(single) > 10 else [])
        raise InputError(f"dataset {data.dataset!r}: {len(single)} label(s) have a single example: {shown}; "
                         "each label needs at least 2 (one to train on, one to validate).",
                         fix="Label more examples, drop them with --min-examples 2, or turn validation off with --val-fraction 0.")


def _split(data: TrainingData, args: TrainingArguments) -> None:
    """Stratified by first label: about ``val_fraction`` of each label's rows (>= 1) go to validation."""
    rng = np.random.default_rng(args.seed)
    by_label: dict[str, list[int]] = {}
    for i, t in enumerate(data.targets):
        by_label.setdefault(t[0], []).append(i)
    val: list[int] = []
    if args.val_fraction > 0:
        for l in sorted(by_label):
            rows = np.array(by_label[l])
            rng.shuffle(rows)
            n = max(1, int(round(len(rows) * args.val_fraction))) if len(rows) >= 2 else 0
            val.extend(rows[:n].tolist())
    val_set = set(val)
    data.val_idx = np.array(sorted(val_set), dtype=np.int64)
    data.train_idx = np.array([i for i in range(len(data.texts)) if i not in val_set], dtype=np.int64)


# -------------------------------------------------------------- metrics ----

def metrics(y_true: np.ndarray, probs: np.ndarray, multi_label: bool, threshold: float = 0.5) -> dict:
    """accuracy and macro-F1 (subset accuracy, micro/macro-F1 for multi-label)."""
    from sklearn.metrics import accuracy_score, f1_score

    if len(y_true) == 0:
        return {}
    if multi_label:
        pred = (probs >= threshold).astype(int)
        return {"accuracy": float(accuracy_score(y_true, pred)),
                "micro_f1": float(f1_score(y_true, pred, average="micro", zero_division=0)),
                "macro_f1": float(f1_score(y_true, pred, average="macro", zero_division=0)), "n": int(len(y_true))}
    pred = probs.argmax(1)
    return {"accuracy": float(accuracy_score(y_true, pred)),
            "macro_f1": float(f1_score(y_true, pred, average="macro", labels=np.unique(y_true), zero_division=0)),
            "n": int(len(y_true))}


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Sum over equal-width confidence bins of |accuracy - mean confidence| x bin share.

    >>> expected_calibration_error(np.array([0.9, 0.9]), np.array([1, 0]))
    0.4
    """
    if len(confidence) == 0:
        return 0.0
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - confidence[m].mean())
    return round(float(ece), 6)


def _score(m: dict) -> float:
    return m.get("micro_f1", m.get("accuracy", 0.0))


# --------------------------------------------------------------- heads ----

def fit_logistic_head(X: np.ndarray, Y: np.ndarray, n_labels: int, multi_label: bool, C: float, seed: int,
                      init: Head | None = None) -> Head:
    """A logistic-regression head as W, b: softmax (or per-label sigmoid for multi-label).

    Minimises mean log-loss + ||W||^2 / (2 C n), the objective of scikit-learn's
    ``LogisticRegression(C=C)``, with full-batch L-BFGS in torch (deterministic,
    and several times faster than scikit-learn here). ``init`` warm-starts it.
    """
    import torch

    torch.manual_seed(seed)
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
            if best is None or _score(m) > _score(best[2]):
                best = (_score(m), head, m)
            t.advance(1, C=C, val=_score(m))
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
        X = frozen_embeddings(ws, args.base, data.texts, data.hashes, max_length=args.max_seq_length)
        head, val = choose_head(X, data, args)
        return Trained(head, val, extra={"embeddings": X})


class SetFitMethod(Method):
    name = "setfit"

    def fit(self, ws, data, args):
        from .finetune import contrastive_epochs, fine_tune

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
        from .finetune import fine_tune

        bb = _trainable_backbone(ws, args)
        head = _probe_head(ws, bb, data, args)
        head, val = fine_tune(bb, head, data, args, lora=False)
        return Trained(head, val, bb, extra={"embeddings": bb.embed(data.texts, desc="indexing training rows")})


class LoraMethod(Method):
    name = "lora"

    def fit(self, ws, data, args):
        from .finetune import add_lora, fine_tune

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
    return bb


def _probe_head(ws: Workspace, bb: Backbone, data: TrainingData, args: TrainingArguments) -> Head:
    """The linear-probe head fitted on frozen embeddings (cached for embedding models)."""
    if not bb.normalize:  # a causal LM's raw last-token state: no useful linear probe, start from zero
        return Head(np.zeros((len(data.labels), bb.dim), np.float32), np.zeros(len(data.labels), np.float32),
                    data.multi_label, args.threshold)
    if get_model(ws, args.base).kind == "sentence-transformers":
        X = frozen_embeddings(ws, args.base, data.texts, data.hashes)
    else:
        X = bb.embed(data.texts, desc="embedding with the base encoder")
    return choose_head(X, data, args)[0]


METHOD_CLASSES: dict[str, type[Method]] = {c.name: c for c in (HeadMethod, SetFitMethod, FullMethod, LoraMethod)}


# ---------------------------------------------------------------- train ----

def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T that minimises validation log-loss of ``softmax(logits / T)`` (a grid in log space)."""
    best_t, best_nll = 1.0, np.inf
    for T in np.exp(np.linspace(np.log(0.05), np.log(20.0), 121)):
        z = logits / T
        z = z - z.max(axis=1, keepdims=True)
        nll = float(-(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(axis=1))).mean())
        if nll < best_nll:
            best_t, best_nll = float(T), nll
    return best_t


def calibrate(trained: Trained, data: TrainingData) -> None:
    """Temperature scaling on the validation rows: better probabilities, the same argmax.

    The head's W and b are divided by T, so the artifact needs no extra field.
    """
    X = trained.extra.get("embeddings")
    if data.multi_label or X is None or len(data.val_idx) < 2:
        return
    y = data.y(data.val_idx)
    Xv = X[data.val_idx]
    T = fit_temperature(trained.head.logits(Xv), y)
    before = trained.head.proba(Xv)
    trained.head.W = (trained.head.W / T).astype(np.float32)
    trained.head.b = (trained.head.b / T).astype(np.float32)
    after = trained.head.proba(Xv)
    ece = lambda p: expected_calibration_error(p.max(1), (p.argmax(1) == y).astype(float))
    trained.val_metrics.update(temperature=round(T, 4), ece_before_calibration=ece(before), ece=ece(after))


def seed_everything(seed: int, num_threads: int | None = None) -> None:
    """Seed Python, NumPy and torch and ask torch for deterministic kernels."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if num_threads:
        torch.set_num_threads(num_threads)


def train(ws: Workspace, dataset: str, name: str, args: TrainingArguments | None = None) -> TrainResult:
    """Train a classifier on a dataset's labelled rows and save it as the next version of ``name``.

    Ctrl-C (KeyboardInterrupt) before the save leaves no version behind.

    >>> train(ws, "banking77", "intents", TrainingArguments(method="head", shots=8)).ref
    'intents@1'
    """
    args = (args or TrainingArguments()).resolved()
    base = get_model(ws, args.base)
    t0 = time.time()
    data = load_training_data(ws, dataset, args)
    seed_everything(args.seed, args.num_threads)
    trained = METHOD_CLASSES[args.method]().fit(ws, data, args)
    calibrate(trained, data)
    train_seconds = round(time.time() - t0, 3)
    bb = trained.backbone
    encoder = ({"pooling": bb.pooling, "normalize": bb.normalize, "max_length": bb.max_length} if bb is not None
               else {"pooling": "mean", "normalize": True, "max_length": args.max_seq_length, "frozen": True})
    fields = {
        "kind": "classifier", "method": args.method,
        "base": {"name": base.name, "sha256": base.sha256, "kind": base.kind},
        "labels": data.labels, "multi_label": data.multi_label, "threshold": args.threshold,
        "encoder": encoder,
        "dataset": {"name": dataset, "split": args.split, "label_col": args.label_col, "shots": args.shots,
                    "rows_sha256": data.rows_sha256(), "n_rows": len(data.texts)},
        "n_train": int(len(data.train_idx)), "n_val": int(len(data.val_idx)),
        "training_args": args.to_dict(), "seed": args.seed,
        "val_metrics": trained.val_metrics, "train_seconds": train_seconds,
    }

    def build(folder: Path) -> dict:
        trained.save(folder, args.method)
        _save_index(folder, data, trained.extra["embeddings"])
        return fields

    v: Version = save_version(ws, name, build)
    result = TrainResult(name, v.version, v.sha256, args.method, base.name, int(len(data.train_idx)),
                         int(len(data.val_idx)), data.labels, trained.val_metrics, train_seconds, str(v.path))
    ws.record_run("train", {"dataset": dataset, "name": name, **args.to_dict()}, result.to_dict(),
                  model=result.ref, model_sha256=v.sha256, started_at=t0)
    return result


def _save_index(folder: Path, data: TrainingData, X: np.ndarray) -> None:
    """Training rows and their embeddings, for ``inhouse explain``."""
    from safetensors.numpy import save_file

    pos = {l: i for i, l in enumerate(data.labels)}
    split = np.zeros(len(data.texts), np.int8)
    split[data.val_idx] = 1
    save_file({"embeddings": np.ascontiguousarray(X, dtype=np.float16),
               "doc_ids": np.array(data.doc_ids, dtype=np.int64),
               "label_idx": np.array([pos[t[0]] for t in data.targets], dtype=np.int64),
               "is_val": split}, str(folder / INDEX_FILE), metadata={"format": "inhouse.train_index.v1"})
    (folder / ROWS_FILE).write_text(json.dumps({"format": "inhouse.train_rows.v1", "dataset": data.dataset,
                                                "doc_ids": data.doc_ids, "text_hashes": data.hashes,
                                                "labels": data.targets}))
