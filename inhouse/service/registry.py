"""Moving and removing aliases as one operation each, for ``inhouse models alias|unalias`` and the alias routes.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> move_alias(ws, "intents", "production", 3, expected=2)
    {'name': 'intents', 'alias': 'production', 'version': 3, 'ref': 'intents@3', 'sha256': '...', 'previous': 2}
"""

from __future__ import annotations

from .. import registry
from ..workspace.store import Workspace

ANY = object()  # no compare-and-set: move or remove whatever the alias points to now


def move_alias(ws: Workspace, ref: str, alias: str, version: int | None = None, *, expected=ANY,
               prepare: bool = True) -> dict:
    """Point ``alias`` at ``ref`` (or at version ``version`` of the model ``ref``); compare-and-set with ``expected``.

    ``previous`` is the version the alias pointed to before (``expected`` when given: the move only
    happens if that was still so). With ``prepare`` the version's fast-classify artifacts (ONNX graph,
    int8 verdict, cascade) are built now when missing, so the first classify by the alias does not wait.
    """
    target = f"{registry.resolve(ws, ref).name}@{version}" if version is not None else ref
    if expected is ANY:
        previous = registry.aliases(ws, registry.resolve(ws, target).name).get(alias)
        v = registry.set_alias(ws, target, alias)
    else:
        previous = expected
        v = registry.set_alias(ws, target, alias, expected=expected)
    out = {"name": v.name, "alias": alias, "version": v.version, "ref": v.ref, "sha256": v.sha256,
           "previous": previous}
    if prepare:
        from ..pipeline.prepare import prepare_after

        out["prepared"] = prepare_after(ws, v)
    return out


def prepare(ws: Workspace, ref: str, *, cascade: bool = True) -> dict:
    """Build (or find) a version's fast-classify artifacts: ONNX graph, int8 verdict, cascade."""
    from ..pipeline.prepare import prepare_version

    v = registry.verify(registry.resolve(ws, ref))
    return {"ref": v.ref, "sha256": v.sha256, **prepare_version(ws, v, cascade=cascade)}


def needs_prepare(ws: Workspace, ref: str) -> bool:
    """Whether ``ref`` is a classifier whose fast-classify artifacts are not all built yet."""
    from ..pipeline.cascade import read_cascade
    from ..pipeline.onnxcache import read_artifact
    from ..pipeline.prepare import needs_preparing

    v = registry.resolve(ws, ref)
    return needs_preparing(v) and (read_artifact(ws, v.sha256) is None or read_cascade(ws, v.sha256) is None)


def remove_alias(ws: Workspace, name: str, alias: str, *, expected=ANY) -> dict:
    """Remove ``alias`` of model ``name``; with ``expected``, only if it still points to that version."""
    was = registry.remove_alias(ws, name, alias) if expected is ANY else \
        registry.remove_alias(ws, name, alias, expected=expected)
    return {"name": name, "alias": alias, "removed": True, "was": was, "previous": was}
