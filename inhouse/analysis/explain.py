"""What training changed, and why a model predicts what it does.

:func:`weight_changes` compares a version's encoder with its base (or another
version) tensor by tensor: the relative change ``||W_tuned - W_base|| / ||W_base||``,
the share of weights that moved (``|delta| > tol``), per layer and overall; for
LoRA it reads the adapters (rank, ``||B A||`` x scaling) instead; for ``head``
it says the encoder is unchanged and reports the head's norms.

:func:`explain` gives a text's predicted label, its top-k scores and the
training examples nearest to it in the model's embedding space: those of the
predicted label (support) and the nearest of other labels.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> weight_changes(ws, "intents@1")["overall"]["relative_change"]
    0.0213
    >>> explain(ws, "intents@1", "my card never came", k=3)["label"]
    'card_arrival'
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..classifiers.backbone import base_backbone
from ..classifiers.base import INDEX_FILE, ROWS_FILE, Classifier
from ..classifiers.load import load_classifier
from ..errors import NotFound, UsageError
from ..training.data import label_text
from ..workspace.documents import ROW_COLUMN, id_column, id_output_name, key_fields, read_documents
from ..workspace.files import atomic_path
from ..workspace.store import Workspace

TOL = 1e-7
_LAYER_RE = re.compile(r"^(.*?(?:layer|layers|h|blocks)\.\d+)\.")


def layer_of(name: str) -> str:
    """``encoder.layer.3.attention.self.query.weight`` -> ``encoder.layer.3``; else the first part."""
    name = name.replace("base_model.model.", "")
    m = _LAYER_RE.match(name)
    return m.group(1) if m else name.split(".")[0]


def _state(module) -> dict:
    """Parameters of a (non-LoRA) transformer as float32 tensors, by clean name."""
    return {n: p.detach().float() for n, p in module.named_parameters()}


def _head_summary(clf: Classifier) -> dict:
    W, b = clf.head.W, clf.head.b
    per = np.linalg.norm(W, axis=1)
    order = np.argsort(-per)
    return {"W_norm": round(float(np.linalg.norm(W)), 4), "b_norm": round(float(np.linalg.norm(b)), 4),
            "shape": list(W.shape),
            "largest_label_norms": [{"label": clf.labels[i], "norm": round(float(per[i]), 4)} for i in order[:5]]}


def _compare(tuned: dict, base: dict, tol: float) -> list[dict]:
    import torch

    rows = []
    for name, w in tuned.items():
        b = base.get(name)
        if b is None or b.shape != w.shape:
            continue
        d = w - b
        rows.append({"tensor": name, "layer": layer_of(name), "shape": list(w.shape), "n_params": int(w.numel()),
                     "delta_norm": float(torch.linalg.vector_norm(d)), "base_norm": float(torch.linalg.vector_norm(b)),
                     "changed": int((d.abs() > tol).sum())})
    return rows


def _lora_rows(peft_model, tol: float) -> tuple[list[dict], dict]:
    """Effective change of each LoRA-wrapped weight, plus the adapters' ranks and norms."""
    import torch

    rows, adapters = [], []
    for name, mod in peft_model.named_modules():
        if not hasattr(mod, "lora_A") or not hasattr(mod, "base_layer") or "default" not in mod.lora_A:
            continue
        A, B = mod.lora_A["default"].weight.detach().float(), mod.lora_B["default"].weight.detach().float()
        delta = (B @ A) * float(mod.scaling["default"])
        W = mod.base_layer.weight.detach().float()
        clean = name.replace("base_model.model.", "") + ".weight"
        rows.append({"tensor": clean, "layer": layer_of(clean), "shape": list(W.shape), "n_params": int(W.numel()),
                     "delta_norm": float(torch.linalg.vector_norm(delta)), "base_norm": float(torch.linalg.vector_norm(W)),
                     "changed": int((delta.abs() > tol).sum())})
        adapters.append({"module": clean[:-len(".weight")], "rank": int(A.shape[0]),
                         "BA_norm": round(float(torch.linalg.vector_norm(delta)), 6),
                         "A_norm": round(float(torch.linalg.vector_norm(A)), 4),
                         "B_norm": round(float(torch.linalg.vector_norm(B)), 6)})
    n_adapter = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)
    return rows, {"adapters": adapters, "n_adapters": len(adapters), "adapter_params": int(n_adapter),
                  "ranks": sorted({a["rank"] for a in adapters})}


