"""``TrainingArguments``: everything that decides a training run, saved whole in the manifest."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

from ..errors import UsageError
from ..models.catalog import DEFAULT_ENCODER
from .registry import DEFAULT_METHOD, get_method

# Abstention threshold rule: turn away this share of in-scope validation rows (the lowest-confidence
# ones). Chosen on banking77 with a quarter of the intents held out of training and pseudo-out-of-scope
# intents carved from the training rows only (bench/abstain.py, BENCHMARKS.md), checked on airline tweets.
ABSTAIN_TARGET = 0.2
# "distance" (default): probability and distance to the training rows, thresholds tuned on pseudo-out-of-scope
# classes (inhouse.training.abstain); "quantile": the probability threshold alone, ABSTAIN_TARGET of validation.
ABSTAIN_RULES = ("distance", "quantile")
# What a version is unsure of, for review (candidate new categories): the rows under the confidence that this share
# of in-scope validation rows falls under. The old default rule's share, not tuned for discovery: abstention is tuned
# for precision of answers, finding what the labels miss needs recall (inhouse.analysis.candidates).
REVIEW_SHARE = ABSTAIN_TARGET
ABSTAIN_MAX_LOSS = 0.01  # half the 2 points asked: validation folds of fewer classes are easier than new data


@dataclass
class TrainingArguments:
    """Everything that decides a training run; saved whole in the manifest.

    ``None`` means "the method's default" (its ``defaults`` in :mod:`inhouse.training.registry`).

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
    freeze_layers: int | None = None  # the bottom N layers (and the embeddings) are not trained; None: half (full)
    cache_frozen: bool = True  # compute the frozen layers once per text, not every step (same result, faster)
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
    where: str | None = None  # a filter over the dataset's columns: train only on these documents
    abstain: bool = True  # answer `other_label` when not confident enough (single-label models)
    other_label: str = "other"
    abstain_target: float = ABSTAIN_TARGET  # rule "quantile": share of in-scope validation rows turned away
    abstain_rule: str = "distance"  # "distance": probability + distance, tuned on pseudo-out-of-scope classes
    abstain_max_loss: float | None = ABSTAIN_MAX_LOSS  # rule "distance": in-scope accuracy it may cost (None: any)
    out_of_scope: list[str] | None = None  # labels that mark training rows as out of scope (learnt, answered as other)

    def resolved(self) -> "TrainingArguments":
        """A copy with the method's defaults filled in and every value checked."""
        spec = get_method(self.method)
        out = copy.deepcopy(self)
        for k, v in spec.defaults.items():
            if getattr(out, k) is None:
                setattr(out, k, v)
        if out.shots is not None and out.shots < 1:
            raise UsageError(f"--shots must be at least 1, found {out.shots}.")
        if not 0 <= out.val_fraction < 1:
            raise UsageError(f"val_fraction must be in [0, 1), found {out.val_fraction}.")
        if out.freeze_layers is not None and out.freeze_layers < 0:
            raise UsageError(f"--freeze-layers must be 0 or more, found {out.freeze_layers}.")
        if out.batch_size < 2:
            raise UsageError(f"batch_size must be at least 2, found {out.batch_size}.")
        if not 0 <= out.abstain_target < 0.5:
            raise UsageError(f"--abstain-target must be in [0, 0.5), found {out.abstain_target}.",
                             fix=f"Use e.g. {ABSTAIN_TARGET} (the default), or --no-abstain to turn abstention off.")
        if out.abstain_max_loss is not None and not 0 <= out.abstain_max_loss <= 1:
            raise UsageError(f"--abstain-max-loss (abstain_max_loss) must be in [0, 1], found {out.abstain_max_loss}.",
                             fix=f"Use e.g. {ABSTAIN_MAX_LOSS} (the default): the in-scope accuracy abstaining may cost.")
        if out.abstain_rule not in ABSTAIN_RULES:
            raise UsageError(f"abstain_rule must be one of {list(ABSTAIN_RULES)}, found {out.abstain_rule!r}.",
                             fix="Use 'distance' (the default) or 'quantile' (the probability threshold alone).")
        if not (out.other_label or "").strip():
            raise UsageError("--other-label must not be empty.", fix="Leave it out to use 'other'.")
        out.out_of_scope = sorted(set(out.out_of_scope)) if out.out_of_scope else None
        return out

    def to_dict(self) -> dict:
        return asdict(self)


C_GRID = (1.0, 4.0, 16.0, 64.0, 256.0)
ECE_BINS = 15

