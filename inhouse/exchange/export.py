"""Move a model version between machines that share no network.

``export_version`` writes a self-contained folder::

    intents-3/
      manifest.json   the version's manifest + an "export" section (source, base, evaluations)
      README.md       the model card: intended use, data, metrics, limitations, versions, hashes
      model/          the version's files (folder format), or model.onnx + tokenizer (onnx format)
      base/           the base encoder's files, when the version needs one (folder format)

``import_version`` checks every hash before anything is registered, registers
the bundled base encoder if the workspace lacks it (found by sha256, whatever
its name), and saves the files as the next version of the name. A folder
export keeps the version's sha256; an ONNX export is a new artifact whose
manifest says what it was derived from and how closely it agrees with it.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> export_version(ws, "intents@3", "/media/usb/intents-3")["files"]
    4
    >>> import_version(other_ws, "/media/usb/intents-3", name="intents")["ref"]
    'intents@1'
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from pathlib import Path

from .. import registry
from ..errors import Conflict, InputError, IntegrityError, NotFound, UsageError
from ..models.catalog import CATALOG, KINDS, add_model, is_model_file, list_models, listing_hash, model_files, remove_model
from ..models.safety import check_model_code
from ..registry.paths import check_listing, check_sha256, walk_files
from ..version import __version__
from ..workspace.documents import read_documents
from ..workspace.files import atomic_dir, atomic_write_text, sha256_file
from ..workspace.store import Workspace, current_user
from .card import model_card

MODEL_DIR = "model"
BASE_DIR = "base"
CARD = "README.md"
FORMATS = ("folder", "onnx")


# ----------------------------------------------------------------- export ----

def export_version(ws: Workspace, ref: str, out: str | Path, *, format: str = "folder", quantize: str | None = None,
                   include_base: bool = True, check_dataset: str | None = None, check_size: int = 200,
                   check_texts: list[str] | None = None, min_agreement: float = 0.99,
                   training_rows: bool = True) -> dict:
    """Write version ``ref`` to the new folder ``out``, atomically.

    ``format="onnx"`` writes one ONNX graph (optionally ``quantize="int8"``) and
    checks it against the original on ``check_texts``, else ``check_size``
    texts sampled (seed 0) from ``check_dataset`` or the training dataset; an
    agreement below ``min_agreement`` refuses the export.

    A version trained here keeps its training rows (their embeddings, doc ids
    and text hashes; the texts are read from the dataset) for "nearest
    examples" explanations. ``training_rows=False`` (``--without-training-texts``)
    leaves them out of a folder export: the exported version then has a hash of
    its own (its files differ) and cannot show examples.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> export_version(ws, "intents@3", "out/intents-onnx", format="onnx", quantize="int8")["parity"]["agreement"]
    0.995
    """
    if format not in FORMATS:
        raise UsageError(f"format {format!r} is unknown; formats are {list(FORMATS)}.")
    if quantize and format != "onnx":
        raise UsageError("--quantize applies to --format onnx only.", fix="Add --format onnx, or drop --quantize.")
    t0 = time.time()
    v = registry.load(ws, ref)
    out = _check_out(Path(out))
    with atomic_dir(out) as tmp:
        (tmp / MODEL_DIR).mkdir()
        if format == "folder":
            manifest = _export_folder(ws, v, tmp, include_base, training_rows)
        else:
            texts, source = check_texts_for(ws, v, check_dataset, check_size, check_texts)
            manifest = _export_onnx(ws, v, tmp, quantize, texts, source, min_agreement)
        atomic_write_text(tmp / registry.MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
        atomic_write_text(tmp / CARD, model_card(manifest))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    files = sum(1 for p in out.rglob("*") if p.is_file())
    result = {"ref": v.ref, "sha256": v.sha256, "out": str(out), "format": format, "quantize": quantize,
              "exported_sha256": manifest["sha256"], "files": files, "size": size,
              "base_included": bool(manifest["export"].get("base")),
              "parity": (manifest.get("onnx") or {}).get("parity"), "seconds": round(time.time() - t0, 3)}
    with ws.tx():
        ws.audit("models.export", v.ref, out=str(out), format=format, quantize=quantize, sha256=v.sha256,
                 exported_sha256=manifest["sha256"])
    ws.record_run("models.export", {"ref": ref, "out": str(out), "format": format, "quantize": quantize}, result,
                  model=v.ref, model_sha256=v.sha256, started_at=t0)
    return result


def _check_out(out: Path) -> Path:
    out = out.expanduser().resolve()
    if out.exists():
        if not out.is_dir() or any(out.iterdir()):
            raise Conflict(f"{out} already exists and is not an empty folder.", fix="Choose a new --out folder.")
        out.rmdir()
    return out


def _export_section(ws: Workspace, v: registry.Version, format: str) -> dict:
    return {"format": format, "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "exported_by": current_user(), "source": {"ref": v.ref, "sha256": v.sha256, "workspace": str(ws.home)},
            "aliases": registry.aliases_of(ws, v), "evaluations": registry.evaluations(ws, v), "base": None}


def _copy_checked(src: Path, dst: Path, expected: str) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    if sha256_file(dst) != expected:
        raise IntegrityError(f"{dst}: the copy of {src} does not match its sha256.", fix="Check the target disk and export again.")


def _export_folder(ws: Workspace, v: registry.Version, tmp: Path, include_base: bool,
                   training_rows: bool = True) -> dict:
    from ..classifiers.base import INDEX_FILE, ROWS_FILE

    files = {rel: meta for rel, meta in v.manifest["files"].items()
             if training_rows or rel not in (INDEX_FILE, ROWS_FILE)}
    for rel, meta in files.items():
        _copy_checked(v.path / rel, tmp / MODEL_DIR / rel, meta["sha256"])
    manifest = {**v.manifest, "export": _export_section(ws, v, "folder")}
    if len(files) != len(v.manifest["files"]):
        fields = {k: val for k, val in v.manifest.items() if k not in registry.RESERVED_FIELDS}
        manifest.update(files=files, sha256=registry.content_hash(files, fields,
                                                                   rule=registry.manifest_rule(v.manifest, v.ref)))
        manifest["export"]["training_rows"] = "left out (--without-training-texts)"
    base = v.manifest.get("base")
    if include_base and isinstance(base, dict) and base.get("sha256") and v.manifest.get("format") != "onnx":
        manifest["export"]["base"] = _bundle_base(ws, base, tmp / BASE_DIR)
    return manifest


def _find_base(ws: Workspace, sha: str):
    return next((m for m in list_models(ws) if m.sha256 == sha), None)


def _bundle_base(ws: Workspace, base: dict, dest: Path) -> dict:
    found = _find_base(ws, base["sha256"])
    if found is None:
        raise NotFound(f"base model {base.get('name')!r} (sha256 {base['sha256'][:16]}) is not in this workspace any more, "
                       "so it cannot be bundled.", fix="Register its files again (inhouse models add), or export with --no-base.")
    path = Path(found.path)
    files = {}
    for f in model_files(path):
        rel = f.name if path.is_file() else f.relative_to(path).as_posix()
        digest = sha256_file(f)
        _copy_checked(f, dest / rel, digest)
        files[rel] = {"sha256": digest, "size": f.stat().st_size}
    return {"name": found.name, "sha256": found.sha256, "kind": found.kind, "license": found.license,
            "layout": "file" if path.is_file() else "folder", "files": files}


def check_texts_for(ws: Workspace, v: registry.Version, dataset: str | None, size: int,
                    texts: list[str] | None) -> tuple[list[str], str]:
    """The texts an ONNX export is checked on: given ones, else a seeded sample of a dataset."""
    if texts:
        return list(texts), f"{len(texts)} given texts"
    ds = v.manifest.get("dataset")
    name = dataset or (ds.get("name") if isinstance(ds, dict) else ds)
    if not name:
        raise UsageError(f"{v.ref} records no training dataset to check the ONNX export on.", fix="Add --check-dataset D.")
    if name not in ws.dataset_names():
        raise NotFound(f"dataset {name!r} (to check the ONNX export on) is not in this workspace; datasets are {ws.dataset_names()}.",
                       fix="Add --check-dataset D with a dataset of similar texts.")
    import numpy as np

    all_texts = read_documents(ws, name, columns=["doc_id", "text"])["text"].tolist()
    rng = np.random.default_rng(0)
    pick = sorted(rng.choice(len(all_texts), size=min(size, len(all_texts)), replace=False).tolist())
    return [all_texts[i] for i in pick], f"{len(pick)} texts sampled (seed 0) from dataset {name!r}"


def _export_onnx(ws: Workspace, v: registry.Version, tmp: Path, quantize: str | None, texts: list[str], source: str,
                 min_agreement: float) -> dict:
    from .onnx_export import write_onnx

    fields = write_onnx(ws, v, tmp / MODEL_DIR, quantize=quantize, check_texts=texts, check_source=source)
    agreement = fields["onnx"]["parity"]["agreement"]
    if agreement < min_agreement:
        raise Conflict(f"{v.ref}: the ONNX export agrees with the original on {agreement:.1%} of {len(texts)} texts, "
                       f"below the {min_agreement:.1%} required; nothing was written.",
                       fix="Export without --quantize, or lower the bar with --min-agreement.")
    files = registry.file_listing(tmp / MODEL_DIR)
    return {"format_version": registry.FORMAT_VERSION, "hash_rule": registry.HASH_RULE, "name": v.name, **fields, "files": files,
            "sha256": registry.content_hash(files, fields), "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "created_by": current_user(), "libraries": registry.library_versions(),
            "platform": platform.platform(), "inhouse_version": __version__,
            "export": _export_section(ws, v, "onnx")}


# ----------------------------------------------------------------- import ----
#
# An export folder is data from outside: treat all of it as hostile. Everything
# (paths, sizes, hashes, the bundled base, the code a folder would load) is
# checked before anything is written, and a failure leaves nothing registered.

def _fail(where, what: str) -> IntegrityError:
    return IntegrityError(f"{where}: {what}", fix="Copy the export folder again from its source.")


def read_export(src: Path, *, trust_code: bool = False) -> dict:
    """The manifest of an exported folder, after checking every path, size and sha256 in it.

    Refuses links anywhere in the folder, manifest paths that are absolute, hold
    ``..``, a backslash or a drive letter, files the manifest does not list, and
    model code the folder would have a library run (unless ``trust_code``).
    """
    src = Path(src)
    path = src / registry.MANIFEST
    if not src.is_dir() or not path.is_file():
        raise InputError(f"{src}: no {registry.MANIFEST}; expected a folder written by `inhouse models export`.",
                         fix="Give the folder that holds manifest.json, README.md and model/.")
    walk_files(src, str(src))  # no links anywhere in the export (manifest, model/, base/)
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise IntegrityError(f"{path} is not valid JSON ({e}).", fix="Copy the export again from its source.") from e
    if (not isinstance(manifest, dict) or manifest.get("format_version") != registry.FORMAT_VERSION
            or not isinstance(manifest.get("export"), dict)):
        found = manifest.get("format_version") if isinstance(manifest, dict) else type(manifest).__name__
        raise InputError(f"{path}: not an inhouse export (format {found!r}, "
                         f"expected {registry.FORMAT_VERSION} with an 'export' section).",
                         fix="Export the model with `inhouse models export` on the source machine.")
    rule = registry.manifest_rule(manifest, str(path))
    files = check_listing(manifest.get("files"), str(path))
    if not files:
        raise _fail(path, "lists no model files.")
    check_sha256(manifest.get("sha256"), f"{path}: sha256")
    if not isinstance(manifest.get("name"), str):
        raise _fail(path, f"the model name {manifest.get('name')!r} is not a text.")
    _check_files(src / MODEL_DIR, files)
    if registry.content_hash(files, manifest, rule) != manifest["sha256"]:
        raise IntegrityError(f"{path}: the manifest does not hash to its sha256 {manifest['sha256'][:16]} "
                             "(labels, method, threshold or another field, or the file list, edited).",
                             fix="Copy the export again from its source.")
    base = manifest.get("base")
    if base is not None and not (isinstance(base, dict) and (manifest.get("format") == "onnx" or base.get("sha256"))):
        raise _fail(path, f"'base' is {base!r}, expected {{name, sha256, kind}}.")
    if isinstance(base, dict) and base.get("sha256") is not None:
        check_sha256(base["sha256"], f"{path}: base.sha256")
    bundled = manifest["export"].get("base")
    if bundled is not None:
        _check_bundle(src, path, bundled, base)
    check_model_code(src / MODEL_DIR, trust_code=trust_code)
    if (src / BASE_DIR).is_dir():
        check_model_code(src / BASE_DIR, trust_code=trust_code)
    return manifest


def _check_bundle(src: Path, path: Path, bundled, base) -> None:
    """The bundled base encoder: well-formed, every file as listed, and hashing to the base the version needs."""
    if not isinstance(bundled, dict):
        raise _fail(path, f"export.base is {type(bundled).__name__}, expected the bundled base's description.")
    where = f"{path}: export.base"
    check_sha256(bundled.get("sha256"), f"{where}.sha256")
    name = bundled.get("name")
    if not isinstance(name, str) or not name or name != name.strip() or any(c in name for c in "@/\\") \
            or any(ord(c) < 32 for c in name) or name.startswith("."):
        raise _fail(where, f"the name {name!r} is not a valid model name.")
    if bundled.get("kind") not in KINDS:
        raise _fail(where, f"kind {bundled.get('kind')!r} is unknown; kinds are {list(KINDS)}.")
    if bundled.get("layout") not in ("file", "folder"):
        raise _fail(where, f"layout {bundled.get('layout')!r}, expected 'file' or 'folder'.")
    files = check_listing(bundled.get("files"), where)
    if not files or (bundled["layout"] == "file" and len(files) != 1):
        raise _fail(where, f"lists {len(files)} files, expected {'one' if bundled['layout'] == 'file' else 'at least one'}.")
    odd = [rel for rel in files if not is_model_file(rel)]
    if odd:
        raise _fail(where, f"lists files that are not model files (code or system files): {odd[:5]}.")
    digest = next(iter(files.values()))["sha256"] if bundled["layout"] == "file" else \
        listing_hash({rel: meta["sha256"] for rel, meta in files.items()})
    if digest != bundled["sha256"]:
        raise _fail(where, f"its files hash to {digest[:16]}, but it says {bundled['sha256'][:16]}.")
    if isinstance(base, dict) and base.get("sha256") and base["sha256"] != bundled["sha256"]:
        raise _fail(where, f"the bundled base is {bundled['sha256'][:16]}, but the model needs {base['sha256'][:16]}.")
    if (src / BASE_DIR).exists():
        _check_files(src / BASE_DIR, files)


def _check_files(folder: Path, files: dict) -> None:
    present = set(walk_files(folder, str(folder)))  # regular files inside the folder; a link is refused
    for rel, meta in files.items():
        p = folder / rel
        if rel not in present:
            raise IntegrityError(f"{p} is missing from the export.", fix="Copy the whole export folder again.")
        if p.stat().st_size != meta["size"] or sha256_file(p) != meta["sha256"]:
            raise IntegrityError(f"{p} does not match its sha256 in the manifest (tampered, truncated or damaged in transit).",
                                 fix="Copy the export folder again from its source.")
    extra = sorted(present - set(files))
    if extra:
        raise IntegrityError(f"{folder} holds files the manifest does not list: {extra[:5]}.",
                             fix="Remove them, or copy the export folder again.")


def import_version(ws: Workspace, src: str | Path, *, name: str | None = None, trust_code: bool = False) -> dict:
    """Register an exported folder as the next version of ``name`` (default: its exported name).

    Importing the same bytes again returns the existing version. Everything is
    checked first (:func:`read_export`); then the bundled base (if needed) and
    the version are registered, and if that fails both are undone.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> import_version(ws, "/media/usb/intents-3")["base_note"]
    'base minilm-l6 found by hash'
    """
    t0 = time.time()
    src = Path(src).expanduser().resolve()
    manifest = read_export(src, trust_code=trust_code)
    target = name or manifest["name"]
    registry.check_name(target)
    fields = {k: val for k, val in manifest.items() if k not in registry.RESERVED_FIELDS and k != "export"}
    base_note = "no base model needed"
    plan = None
    needs_base = manifest.get("format") != "onnx" and isinstance(manifest.get("base"), dict)
    if needs_base:
        fields["base"], base_note, plan = _plan_base(ws, src, manifest)
    ex = manifest["export"]
    source = ex.get("source") if isinstance(ex.get("source"), dict) else {}
    fields["origin"] = {"ref": source.get("ref"), "sha256": source.get("sha256"), "exported_at": ex.get("exported_at"),
                        "exported_by": ex.get("exported_by"), "created_at": manifest.get("created_at"),
                        "created_by": manifest.get("created_by"), "libraries": manifest.get("libraries"),
                        "platform": manifest.get("platform"), "evaluations": ex.get("evaluations", []),
                        "imported_from": str(src)}
    files = manifest["files"]
    rule = registry.manifest_rule(manifest, str(src))
    expected = manifest["sha256"] if rule == registry.HASH_RULE else registry.content_hash(files, fields)
    if rule != registry.HASH_RULE:
        fields["origin"]["hash_rule"], fields["origin"]["exported_sha256"] = rule, manifest["sha256"]
    for v in registry.versions(ws, target):
        if v.sha256 == expected:
            return _import_result(v, src, f"already imported as {v.ref}; nothing added", existed=True)

    def build(folder: Path) -> dict:
        for rel, meta in files.items():
            _copy_checked(src / MODEL_DIR / rel, folder / rel, meta["sha256"])
        return fields

    added = None
    try:
        if plan is not None:
            added = _register_base(ws, src, manifest, plan, trust_code)
        v = registry.save_version(ws, target, build, expect_sha256=expected)
    except BaseException:
        if added is not None:
            _undo_base(ws, *added)
        raise
    with ws.tx():
        ws.audit("models.import", v.ref, source=str(src), sha256=v.sha256, origin=source.get("ref"),
                 trust_code=bool(trust_code))
    if rule != registry.HASH_RULE:
        base_note += f"; exported under hash rule {rule}, registered under rule {registry.HASH_RULE} as {v.sha256[:16]}"
    result = _import_result(v, src, base_note)
    ws.record_run("models.import", {"source": str(src), "name": target, "trust_code": bool(trust_code)}, result,
                  model=v.ref, model_sha256=v.sha256, started_at=t0)
    return result


def _import_result(v: registry.Version, src: Path, note: str, existed: bool = False) -> dict:
    return {"ref": v.ref, "name": v.name, "version": v.version, "sha256": v.sha256, "source": str(src),
            "format": v.manifest.get("format", "safetensors"), "base_note": note, "existed": existed}


def _plan_base(ws: Workspace, src: Path, manifest: dict) -> tuple[dict, str, dict | None]:
    """The base encoder in this workspace (by sha256), or the plan to register the bundled copy; writes nothing."""
    base = dict(manifest["base"])
    found = _find_base(ws, base["sha256"])
    if found is not None:
        return {**base, "name": found.name}, f"base {found.name} found by hash", None
    bundled = manifest["export"].get("base")
    if not bundled or not (src / BASE_DIR).is_dir():
        raise NotFound(f"{src}: base model {base.get('name')!r} (sha256 {base['sha256'][:16]}) is not in this workspace, "
                       "and the export does not include it.",
                       fix="Register the same files with `inhouse models add NAME PATH`, or export again without --no-base.")
    taken = {m.name: m.sha256 for m in list_models(ws)}
    label = bundled["name"]
    if label in CATALOG or (label in taken and taken[label] != bundled["sha256"]):
        label = f"{label}-{bundled['sha256'][:8]}"
    return {**base, "name": label}, f"base registered from the export as {label}", {"label": label, "bundled": bundled}


def _register_base(ws: Workspace, src: Path, manifest: dict, plan: dict, trust_code: bool) -> tuple[str, Path | None]:
    """Copy the (already checked) bundled base into the workspace and register it; returns what to undo."""
    bundled, label = plan["bundled"], plan["label"]
    dest = ws.dir("models", "bases") / bundled["sha256"][:32]
    created = None
    if dest.exists():
        try:
            _check_files(dest, bundled["files"])
        except IntegrityError:  # a damaged or foreign copy: replace it
            shutil.rmtree(dest, ignore_errors=True)
    if not dest.exists():
        with atomic_dir(dest) as tmp:
            for rel, meta in bundled["files"].items():
                _copy_checked(src / BASE_DIR / rel, tmp / rel, meta["sha256"])
        created = dest
    path = dest / next(iter(bundled["files"])) if bundled.get("layout") == "file" else dest
    try:
        m = add_model(ws, label, path, kind=bundled["kind"], license=bundled.get("license") if isinstance(
            bundled.get("license"), str) else None, description=f"base of {manifest['name']}, imported from {src}",
            trust_code=trust_code)
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    if m.sha256 != manifest["base"]["sha256"]:
        _undo_base(ws, label, created)
        raise IntegrityError(f"{src}/{BASE_DIR}: registered as {label!r} with sha256 {m.sha256[:16]}, "
                             f"expected {manifest['base']['sha256'][:16]}; nothing was registered.",
                             fix="Copy the export folder again from its source.")
    return label, created


def _undo_base(ws: Workspace, label: str, created: Path | None) -> None:
    try:
        remove_model(ws, label)
    except NotFound:
        pass
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
