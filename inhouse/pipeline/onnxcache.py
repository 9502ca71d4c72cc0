"""The fast inference artifact of a version: its ONNX graph, int8 when that is as accurate as torch, cached.

A version folder is immutable and content-hashed, so the ONNX graph built from
it is a *derived* artifact, kept apart under ``derived/onnx/<version sha256>/``:
``model.onnx``, the tokenizer files and a ``manifest.json`` that says what it
was built from, its precision, the verdict and the parity check against the
torch model. It is built when a version is saved or promoted
(:mod:`inhouse.pipeline.prepare`); a classify that finds it missing builds it
once and says so. The int8 graph (onnxruntime dynamic quantization) is kept
when its accuracy on the version's own validation rows is at most
:data:`~inhouse.pipeline.verdict.MAX_ACCURACY_LOSS` (0.3 point) below the
torch model's, both judged by what they answer under the version's abstention
rule (:mod:`inhouse.pipeline.verdict`); agreement of the top label is
reported on those rows and on a sample of the texts being classified (or of the
training dataset). Only without labelled validation rows does agreement decide
(at least :data:`MIN_AGREEMENT`). Otherwise the fp32 graph is kept and the
manifest says why. The folder is built under a temporary
name and renamed, under a file lock, so concurrent runs build it once and a
kill never leaves half of one.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> art = ensure_onnx(ws, registry.resolve(ws, "intents@production"))
    >>> art.precision, art.manifest["parity"]["agreement"] >= 0.995
    ('int8', True)
"""

from __future__ import annotations

import fcntl
import json
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import registry
from ..errors import InhouseError, IntegrityError
from ..workspace.files import atomic_dir, sha256_file
from ..workspace.store import Workspace
from .verdict import MAX_ACCURACY_LOSS, judge

MIN_AGREEMENT = 0.995
PARITY_TEXTS = 1000
SAMPLE_TEXTS = 500  # agreement reported on this many texts beside the validation rows
FORMAT = "inhouse.onnx-cache.v1"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class OnnxArtifact:
    """A ready ONNX graph for one version: its folder, precision and manifest."""

    path: Path
    precision: str  # "int8" | "fp32"
    manifest: dict
    built_now: bool = False  # True when this call built it (it was not prepared when the version was saved)

    @property
    def sha256(self) -> str:
        """The version's sha256 the graph was built from."""
        return self.manifest["source"]["sha256"]


def cache_dir(ws: Workspace, sha256: str) -> Path:
    return ws.home / "derived" / "onnx" / sha256


def read_artifact(ws: Workspace, sha256: str) -> dict | None:
    """The manifest of the cached graph of a version, or None (for ``models show``)."""
    p = cache_dir(ws, sha256) / MANIFEST
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def describe_artifact(m: dict | None) -> str:
    """One line for ``models show``: the cached inference graph and its parity with torch."""
    if not m:
        return "  inference   no ONNX graph prepared yet (inhouse models prepare; else built on the first classify)"
    p = m.get("parity") or {}
    v = (m.get("verdict") or {}).get("chosen")
    acc = (f"validation accuracy {v['accuracy']:.2%} vs torch {v['accuracy_reference']:.2%} on {v['texts']} rows, "
           if v else "")
    line = (f"  inference   onnx {m['precision']}, {acc}agreement with torch {p.get('agreement', 0):.2%} on "
            f"{p.get('texts')} texts ({p.get('source')})")
    return line + (f"; {m['fallback']}" if m.get("fallback") else "")


def _intact(folder: Path, manifest: dict) -> bool:
    files = manifest.get("files") or {}
    return bool(files) and all((folder / n).is_file() and sha256_file(folder / n) == h for n, h in files.items())


@contextmanager
def _lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def parity_texts(ws: Workspace, version: registry.Version, extra: list[str] | None = None,
                 n: int = PARITY_TEXTS) -> tuple[list[str], str]:
    """Texts for the parity check: up to ``n`` of the texts being classified (``extra``: the user's own
    distribution, where near-ties are), topped up with a seeded sample of the version's training dataset."""
    import numpy as np

    from ..workspace.documents import read_documents

    texts = list(dict.fromkeys(t for t in (extra or []) if isinstance(t, str) and t.strip()))[:n]
    sources = [f"{len(texts)} of the texts being classified"] if texts else []
    name = (version.manifest.get("dataset") or {}).get("name")
    if name and len(texts) < 2 * n:
        try:
            df = read_documents(ws, name, columns=["doc_id", "text"])
            have = set(texts)
            uniq = list(dict.fromkeys(t for t in df["text"].tolist() if isinstance(t, str) and t.strip() and t not in have))
            if uniq:
                k = min(2 * n - len(texts), len(uniq), n)
                pick = np.random.default_rng(0).choice(len(uniq), size=k, replace=False)
                texts += [uniq[i] for i in sorted(pick)]
                sources.append(f"{k} of dataset {name}")
        except InhouseError:
            pass
    return texts, " + ".join(sources) or "none"


