"""The torch training loops behind :mod:`inhouse.train` (setfit, full, lora).

Batches are built by length (rows shuffled, then sorted within chunks of 50
batches, then the batches shuffled) so padding stays small on CPU; every
random choice comes from a generator seeded with ``args.seed``.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> bb = load_backbone(ws, "minilm-l6")
    >>> head, val = fine_tune(bb, probe_head, data, TrainingArguments().resolved(), lora=False)
"""

from __future__ import annotations

import math

import numpy as np

from ..classifiers.backbone import Backbone
from ..classifiers.head import Head
from ..progress import task


def _torch():
    import torch

    return torch


def length_batches(rows: np.ndarray, lengths: list[int], batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar-length rows (sort-by-length within chunks)."""
    rows = rows.copy()
    rng.shuffle(rows)
    chunk = batch_size * 50
    batches = []
    for i in range(0, len(rows), chunk):
        part = sorted(rows[i:i + chunk].tolist(), key=lambda r: lengths[r])
        batches += [np.array(part[j:j + batch_size]) for j in range(0, len(part), batch_size)]
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def warmup_linear(optimizer, total: int, warmup_ratio: float):
    """Linear warmup over ``warmup_ratio`` of the steps, then linear decay to zero."""
    torch = _torch()
    warm = max(1, int(total * warmup_ratio))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total - step) / max(1, total - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _trainable(bb: Backbone) -> list:
    return [p for p in bb.parameters() if p.requires_grad]


def _snapshot(bb: Backbone, linear) -> dict:
    state = {n: p.detach().clone() for n, p in bb.named_parameters() if p.requires_grad}
    state.update({f"__head.{n}": p.detach().clone() for n, p in linear.named_parameters()})
    return state


def _restore(bb: Backbone, linear, state: dict) -> None:
    torch = _torch()
    with torch.no_grad():
        for n, p in bb.named_parameters():
            if n in state:
                p.copy_(state[n])
        for n, p in linear.named_parameters():
            p.copy_(state[f"__head.{n}"])


def _to_head(linear, multi_label: bool, threshold: float) -> Head:
    return Head(linear.weight.detach().float().numpy().copy(), linear.bias.detach().float().numpy().copy(),
                multi_label, threshold)


def _validate(bb: Backbone, linear, data, args, bottom=None) -> dict:
    """Validation metrics of the encoder and head as they are now (in eval mode: no dropout)."""
    from .metrics import metrics

    if len(data.val_idx) == 0:
        return {}
    bb.eval()
    if bottom is not None:
        X = bottom.vectors(bb, data.val_idx, desc="validating")
    else:
        X = bb.embed([data.texts[i] for i in data.val_idx], desc="validating")
    head = _to_head(linear, data.multi_label, args.threshold)
    return metrics(data.y(data.val_idx), head.proba(X), data.multi_label, args.threshold)


def fine_tune(bb: Backbone, head: Head, data, args, *, lora: bool, bottom=None) -> tuple[Head, dict]:
    """Train encoder (or its LoRA adapters) and a linear head end to end.

    Cross-entropy (or per-label BCE for multi-label data), AdamW with one
    learning rate for the encoder and one for the head, linear warmup and
    decay; validation after every epoch keeps the best epoch, and training
    stops after ``patience`` epochs without improvement. ``bottom`` (a
    :class:`inhouse.training.frozen.BottomCache`) gives the frozen bottom
    layers' states, so that steps run only the layers above them.
    """
    from .metrics import score

    torch = _torch()
    linear = torch.nn.Linear(bb.dim, len(data.labels))
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(head.W))
        linear.bias.copy_(torch.from_numpy(head.b))
    groups = [{"params": _trainable(bb), "lr": args.learning_rate, "weight_decay": args.weight_decay},
              {"params": list(linear.parameters()), "lr": args.head_learning_rate or args.learning_rate, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups)
    per_epoch = math.ceil(len(data.train_idx) / args.batch_size)
    total = args.max_steps or max(args.min_steps, math.ceil(args.epochs * per_epoch))
    sched = warmup_linear(opt, total, args.warmup_ratio)
    if data.multi_label:
        loss_fn = torch.nn.BCEWithLogitsLoss()
    else:
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    y_all = torch.from_numpy(data.y(np.arange(len(data.texts))))
    lengths = [len(t) for t in data.texts]  # (not token counts: the same batches with or without a cache)
    rng = np.random.default_rng(args.seed)
    best, best_score, bad, step, epoch, ema = None, -1.0, 0, 0, 0, None
    history = []
    bb.train()
    with task(f"fine-tuning ({'lora' if lora else 'full'})", total=total, unit="step") as t:
        while step < total:
            epoch += 1
            for rows in length_batches(data.train_idx, lengths, args.batch_size, rng):
                if bottom is not None:
                    logits = linear(bottom.forward(bb, rows))
                else:
                    logits = linear(bb(bb.tokenize([data.texts[i] for i in rows])))
                loss = loss_fn(logits, y_all[rows])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(_trainable(bb) + list(linear.parameters()), 1.0)
                opt.step()
                sched.step()
                step += 1
                ema = loss.item() if ema is None else 0.9 * ema + 0.1 * loss.item()
                t.advance(1, loss=round(ema, 4), epoch=epoch)
                if step >= total:
                    break
            m = _validate(bb, linear, data, args, bottom)
            history.append({"epoch": epoch, "step": step, **m})
            bb.train()
            if not m or score(m) > best_score:
                best_score, best, bad = score(m) if m else best_score, _snapshot(bb, linear), 0
            else:
                bad += 1
                if bad >= args.patience:
                    break
    _restore(bb, linear, best)
    bb.eval()
    scored = [h for h in history if h.get("n")]
    chosen = max(scored, key=lambda h: (score(h), -h["epoch"])) if scored else (history[-1] if history else {})
    return _to_head(linear, data.multi_label, args.threshold), {**chosen, "history": history, "steps": step}


def contrastive_epochs(bb: Backbone, data, args) -> dict:
    """SetFit's first phase: pull same-label texts together, push others apart.

    Each epoch pairs every training row (the anchor) with one random other row
    of its label; a batch's other positives are its negatives (multiple-negatives
    ranking loss, symmetric), except rows that share the anchor's label, which
    are masked out. Cost is two forward passes per row per epoch, whatever the
    number of labels.
    """
    torch = _torch()
    F = torch.nn.functional
    first = [t[0] for t in data.targets]
    by_label: dict[str, list[int]] = {}
    for i in data.train_idx.tolist():
        by_label.setdefault(first[i], []).append(i)
    anchors = np.array([i for i in data.train_idx.tolist() if len(by_label[first[i]]) > 1], dtype=np.int64)
    if len(anchors) < 2:
        return {"steps": 0}
    label_id = {l: k for k, l in enumerate(sorted(by_label))}
    per_epoch = math.ceil(len(anchors) / args.batch_size)
    total = args.max_steps or max(args.min_steps, math.ceil(args.epochs * per_epoch))
    opt = torch.optim.AdamW(_trainable(bb), lr=args.learning_rate, weight_decay=args.weight_decay)
    sched = warmup_linear(opt, total, args.warmup_ratio)
    rng = np.random.default_rng(args.seed + 1)
    lengths = [len(t) for t in data.texts]
    step, ema = 0, None
    bb.train()
    with task("contrastive tuning (setfit)", total=total, unit="step") as t:
        while step < total:
            for rows in length_batches(anchors, lengths, args.batch_size, rng):
                pos = [int(rng.choice([j for j in by_label[first[i]] if j != i])) for i in rows]
                a = F.normalize(bb(bb.tokenize([data.texts[i] for i in rows])), dim=-1)
                p = F.normalize(bb(bb.tokenize([data.texts[j] for j in pos])), dim=-1)
                lab = torch.tensor([label_id[first[i]] for i in rows])
                same = (lab[:, None] == lab[None, :]) & ~torch.eye(len(rows), dtype=torch.bool)
                sim = (a @ p.T * args.setfit_scale).masked_fill(same, float("-inf"))
                target = torch.arange(len(rows))
                loss = (F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target)) / 2
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(_trainable(bb), 1.0)
                opt.step()
                sched.step()
                step += 1
                ema = loss.item() if ema is None else 0.9 * ema + 0.1 * loss.item()
                t.advance(1, loss=round(ema, 4))
                if step >= total:
                    break
    bb.eval()
    return {"steps": step}


LORA_TARGETS = {
    "bert": ["query", "key", "value", "dense"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


def add_lora(bb: Backbone, args) -> None:
    """Wrap the backbone's transformer with LoRA adapters; only they (and the head) train."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:
        from ..errors import MissingDependency

        raise MissingDependency("peft", "train", "LoRA fine-tuning") from e
    linear = [n for n, m in bb.transformer.named_modules() if type(m).__name__ == "Linear" and "pooler" not in n]
    names = {n.rsplit(".", 1)[-1] for n in linear}
    wanted = args.lora_targets or next((t for t in LORA_TARGETS.values() if set(t) & names), sorted(names))
    # full module names, so that unused layers (BERT's pooler) get no adapter
    targets = [n for n in linear if n.rsplit(".", 1)[-1] in wanted]
    config = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                        target_modules=targets, bias="none")
    bb.transformer = get_peft_model(bb.transformer, config)
