"""Immutable, pinned model versions that change only when a person says so.

Every training of a named model adds a version ``M@1``, ``M@2``, ... Its files
live in a content-addressed folder ``models/objects/<sha256>/`` with a
``manifest.json`` that lists every file's sha256; the version's hash is the
sha256 of that file list. Saving is atomic (a temp folder renamed into place,
then one transaction), loading verifies every hash.

References: ``M`` (the ``production`` alias if set, else the latest), ``M@3``,
``M@production``, ``M@<hash prefix>`` or a bare hash prefix.

    >>> v = save_version(ws, "intents", lambda d: {"kind": "classifier"})
    >>> resolve(ws, "intents").ref
    'intents@1'
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import __version__
from .errors import Conflict, IntegrityError, NotFound, UsageError
from .store import Workspace, atomic_write_text, current_user, json_dumps, sha256_bytes, sha256_file

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DEFAULT_ALIAS = "production"


@dataclass
class Version:
    """One immutable model version."""

    name: str
    version: int
    sha256: str
    path: Path
    manifest: dict

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "ref": self.ref, "sha256": self.sha256,
                "path": str(self.path), "manifest": self.manifest}


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0], "inhouse": __version__}
    for pkg in ("torch", "transformers", "sentence-transformers", "scikit-learn", "numpy", "safetensors", "peft"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def file_listing(folder: Path) -> dict[str, dict]:
    """{relative path: {sha256, size}} for every file except the manifest."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.relative_to(folder).as_posix() != MANIFEST:
            out[p.relative_to(folder).as_posix()] = {"sha256": sha256_file(p), "size": p.stat().st_size}
    return out


def content_hash(files: dict[str, dict]) -> str:
    return sha256_bytes(json_dumps({k: v["sha256"] for k, v in files.items()}).encode())


def _check_name(name: str) -> None:
    if not name or "@" in name or "/" in name or name.strip() != name:
        raise UsageError(f"model name {name!r} is not valid.", fix="Use letters, digits, '-', '_' or '.', without '@' or '/'.")