def _summarise(rows: list[dict], total_params: int) -> dict:
    layers: dict[str, dict] = {}
    for r in rows:
        L = layers.setdefault(r["layer"], {"layer": r["layer"], "d2": 0.0, "b2": 0.0, "n_params": 0, "changed": 0})
        L["d2"] += r["delta_norm"] ** 2
        L["b2"] += r["base_norm"] ** 2
        L["n_params"] += r["n_params"]
        L["changed"] += r["changed"]
    out = [{"layer": k, "relative_change": round(float(np.sqrt(v["d2"] / max(v["b2"], 1e-30))), 6),
            "changed_share": round(v["changed"] / max(v["n_params"], 1), 6), "n_params": v["n_params"]}
           for k, v in layers.items()]
    d2, b2 = sum(r["delta_norm"] ** 2 for r in rows), sum(r["base_norm"] ** 2 for r in rows)
    changed = sum(r["changed"] for r in rows)
    overall = {"relative_change": round(float(np.sqrt(d2 / max(b2, 1e-30))), 6),
               "changed_share": round(changed / max(total_params, 1), 6), "changed_params": int(changed),
               "n_params": int(total_params)}
    return {"overall": overall, "layers": out,
            "top_layers": [l["layer"] for l in sorted(out, key=lambda l: -l["relative_change"])[:5]]}


def _against_module(ws: Workspace, clf: Classifier, against: str | None):
    """(label, sha256, transformer module) to compare with: the base, a base model by name, or a version."""
    from ..models.catalog import CATALOG, get_model

    if against is None or against == clf.base or (against in CATALOG):
        name = against or clf.base
        m = get_model(ws, name)
        return name, m.sha256, base_backbone(ws, name, clf.manifest.get("encoder", {}).get("max_length", 128)).transformer, None
    try:
        other = load_classifier(ws, against)
    except NotFound:
        m = get_model(ws, against)
        return against, m.sha256, base_backbone(ws, against, 128).transformer, None
    mod = other.encoder_module()
    t = mod.transformer if mod is not None else None
    if other.method == "lora" and t is not None:
        t = _merged_copy(t)
    return other.version.ref, other.sha256, t, other


def _merged_copy(peft_model):
    import copy

    return copy.deepcopy(peft_model).merge_and_unload()


