"""What an encoder's frozen bottom computes, computed once (``freeze_layers``).

With the embeddings and the bottom ``k`` layers frozen (no gradients, no
dropout), what they compute for a text never changes during training, so
:class:`BottomCache` runs them once per text and keeps each text's hidden
states (unpadded); a training step then runs only the layers above ``k``,
forward and backward. The result is the same as running the whole encoder
every step (up to float rounding): ``cache_frozen=False`` does that, for
datasets whose states would not fit in :data:`CACHE_BUDGET`.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> bb = load_backbone(ws, "minilm-l6"); bb.freeze_bottom(3)
    >>> cache = BottomCache.build(bb, ["hello", "card lost"], 3)
    >>> cache.vectors(bb, np.arange(2)).shape
    (2, 384)
"""

from __future__ import annotations

import numpy as np

from ..classifiers.backbone import Backbone
from ..progress import task

CACHE_BUDGET = 3 * 2**30  # bytes of cached hidden states (float32); above it, training runs the whole encoder


class BottomCache:
    """Each text's hidden states after the frozen bottom ``k`` layers, and its token count."""

    def __init__(self, k: int, states: list, lengths: list[int]):
        self.k, self.states, self.lengths = k, states, lengths

    @classmethod
    def build(cls, bb: Backbone, texts: list[str], k: int, batch_size: int = 64,
              budget: int = CACHE_BUDGET) -> "BottomCache | None":
        """Run the frozen bottom once over ``texts``; ``None`` when the states would exceed ``budget`` bytes."""
        import torch

        lengths = [len(ids) for ids in bb.tokenizer(list(texts), truncation=True, max_length=bb.max_length)["input_ids"]]
        if sum(lengths) * bb.dim * 4 > budget:
            return None
        order = np.argsort(lengths, kind="stable")
        states: list = [None] * len(texts)
        with torch.no_grad(), task(f"running the {k} frozen layers once", total=len(texts), unit="text") as t:
            for i in range(0, len(texts), batch_size):
                idx = order[i:i + batch_size]
                h = bb.bottom(bb.tokenize([texts[j] for j in idx]), k)
                for r, j in enumerate(idx):
                    states[j] = h[r, :lengths[j]].clone()
                t.advance(len(idx))
        return cls(k, states, lengths)

    def nbytes(self) -> int:
        return sum(s.numel() for s in self.states) * 4

    def batch(self, rows) -> tuple:
        """The rows' cached states padded to the longest of them, and the attention mask."""
        import torch

        hidden = torch.nn.utils.rnn.pad_sequence([self.states[i] for i in rows], batch_first=True)
        mask = torch.zeros(hidden.shape[:2], dtype=torch.long)
        for r, i in enumerate(rows):
            mask[r, :self.lengths[i]] = 1
        return hidden, mask

    def forward(self, bb: Backbone, rows):
        """The rows' pooled vectors (with gradients through the layers above ``k``)."""
        hidden, mask = self.batch(rows)
        return bb.top(hidden, mask, self.k)

    def vectors(self, bb: Backbone, rows, batch_size: int = 64, desc: str = "embedding") -> np.ndarray:
        """The rows' pooled vectors without gradients, batched by length, in ``rows``' order."""
        import torch

        rows = np.asarray(rows)
        order = np.argsort([self.lengths[i] for i in rows], kind="stable")
        out = np.zeros((len(rows), bb.dim), dtype=np.float32)
        with torch.inference_mode(), task(desc, total=len(rows), unit="text") as t:
            for i in range(0, len(rows), batch_size):
                idx = order[i:i + batch_size]
                out[idx] = self.forward(bb, rows[idx]).float().numpy()
                t.advance(len(idx))
        return out
