"""Keeping a workspace's disk bounded: retention, ``inhouse gc``, ``inhouse status`` and stale uploads.

    >>> out = gc(ws, keep_days=14, dry_run=True)           # doctest: +SKIP
    >>> sorted(out)[:3]                                    # doctest: +SKIP
    ['bytes', 'compacted', 'job_files']
"""

from __future__ import annotations

from dataclasses import asdict, replace

from ..pipeline.gc import collect
from ..workspace.files import remove_unheld
from ..workspace.retention import Retention, disk_usage, load_retention, save_retention
from ..workspace.store import Workspace


def retention(ws: Workspace, save: bool = False, **given) -> Retention:
    """The workspace's retention with ``given`` settings (None: keep the stored one), checked; stored if ``save``."""
    r = replace(load_retention(ws), **{k: v for k, v in given.items() if v is not None}).validate()
    if save:
        save_retention(ws, r)
    return r


def gc(ws: Workspace, *, retention: Retention, dry_run: bool = False) -> dict:
    """Remove (or with ``dry_run`` list) what ``retention`` no longer keeps, and merge cache parts."""
    return collect(ws, retention=retention, dry_run=dry_run)


def status(ws: Workspace) -> dict:
    """Disk use per folder, the retention settings and the schema version."""
    return {**disk_usage(ws), "retention": asdict(load_retention(ws)), "schema_version": ws.schema_version()}


def remove_stale_uploads(ws: Workspace, pattern: str) -> list[str]:
    """Remove upload files in ``tmp/`` that no live request holds (a crash or kill left them); their names."""
    return remove_unheld(ws.dir("tmp"), pattern)
