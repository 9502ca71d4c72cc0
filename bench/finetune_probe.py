"""Compare `full` settings on banking77 by VALIDATION accuracy per epoch (the test split is never read).

The training rows are loaded and split once (the same stratified validation rows as ``train``); the frozen
bottom layers are cached once per ``freeze_layers`` value and shared by every setting that uses it; each
setting then starts from a fresh base encoder and the linear-probe head and runs ``fine_tune``, printing its
validation history (one JSON line per setting, CPU seconds included) to stdout and to ``--out``.

    nice python bench/finetune_probe.py --configs '[{}, {"freeze_layers": 2}, {"epochs": 5}]'

A quick way to choose among settings before a full benchmark run (``bench/finetune_banking77.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_banking77 import DATA, ensure_dataset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="[{}]", help="JSON list of TrainingArguments overrides, one per setting")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--home", default="/tmp/inhouse-bench-banking77")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--out", default="", help="append the JSON lines to this file too")
    a = ap.parse_args()

    import torch

    torch.set_num_threads(a.threads)
    from inhouse.training.arguments import TrainingArguments
    from inhouse.training.data import load_training_data
    from inhouse.training.frozen import BottomCache
    from inhouse.training.loops import fine_tune
    from inhouse.training.methods import _probe_head, _trainable_backbone
    from inhouse.training.train import seeded
    from inhouse.workspace.store import Workspace

    ensure_dataset(a.home, a.data)
    ws = Workspace.open(a.home)
    base_args = TrainingArguments(method="full", seed=a.seed, num_threads=a.threads).resolved()
    data = load_training_data(ws, "banking77", base_args)
    caches: dict[int, BottomCache] = {}
    probe = None
    for over in json.loads(a.configs):
        args = replace(TrainingArguments(method="full", seed=a.seed, num_threads=a.threads), **over).resolved()
        c0, w0 = time.process_time(), time.time()
        with seeded(args.seed, args.num_threads):
            bb = _trainable_backbone(ws, args)
            k = bb.frozen_layers
            if k and k not in caches:
                caches[k] = BottomCache.build(bb, data.texts, k)
            probe = probe or _probe_head(ws, bb, data, args)
            _, val = fine_tune(bb, probe, data, args, lora=False, bottom=caches.get(k))
        hist = [{"epoch": h["epoch"], "step": h["step"], "acc": round(h["accuracy"], 4),
                 "macro_f1": round(h.get("macro_f1", 0), 4)} for h in val["history"]]
        line = json.dumps({"config": over, "best_val": round(val["accuracy"], 4), "best_epoch": val["epoch"],
                           "steps": val["steps"], "cpu_s": round(time.process_time() - c0),
                           "wall_s": round(time.time() - w0), "history": hist})
        print(line, flush=True)
        if a.out:
            with open(a.out, "a") as f:
                f.write(line + "\n")


if __name__ == "__main__":
    main()
