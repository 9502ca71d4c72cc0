"""Compare two model versions before promoting one: ``inhouse models diff``.

Both versions classify the same documents; the report says how often they
agree, which documents flipped (and whether the flip fixed or broke a labelled
one), how each class's counts and metrics moved, the metric deltas, and how
much the weights changed.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> d = diff_versions(ws, "intents@2", "intents@3", "banking77", split="test")
    >>> d["agreement"], d["metrics"]["accuracy"]["delta"]
    (0.964, 0.013)
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np

from .. import registry
from ..classifiers.load import load_classifier
from ..classifiers.predict import cached_scores
from ..errors import UsageError
from ..training.metrics import label_report
from ..workspace.documents import ROW_COLUMN, id_column, id_output_name, read_documents
from ..workspace.store import Workspace
from .coverage import new_label_coverage

WEIGHT_SKIP = {"train_index.safetensors"}  # training-row embeddings, not weights


# -------------------------------------------------------------- weights ----

def _tensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except (TypeError, ValueError):  # dtypes numpy lacks (bfloat16)
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k).float().numpy() for k in f.keys()}


def tensor_changes(old: dict[str, np.ndarray], new: dict[str, np.ndarray], top: int = 5) -> dict:
    """Per-tensor relative change ``|new - old| / |old|`` (Frobenius norms), summarised.

    >>> tensor_changes({"W": np.ones((2, 2))}, {"W": 2 * np.ones((2, 2))})["max_relative_change"]
    1.0
    """
    changes, shape_changed = {}, []
    for k in sorted(set(old) & set(new)):
        a, b = np.asarray(old[k], dtype=np.float64), np.asarray(new[k], dtype=np.float64)
        if a.shape != b.shape:
            shape_changed.append({"tensor": k, "old": list(a.shape), "new": list(b.shape)})
            continue
        changes[k] = float(np.linalg.norm(b - a) / max(np.linalg.norm(a), 1e-12))
    vals = np.array(list(changes.values())) if changes else np.zeros(0)
    ranked = sorted(changes.items(), key=lambda kv: -kv[1])[:top]
    return {"tensors": len(changes), "changed": int((vals > 1e-7).sum()),
            "mean_relative_change": float(vals.mean()) if len(vals) else 0.0,
            "max_relative_change": float(vals.max()) if len(vals) else 0.0,
            "top": [{"tensor": k, "relative_change": v} for k, v in ranked],
            "only_old": sorted(set(old) - set(new))[:20], "only_new": sorted(set(new) - set(old))[:20],
            "shape_changed": shape_changed[:20]}


def _head_tensors(v: registry.Version, labels: list[str]) -> dict[str, np.ndarray] | None:
    """Head rows re-ordered to ``labels``, so versions with different label sets compare label by label."""
    p = v.path / "head.safetensors"
    if not p.exists():
        return None
    t = _tensors(p)
    if "W" not in t or "b" not in t:
        return t
    pos = {l: i for i, l in enumerate(v.manifest.get("labels") or [])}
    rows = [pos[l] for l in labels if l in pos]
    return {"W": t["W"][rows], "b": t["b"][rows]}


def _encoder_file(ws: Workspace, v: registry.Version) -> Path | None:
    """The safetensors file whose weights make the embeddings: tuned encoder, else the frozen base."""
    own = v.path / "encoder" / "model.safetensors"
    if own.exists():
        return own
    base = v.manifest.get("base") or {}
    if v.manifest.get("method") == "head" and base.get("name"):
        from ..models.catalog import get_model

        try:
            path = Path(get_model(ws, base["name"]).path)
        except Exception:
            return None
        cand = path / "model.safetensors" if path.is_dir() else None
        return cand if cand is not None and cand.exists() else None
    return None


def registry_weight_changes(ws: Workspace, old: registry.Version, new: registry.Version) -> dict:
    """Weight changes between two versions read straight from their safetensors files."""
    out: dict = {"source": "inhouse.diff"}
    common = [l for l in (old.manifest.get("labels") or []) if l in set(new.manifest.get("labels") or [])]
    ha, hb = _head_tensors(old, common), _head_tensors(new, common)
    if ha is not None and hb is not None:
        out["head"] = {**tensor_changes(ha, hb), "labels_compared": len(common)}
    ea, eb = _encoder_file(ws, old), _encoder_file(ws, new)
    if ea is not None and eb is not None:
        out["encoder"] = ({"tensors": 0, "changed": 0, "mean_relative_change": 0.0, "max_relative_change": 0.0,
                           "note": "the same frozen weights"} if ea.resolve() == eb.resolve() else tensor_changes(_tensors(ea), _tensors(eb)))
    elif ea is not None or eb is not None:
        out["encoder"] = {"note": "only one of the versions has encoder weights this tool can read"}
    for rel in sorted(set(old.manifest["files"]) & set(new.manifest["files"])):
        if rel.endswith(".safetensors") and rel.startswith("adapter/"):
            out.setdefault("adapter", {})[rel] = tensor_changes(_tensors(old.path / rel), _tensors(new.path / rel))
    return out


def weight_changes(ws: Workspace, old: registry.Version, new: registry.Version) -> dict:
    """The training engineer's ``inhouse.explain.weight_changes`` when present, else :func:`registry_weight_changes`."""
    try:
        from .explain import weight_changes as explain_changes
    except ImportError:
        explain_changes = None
    if explain_changes is not None and "onnx" not in (old.manifest.get("format"), new.manifest.get("format")):
        try:
            return {"source": "inhouse.explain", **explain_changes(ws, new.ref, against=old.ref)}
        except Exception as e:  # fall back to the plain tensor comparison, and say so
            return {**registry_weight_changes(ws, old, new), "explain_error": f"{type(e).__name__}: {e}"}
    if "onnx" in (old.manifest.get("format"), new.manifest.get("format")):
        return {"source": "inhouse.diff", "note": "an ONNX version's weights are not compared tensor by tensor"}
    return registry_weight_changes(ws, old, new)