def weight_changes(ws: Workspace, ref: str, against: str | None = None, *, tol: float = TOL,
                   chart: str | Path | None = None) -> dict:
    """How far a version's encoder moved from its base (or from ``against``): see the module docstring."""
    clf = load_classifier(ws, ref)
    if not hasattr(clf, "encoder_module"):
        raise UsageError(f"{clf.ref} is a {clf.manifest.get('format')} version; its weights are one compiled graph, "
                         "not tensors to compare.",
                         fix=f"Run explain-weights on the version it was derived from: {(clf.manifest.get('derived_from') or {}).get('ref', 'the original')}")
    if clf.method == "head" and against is None:  # the encoder is the frozen base: nothing to load or compare
        from ..models.catalog import get_model

        label, against_sha, base_t, other = clf.base, get_model(ws, clf.base).sha256, None, None
    else:
        label, against_sha, base_t, other = _against_module(ws, clf, against)
    result = {"model": clf.version.ref, "sha256": clf.sha256, "method": clf.method, "base": clf.base,
              "against": label, "against_sha256": against_sha, "tolerance": tol, "lora": None,
              "head": _head_summary(clf)}
    mod = clf.encoder_module() if base_t is not None else None
    if mod is None or base_t is None:
        rows, total = [], 0
        result["note"] = f"{clf.base!r} is not a transformer; no encoder weights to compare."
    elif clf.method == "lora" and other is None:
        rows, result["lora"] = _lora_rows(mod.transformer, tol)
        total = sum(p.numel() for n, p in mod.transformer.named_parameters() if "lora_" not in n)
    else:
        tuned = mod.transformer
        if clf.method == "lora":
            result["lora"] = _lora_rows(tuned, tol)[1]
            tuned = _merged_copy(tuned)
        rows = _compare(_state(tuned), _state(base_t), tol)
        total = sum(r["n_params"] for r in rows)
    result.update(_summarise(rows, total))
    result["encoder_changed"] = result["overall"]["changed_params"] > 0
    if clf.method == "head" and other is None:
        result["note"] = ("method 'head': the encoder is the frozen base (0 change); only the linear head was trained. "
                          "What pulls hardest toward each class:")
        result["classes"] = head_evidence(ws, clf)
    if other is not None and other.labels == clf.labels and hasattr(other, "head"):
        dW = np.linalg.norm(clf.head.W - other.head.W) / max(np.linalg.norm(other.head.W), 1e-12)
        result["head"]["relative_change_vs_against"] = round(float(dW), 6)
    result["tensors"] = [{k: r[k] for k in ("tensor", "layer", "shape", "n_params", "changed")} |
                         {"relative_change": round(r["delta_norm"] / max(r["base_norm"], 1e-30), 6)} for r in rows]
    if chart:
        result["chart_png"] = str(change_chart(result, Path(chart)))
    return result


