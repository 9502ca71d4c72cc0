"""How long the workspace keeps what grows with use, and how much disk each folder takes.

Retention is the workspace's ``retention.json`` (written by ``inhouse gc --save``);
any setting it lacks takes its default. ``inhouse gc`` removes what these
settings say is old (:mod:`inhouse.pipeline.gc`); ``inhouse status`` shows
:func:`disk_usage`.

    >>> Retention().keep_pipeline_runs, Retention(keep_days=7).keep_days
    (30, 7)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..errors import UsageError
from .files import atomic_write_text
from .store import Workspace

FILE = "retention.json"

# every top-level folder of a workspace that grows with use, and what it holds (README "where state lives")
GROWING = {
    "datasets": "documents (Parquet parts) and discovery runs of each dataset",
    "prediction_sets": "stored predictions of each (dataset, model version)",
    "predictions": "cached probabilities per (model, text), e.g. of documents viewed with ?model=",
    "embeddings": "cached embeddings per (model, text)",
    "models": "model versions (content-addressed objects) and imported base models",
    "derived": "ONNX exports of model versions",
    "runs": "pipeline run folders (runs/pipelines/job-N), job logs and outputs (runs/jobs), reports",
    "quarantine": "rows ingest refused, per dataset",
    "tmp": "uploads, previews and checkpoints of work in progress",
}


@dataclass(frozen=True)
class Retention:
    """What ``inhouse gc`` keeps."""

    keep_pipeline_runs: int = 30  # the newest N runs/pipelines/job-N/ folders are kept ...
    keep_days: float = 30.0       # ... and any younger than this; job logs and outputs too
    tmp_hours: float = 24.0       # leftovers in tmp/ (uploads, previews, checkpoints) older than this go

    def validate(self) -> "Retention":
        if self.keep_pipeline_runs < 0 or self.keep_days < 0 or self.tmp_hours < 0:
            raise UsageError(f"retention settings must be >= 0, found {asdict(self)}.",
                             fix=f"Fix {FILE} in the workspace, or pass other values to inhouse gc.")
        return self


def load_retention(ws: Workspace) -> Retention:
    """The workspace's retention settings (defaults where ``retention.json`` says nothing)."""
    path = ws.home / FILE
    if not path.is_file():
        return Retention()
    try:
        raw = json.loads(path.read_text("utf-8"))
    except ValueError as e:
        raise UsageError(f"{path}: not valid JSON ({e}).", fix=f"Fix it, or delete it to use the defaults.") from None
    known = {f.name: f.type for f in fields(Retention)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise UsageError(f"{path}: unknown settings {unknown}; known are {sorted(known)}.",
                         fix="Remove or rename them.")
    try:
        return Retention(**{k: (int if k == "keep_pipeline_runs" else float)(v) for k, v in raw.items()}).validate()
    except (TypeError, ValueError) as e:
        raise UsageError(f"{path}: {e}.", fix="Each setting is a number.") from None


def save_retention(ws: Workspace, r: Retention) -> Path:
    path = ws.home / FILE
    atomic_write_text(path, json.dumps(asdict(r.validate()), indent=2, sort_keys=True) + "\n")
    return path


def folder_bytes(path: Path) -> tuple[int, int]:
    """(bytes, files) under ``path`` (symlinks are not followed)."""
    total = files = 0
    for root, _, names in os.walk(path):
        for n in names:
            try:
                total += os.lstat(os.path.join(root, n)).st_size
                files += 1
            except OSError:  # removed while we walked
                pass
    return total, files


def disk_usage(ws: Workspace) -> dict:
    """Bytes and files per top-level folder of the workspace, the database, and the total."""
    out: dict[str, dict] = {}
    for entry in sorted(ws.home.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            b, n = folder_bytes(entry)
            out[entry.name] = {"bytes": b, "files": n, "holds": GROWING.get(entry.name, "")}
    db = sum(p.stat().st_size for p in ws.home.glob(ws.DB_NAME + "*") if p.is_file())
    out["inhouse.db"] = {"bytes": db, "files": len(list(ws.home.glob(ws.DB_NAME + "*"))), "holds": "metadata (SQLite)"}
    return {"home": str(ws.home), "folders": out, "total_bytes": sum(v["bytes"] for v in out.values())}
