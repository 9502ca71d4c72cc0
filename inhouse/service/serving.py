"""What the server answers a version's online requests with: the classify engine on the version's prepared graph.

The server (:mod:`inhouse.server.batching`) runs a trained version the way
``inhouse classify`` does: :func:`online_predictor` is the engine's predictor
on the ONNX graph prepared when the version was saved or promoted (int8 when
its verdict kept it), with the version's cascade in front when the cascade
passed its own verdict. Nothing is built here: a version without a prepared
graph gets None (the server answers on torch meanwhile and has
:func:`prepare_quietly` build it in the background).

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> online_predictor(ws, registry.resolve(ws, "intents@1"), threads=1, call_tokens=128).backend
    'onnx-int8'
"""

from __future__ import annotations

from .. import registry
from ..classifiers.base import DecisionRule
from ..workspace.store import Workspace

__all__ = ["can_prepare", "decision_rule", "online_predictor", "prepare_quietly", "prepared_graph"]


def can_prepare(version: registry.Version) -> bool:
    """Whether ``version`` is a trained classifier that a graph is prepared for: not an ONNX export itself, nor
    on static embeddings (wordllama: no transformer to export)."""
    from ..pipeline.prepare import needs_preparing

    return needs_preparing(version) and (version.manifest.get("base") or {}).get("kind") != "static"


def prepared_graph(ws: Workspace, version: registry.Version) -> dict | None:
    """The manifest of the graph prepared for ``version`` (one small file read, files not checked), or None."""
    from ..pipeline.onnxcache import prepared_onnx

    art = prepared_onnx(ws, version)
    return art.manifest if art is not None else None


def online_predictor(ws: Workspace, version: registry.Version, *, threads: int | None, call_tokens: int):
    """The engine's predictor on ``version``'s prepared graph, its files checked once here, with the cascade in
    front when it passed its verdict; ONNX Runtime calls of at most ``call_tokens`` padded tokens on ``threads``
    threads. None when no intact graph was prepared (nothing is built here)."""
    from ..pipeline.cascade import with_cascade
    from ..pipeline.engine import EngineOptions, OnnxPredictor
    from ..pipeline.onnxcache import prepared_onnx

    graph = prepared_onnx(ws, version, verify=True)
    if graph is None:
        return None
    onnx = OnnxPredictor(version, graph.path, max_length=int(graph.manifest.get("max_length") or 256),
                         precision=graph.precision, options=EngineOptions(threads=threads, batch_tokens=call_tokens),
                         manifest=graph.manifest)
    predictor = with_cascade(ws, version, onnx)
    predictor.transformer = onnx  # its tokenizer tells which texts the graph cut
    return predictor


def prepare_quietly(ws: Workspace, version: registry.Version) -> dict:
    """Build ``version``'s graph, int8 verdict and cascade; a version that cannot be prepared is reported."""
    from ..pipeline.prepare import prepare_after

    return prepare_after(ws, version)


def decision_rule(manifest: dict) -> DecisionRule:
    """How a version turns probabilities into answers (abstention included), from its manifest."""
    return DecisionRule(manifest)