def save_version(ws: Workspace, name: str, build: Callable[[Path], dict]) -> Version:
    """Create the next version of ``name``.

    ``build(folder)`` writes the model's files into an empty temporary folder
    and returns its manifest fields (method, base, labels, metrics, ...). The
    registry adds the file hashes, library versions, time and user, moves the
    folder into place and records the version, all or nothing.
    """
    _check_name(name)
    tmp = Path(tempfile.mkdtemp(prefix=f"build-{name}-", dir=ws.dir("tmp")))
    try:
        fields = build(tmp) or {}
        files = file_listing(tmp)
        if not files:
            raise UsageError(f"model {name!r}: the build wrote no files.")
        digest = content_hash(files)
        manifest = {
            "format_version": FORMAT_VERSION,
            "name": name,
            **fields,
            "files": files,
            "sha256": digest,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "created_by": current_user(),
            "libraries": library_versions(),
            "platform": platform.platform(),
            "inhouse_version": __version__,
        }
        atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True, default=str))
        final = ws.dir("models", "objects") / digest
        if not final.exists():  # the same bytes saved before are simply reused
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with ws.tx() as db:
        number = db.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE name = ?", (name,)).fetchone()[0]
        manifest["version"] = number
        db.execute("INSERT INTO model_versions (name, version, sha256, path, manifest, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                   (name, number, digest, str(final.relative_to(ws.home)), json_dumps(manifest), time.time()))
        ws.audit("models.save", f"{name}@{number}", sha256=digest)
    return Version(name, number, digest, final, manifest)


def _row_to_version(ws: Workspace, row) -> Version:
    return Version(row["name"], row["version"], row["sha256"], ws.home / row["path"], json.loads(row["manifest"]))


def versions(ws: Workspace, name: str | None = None) -> list[Version]:
    q = "SELECT * FROM model_versions WHERE removed_at IS NULL"
    args: tuple = ()
    if name is not None:
        q += " AND name = ?"
        args = (name,)
    return [_row_to_version(ws, r) for r in ws.db.execute(q + " ORDER BY name, version", args)]


def aliases(ws: Workspace, name: str) -> dict[str, int]:
    return {r["alias"]: r["version"] for r in ws.db.execute("SELECT alias, version FROM aliases WHERE name = ?", (name,))}


def resolve(ws: Workspace, ref: str) -> Version:
    """The exact version a reference means (see the module docstring)."""
    name, _, tag = ref.partition("@")
    rows = ws.db.execute("SELECT * FROM model_versions WHERE name = ? AND removed_at IS NULL ORDER BY version", (name,)).fetchall()
    if not rows:
        if not tag and len(ref) >= 6:  # a bare hash prefix
            hits = ws.db.execute("SELECT * FROM model_versions WHERE sha256 LIKE ? AND removed_at IS NULL", (ref.lower() + "%",)).fetchall()
            if len(hits) == 1:
                return _row_to_version(ws, hits[0])
        names = sorted({r[0] for r in ws.db.execute("SELECT name FROM model_versions WHERE removed_at IS NULL")})
        raise NotFound(f"model {name!r} has no versions; trained models are {names}.",
                       fix=f"Train one with: inhouse train --dataset D --name {name}")
    by_number = {r["version"]: r for r in rows}
    if not tag:
        alias = aliases(ws, name).get(DEFAULT_ALIAS)
        return _row_to_version(ws, by_number.get(alias, rows[-1]))
    if tag.isdigit() and int(tag) in by_number:
        return _row_to_version(ws, by_number[int(tag)])
    alias = aliases(ws, name).get(tag)
    if alias is not None and alias in by_number:
        return _row_to_version(ws, by_number[alias])
    hits = [r for r in rows if r["sha256"].startswith(tag.lower())] if len(tag) >= 4 else []
    if len(hits) == 1:
        return _row_to_version(ws, hits[0])
    raise NotFound(f"{ref}: no version, alias or hash prefix {tag!r}; versions are {sorted(by_number)}, "
                   f"aliases {sorted(aliases(ws, name))}.", fix=f"Use {name}@N, {name}@ALIAS or {name}@HASHPREFIX.")


def verify(version: Version) -> Version:
    """Check every file of a version against its manifest; raise naming the bad file."""
    manifest_path = version.path / MANIFEST
    if not manifest_path.exists():
        raise IntegrityError(f"{version.ref}: {manifest_path} is missing.", fix="Re-import or retrain the model.")
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError as e:
        raise IntegrityError(f"{version.ref}: {manifest_path} is not valid JSON ({e}).") from e
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IntegrityError(f"{version.ref}: manifest format {manifest.get('format_version')!r}, expected {FORMAT_VERSION}.")
    for rel, meta in manifest["files"].items():
        p = version.path / rel
        if not p.exists():
            raise IntegrityError(f"{version.ref}: file {p} is missing.", fix="Re-import or retrain the model.")
        if p.stat().st_size != meta["size"] or sha256_file(p) != meta["sha256"]:
            raise IntegrityError(f"{version.ref}: file {p} does not match its sha256 in the manifest (tampered or truncated).",
                                 fix="Restore the file, or re-import the exported model.")
    if content_hash(manifest["files"]) != version.sha256:
        raise IntegrityError(f"{version.ref}: the manifest's file list does not hash to {version.sha256[:16]}.")
    return version


def load(ws: Workspace, ref: str) -> Version:
    """Resolve and verify a reference: the safe way to get a version's files."""
    return verify(resolve(ws, ref))


def set_alias(ws: Workspace, ref: str, alias: str) -> Version:
    """Point ``alias`` at a version (moving it if it exists)."""
    if not alias or alias.isdigit() or "@" in alias:
        raise UsageError(f"alias {alias!r} is not valid.", fix="Use a word such as 'production' or 'staging'.")
    v = resolve(ws, ref)
    with ws.tx() as db:
        old = db.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?", (v.name, alias)).fetchone()
        db.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?, ?, ?)", (v.name, alias, v.version, time.time(), current_user()))
        ws.audit("models.alias", f"{v.name}@{alias}", version=v.version, previous=old[0] if old else None)
    return v


def remove_alias(ws: Workspace, name: str, alias: str) -> None:
    with ws.tx() as db:
        if db.execute("DELETE FROM aliases WHERE name = ? AND alias = ?", (name, alias)).rowcount == 0:
            raise NotFound(f"{name} has no alias {alias!r}; aliases are {sorted(aliases(ws, name))}.")
        ws.audit("models.unalias", f"{name}@{alias}")


def remove_version(ws: Workspace, ref: str) -> Version:
    """Remove a version unless an alias points to it."""
    v = resolve(ws, ref)
    pointing = [a for a, n in aliases(ws, v.name).items() if n == v.version]
    if pointing:
        raise Conflict(f"{v.ref} is what alias {pointing} points to; it cannot be removed.",
                       fix=f"Move or remove the alias first: inhouse models unalias {v.name} {pointing[0]}")
    with ws.tx() as db:
        db.execute("UPDATE model_versions SET removed_at = ? WHERE name = ? AND version = ?", (time.time(), v.name, v.version))
        still = db.execute("SELECT COUNT(*) FROM model_versions WHERE sha256 = ? AND removed_at IS NULL", (v.sha256,)).fetchone()[0]
        ws.audit("models.rm", v.ref, sha256=v.sha256)
    if not still and v.path.exists():
        trash = v.path.with_name(f".rm-{v.sha256}-{time.time_ns()}")
        os.replace(v.path, trash)
        shutil.rmtree(trash, ignore_errors=True)
    return v
