"""``inhouse gc``: remove what retention says is old, what no record points to, and merge cache parts.

What goes (each a list of paths with their bytes in the result):

- ``pipeline_runs``: ``runs/pipelines/job-N/`` folders beyond the newest
  ``keep_pipeline_runs`` that are also older than ``keep_days``;
- ``job_files``: ``runs/jobs/job-N.log`` and ``job-N-predictions.*`` older than ``keep_days``;
- ``orphans``: prediction-set folders of datasets or sets that no longer exist,
  and probability-cache folders of model versions that were removed;
- ``tmp``: ``tmp/upload-*``, ``tmp/preview-*`` and classify checkpoints older than ``tmp_hours``.

Nothing of a queued or running job is touched. ``compacted``: probability-cache
folders whose parts were merged into one (:meth:`EmbeddingCache.compact`).
With ``dry_run`` nothing is removed or merged, and the result lists what would be.

    Illustrative (needs a workspace; not run as a doctest):
    >>> collect(ws, dry_run=True)["bytes"]
    1048576
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from ..workspace.retention import Retention, folder_bytes, load_retention
from ..workspace.store import Workspace

JOB_NAME = re.compile(r"job-(\d+)(?:\.log|-.+)?$")
TMP_PATTERNS = ("upload-*", "preview-*", "classify/*", "classify-ray/*")


def _active_jobs(ws: Workspace) -> set[int]:
    return {int(r[0]) for r in ws.db.execute("SELECT id FROM jobs WHERE status IN ('queued', 'running')")}


def _age_days(p: Path, now: float) -> float:
    try:
        return (now - p.stat().st_mtime) / 86400
    except OSError:
        return 0.0


def _job_entries(ws: Workspace, folder: Path) -> list[tuple[int, Path]]:
    """(job id, path) of the ``job-N*`` entries of ``folder`` whose job is not queued or running, newest job first."""
    if not folder.is_dir():
        return []
    active = _active_jobs(ws)
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := JOB_NAME.fullmatch(p.name))]
    return sorted(((n, p) for n, p in found if n not in active), reverse=True)


def pipeline_run_folders(ws: Workspace, r: Retention, now: float) -> list[Path]:
    runs = [p for _, p in _job_entries(ws, ws.home / "runs" / "pipelines") if p.is_dir()]
    return [p for p in runs[r.keep_pipeline_runs:] if _age_days(p, now) > r.keep_days]


def job_files(ws: Workspace, r: Retention, now: float) -> list[Path]:
    return sorted(p for _, p in _job_entries(ws, ws.home / "runs" / "jobs") if _age_days(p, now) > r.keep_days)


def orphans(ws: Workspace) -> list[Path]:
    """Derived data no record points to: prediction sets of gone datasets/sets, caches of removed versions."""
    out: list[Path] = []
    sets = {(str(r[0]), Path(r[1]).name) for r in ws.db.execute("SELECT dataset_id, path FROM prediction_sets")}
    datasets = {str(r[0]) for r in ws.db.execute("SELECT id FROM datasets")}
    root = ws.home / "prediction_sets"
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if d.name not in datasets:
            out.append(d)
            continue
        out += [s for s in sorted(d.iterdir()) if (d.name, s.name) not in sets]
    live = {r[0][:16] for r in ws.db.execute("SELECT sha256 FROM model_versions WHERE removed_at IS NULL")}
    cache = ws.home / "predictions"
    out += [d for d in sorted(cache.iterdir()) if d.is_dir() and d.name not in live] if cache.is_dir() else []
    return out


def tmp_leftovers(ws: Workspace, r: Retention, now: float) -> list[Path]:
    tmp = ws.home / "tmp"
    found = {p for pattern in TMP_PATTERNS for p in tmp.glob(pattern)} if tmp.is_dir() else set()
    return sorted(p for p in found if _age_days(p, now) * 24 > r.tmp_hours)


def compact_caches(ws: Workspace, dry_run: bool) -> list[dict]:
    """Merge the parts of each probability cache with more than one part."""
    from ..classifiers.predict import PredictionCache

    out = []
    root = ws.home / "predictions"
    live = {r[0][:16]: r[0] for r in ws.db.execute("SELECT sha256 FROM model_versions WHERE removed_at IS NULL")}
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if d.name not in live:
            continue
        cache = PredictionCache(ws, live[d.name])
        n = len(cache.parts())
        if n > 1:
            merged = {"parts": n, "rows": None} if dry_run else cache.compact()
            out.append({"folder": str(d.relative_to(ws.home)), **merged})
    return out


def collect(ws: Workspace, *, retention: Retention | None = None, dry_run: bool = False,
            now: float | None = None) -> dict:
    """Remove (or, ``dry_run``, list) what retention and the records say can go; see the module docstring.

    ``now``: the time ages are measured from (default: now; a simulation passes its own clock).
    """
    r = (retention or load_retention(ws)).validate()
    now = time.time() if now is None else now
    found = {"pipeline_runs": pipeline_run_folders(ws, r, now), "job_files": job_files(ws, r, now),
             "orphans": orphans(ws), "tmp": tmp_leftovers(ws, r, now)}
    out: dict = {"dry_run": dry_run, "retention": r.__dict__.copy(), "bytes": 0}
    for kind, paths in found.items():
        listed = []
        for p in paths:
            b = folder_bytes(p)[0] if p.is_dir() else (p.stat().st_size if p.exists() else 0)
            listed.append({"path": str(p.relative_to(ws.home)), "bytes": b})
            out["bytes"] += b
            if not dry_run:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        out[kind] = listed
    out["compacted"] = compact_caches(ws, dry_run)
    if not dry_run:
        ws.audit("gc", None, bytes=out["bytes"], **{k: len(v) for k, v in found.items()})
    return out
