"""Retrain like a version: its training arguments, method and base model, on its dataset's current labels.

The loop a person closes after labelling something new (a topic, a candidate the
model turned away): ``inhouse retrain intents``, ``POST /versions/{ref}/retrain``
and the Deploy screen's "Retrain on the current labels" all call :func:`retrain`;
:func:`plan` is what they show first (``GET /versions/{ref}/retrain``).

A bare name means its production version (``intents`` -> ``intents@production``,
else its latest). The arguments are the version's saved ``training_args``
(resolved when it was trained, so the method's defaults of that day are kept);
the base model must still be the same bytes (its sha256), else it is refused.
The labels are read again from the version's dataset and label column, so
labels added since (a new label in its label set included) are learnt.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> plan(ws, "intents")["labels_added"]
    ['lost_or_stolen_card']
    >>> retrain(ws, "intents")["ref"], retrain(ws, "intents")["like"]["ref"]
    ('intents@2', 'intents@1')
"""

from __future__ import annotations

from collections import Counter

from .. import registry
from ..errors import Conflict, UsageError
from ..workspace.store import Workspace
from .training import training_arguments

__all__ = ["plan", "retrain", "source"]


def source(ws: Workspace, ref: str) -> registry.Version:
    """The version to retrain like: ``ref`` as the registry resolves it, checked to hold training arguments."""
    v = registry.resolve(ws, ref)
    m = v.manifest
    if m.get("kind") != "classifier" or not m.get("training_args") or not (m.get("dataset") or {}).get("name"):
        raise UsageError(f"{v.ref} has no training arguments and dataset in its manifest (it was not made by "
                         f"inhouse train: imported or exported as ONNX), so it cannot be retrained like itself.",
                         fix=f"Train a new version with: inhouse train --dataset D --name {v.name} ...")
    return v


def _arguments(ws: Workspace, v: registry.Version):
    from ..models.catalog import get_model

    args = training_arguments(dict(v.manifest["training_args"]))
    want = (v.manifest.get("base") or {}).get("sha256")
    have = get_model(ws, args.base).sha256
    if want and have != want:
        raise Conflict(f"{v.ref} was trained on base model {args.base!r} with sha256 {want[:12]}; the base model of "
                       f"that name is now {have[:12]}, so retraining would not be like {v.ref}.",
                       fix=f"Register the original base model again, or train with inhouse train --base ... "
                           f"--name {v.name}.")
    return args


def plan(ws: Workspace, ref: str) -> dict:
    """What :func:`retrain` would do: the version copied, its arguments, and the labels now vs then.

    ``labels_added`` are labels the dataset's label column holds now (within the version's split and
    filter) that the version never learnt; ``label_rows`` counts the rows of every label now;
    ``changed`` is false when the labelled rows are exactly those the version was trained on;
    ``already`` names the newest later version trained like it on exactly today's rows (else None).
    """
    from ..training.data import load_training_data

    v = source(ws, ref)
    m = v.manifest
    args = _arguments(ws, v)
    dataset = m["dataset"]["name"]
    data = load_training_data(ws, dataset, args)
    old = list(m.get("labels") or [])
    counts = Counter(label for t in data.targets for label in t)
    rows_sha256 = data.rows_sha256()
    done = [w.ref for w in registry.versions(ws, v.name) if w.version > v.version
            and (w.manifest.get("dataset") or {}).get("rows_sha256") == rows_sha256
            and (w.manifest.get("dataset") or {}).get("name") == dataset
            and w.manifest.get("training_args") == args.to_dict()]
    return {"like": {"ref": v.ref, "sha256": v.sha256, "aliases": registry.aliases_of(ws, v)},
            "name": v.name, "dataset": dataset, "method": args.method, "base": args.base,
            "label_col": args.label_col, "args": args.to_dict(),
            "labels": data.labels, "labels_added": sorted(set(data.labels) - set(old)),
            "labels_removed": sorted(set(old) - set(data.labels)),
            "label_rows": {label: counts[label] for label in data.labels},
            "rows": len(data.texts), "rows_before": m["dataset"].get("n_rows"),
            "changed": rows_sha256 != m["dataset"].get("rows_sha256"), "already": done[-1] if done else None}


def retrain(ws: Workspace, ref: str, *, expected_sha256: str | None = None) -> dict:
    """Train the next version of ``ref``'s model exactly as ``ref`` was trained, on the labels there are now.

    ``expected_sha256`` (a job's): refuse if ``ref`` no longer means that version. The result is the
    training's (``ref`` is the new version) with ``like`` (the version copied) and the labels it added.
    """
    from .training import train

    v = source(ws, ref)
    if expected_sha256 and v.sha256 != expected_sha256:
        raise Conflict(f"{ref} now means {v.ref} ({v.sha256[:12]}), not the version {expected_sha256[:12]} this "
                       f"retraining was asked for.", fix="Start the retraining again.")
    args = _arguments(ws, v)
    r = train(ws, v.manifest["dataset"]["name"], v.name, args).to_dict()
    old = set(v.manifest.get("labels") or [])
    return {**r, "like": {"ref": v.ref, "sha256": v.sha256}, "dataset": v.manifest["dataset"]["name"],
            "label_col": args.label_col, "labels_added": sorted(set(r["labels"]) - old),
            "labels_removed": sorted(old - set(r["labels"]))}
