"""Immutable, pinned model versions that change only when a person says so.

Every training of a named model adds a version ``M@1``, ``M@2``, ... Its files
live in a content-addressed folder ``models/objects/<sha256>/`` with a
``manifest.json`` that lists every file's sha256.

The version hash (``hash_rule`` 2, recorded in every manifest) is the sha256 of
``{"hash_rule": 2, "files": {path: sha256}, "fields": F}`` where ``F`` is the
WHOLE manifest minus the purely descriptive fields in
:data:`DESCRIPTIVE_FIELDS` (who and when: ``created_at``, ``created_by``,
``libraries``, ``platform``, ``inhouse_version``, ``train_seconds``; identity:
``name``, ``version``, ``format_version``, ``hash_rule``, ``files``,
``sha256``; provenance: ``origin``, ``evaluations``, ``export``) and minus
``base.name`` (a local label: an import may register the same base under
another name; ``base.sha256`` and ``base.kind`` are hashed). So labels,
method, format, kind, multi_label, threshold, encoder (pooling, normalize,
max_length, frozen), onnx (max_length, activation, ...), base and any field a
later loader reads are covered by default: two versions with the same hash
predict the same, and editing any of those fields is refused on load. A new
field is hashed unless it is added to :data:`DESCRIPTIVE_FIELDS` on purpose.

Versions saved before rule 2 have no ``hash_rule`` in their manifest and are
verified by rule 1 (files, labels, method, format and base sha256 only), so
existing workspaces keep working; their other fields (threshold, encoder, ...)
were never hashed and stay as trustworthy as the folder they live in. Importing
a rule-1 export registers it under a new rule-2 hash.

Loading reads the manifest from the verified ``manifest.json`` in the version
folder, never from the copy in the database (which is only for listings and
must hash to the same value; :func:`verify` reports it if it does not). Every
path a manifest names must be a plain relative path inside the folder (see
:mod:`inhouse.registry.paths`), and a version folder may not contain links.

Saving is atomic: ``build`` writes into ``tmp/build-<pid>-*``, the folder is
renamed into ``models/objects`` and the version row inserted under one write
lock; a crash at any point leaves no visible version, and the leftovers are
removed by the next save (or ``inhouse models gc``). Loading verifies every
hash and names the file that does not match.

References: ``M`` (the ``production`` alias if set, else the latest), ``M@3``,
``M@production``, ``M@latest``, ``M@<hash prefix>`` or a bare hash prefix.
Aliases move only through :func:`set_alias` / :func:`remove_alias`, and every
move is in the audit log (who, when, from which version to which).

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> v = save_version(ws, "intents", lambda d: (d / "w.txt").write_text("x") and {"labels": ["a"]})
    >>> resolve(ws, "intents").ref
    'intents@1'
    >>> set_alias(ws, "intents@1", "production").ref
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

from ..errors import Conflict, IntegrityError, NotFound, UsageError
from ..version import __version__
from ..workspace.files import (
    atomic_write_text,
    json_dumps,
    pid_alive,
    sha256_bytes,
    sha256_file,
)
from ..workspace.store import Workspace, current_user
from .paths import check_listing, walk_files

__all__ = ["FORMAT_VERSION", "HASH_RULE", "HASH_RULES", "MANIFEST", "DEFAULT_ALIAS", "LATEST", "HASHED_FIELDS", "RESERVED_FIELDS",
           "DESCRIPTIVE_FIELDS", "hashed_fields", "manifest_rule", "Version", "library_versions", "file_listing", "content_hash", "clean_stale_builds", "gc", "save_version", "versions", "names", "aliases", "aliases_of", "resolve", "verify", "file_listing_names", "load", "set_alias", "remove_alias", "remove_version", "record_evaluation", "KEY_METRICS", "evaluations", "key_metrics", "describe", "catalog", "history", "check_name"]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DEFAULT_ALIAS = "production"
LATEST = "latest"  # a virtual alias: always the newest version
HASH_RULE = 2  # how save_version hashes now (see the module docstring)
HASH_RULES = (1, 2)  # the rules verify still accepts
HASHED_FIELDS = ("labels", "method", "format")  # rule 1 only: the fields (plus base sha256) the old hash covered
RESERVED_FIELDS = {"format_version", "hash_rule", "name", "version", "files", "sha256", "created_at", "created_by",
                   "libraries", "platform", "inhouse_version"}
# rule 2 hashes every manifest field except these (and base.name): they describe, they never decide a prediction
DESCRIPTIVE_FIELDS = frozenset(RESERVED_FIELDS | {"origin", "evaluations", "export", "train_seconds"})
DESCRIPTIVE_BASE_FIELDS = frozenset({"name"})
STALE_BUILD_SECONDS = 24 * 3600


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

    @property
    def size(self) -> int:
        """Bytes of all files of the version (manifest excluded)."""
        return sum(int(f.get("size", 0)) for f in self.manifest.get("files", {}).values())

    def to_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "ref": self.ref, "sha256": self.sha256,
                "path": str(self.path), "size": self.size, "manifest": self.manifest}


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a model's numbers (recorded in every manifest)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0], "inhouse": __version__}
    for pkg in ("torch", "transformers", "sentence-transformers", "scikit-learn", "numpy", "safetensors", "peft",
                "onnx", "onnxruntime"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


# ---------------------------------------------------------------- hashing ----

def file_listing(folder: Path, *, fsync: bool = False) -> dict[str, dict]:
    """{relative path: {sha256, size}} for every file except the manifest."""
    out = {}
    for p in sorted(folder.rglob("*"), key=lambda q: q.relative_to(folder).as_posix()):
        rel = p.relative_to(folder).as_posix()
        if p.is_symlink():
            raise UsageError(f"{p}: a model version may not contain links.", fix="Copy the file instead of linking it.")
        if p.is_file() and rel != MANIFEST:
            if fsync:
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
            out[rel] = {"sha256": sha256_file(p), "size": p.stat().st_size}
    return out


def hashed_fields(fields: dict) -> dict:
    """The part of a manifest rule 2 hashes: everything but :data:`DESCRIPTIVE_FIELDS` and ``base.name``."""
    out = {k: v for k, v in fields.items() if k not in DESCRIPTIVE_FIELDS}
    if isinstance(out.get("base"), dict):
        out["base"] = {k: v for k, v in out["base"].items() if k not in DESCRIPTIVE_BASE_FIELDS}
    return out


def content_hash(files: dict[str, dict], fields: dict | None = None, rule: int = HASH_RULE) -> str:
    """The version hash: every file's sha256 plus every manifest field that decides a prediction.

    ``rule`` 1 is the old hash (files, labels, method, format, base sha256), kept to
    verify versions saved before rule 2.

    >>> content_hash({"head.safetensors": {"sha256": "ab", "size": 2}}, {"labels": ["x"], "threshold": 0.5})[:8]
    '...'
    """
    fields = fields or {}
    file_hashes = {k: v["sha256"] for k, v in files.items()}
    if rule == 1:
        base = fields.get("base")
        payload = {"files": file_hashes, **{k: fields.get(k) for k in HASHED_FIELDS},
                   "base": base.get("sha256") if isinstance(base, dict) else base}
    elif rule == 2:
        payload = {"hash_rule": 2, "files": file_hashes, "fields": hashed_fields(fields)}
    else:
        raise IntegrityError(f"hash rule {rule!r} is unknown; this inhouse knows rules {list(HASH_RULES)}.",
                             fix="Use the inhouse version that wrote the model, or re-export it.")
    return sha256_bytes(json_dumps(payload).encode())


def manifest_rule(manifest: dict, where: str) -> int:
    """The hash rule a manifest was written under (1 when it predates ``hash_rule``)."""
    rule = manifest.get("hash_rule", 1)
    if rule not in HASH_RULES or isinstance(rule, bool):
        raise IntegrityError(f"{where}: hash rule {rule!r} is unknown; this inhouse knows rules {list(HASH_RULES)}.",
                             fix="Use the inhouse version that wrote it, or re-export it.")
    return rule


def check_name(name: str) -> None:
    if (not isinstance(name, str) or not name or "@" in name or "/" in name or "\\" in name or name.strip() != name
            or name.startswith(".") or any(ord(c) < 32 or c == "\x7f" for c in name) or len(name) > 200):
        raise UsageError(f"model name {name!r} is not valid.", fix="Use letters, digits, '-', '_' or '.', without '@', '/' or '\\'.")


def _check_fields(name: str, fields: dict) -> dict:
    if not isinstance(fields, dict):
        raise UsageError(f"model {name!r}: the build returned {type(fields).__name__}, expected a dict of manifest fields.")
    clash = sorted(RESERVED_FIELDS & set(fields))
    if clash:
        raise UsageError(f"model {name!r}: manifest fields {clash} are set by the registry.", fix="Leave them out of build()'s result.")
    try:
        return json.loads(json.dumps(fields))
    except (TypeError, ValueError) as e:
        raise UsageError(f"model {name!r}: manifest fields are not JSON ({e}).") from e


# ------------------------------------------------------------------ save ----

def clean_stale_builds(ws: Workspace) -> list[Path]:
    """Remove build folders left by a killed save (dead process, or older than a day)."""
    removed = []
    for p in ws.dir("tmp").glob("build-*"):
        try:
            pid = int(p.name.split("-")[1])
        except (IndexError, ValueError):
            pid = -1
        old = time.time() - p.stat().st_mtime > STALE_BUILD_SECONDS
        if old or (pid > 0 and pid != os.getpid() and not pid_alive(pid)):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def gc(ws: Workspace) -> dict:
    """Remove what a crash can leave behind: build folders and object folders no version uses.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> gc(ws)
    {'builds': 0, 'objects': 0}
    """
    builds = clean_stale_builds(ws)
    objects = ws.dir("models", "objects")
    with ws.tx():  # a save in progress holds this lock, so its folder is never taken for an orphan
        dropped = _drop_orphans(ws, objects)
    return {"builds": len(builds), "objects": dropped}


def _drop_folder(p: Path) -> None:
    if p.exists():
        trash = p.with_name(f".rm-{p.name}-{time.time_ns()}")
        os.replace(p, trash)
        shutil.rmtree(trash, ignore_errors=True)


def _fsync_dir(p: Path) -> None:
    try:
        fd = os.open(p, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_version(ws: Workspace, name: str, build: Callable[[Path], dict], *, expect_sha256: str | None = None) -> Version:
    """Create the next version of ``name``, all or nothing.

    ``build(folder)`` writes the model's files into an empty temporary folder
    and returns its manifest fields (method, base, labels, dataset, rows_sha256,
    hyperparameters, seed, metrics, ...). The registry adds the file hashes,
    library versions, time and user, moves the folder into place and records
    the version under one write lock. With ``expect_sha256`` (an import) a
    different hash is refused before anything is registered.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> def build(folder):
    ...     save_file({"W": W, "b": b}, folder / "head.safetensors")
    ...     return {"method": "head", "labels": labels, "base": {"name": "minilm-l6", "sha256": "53aa..."}}
    >>> save_version(ws, "intents", build).ref
    'intents@2'
    """
    check_name(name)
    clean_stale_builds(ws)
    tmp = Path(tempfile.mkdtemp(prefix=f"build-{os.getpid()}-", dir=ws.dir("tmp")))
    try:
        fields = _check_fields(name, build(tmp) or {})
        files = file_listing(tmp, fsync=True)
        if not files:
            raise UsageError(f"model {name!r}: the build wrote no files.", fix="build(folder) must write the weights into folder.")
        digest = content_hash(files, fields)
        if expect_sha256 is not None and digest != expect_sha256:
            raise IntegrityError(f"model {name!r}: the files written hash to {digest[:16]}, expected {expect_sha256[:16]}; "
                                 "nothing was registered.", fix="Copy the export folder again from its source.")
        manifest = {"format_version": FORMAT_VERSION, "hash_rule": HASH_RULE, "name": name, **fields, "files": files,
                    "sha256": digest,
                    "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "created_by": current_user(),
                    "libraries": library_versions(), "platform": platform.platform(), "inhouse_version": __version__}
        atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
        _fsync_dir(tmp)
        return _commit(ws, name, tmp, digest, manifest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _commit(ws: Workspace, name: str, tmp: Path, digest: str, manifest: dict) -> Version:
    objects = ws.dir("models", "objects")
    final = objects / digest
    moved = False
    try:
        with ws.tx() as db:
            _drop_orphans(ws, objects, keep=digest)
            if final.exists() and not _intact(final, digest):
                _drop_folder(final)  # a damaged copy of the same bytes: replace it
            if not final.exists():  # the same bytes saved before are simply reused
                os.replace(tmp, final)
                moved = True
                _fsync_dir(objects)
            number = db.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE name = ?", (name,)).fetchone()[0]
            manifest = {**manifest, "version": number}
            db.execute("INSERT INTO model_versions (name, version, sha256, path, manifest, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                       (name, number, digest, str(final.relative_to(ws.home)), json_dumps(manifest), time.time()))
            ws.audit("models.save", f"{name}@{number}", sha256=digest, method=manifest.get("method"),
                     dataset=manifest.get("dataset"))
    except BaseException:
        if moved:
            _drop_folder(final)
        raise
    return Version(name, number, digest, final, manifest)


def _drop_orphans(ws: Workspace, objects: Path, keep: str = "") -> int:
    """Inside a write transaction: remove object folders no live version uses (a save killed mid-commit)."""
    live = {r[0] for r in ws.db.execute("SELECT sha256 FROM model_versions WHERE removed_at IS NULL")}
    dropped = 0
    for p in objects.iterdir():
        if p.name not in live and p.name != keep:
            _drop_folder(p)
            dropped += 1
    return dropped


def _intact(folder: Path, digest: str) -> bool:
    try:
        verify(Version("?", 0, digest, folder, json.loads((folder / MANIFEST).read_text())))
        return True
    except (IntegrityError, OSError, ValueError, KeyError):
        return False


# ---------------------------------------------------------------- lookup ----

def _row_to_version(ws: Workspace, row) -> Version:
    return Version(row["name"], row["version"], row["sha256"], ws.home / row["path"], json.loads(row["manifest"]))


def versions(ws: Workspace, name: str | None = None) -> list[Version]:
    """Every live version, by name then number."""
    q = "SELECT * FROM model_versions WHERE removed_at IS NULL"
    args: tuple = ()
    if name is not None:
        q += " AND name = ?"
        args = (name,)
    return [_row_to_version(ws, r) for r in ws.db.execute(q + " ORDER BY name, version", args)]


def names(ws: Workspace) -> list[str]:
    return [r[0] for r in ws.db.execute("SELECT DISTINCT name FROM model_versions WHERE removed_at IS NULL ORDER BY name")]


def aliases(ws: Workspace, name: str) -> dict[str, int]:
    """{alias: version number} for one model."""
    return {r["alias"]: r["version"] for r in ws.db.execute("SELECT alias, version FROM aliases WHERE name = ? ORDER BY alias", (name,))}


def aliases_of(ws: Workspace, version: Version) -> list[str]:
    return sorted(a for a, n in aliases(ws, version.name).items() if n == version.version)


def resolve(ws: Workspace, ref: str) -> Version:
    """The exact version a reference means (see the module docstring).

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> resolve(ws, "intents@production").version
    3
    """
    if isinstance(ref, Version):
        return ref
    name, _, tag = str(ref).strip().partition("@")
    rows = ws.db.execute("SELECT * FROM model_versions WHERE name = ? AND removed_at IS NULL ORDER BY version", (name,)).fetchall()
    if not rows:
        if not tag and len(name) >= 6 and all(c in "0123456789abcdef" for c in name.lower()):  # a bare hash prefix
            hits = ws.db.execute("SELECT * FROM model_versions WHERE sha256 LIKE ? AND removed_at IS NULL ORDER BY name, version",
                                 (name.lower() + "%",)).fetchall()
            if hits and len({h["sha256"] for h in hits}) == 1:
                return _row_to_version(ws, hits[-1])
        raise NotFound(f"model {name!r} has no versions; trained models are {names(ws)}.",
                       fix=f"Train one with: inhouse train --dataset D --name {name}")
    by_number = {r["version"]: r for r in rows}
    named = aliases(ws, name)
    if not tag:
        return _row_to_version(ws, by_number.get(named.get(DEFAULT_ALIAS), rows[-1]))
    if tag == LATEST:
        return _row_to_version(ws, rows[-1])
    if tag.isdigit():
        if int(tag) in by_number:
            return _row_to_version(ws, by_number[int(tag)])
    elif tag in named and named[tag] in by_number:
        return _row_to_version(ws, by_number[named[tag]])
    hits = [r for r in rows if r["sha256"].startswith(tag.lower())] if len(tag) >= 4 else []
    if len(hits) == 1:
        return _row_to_version(ws, hits[0])
    what = "is ambiguous: several versions' hashes start with it" if len(hits) > 1 else "matches no version, alias or hash prefix"
    raise NotFound(f"{ref}: {tag!r} {what}; versions are {sorted(by_number)}, aliases {sorted(named)}.",
                   fix=f"Use {name}@N, {name}@ALIAS or {name}@HASHPREFIX (see: inhouse models show {name}).")


def verify(version: Version) -> Version:
    """Check every file of a version against its manifest; raise naming the bad file.

    Returns the version with ``manifest`` read from the verified ``manifest.json``
    (plus the version's name and number), which is what loaders must use; the
    manifest the caller passed (the database's copy) must hash to the same value.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> verify(resolve(ws, "intents@2")).ref
    'intents@2'
    """
    manifest_path = version.path / MANIFEST
    where = f"{version.ref}: {manifest_path}"
    if manifest_path.is_symlink() or version.path.is_symlink():
        raise IntegrityError(f"{where} is a link; a version folder may not contain links.", fix="Re-import or retrain the model.")
    if not manifest_path.is_file():
        raise IntegrityError(f"{version.ref}: {manifest_path} is missing.", fix="Re-import or retrain the model.")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise IntegrityError(f"{version.ref}: {manifest_path} is not valid JSON ({e}).",
                             fix="Re-import or retrain the model.") from e
    if not isinstance(manifest, dict):
        raise IntegrityError(f"{where} holds {type(manifest).__name__}, expected a JSON object.", fix="Re-import or retrain the model.")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IntegrityError(f"{version.ref}: manifest format {manifest.get('format_version')!r}, expected {FORMAT_VERSION}.",
                             fix="Use the inhouse version that wrote it, or re-export it.")
    rule = manifest_rule(manifest, where)
    files = check_listing(manifest.get("files") or {}, where)  # every named path is a plain relative one
    present = set(walk_files(version.path, version.ref)) - {MANIFEST}  # refuses links anywhere in the folder
    for rel, meta in files.items():
        p = version.path / rel
        if rel not in present:  # a safe name that is not a regular file inside the folder
            raise IntegrityError(f"{version.ref}: file {p} is missing.", fix="Re-import or retrain the model.")
        if p.stat().st_size != meta["size"]:
            raise IntegrityError(f"{version.ref}: file {p} is {p.stat().st_size} bytes, the manifest says {meta['size']} (truncated or altered).",
                                 fix="Restore the file, or re-import the exported model.")
        if sha256_file(p) != meta["sha256"]:
            raise IntegrityError(f"{version.ref}: file {p} does not match its sha256 in the manifest (tampered or damaged).",
                                 fix="Restore the file, or re-import the exported model.")
    extra = sorted(present - set(files))
    if extra:
        raise IntegrityError(f"{version.ref}: {version.path} holds files the manifest does not list: {extra[:5]}.",
                             fix="Remove them; a version's files never change after saving.")
    if content_hash(files, manifest, rule) != version.sha256:
        raise IntegrityError(f"{version.ref}: {manifest_path} does not hash to {version.sha256[:16]} "
                             "(labels, method or files edited, or another field that decides predictions).",
                             fix="Restore the manifest, or re-import the exported model.")
    _check_copy(version, where)
    return Version(version.name, version.version, version.sha256, version.path,
                   {**manifest, "name": version.name, "version": version.version})


def _check_copy(version: Version, where: str) -> None:
    """The database's copy of the manifest (listings show it) must hash like the verified file."""
    copy = version.manifest
    try:
        ok = (isinstance(copy, dict) and isinstance(copy.get("files"), dict)
              and content_hash(copy["files"], copy, manifest_rule(copy, where)) == version.sha256)
    except (IntegrityError, KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise IntegrityError(f"{version.ref}: the workspace database's copy of the manifest does not hash to "
                             f"{version.sha256[:16]}: it was edited (labels, threshold or another field), so listings "
                             "would show something other than the model that runs.",
                             fix=f"Restore the database from a backup, or re-import the model; the verified file is {where}.")


def file_listing_names(folder: Path) -> list[str]:
    return [p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and p.relative_to(folder).as_posix() != MANIFEST]


def load(ws: Workspace, ref: str) -> Version:
    """Resolve and verify a reference: the safe way to get a version's files.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> load(ws, "intents").path.name[:12]
    '3f9a1c0b7d2e'
    """
    return verify(resolve(ws, ref))


# --------------------------------------------------------------- aliases ----

def _check_alias(alias: str) -> None:
    if not alias or alias.isdigit() or "@" in alias or "/" in alias or alias != alias.strip() or alias == LATEST:
        raise UsageError(f"alias {alias!r} is not valid.", fix="Use a word such as 'production' or 'staging' (not a number or 'latest').")


_ANY = object()


def set_alias(ws: Workspace, ref: str, alias: str, *, expected=_ANY) -> Version:
    """Point ``alias`` at a version (moving it if it exists); the move is audited.

    ``expected`` (a version number, or None for "not set yet") makes the move a
    compare-and-set: it happens only if the alias still points there, checked
    inside the write transaction, so two people cannot silently overwrite each
    other (the loser gets :class:`Conflict`).

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> set_alias(ws, "intents@3", "production").ref
    'intents@3'
    """
    _check_alias(alias)
    v = resolve(ws, ref)
    verify(v)  # never point production at damaged files
    with ws.tx() as db:
        old = db.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?", (v.name, alias)).fetchone()
        previous = old[0] if old else None
        if expected is not _ANY and previous != expected:
            now = f"{v.name}@{previous}" if previous is not None else "nothing"
            raise Conflict(f"{v.name}@{alias} points to {now}, not to the expected "
                           f"{v.name + '@' + str(expected) if expected is not None else 'nothing'}; someone moved it.",
                           fix=f"Look at it again (inhouse models show {v.name}@{alias}) and retry with the current version.")
        if previous != v.version:
            db.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?, ?, ?)", (v.name, alias, v.version, time.time(), current_user()))
            ws.audit("models.alias", f"{v.name}@{alias}", version=v.version, previous=previous, sha256=v.sha256)
    return v


def remove_alias(ws: Workspace, name: str, alias: str, *, expected=_ANY) -> int:
    """Remove an alias; returns the version it pointed to.

    ``expected`` (a version number) makes it a compare-and-set, checked inside
    the write transaction like :func:`set_alias`'s: a :class:`Conflict` if the
    alias points elsewhere now.
    """
    with ws.tx() as db:
        row = db.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias)).fetchone()
        if row is None:
            raise NotFound(f"{name} has no alias {alias!r}; aliases are {sorted(aliases(ws, name))}.",
                           fix=f"See them with: inhouse models show {name}")
        if expected is not _ANY and row[0] != expected:
            raise Conflict(f"{name}@{alias} points to {name}@{row[0]}, not the expected {name}@{expected}.",
                           fix="Look again and retry with the current version.")
        db.execute("DELETE FROM aliases WHERE name = ? AND alias = ?", (name, alias))
        ws.audit("models.unalias", f"{name}@{alias}", previous=row[0])
    return row[0]


