"""Paths named by files that came from outside (manifests, ``modules.json``): never trusted.

A manifest is data a stranger may have written. Every path it names must be a
plain relative POSIX path (no absolute path, ``..``, ``.``, empty component,
backslash, drive letter or control character), must stay inside its folder
once resolved, and may not pass through a link. Folders read from outside may
hold only regular files and folders: a link could point anywhere.

    >>> check_relpath("encoder/model.safetensors", "manifest.json")
    'encoder/model.safetensors'
    >>> check_relpath("../../x", "manifest.json")
    Traceback (most recent call last):
    ...
    inhouse.errors.IntegrityError: manifest.json: the path '../../x' has a '..', '.' or empty component; ...
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from ..errors import IntegrityError

_DRIVE = re.compile(r"^[A-Za-z]:")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
FIX = "Do not use this folder: copy the export again from its source, or export it again there."


def check_relpath(rel, where: str) -> str:
    """``rel`` if it is a safe relative path inside a folder, else IntegrityError naming it."""
    problem = None
    if not isinstance(rel, str) or not rel:
        problem = "no name (expected a non-empty text)"
    elif any(ord(c) < 32 or c == "\x7f" for c in rel):
        problem = "control characters"
    elif "\\" in rel:
        problem = "a backslash (Windows separator)"
    elif rel.startswith("/"):
        problem = "an absolute path"
    elif _DRIVE.match(rel):
        problem = "a drive letter"
    elif any(part in ("", ".", "..") for part in rel.split("/")):
        problem = "a '..', '.' or empty component"
    if problem:
        raise IntegrityError(f"{where}: the path {rel!r} has {problem}; expected a plain relative path inside the folder.",
                             fix=FIX)
    return rel


def check_sha256(value, where: str) -> str:
    """``value`` if it is 64 lowercase hex digits (a sha256), else IntegrityError."""
    if not isinstance(value, str) or not _HEX64.match(value):
        raise IntegrityError(f"{where}: {value!r} is not a sha256 (expected 64 lowercase hex digits).", fix=FIX)
    return value


def check_listing(files, where: str) -> dict[str, dict]:
    """A manifest's ``files`` section: {safe relative path: {sha256, size}}, or IntegrityError."""
    if not isinstance(files, dict):
        raise IntegrityError(f"{where}: 'files' is {type(files).__name__}, expected a mapping of path to sha256 and size.",
                             fix=FIX)
    for rel, meta in files.items():
        check_relpath(rel, where)
        if not isinstance(meta, dict):
            raise IntegrityError(f"{where}: the entry for {rel!r} is {type(meta).__name__}, expected {{sha256, size}}.", fix=FIX)
        check_sha256(meta.get("sha256"), f"{where}: {rel}")
        size = meta.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise IntegrityError(f"{where}: the size of {rel!r} is {size!r}, expected a whole number of bytes.", fix=FIX)
    return files


def inside(folder: Path, rel: str, where: str) -> Path:
    """``folder / rel`` after checking ``rel``, that no part of it is a link, and that it stays inside ``folder``."""
    check_relpath(rel, where)
    cur = folder
    for part in rel.split("/"):
        cur = cur / part
        if cur.is_symlink():
            raise IntegrityError(f"{where}: {cur} is a link; a model folder from outside may not contain links.", fix=FIX)
    root = folder.resolve()
    target = (folder / rel).resolve()
    if target != root and root not in target.parents:
        raise IntegrityError(f"{where}: {rel!r} resolves to {target}, outside {root}.", fix=FIX)
    return folder / rel


def walk_files(folder: Path, where: str) -> list[str]:
    """Relative paths of every regular file under ``folder``, sorted; IntegrityError on a link or special file."""
    if folder.is_symlink():
        raise IntegrityError(f"{where}: {folder} is a link; expected a real folder.", fix=FIX)
    if not folder.is_dir():
        return []
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            mode = p.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise IntegrityError(f"{where}: {p} is a link; a model folder may not contain links.",
                                     fix="Replace the link by a copy of the file, or " + FIX[0].lower() + FIX[1:])
            if name in filenames:
                if not stat.S_ISREG(mode):
                    raise IntegrityError(f"{where}: {p} is not a regular file.", fix=FIX)
                out.append(p.relative_to(folder).as_posix())
    return sorted(out)
