"""``load_classifier``: the one way every caller (eval, explain, diff, classify, the server) gets a classifier.

It verifies the version's files, picks the implementation by the manifest's
``format`` and keeps loaded versions in a bounded, locked cache keyed by the
version's sha256, so a server that classifies from many threads loads each
version once.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> load_classifier(ws, "intents@production").predict(["I lost my card"])
    ['lost_or_stolen_card']
"""

from __future__ import annotations

import copy

from .. import registry
from ..cache import ModelCache
from ..errors import UsageError
from ..workspace.store import Workspace
from .base import FORMATS, Classifier

_loaded = ModelCache("classifiers")


def load_classifier(ws: Workspace, ref: str | registry.Version, *, cache: bool = True) -> Classifier:
    """The classifier for a reference, whatever its format; its files are verified first.

    Loaded versions are cached by sha256 (bounded by memory, least recently used
    out), so calling this per request is cheap.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> load_classifier(ws, "intents@3").version.ref
    'intents@3'
    """
    v = registry.verify(registry.resolve(ws, ref))
    fmt = v.manifest.get("format", "safetensors")
    if fmt not in FORMATS:
        raise UsageError(f"{v.ref}: format {fmt!r} is unknown; this inhouse reads {list(FORMATS)}.",
                         fix="Upgrade inhouse, or re-export the model from its source machine.")
    if not v.manifest.get("labels"):
        raise UsageError(f"{v.ref} is not a classifier (its manifest lists no labels).",
                         fix="Use a version made by: inhouse train")

    def build() -> Classifier:
        if fmt == "onnx":
            from .onnx import OnnxClassifier

            return OnnxClassifier(v, ws=ws)
        from .torch import TorchClassifier

        return TorchClassifier.from_version(ws, v)

    if not cache:
        return build()
    # the same bytes in another workspace may name another base path: key by workspace too
    clf = _loaded.get_or_load((str(ws.home), v.sha256), build, size=lambda c: c.approx_bytes())
    if clf.version.ref != v.ref:  # the same bytes saved under another name or number
        clf = copy.copy(clf)
        clf.version, clf.manifest = v, v.manifest
    return clf