def remove_version(ws: Workspace, ref: str) -> Version:
    """Remove a version unless an alias points to it; its number is never reused.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> remove_version(ws, "intents@1").ref
    'intents@1'
    """
    v = resolve(ws, ref)
    if str(ref).strip() == v.name:
        raise UsageError(f"{ref!r} does not name one version.", fix=f"Say which: inhouse models rm {v.ref}")
    with ws.tx() as db:
        pointing = sorted(r[0] for r in db.execute("SELECT alias FROM aliases WHERE name = ? AND version = ?", (v.name, v.version)))
        if pointing:
            raise Conflict(f"{v.ref} is what alias {', '.join(pointing)} points to; it cannot be removed.",
                           fix=f"Move or remove the alias first: inhouse models unalias {v.name} {pointing[0]}")
        db.execute("UPDATE model_versions SET removed_at = ? WHERE name = ? AND version = ?", (time.time(), v.name, v.version))
        still = db.execute("SELECT COUNT(*) FROM model_versions WHERE sha256 = ? AND removed_at IS NULL", (v.sha256,)).fetchone()[0]
        ws.audit("models.rm", v.ref, sha256=v.sha256)
        if not still:
            _drop_folder(v.path)
    return v


# ----------------------------------------------------------- evaluations ----

def record_evaluation(ws: Workspace, version: Version | str, dataset: str, split: str | None, metrics: dict,
                      *, data_sha256: str | None = None) -> dict:
    """Store a version's metrics on a dataset split (replacing an earlier result for the same triple).

    Metrics are keyed by the version's sha256, so they belong to its exact
    bytes; ``data_sha256`` (a hash of the evaluated rows) tells later readers
    whether the data has changed since.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> record_evaluation(ws, "intents@2", "banking77", "test", {"accuracy": 0.91, "macro_f1": 0.9})["split"]
    'test'
    """
    v = resolve(ws, version) if isinstance(version, str) else version
    try:
        payload = json.loads(json.dumps(metrics))
    except (TypeError, ValueError) as e:
        raise UsageError(f"metrics for {v.ref} are not JSON ({e}).") from e
    row = {"name": v.name, "version": v.version, "sha256": v.sha256, "dataset": dataset, "split": split or "",
           "metrics": payload, "data_sha256": data_sha256, "created_at": time.time(), "user": current_user()}
    with ws.tx() as db:
        db.execute("INSERT OR REPLACE INTO evaluations (sha256, name, version, dataset, split, metrics, data_sha256, created_at, user)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (v.sha256, v.name, v.version, dataset, split or "", json_dumps(payload), data_sha256, row["created_at"], row["user"]))
        ws.audit("models.eval", v.ref, sha256=v.sha256, dataset=dataset, split=split or "",
                 **{k: payload[k] for k in KEY_METRICS if isinstance(payload.get(k), (int, float))})
    return row


KEY_METRICS = ("accuracy", "macro_f1", "f1_macro", "weighted_f1", "f1")


def evaluations(ws: Workspace, version: Version | str) -> list[dict]:
    """Every recorded evaluation of a version's bytes, newest first."""
    v = resolve(ws, version) if isinstance(version, str) else version
    rows = ws.db.execute("SELECT * FROM evaluations WHERE sha256 = ? ORDER BY created_at DESC", (v.sha256,))
    return [{"dataset": r["dataset"], "split": r["split"], "metrics": json.loads(r["metrics"]), "data_sha256": r["data_sha256"],
             "evaluated_as": f"{r['name']}@{r['version']}", "created_at": r["created_at"], "user": r["user"]} for r in rows]


def key_metrics(ws: Workspace, version: Version) -> dict:
    """The headline numbers of a version: its latest test evaluation, else any, else training-time metrics."""
    evals = evaluations(ws, version)
    evals.sort(key=lambda e: (e["split"] == "test", e["created_at"]), reverse=True)
    m = version.manifest
    source = evals[0]["metrics"] if evals else (m.get("metrics") or m.get("val_metrics") or {})
    if isinstance(source.get("test"), dict):  # training-time metrics grouped by split
        source = source["test"]
    out = {k: source[k] for k in KEY_METRICS if isinstance(source.get(k), (int, float))}
    if out and evals:
        out["on"] = f"{evals[0]['dataset']}" + (f":{evals[0]['split']}" if evals[0]["split"] else "")
    elif out:
        out["on"] = "training" if m.get("metrics") else "validation"
    return out


# -------------------------------------------------------------- reports ----

def describe(ws: Workspace, ref: str) -> dict:
    """Everything about one version: manifest, aliases, evaluations, size, integrity.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> describe(ws, "intents@2")["aliases"]
    ['production']
    """
    v = resolve(ws, ref)
    try:
        v = verify(v)  # show the verified manifest, not the database's copy
        integrity = "ok"
    except IntegrityError as e:
        integrity = e.message
    return {"ref": v.ref, "name": v.name, "version": v.version, "sha256": v.sha256, "path": str(v.path),
            "size": v.size, "aliases": aliases_of(ws, v), "integrity": integrity,
            "evaluations": evaluations(ws, v), "manifest": v.manifest}


def catalog(ws: Workspace, name: str | None = None) -> list[dict]:
    """One row per live version: name, version, aliases, method, size, creation time, key metrics."""
    out = []
    for v in versions(ws, name):
        m = v.manifest
        out.append({"ref": v.ref, "name": v.name, "version": v.version, "sha256": v.sha256, "aliases": aliases_of(ws, v),
                    "method": m.get("method"), "format": m.get("format", "safetensors"), "dataset": m.get("dataset"),
                    "labels": len(m.get("labels") or []), "size": v.size, "created_at": m.get("created_at"),
                    "created_by": m.get("created_by"), "metrics": key_metrics(ws, v)})
    return out


def history(ws: Workspace, name: str) -> list[dict]:
    """Versions saved, aliases moved, versions removed and evaluations of one model, oldest first.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> [(e["action"], e["target"]) for e in history(ws, "intents")][:2]
    [('models.save', 'intents@1'), ('models.alias', 'intents@production')]
    """
    prefix = name + "@"
    rows = ws.db.execute("SELECT * FROM audit WHERE action LIKE 'models.%' AND substr(target, 1, ?) = ? ORDER BY id",
                         (len(prefix), prefix))
    return [{"at": r["at"], "user": r["user"], "action": r["action"], "target": r["target"],
             "details": json.loads(r["details"] or "{}")} for r in rows]
