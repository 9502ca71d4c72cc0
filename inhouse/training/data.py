"""Training rows: labelled documents, few-shot sampling and the stratified validation split."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..workspace.documents import read_documents
from ..workspace.files import sha256_bytes
from ..workspace.store import Workspace
from .arguments import TrainingArguments

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


def targets_from(df, label_col: str, dataset: str) -> list[list[str]]:
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
    df = read_documents(ws, dataset, columns=["doc_id", "text", "text_hash", "labels", "split"],
                        label_col=args.label_col, where=args.where)
    if args.split is not None:
        splits = sorted({s for s in df["split"].dropna().unique()})
        if args.split not in splits and splits:
            raise InputError(f"dataset {dataset!r} has no split {args.split!r}; its splits are {splits}.",
                             fix="Use --split with one of them, or --split all for every row.")
        if splits:
            df = df[df["split"] == args.split].reset_index(drop=True)
    targets = [list(l) for l in df["labels"]]
    keep = [i for i, t in enumerate(targets) if t]
    if not keep:
        where = (f" in split {args.split!r}" if args.split else "") + (f" where {args.where}" if args.where else "")
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
    from ..workspace.files import text_hash

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