# ---------------------------------------------------------- predictions ----

def _documents(ws: Workspace, dataset: str, split: str | None, limit: int | None, label_col: str | None = None):
    df = read_documents(ws, dataset, columns=["doc_id", "text", "text_hash", "label", "source_id", "source_row"],
                        split=split, label_col=label_col)
    if limit:
        df = df.head(limit)
    if len(df) == 0:
        where = f" in split {split!r}" if split else ""
        raise UsageError(f"dataset {dataset!r} has no documents{where} to compare on.", fix="Choose another --dataset or --split.")
    return df


def _top(clf, scores: tuple) -> tuple[list[str], np.ndarray]:
    """Each document's answer as the version gives it (its own abstention rule included) and its confidence."""
    probs, distance = scores
    return clf.decide(probs, distance=distance), clf.best_in_scope(probs)[1]


def diff_versions(ws: Workspace, old: str, new: str, dataset: str, *, split: str | None = None,
                  limit: int | None = None, examples: int = 10, label_col: str | None = None) -> dict:
    """Compare versions ``old`` and ``new`` on a dataset's documents.

    ``agreement`` is the share of documents given the same label; with gold
    labels there are also metric deltas, per-class changes, and flips split
    into ``fixed`` (old wrong, new right) and ``broken`` (old right, new wrong).
    The gold labels are those of ``label_col``; by default the label column
    ``new`` learnt from when ``dataset`` is the one it was trained on, else
    ``label``. ``new_labels`` covers the labels ``new`` has and ``old`` lacks
    (see :func:`inhouse.analysis.coverage.new_label_coverage`).

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> diff_versions(ws, "intents@3", "intents@3", "banking77", split="test")["agreement"]
    1.0
    """
    t0 = time.time()
    ca, cb = load_classifier(ws, old), load_classifier(ws, new)
    if ca.multi_label or cb.multi_label:
        raise UsageError("models diff compares single-label classifiers.", fix="Compare multi-label versions with inhouse eval.")
    label_col = label_col or _trained_label_col(cb, dataset)
    df = _documents(ws, dataset, split, limit, label_col)
    texts, hashes = df["text"].tolist(), df["text_hash"].tolist()
    pa, pb = cached_scores(ca, texts, hashes), cached_scores(cb, texts, hashes)  # cached, and reports progress
    la, sa = _top(ca, pa)
    lb, sb = _top(cb, pb)
    gold = [g if isinstance(g, str) else None for g in df["label"].tolist()]
    same = np.array([x == y for x, y in zip(la, lb)])
    labelled = [i for i, g in enumerate(gold) if g is not None]
    out = {"old": _side(ca), "new": _side(cb), "dataset": dataset, "split": split, "label_col": label_col,
           "documents": len(texts),
           "labelled": len(labelled), "agreement": float(same.mean()), "flipped": int((~same).sum()),
           "labels_added": sorted(set(cb.labels) - set(ca.labels)), "labels_removed": sorted(set(ca.labels) - set(cb.labels))}
    out["per_class"] = _per_class(la, lb, gold, labelled)
    if labelled:
        g = [gold[i] for i in labelled]
        ma, mb = label_report(g, [la[i] for i in labelled]), label_report(g, [lb[i] for i in labelled])
        out["metrics"] = {k: {"old": ma[k], "new": mb[k], "delta": mb[k] - ma[k]} for k in ("accuracy", "macro_f1")}
        out["fixed"] = sum(1 for i in labelled if la[i] != gold[i] and lb[i] == gold[i])
        out["broken"] = sum(1 for i in labelled if la[i] == gold[i] and lb[i] != gold[i])
    out["new_labels"] = new_label_coverage(ws, ca, cb, la, lb, out["per_class"])
    id_name = id_output_name(id_column(ws, dataset), ["text", "old", "old_score", "new", "new_score", "gold", "verdict"])
    out["id_column"] = id_name or ROW_COLUMN
    out["examples"] = _examples(df, la, sa, lb, sb, gold, same, examples, id_name)
    out["weights"] = weight_changes(ws, ca.version, cb.version)
    out["seconds"] = round(time.time() - t0, 3)
    ws.record_run("models.diff", {"old": out["old"], "dataset": dataset, "split": split, "limit": limit},
                  {k: out[k] for k in ("agreement", "flipped", "documents", "metrics") if k in out},
                  model=cb.version.ref, model_sha256=cb.version.sha256, started_at=t0)
    return out