def change_chart(result: dict, path: Path) -> Path:
    """A bar chart of relative change per layer, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = result["layers"] or [{"layer": "(encoder)", "relative_change": 0.0}]
    fig, ax = plt.subplots(figsize=(max(5, 0.45 * len(layers) + 2), 4))
    ax.bar(range(len(layers)), [l["relative_change"] for l in layers], color="#3b75af")
    ax.set_xticks(range(len(layers)), [l["layer"] for l in layers], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("||W_tuned - W_base|| / ||W_base||")
    ax.set_title(f"{result['model']} vs {result['against']} ({result['method']})", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


# -------------------------------------------------------------- explain ----

def _training_index(clf: Classifier) -> tuple[np.ndarray, dict]:
    from safetensors.numpy import load_file

    t = load_file(str(clf.version.path / INDEX_FILE))
    rows = json.loads((clf.version.path / ROWS_FILE).read_text())
    X = t["embeddings"].astype(np.float32)
    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    return X, {**rows, "label_idx": t["label_idx"]}


def _texts_for(ws: Workspace, dataset: str, doc_ids: list[int], hashes: list[str]) -> tuple[list, list]:
    """Texts of training rows from the dataset, None where the row is gone or changed, and
    their (user id, source row) keys, None where the row is gone."""
    try:
        df = read_documents(ws, dataset, columns=["doc_id", "text", "text_hash", "source_id", "source_row"])
    except NotFound:
        return [None] * len(doc_ids), [None] * len(doc_ids)
    by_id = {int(d): (t, h, (s, None if r is None or r != r else int(r)))
             for d, t, h, s, r in zip(df["doc_id"], df["text"], df["text_hash"], df["source_id"], df["source_row"])}
    texts = [by_id[d][0] if d in by_id and by_id[d][1] == h else None for d, h in zip(doc_ids, hashes)]
    return texts, [by_id[d][2] if d in by_id else None for d in doc_ids]


def _id_name(ws: Workspace, dataset: str) -> str | None:
    try:
        return id_column(ws, dataset)
    except NotFound:
        return None


def head_evidence(ws: Workspace, clf: Classifier, k: int = 5, min_docs: int = 3) -> list[dict]:
    """Per class, the words and training examples that pull hardest toward it (for a head-only version).

    Examples: the training rows of the class with the highest logit for it.
    Words: over all training rows, the words whose rows score highest for the
    class above the average row (at least ``min_docs`` rows contain the word).
    Empty when the version keeps no training rows.
    """
    if not (clf.version.path / INDEX_FILE).is_file():
        return []
    from ..topics.text import content_words

    X, rows = _training_index(clf)
    Z = clf.head.logits(X)
    texts, _ = _texts_for(ws, rows["dataset"], [int(d) for d in rows["doc_ids"]], list(rows["text_hashes"]))
    words = [content_words(t) if t else set() for t in texts]
    index: dict[str, list[int]] = {}
    for i, ws_ in enumerate(words):
        for w in ws_:
            index.setdefault(w, []).append(i)
    vocab = [w for w, ids in index.items() if len(ids) >= min_docs]
    out = []
    for c, label in enumerate(clf.labels):
        z = Z[:, c] - Z[:, c].mean()
        scored = sorted(((float(z[index[w]].mean()), w) for w in vocab), reverse=True)[:k]
        mine = np.flatnonzero(rows["label_idx"] == c)
        top = mine[np.argsort(-Z[mine, c], kind="stable")[:k]]
        out.append({"label": label, "words": [{"word": w, "pull": round(s, 3)} for s, w in scored],
                    "examples": [{"doc_id": int(rows["doc_ids"][i]), "logit": round(float(Z[i, c]), 3),
                                  "text": texts[i]} for i in top if texts[i] is not None][:3]})
    return out


def explain(ws: Workspace, ref: str, text: str, *, k: int = 5) -> dict:
    """The prediction for ``text``, its top-k scores and the nearest training examples."""
    clf = load_classifier(ws, ref)
    if not (clf.version.path / INDEX_FILE).is_file():
        raise UsageError(f"{clf.ref} keeps no training examples (an ONNX export or an import without them), "
                         "so it cannot show the examples behind a prediction.",
                         fix=f"Use inhouse classify for its prediction, or explain the version it came from.")
    q = clf.embed([text])
    P, distance = clf.predict_scores([text])
    probs = P[0]
    order = np.argsort(-probs, kind="stable")[:max(1, k)]
    predicted = clf.decide(P, distance=distance)[0]
    abstained = bool(clf.abstains(P, distance)[0])
    best = predicted if isinstance(predicted, list) else clf.labels[int(clf.best_in_scope(probs[None])[0][0])]
    wanted = set(best if isinstance(best, list) else [best])  # examples behind the best answer, even when abstaining
    q = q[0] / max(np.linalg.norm(q[0]), 1e-12)
    X, rows = _training_index(clf)
    sims = X @ q
    same = np.array([clf.labels[i] in wanted for i in rows["label_idx"]])
    picks = {"supporting": np.flatnonzero(same), "nearest_other": np.flatnonzero(~same)}
    out = {"model": clf.version.ref, "sha256": clf.sha256, "text": text, "label": predicted,
           "score": float(probs[order[0]]), "abstained": abstained,
           **({"best_in_scope": best, "abstain_threshold": clf.abstain_threshold} if abstained else {}),
           "top_k": [{"label": clf.labels[i], "score": round(float(probs[i]), 6)} for i in order]}
    id_name = id_output_name(_id_name(ws, rows["dataset"]), ["label", "similarity", "text"])
    out["dataset"], out["id_column"] = rows["dataset"], id_name or ROW_COLUMN
    for key, idx in picks.items():
        top = idx[np.argsort(-sims[idx], kind="stable")[:k]]
        ids = [int(rows["doc_ids"][i]) for i in top]
        texts, keys = _texts_for(ws, rows["dataset"], ids, [rows["text_hashes"][i] for i in top])
        labels = [clf.labels[int(rows["label_idx"][i])] for i in top]
        texts = [label_text(l) if d < 0 else t for d, l, t in zip(ids, labels, texts)]  # d < 0: a label-name row
        out[key] = [{**key_fields(id_name, kk), "doc_id": d, "label": l, "similarity": round(float(sims[i]), 4),
                     "text": t} for d, i, l, t, kk in zip(ids, top, labels, texts, keys)]
    return out
