"""Refuse model folders that would make a library import and run code the folder chooses.

A sentence-transformers folder names the Python class of each module in
``modules.json``; sentence-transformers imports and instantiates it. A Hugging
Face ``config.json`` (or ``tokenizer_config.json``, ...) with ``auto_map`` asks
transformers to import modeling code shipped in the folder. Either is arbitrary
code execution for whoever wrote the folder, so inhouse accepts only the
library's own module classes (:data:`ALLOWED_MODULE_PACKAGES`) and no
``auto_map``, unless the user says ``--trust-code`` (``trust_code=True``) when
registering the model. inhouse never passes ``trust_remote_code=True`` to a
library, with or without it.

Checked when a model is added or imported, and again each time a registered
base model is looked up for loading (the files may have changed since).

    >>> check_model_code(Path("/models/e5-small"), "e5-small")      # passes, or raises UntrustedCode
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import IntegrityError, UntrustedCode
from ..registry.paths import check_relpath

# packages whose classes sentence-transformers may instantiate from modules.json
ALLOWED_MODULE_PACKAGES = (
    "sentence_transformers.models",
    "sentence_transformers.base.modules",
    "sentence_transformers.sentence_transformer.modules",
    "sentence_transformers.sparse_encoder.models",
    "sentence_transformers.sparse_encoder.modules",
    "sentence_transformers.cross_encoder.modules",
)
CONFIG_FILES = ("config.json", "tokenizer_config.json", "processor_config.json", "preprocessor_config.json",
                "feature_extractor_config.json", "image_processor_config.json", "adapter_config.json",
                "config_sentence_transformers.json", "sentence_bert_config.json", "generation_config.json")
CODE_KEYS = ("auto_map", "custom_pipelines")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_CONFIG_BYTES = 16 << 20


def allowed_module_class(ref) -> bool:
    """Whether a ``modules.json`` class reference is one of sentence-transformers' own module classes."""
    if not isinstance(ref, str):
        return False
    parts = ref.split(".")
    if len(parts) < 3 or not all(_IDENT.match(p) for p in parts):
        return False
    module = ".".join(parts[:-1])
    return any(module == pkg or module.startswith(pkg + ".") for pkg in ALLOWED_MODULE_PACKAGES)


def _refuse(file: Path, found: str, name: str | None) -> None:
    flag = "--trust-code" if name is None else f"--trust-code (inhouse models add {name} PATH --trust-code)"
    raise UntrustedCode(
        f"{file}: {found}; expected only sentence-transformers' own module classes "
        f"({', '.join(p + '.*' for p in ALLOWED_MODULE_PACKAGES[:3])}, ...) and no auto_map, because loading this "
        "would import and run code chosen by the model's files.",
        fix=f"Use a model folder without custom code; only if you wrote or audited that code, register it with {flag}.")


def _read_json(file: Path):
    if file.stat().st_size > MAX_CONFIG_BYTES:
        raise UntrustedCode(f"{file}: {file.stat().st_size} bytes, too large for a configuration file.",
                            fix="Check the model folder; configuration files are small JSON files.")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise UntrustedCode(f"{file}: not valid JSON ({e}).", fix="Restore the model folder from its source.") from e


def check_model_code(path: str | Path, name: str | None = None, *, trust_code: bool = False) -> None:
    """Raise :class:`UntrustedCode` if the model at ``path`` would make a library run code of its choosing.

    Looks at every ``modules.json`` and configuration file (:data:`CONFIG_FILES`)
    in the folder; single files (ONNX, GGUF) hold no such references. With
    ``trust_code`` nothing is checked (the user vouched for the folder).
    """
    path = Path(path)
    if trust_code or not path.is_dir():
        return
    for modules in sorted(path.rglob("modules.json")):
        data = _read_json(modules)
        if not isinstance(data, list):
            _refuse(modules, f"holds {type(data).__name__}, expected a list of modules", name)
        for i, entry in enumerate(data):
            if not isinstance(entry, dict):
                _refuse(modules, f"entry {i} is {type(entry).__name__}, expected an object", name)
            ref = entry.get("type")
            if not allowed_module_class(ref):
                _refuse(modules, f"module {entry.get('name', i)!r} names the class {ref!r}", name)
            sub = entry.get("path", "")
            if sub not in ("", None):
                try:
                    check_relpath(sub, str(modules))
                except IntegrityError as e:
                    _refuse(modules, f"module {entry.get('name', i)!r} has the path {sub!r} ({getattr(e, 'message', e)})", name)
    for file in sorted(p for p in path.rglob("*.json") if p.name in CONFIG_FILES and p.is_file()):
        data = _read_json(file)
        if isinstance(data, dict):
            for key in CODE_KEYS:
                if data.get(key):
                    _refuse(file, f"sets {key!r} = {json.dumps(data[key])[:200]}", name)
            if data.get("trust_remote_code"):
                _refuse(file, "sets 'trust_remote_code'", name)