def _trained_label_col(clf, dataset: str) -> str:
    """The label column ``clf`` learnt when ``dataset`` is the one it was trained on, else ``label``."""
    trained = clf.version.manifest.get("dataset") or {}
    return (trained.get("label_col") or "label") if trained.get("name") == dataset else "label"


def _side(clf) -> dict:
    v = clf.version
    return {"ref": v.ref, "sha256": v.sha256, "method": v.manifest.get("method"), "format": v.manifest.get("format", "safetensors")}


def _per_class(la: list, lb: list, gold: list, labelled: list[int]) -> list[dict]:
    ca, cb = Counter(la), Counter(lb)
    classes = sorted(set(ca) | set(cb) | {gold[i] for i in labelled})
    rows = []
    if labelled:
        g = [gold[i] for i in labelled]
        ma = label_report(g, [la[i] for i in labelled], classes)["per_class"]
        mb = label_report(g, [lb[i] for i in labelled], classes)["per_class"]
    for c in classes:
        row = {"label": c, "old_count": ca.get(c, 0), "new_count": cb.get(c, 0), "count_delta": cb.get(c, 0) - ca.get(c, 0)}
        if labelled:
            row.update(support=ma[c]["support"], old_f1=ma[c]["f1"], new_f1=mb[c]["f1"], f1_delta=mb[c]["f1"] - ma[c]["f1"],
                       old_recall=ma[c]["recall"], new_recall=mb[c]["recall"])
        rows.append(row)
    key = (lambda r: -abs(r["f1_delta"])) if labelled else (lambda r: -abs(r["count_delta"]))
    return sorted(rows, key=lambda r: (key(r), r["label"]))


def _examples(df, la, sa, lb, sb, gold, same, n: int, id_name: str | None = None) -> list[dict]:
    flips = np.flatnonzero(~same)
    # the most confident flips first: where the new version is surest it disagrees
    order = flips[np.argsort(-sb[flips], kind="stable")][:n]
    out = []
    for i in order:
        ex = {id_name: df["source_id"].iloc[i]} if id_name else {}
        row = df["source_row"].iloc[i]
        ex[ROW_COLUMN] = None if row is None or row != row else int(row)
        ex |= {"doc_id": int(df["doc_id"].iloc[i]), "text": df["text"].iloc[i], "old": la[i], "old_score": float(sa[i]),
              "new": lb[i], "new_score": float(sb[i]), "gold": gold[i]}
        if gold[i] is not None:
            ex["verdict"] = "fixed" if lb[i] == gold[i] else ("broken" if la[i] == gold[i] else "both wrong")
        out.append(ex)
    return out


