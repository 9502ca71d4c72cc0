"""Fine-tune open models on your own labels.

Four methods, one artifact format (see :mod:`inhouse.infer`):

- ``head``: frozen base embeddings (from the shared embedding cache) and a
  logistic-regression head, its C chosen on the validation split. Seconds.
- ``setfit``: contrastive fine-tuning of the encoder body for ``epochs`` (in-batch
  multiple-negatives loss with same-label negatives masked, one sampled
  positive per anchor per epoch, so cost grows with rows, not pairs), then a
  logistic-regression head on the tuned embeddings (the SetFit method);
  ``end_to_end_epochs`` > 0 adds end-to-end fine-tuning after that.
- ``full``: fine-tuning of the encoder's top layers and the head (mean pooling +
  linear, cross-entropy, AdamW, linear warmup/decay). The head starts from the
  logistic-regression fit on frozen embeddings ("linear probe, then fine-tune"),
  so the first steps do not wreck the encoder with a random head. The
  embeddings and the bottom ``freeze_layers`` layers (by default half of a
  BERT-family encoder's: 3 of MiniLM's 6; 0 trains every layer; the manifest's
  ``encoder.frozen_layers`` says how many) are frozen and, with ``cache_frozen``, run
  once per text (:mod:`inhouse.training.frozen`): a step then costs less than
  half of a whole-encoder step.
- ``lora``: LoRA adapters (peft) on the encoder and a jointly trained head;
  works with sentence encoders and causal LMs (Hugging Face folders, or GGUF
  files dequantised through transformers' ``gguf_file=``).

Why ``full`` is the default: on banking77 (``bench/finetune_banking77.py``,
BENCHMARKS.md) it was the most accurate method both with all 9,000 training
rows (93.5% test accuracy vs 92.7% for ``head``) and with 10 examples per label
(85.2% vs 81.9%); ``setfit`` matched it with 10 examples but took 4.5 times as
long, ``lora`` was faster with 10 examples but 2 points less accurate. A
``full`` step of 32 banking77 texts costs about 0.22 CPU-seconds with the
bottom 3 layers cached (0.47 training every layer; one torch thread, measured);
its default 5 epochs of 9,000 rows are ~1,400 steps (5 beat 3 on banking77's
validation rows; BENCHMARKS.md). When minutes matter, ``head`` is the fast
baseline (seconds once embeddings are cached).

Every method carves a stratified, seeded validation split from the training
rows (``val_fraction``) for choosing C / the best epoch and a softmax
temperature (calibration); the test split is never looked at.

Determinism: the same data, base, method and seed give the same weights, hence
the same predictions and the same version sha256 (tests/test_train.py proves
it in one process; the benchmark saw identical hashes across processes). Torch
runs deterministic kernels with its generator seeded inside :func:`seeded`
(forked, so the process's own generator is left as it was), and batches come
from a generator seeded with ``args.seed``. Float sums can still differ with the
number of torch threads or another CPU; pin ``num_threads`` (``--threads``) to
rule that out.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> r = train(ws, "banking77", "intents", TrainingArguments(method="head"))
    >>> r.ref, round(r.val_metrics["accuracy"], 2)
    ('intents@1', 0.93)
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..classifiers.base import (
    INDEX_FILE,
    ROWS_FILE,
)
from ..classifiers.distance import DISTANCE_FILE, Distance
from ..models.catalog import get_model
from ..models.embeddings import TEXT_PREP
from ..registry.core import Version, save_version
from ..workspace.store import Workspace
from .abstain import calibrate_distance
from .arguments import REVIEW_SHARE, TrainingArguments
from .data import TrainingData, load_training_data
from .methods import Trained
from .registry import get_method
from .metrics import expected_calibration_error, fit_temperature


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
    abstain: dict | None = None
    prepared: dict | None = None  # what inhouse.pipeline.prepare built for fast classify (set by the service)

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"

    def to_dict(self) -> dict:
        return {**asdict(self), "ref": self.ref}


# ---------------------------------------------------------------- train ----

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


def abstain_threshold(conf: np.ndarray, correct: np.ndarray, oos: np.ndarray, target: float) -> tuple[float, str]:
    """The confidence under which a model abstains, from validation rows only.

    ``conf`` is each row's highest in-scope probability, ``correct`` whether its
    in-scope answer is right, ``oos`` whether the row is out of scope (a label
    the user marked so). With out-of-scope rows, the threshold maximises the
    mean of in-scope accuracy (abstaining counts as wrong) and out-of-scope
    recall (rule ``balanced``); without, it turns away the ``target`` share of
    in-scope rows with the lowest confidence (rule ``quantile``).

    >>> abstain_threshold(np.array([0.9, 0.8, 0.3, 0.2]), np.array([1, 1, 0, 1]), np.zeros(4, bool), 0.25)
    (0.3, 'quantile')
    """
    ins = ~oos
    if not ins.any():
        return 0.0, "none"
    if oos.any():
        best_t, best = 0.0, -1.0
        for t in np.unique(np.concatenate([[0.0], conf])):
            score = 0.5 * float((correct[ins] & (conf[ins] >= t)).mean()) + 0.5 * float((conf[oos] < t).mean())
            if score > best + 1e-12:
                best_t, best = float(t), score
        return round(best_t, 6), "balanced"
    if target <= 0:
        return 0.0, "quantile"
    ranked = np.sort(conf[ins])
    k = min(int(np.floor(target * len(ranked) + 1e-9)), len(ranked) - 1)  # rows turned away: conf < ranked[k]
    return (float(ranked[k]) if k > 0 else 0.0), "quantile"


def review_criterion(conf: np.ndarray, share: float = REVIEW_SHARE) -> dict:
    """The manifest's ``abstain.review``: rows whose best in-scope probability is under ``confidence_below`` are
    ones the version is unsure of, answered or not; ``confidence_below`` is the probability ``share`` of the
    in-scope validation rows (``conf``) fall under. Candidate new categories group what a version turned
    away or was unsure of (:mod:`inhouse.analysis.candidates`): abstention keeps answers precise, review wants recall.

    >>> review_criterion(np.array([0.9, 0.8, 0.3, 0.2, 0.6]), 0.2)
    {'confidence_below': 0.3, 'validation_share': 0.2}
    """
    t, _ = abstain_threshold(np.asarray(conf, dtype=np.float64), np.ones(len(conf), bool), np.zeros(len(conf), bool),
                             share)
    return {"confidence_below": float(t), "validation_share": share}


def calibrate_abstain(trained: Trained, data: TrainingData, args: TrainingArguments) -> tuple[dict, Distance | None]:
    """The manifest's ``abstain`` section (threshold, label, out-of-scope labels, how it did on validation)
    and the version's distance model: :mod:`inhouse.training.abstain` (rule ``distance``), else the
    probability threshold alone (rule ``quantile``/``balanced``, and versions made before the distance)."""
    oos_labels = [l for l in (args.out_of_scope or []) if l in data.labels]
    out = {"label": args.other_label, "out_of_scope": oos_labels, "threshold": None}
    X = trained.extra.get("embeddings")
    if data.multi_label or not args.abstain:
        return out, None
    if X is None or len(data.val_idx) < 2:
        out.update(threshold=0.0, rule="no validation rows")
        return out, None
    P = trained.head.proba(X[data.val_idx])
    in_scope = np.array([l not in set(oos_labels) for l in data.labels])
    y = data.y(data.val_idx)
    masked = np.where(in_scope[None, :], P, -1.0)
    best = masked.argmax(1)
    conf = masked[np.arange(len(P)), best]
    oos = ~in_scope[y]
    correct = best == y
    dist = None
    made = calibrate_distance(X, data, oos_labels, args, trained.val_metrics.get("C"), head=trained.head) \
        if args.abstain_rule == "distance" else None
    if made is not None:
        fields, dist = made
        t = fields["threshold"]
        out.update(fields)
        d = fields["distance"]
        abstained = (conf < t) | ~in_scope[P.argmax(1)] | \
            ((1 - conf) + d["weight"] * dist.score(X[data.val_idx]) > d["threshold"])
    else:
        t, rule = abstain_threshold(conf, correct, oos, args.abstain_target)
        abstained = (conf < t) | ~in_scope[P.argmax(1)]
        out.update(threshold=t, rule=rule, target=args.abstain_target if rule == "quantile" else None)
    if (~oos).any():
        out["review"] = review_criterion(conf[~oos])
    out.update(
               val_in_scope_abstain_rate=round(float(abstained[~oos].mean()), 4) if (~oos).any() else None,
               val_in_scope_accuracy=round(float((correct & ~abstained)[~oos].mean()), 4) if (~oos).any() else None,
               val_in_scope_accuracy_without_abstaining=round(float(correct[~oos].mean()), 4) if (~oos).any() else None,
               val_out_of_scope_recall=round(float(abstained[oos].mean()), 4) if oos.any() else None)
    return out, dist


def validation_profile(trained: Trained, data: TrainingData, abstain: dict,
                       distance: Distance | None = None) -> dict | None:
    """What the model answers on its validation rows, as sums (the profile ``inhouse.analysis.drift`` reads):
    rows, abstained (by the version's rule, its distance included), sum and sum of squares of the best
    in-scope probability, counts of answered labels."""
    X = trained.extra.get("embeddings")
    if data.multi_label or X is None or len(data.val_idx) < 2:
        return None
    P = trained.head.proba(X[data.val_idx])
    in_scope = np.array([l not in set(abstain.get("out_of_scope") or []) for l in data.labels])
    masked = np.where(in_scope[None, :], P, -1.0)
    best = masked.argmax(1)
    conf = masked[np.arange(len(P)), best].astype(np.float64)
    t = abstain.get("threshold")
    out = ~in_scope[P.argmax(1)] | ((conf < t) if t is not None else False)
    d = abstain.get("distance")
    if d and distance is not None:
        out |= (1 - conf) + d["weight"] * distance.score(X[data.val_idx]) > d["threshold"]
    counts: dict[str, int] = {}
    for j in best[~out]:
        counts[data.labels[j]] = counts.get(data.labels[j], 0) + 1
    return {"n": int(len(P)), "abstained": int(out.sum()), "conf_sum": round(float(conf.sum()), 6),
            "conf_sumsq": round(float((conf ** 2).sum()), 6), "counts": counts}


@contextlib.contextmanager
def seeded(seed: int, num_threads: int | None = None) -> Iterator[None]:
    """Run a training with torch's random numbers seeded, then put everything back.

    Library code runs inside a server next to other users' work, so training
    must not leave the process changed: torch's CPU generator is forked (seeded
    inside, restored after), the deterministic-kernels flag and the thread count
    are restored on exit. Python's and NumPy's global generators are never
    touched: every other random choice comes from generators seeded from
    ``seed`` (``numpy.random.default_rng``, ``random.Random``).

    >>> import torch
    >>> before = torch.get_rng_state()
    >>> with seeded(0):
    ...     _ = torch.rand(3)
    >>> bool((torch.get_rng_state() == before).all())
    True
    """
    import torch

    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        if num_threads:
            torch.set_num_threads(num_threads)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)


def train(ws: Workspace, dataset: str, name: str, args: TrainingArguments | None = None) -> TrainResult:
    """Train a classifier on a dataset's labelled rows and save it as the next version of ``name``.

    Ctrl-C (KeyboardInterrupt) before the save leaves no version behind.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> train(ws, "banking77", "intents", TrainingArguments(method="head", shots=8)).ref
    'intents@1'
    """
    args = (args or TrainingArguments()).resolved()
    base = get_model(ws, args.base)
    t0 = time.time()
    data = load_training_data(ws, dataset, args)
    with seeded(args.seed, args.num_threads):
        trained = get_method(args.method).load()().fit(ws, data, args)
    calibrate(trained, data)
    abstain, distance = calibrate_abstain(trained, data, args)
    val_profile = validation_profile(trained, data, abstain, distance)
    train_seconds = round(time.time() - t0, 3)
    bb = trained.backbone
    encoder = ({"pooling": bb.pooling, "normalize": bb.normalize, "max_length": bb.max_length,
                "frozen_layers": bb.frozen_layers} if bb is not None
               else {"pooling": "mean", "normalize": True, "max_length": args.max_seq_length, "frozen": True,
                     "text": TEXT_PREP})
    fields = {
        "kind": "classifier", "method": args.method,
        "base": {"name": base.name, "sha256": base.sha256, "kind": base.kind},
        "labels": data.labels, "multi_label": data.multi_label, "threshold": args.threshold,
        "encoder": encoder, "abstain": abstain,
        "dataset": {"name": dataset, "split": args.split, "label_col": args.label_col, "shots": args.shots,
                    "where": args.where, "rows_sha256": data.rows_sha256(), "n_rows": len(data.texts)},
        "n_train": int(len(data.train_idx)), "n_val": int(len(data.val_idx)),
        "training_args": args.to_dict(), "seed": args.seed,
        "val_metrics": trained.val_metrics, "train_seconds": train_seconds,
    }
    if val_profile is not None:
        fields["val_profile"] = val_profile

    def build(folder: Path) -> dict:
        trained.save(folder, args.method)
        if distance is not None:
            distance.save(folder / DISTANCE_FILE)
        _save_index(folder, data, trained.extra["embeddings"])
        return fields

    v: Version = save_version(ws, name, build)
    result = TrainResult(name, v.version, v.sha256, args.method, base.name, int(len(data.train_idx)),
                         int(len(data.val_idx)), data.labels, trained.val_metrics, train_seconds, str(v.path),
                         abstain)
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
