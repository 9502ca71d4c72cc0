"""``inhouse demo``: the whole platform, end to end, on a generated corpus.

Each step is one call into the public Python API, the same functions the CLI
commands use, so the demo shows exactly what a user would get. Steps report
through the progress mechanism and return a dict; :func:`run` collects them.

    >>> report = run(Workspace.open("/tmp/demo"), out_dir=Path("/tmp/demo/out"))
    >>> report["steps"][0]["step"]
    'generate'
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import demo_data
from .store import Workspace

DATASET = "contact-center"


@dataclass
class DemoConfig:
    rows: int = 6000
    seed: int = 7
    model_name: str = "support-intents"
    method: str | None = None  # None: the default training method
    llm: str | None = "smollm2-135m"
    out_dir: Path = field(default_factory=lambda: Path("demo-out"))


def _step_generate(ws: Workspace, cfg: DemoConfig, state: dict) -> dict:
    path = demo_data.write_csv(cfg.out_dir / "contact_center.csv", cfg.rows, cfg.seed)
    state["csv"] = path
    return {"file": str(path), "rows": cfg.rows, "planted": f"'{demo_data.EMERGING_MARKER} update crashes' inside "
            f"{demo_data.EMERGING_INTENT}, last {demo_data.EMERGING_WEEKS} weeks"}


def _step_ingest(ws: Workspace, cfg: DemoConfig, state: dict) -> dict:
    from .ingest import ingest

    res = ingest(ws, state["csv"], DATASET, text_col="text", label_col="intent", time_col="timestamp",
                 id_col="message_id", split_col="split", redact_pii=True)
    return res.to_dict()


def _step_embed(ws: Workspace, cfg: DemoConfig, state: dict) -> dict:
    from .embed import embed_dataset

    res, _, _ = embed_dataset(ws, DATASET)
    return res.to_dict()


STEPS: list[tuple[str, Callable[[Workspace, DemoConfig, dict], dict]]] = [
    ("generate", _step_generate),
    ("ingest", _step_ingest),
    ("embed", _step_embed),
]


def run(ws: Workspace, cfg: DemoConfig | None = None,
        on_step: Callable[[str, dict, float], None] | None = None) -> dict:
    """Run every demo step in order; ``on_step(name, result, seconds)`` after each."""
    cfg = cfg or DemoConfig()
    cfg.out_dir = Path(cfg.out_dir)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    state: dict = {}
    steps = []
    t_all = time.time()
    for name, fn in STEPS:
        t0 = time.time()
        result = fn(ws, cfg, state)
        seconds = round(time.time() - t0, 2)
        steps.append({"step": name, "seconds": seconds, "result": result})
        if on_step:
            on_step(name, result, seconds)
    return {"workspace": str(ws.home), "out_dir": str(cfg.out_dir.resolve()), "dataset": DATASET,
            "seconds": round(time.time() - t_all, 2), "steps": steps}