# ---------------------------------------------------------------- human ----

def render_diff(d: dict, classes: int = 10) -> str:
    """The human view of a diff (the CLI prints this)."""
    where = d["dataset"] + (f":{d['split']}" if d["split"] else "")
    lines = [f"{d['old']['ref']} ({d['old']['sha256'][:8]}) -> {d['new']['ref']} ({d['new']['sha256'][:8]}) on {where}, "
             f"{d['documents']} documents ({d['labelled']} labelled)",
             f"agreement {d['agreement']:.1%}  ({d['flipped']} flipped"
             + (f": {d['fixed']} fixed, {d['broken']} broken)" if "fixed" in d else ")")]
    if d["labels_added"] or d["labels_removed"]:
        lines.append(f"labels added {d['labels_added']}, removed {d['labels_removed']}")
    for k, m in (d.get("metrics") or {}).items():
        lines.append(f"{k:<10} {m['old']:.4f} -> {m['new']:.4f} ({m['delta']:+.4f})")
    moved = [r for r in d["per_class"] if r["count_delta"] or abs(r.get("f1_delta", 0)) > 1e-9][:classes]
    if moved:
        lines.append("")
        lines.append(f"{'class':<32}{'count old->new':>16}" + (f"{'f1 old->new':>18}{'delta':>9}" if d["labelled"] else ""))
        for r in moved:
            row = f"{r['label'][:31]:<32}{str(r['old_count']) + '->' + str(r['new_count']):>16}"
            if "f1_delta" in r:
                row += f"{r['old_f1']:>9.3f}->{r['new_f1']:<7.3f}{r['f1_delta']:>+9.3f}"
            lines.append(row)
    lines.extend(_new_label_lines(d.get("new_labels") or []))
    if d["examples"]:
        lines.append("")
        lines.append("flipped examples (most confident first):")
        for e in d["examples"]:
            verdict = f"  [{e['verdict']}, gold {e['gold']}]" if e.get("verdict") else ""
            key = d.get("id_column", "doc_id")
            lines.append(f"  {key} {e.get(key, e['doc_id'])}: {e['old']} ({e['old_score']:.2f}) -> {e['new']} "
                         f"({e['new_score']:.2f}){verdict}: {e['text'][:90]!r}")
    lines.append("")
    lines.append("weights: " + _weights_line(d["weights"]))
    return "\n".join(lines)


def _new_label_lines(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    lines = ["", "new labels (what the new version now covers):"]
    for r in rows:
        v = r.get("validation")
        val = (f"validation F1 {v['f1']:.3f}, recall {v['recall']:.3f} on {v['support']} rows" if v
               else "no validation rows")
        before = ", ".join(f"{k} {n}" for k, n in list(r["old_answers"].items())[:4]) or "-"
        c = r.get("candidate")
        made = f" (made from candidate {c['discovery_run']}:{c['candidate']})" if c else ""
        lines.append(f"  {r['label']}{made}: {val}; given to {r['predicted']} documents, which the old version "
                     f"answered as: {before}")
    return lines


def _weights_line(w: dict) -> str:
    parts = []
    for part in ("head", "encoder"):
        s = w.get(part)
        if isinstance(s, dict) and s.get("note"):
            parts.append(f"{part}: {s['note']}")
        elif isinstance(s, dict) and "mean_relative_change" in s:
            parts.append(f"{part} {s['changed']}/{s['tensors']} tensors changed, mean relative change "
                         f"{s['mean_relative_change']:.4f}, max {s['max_relative_change']:.4f}")
    for rel, s in (w.get("adapter") or {}).items():
        parts.append(f"{rel} {s['changed']}/{s['tensors']} tensors changed, mean relative change {s['mean_relative_change']:.4f}")
    if not parts:
        parts.append(w.get("note") or ", ".join(f"{k}={v}" for k, v in w.items() if not isinstance(v, (dict, list))))
    return "; ".join(parts)