def ensure_onnx(ws: Workspace, version: registry.Version, *, sample: list[str] | None = None,
                min_agreement: float = MIN_AGREEMENT) -> OnnxArtifact:
    """The cached ONNX graph of ``version``, built (and parity-checked) on first use.

    Versions that are ONNX already (``models export --format onnx``) are used
    as they are. Raises :class:`UsageError` when the version has no ONNX graph
    (its base is not a transformer); callers fall back to torch then.
    """
    if version.manifest.get("format") == "onnx":
        q = (version.manifest.get("onnx") or {}).get("quantize")
        return OnnxArtifact(version.path, "int8" if q == "int8" else "fp32",
                            {"format": FORMAT, "source": {"ref": version.ref, "sha256": version.sha256},
                             "precision": "int8" if q == "int8" else "fp32", "prebuilt": True,
                             "max_length": (version.manifest.get("onnx") or {}).get("max_length", 256),
                             "parity": (version.manifest.get("onnx") or {}).get("parity")})
    folder = cache_dir(ws, version.sha256)
    with _lock(folder.parent / f".{version.sha256}.lock"):
        m = read_artifact(ws, version.sha256)
        if m is not None and m.get("format") == FORMAT:
            if _intact(folder, m):
                return OnnxArtifact(folder, m["precision"], m)
            shutil.rmtree(folder, ignore_errors=True)  # a derived artifact: rebuild rather than trust it
        m = _build(ws, version, folder, sample or [], min_agreement)
    return OnnxArtifact(folder, m["precision"], m, built_now=True)


def _build(ws: Workspace, version: registry.Version, folder: Path, sample: list[str], min_agreement: float) -> dict:
    from ..classifiers.base import ONNX_FILE
    from ..classifiers.load import load_classifier
    from ..classifiers.onnx import OnnxClassifier
    from ..exchange.onnx_export import export_graph, parity, quantize_int8
    from .verdict import labelled_rows

    t0 = time.time()
    clf = load_classifier(ws, version)
    rows = labelled_rows(ws, version)
    val_texts, gold = rows.part(True) if rows is not None else ([], None)
    texts, source = parity_texts(ws, version, sample, n=SAMPLE_TEXTS)
    if not texts and not val_texts:
        raise IntegrityError(f"{version.ref}: no text to check the ONNX graph against the torch model.",
                             fix="Classify a dataset or file with at least one text.")
    # the torch model's answers on the validation rows: probabilities and (distance rule) distances
    ref_val = clf.predict_scores(val_texts) if val_texts else None
    with atomic_dir(folder) as tmp:
        info = export_graph(clf, tmp)
        fp32 = tmp / "model.fp32.onnx"
        shutil.copyfile(tmp / ONNX_FILE, fp32)
        info.update(quantize_int8(tmp / ONNX_FILE))
        fields = {k: v for k, v in version.manifest.items() if k not in registry.RESERVED_FIELDS}
        probe = registry.Version(version.name, version.version, version.sha256, tmp, {**fields, "onnx": info})

        def check() -> dict:
            exported = OnnxClassifier(probe, ws=ws)
            out = {"sample": parity(clf, exported, texts) if texts else None}
            if ref_val is not None:
                probs, dist = exported.predict_scores(val_texts)
                out["validation"] = judge(ref_val[0], probs, gold, rule=clf, distances=(ref_val[1], dist))
            return out

        checks = {"int8": check()}
        ok, why = _accept(checks["int8"], min_agreement)
        precision, note = "int8", None
        if not ok:
            fp32.replace(tmp / ONNX_FILE)
            info.pop("quantization", None)
            info["quantize"] = None
            checks["fp32"] = check()
            precision, note = "fp32", f"{why}: using the fp32 ONNX graph"
        else:
            fp32.unlink()
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        chosen = checks[precision]
        parity_block = {**(chosen["sample"] or {}), "source": source, "min_agreement": min_agreement,
                        "int8": checks["int8"]["sample"]}
        manifest = {"format": FORMAT, "source": {"ref": version.ref, "sha256": version.sha256,
                                                 "format": version.manifest.get("format", "safetensors")},
                    "precision": precision, "fallback": note, "max_length": info["max_length"],
                    "onnx": {k: v for k, v in info.items() if k != "quantization"},
                    "quantization": info.get("quantization"), "parity": parity_block,
                    "verdict": {"rule": why if not ok else _rule(checks["int8"], min_agreement),
                                "int8": checks["int8"].get("validation"), "chosen": chosen.get("validation"),
                                "max_accuracy_loss": MAX_ACCURACY_LOSS},
                    "files": files, "created_at": time.time(), "seconds": round(time.time() - t0, 2)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    return manifest


def _accept(check: dict, min_agreement: float) -> tuple[bool, str]:
    """int8 is kept when it loses at most 0.3 point of accuracy on the version's validation rows; without
    labelled validation rows, when its top label agrees with torch on ``min_agreement`` of the sample."""
    v = check.get("validation")
    if v is not None:
        return v["accepted"], (f"int8 lost {v['accuracy_loss']:.2%} of accuracy on {v['texts']} validation rows "
                               f"({v['accuracy_reference']:.2%} -> {v['accuracy']:.2%}), over {MAX_ACCURACY_LOSS:.1%}")
    s = check["sample"]
    same = min(s["agreement"], s.get("abstain_agreement", 1.0))  # the distance rule: turned away alike too
    return same >= min_agreement, (f"int8 agreed with the torch model on {s['agreement']:.2%} of {s['texts']} "
                                   f"texts (abstained alike on {s.get('abstain_agreement', 1.0):.2%}), under "
                                   f"{min_agreement:.1%} (no labelled validation rows to judge accuracy)")


def _rule(check: dict, min_agreement: float) -> str:
    v = check.get("validation")
    if v is not None:
        return (f"int8 kept: accuracy on {v['texts']} validation rows {v['accuracy']:.2%} vs torch "
                f"{v['accuracy_reference']:.2%} (loss {v['accuracy_loss']:+.2%}, at most {MAX_ACCURACY_LOSS:.1%})")
    return f"int8 kept: top-label agreement with torch {check['sample']['agreement']:.2%} >= {min_agreement:.1%}"
