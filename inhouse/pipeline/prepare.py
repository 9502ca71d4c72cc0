"""Prepare a version for fast classify once, when it is saved or promoted: never in front of the first classify.

:func:`prepare_version` builds (or finds) the version's ONNX graph with its
int8 verdict (:mod:`inhouse.pipeline.onnxcache`) and its cascade
(:mod:`inhouse.pipeline.cascade`); ``inhouse train`` and moving an alias call
it, and ``inhouse models prepare`` runs it by hand. A classify that finds the
graph missing still builds it once (and says so in its result); one that finds
the cascade missing runs the transformer alone (and says so).

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> prepare_version(ws, registry.resolve(ws, "intents"))["onnx"]["precision"]
    'int8'
"""

from __future__ import annotations

import time

from .. import registry
from ..errors import InhouseError, UsageError
from ..workspace.store import Workspace


def needs_preparing(version: registry.Version) -> bool:
    """Whether the version is a classifier that a graph is built for (not an ONNX export already)."""
    m = version.manifest
    return bool(m.get("labels")) and m.get("kind", "classifier") == "classifier" and m.get("format") != "onnx"


def prepare_after(ws: Workspace, version: registry.Version) -> dict:
    """:func:`prepare_version` after a save or an alias move, which have happened and stand: a version that
    cannot be prepared (its base model's files changed, say) is reported, not raised, and its first classify
    says why the same way."""
    try:
        return prepare_version(ws, version)
    except InhouseError as e:
        return {"prepared": False, "reason": e.message, "seconds": 0.0}


def prepare_version(ws: Workspace, version: registry.Version, *, cascade: bool = True) -> dict:
    """Build what fast classify needs for ``version`` (nothing when already there); what was found or built."""
    from .cascade import build_cascade, read_cascade
    from .engine import OnnxPredictor
    from .onnxcache import ensure_onnx
    from .verdict import labelled_rows

    t0 = time.time()
    if not needs_preparing(version):
        return {"prepared": False, "reason": "not a trained classifier version", "seconds": 0.0}
    try:
        art = ensure_onnx(ws, version)
    except UsageError as e:  # no transformer behind it (a static-embedding base): torch runs it
        return {"prepared": False, "reason": e.message, "seconds": round(time.time() - t0, 2)}
    verdict = art.manifest.get("verdict") or {}
    out = {"prepared": True, "onnx": {"precision": art.precision, "built": art.built_now,
                                      "rule": verdict.get("rule"), "validation": verdict.get("chosen")}}
    if cascade:
        m = read_cascade(ws, version.sha256)
        built = m is None
        if built:
            predictor = OnnxPredictor(version, art.path, max_length=int(art.manifest.get("max_length") or 256),
                                      precision=art.precision, manifest=art.manifest)
            m = build_cascade(ws, version, predictor, labelled_rows(ws, version))
        out["cascade"] = {"use": m.get("use"), "built": built, "threshold": m.get("threshold"),
                          "validation": m.get("validation"), "out_of_fold": m.get("out_of_fold"),
                          "reason": m.get("reason")}
    out["seconds"] = round(time.time() - t0, 2)
    return out
