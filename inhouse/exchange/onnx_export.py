"""A classifier version as one ONNX graph: encoder, pooling, normalisation, head, softmax.

The graph takes ``input_ids`` and ``attention_mask`` (int64, batch x tokens)
and returns ``probabilities`` (batch x labels), ``embeddings`` (what the
head sees) and, for versions that abstain by distance, ``distance`` (batch:
:mod:`inhouse.classifiers.distance`, computed in float from those embeddings). The tokenizer files are saved beside ``model.onnx``, so
:class:`inhouse.backends.OnnxClassifier` needs nothing else. It is built from
the same torch modules the PyTorch classifier runs
(:meth:`inhouse.infer.Classifier.encoder_module`), exported with the
TorchScript exporter (opset 17), optionally quantized to int8 with
onnxruntime's dynamic quantization (per channel, the head left in float), and
checked against the original on sample texts before it is accepted.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> info = write_onnx(ws, load(ws, "intents@3"), folder, quantize="int8")
    >>> info["onnx"]["opset"], info["onnx"]["quantize"]
    (17, 'int8')
"""

from __future__ import annotations

import copy
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .. import registry
from ..classifiers.base import ONNX_FILE
from ..classifiers.distance import torch_distance
from ..classifiers.onnx import OnnxClassifier
from ..errors import MissingDependency, UsageError
from ..models.catalog import EMBEDDING_KINDS, get_model
from ..workspace.store import Workspace

OPSET = 17


def _graph_module(clf):
    """Wrap the classifier's torch modules into one module with tensor inputs."""
    import torch

    backbone = clf.encoder_module()
    if backbone is None:
        raise UsageError(f"{clf.version.ref}: its base {clf.base!r} is not a transformer, so it has no ONNX graph.",
                         fix="Export it with --format folder instead.")
    if type(backbone.transformer).__name__.startswith("Peft"):
        # LoRA folded into plain weights, on a copy: the classifier (and its backbone) is cached and
        # shared (inhouse.classifiers.load), so merging in place would change every later prediction
        from ..classifiers.backbone import Backbone

        merged = copy.deepcopy(backbone.transformer).merge_and_unload()
        backbone = Backbone(merged, backbone.tokenizer, pooling=backbone.pooling, normalize=backbone.normalize,
                            max_length=backbone.max_length).eval()
    base = get_model(clf.ws, clf.base)
    frozen_embedding_model = clf.method == "head" and base.kind in EMBEDDING_KINDS
    dist = getattr(clf, "distance", None)

    class Graph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = backbone
            self.head = torch.nn.Linear(clf.head.W.shape[1], clf.head.W.shape[0])
            with torch.no_grad():
                self.head.weight.copy_(torch.from_numpy(np.asarray(clf.head.W, dtype=np.float32)))
                self.head.bias.copy_(torch.from_numpy(np.asarray(clf.head.b, dtype=np.float32)))
            # the distance rule's distance to the training rows (inhouse.classifiers.distance), kept in float
            self.abstain = torch_distance(dist) if dist is not None else None

        def forward(self, input_ids, attention_mask):
            emb = self.backbone({"input_ids": input_ids, "attention_mask": attention_mask})
            if frozen_embedding_model:  # the embedding cache path normalises once more (inhouse.embed)
                emb = torch.nn.functional.normalize(emb, dim=-1)
            logits = self.head(emb)
            probs = torch.sigmoid(logits) if clf.multi_label else torch.softmax(logits, dim=-1)
            if self.abstain is not None:
                return probs, emb, self.abstain(emb)
            return probs, emb

    return Graph().eval(), backbone.tokenizer, _max_length(clf, frozen_embedding_model)


def _max_length(clf, frozen_embedding_model: bool) -> int:
    """The truncation the original applies: the sentence encoder's own for frozen bases."""
    if frozen_embedding_model:
        from ..models.encoders import load_encoder

        st = getattr(load_encoder(clf.ws, clf.base), "st", None)
        n = getattr(st, "max_seq_length", None) or getattr(getattr(st, "tokenizer", None), "model_max_length", None)
        if n and n < 100_000:
            return int(n)
        return 512
    return int(clf.manifest.get("encoder", {}).get("max_length", 128))


@contextmanager
def eager_attention(module):
    """Trace the encoder's attention as plain ops (scores + mask bias -> softmax) and put its own back after.
    The SDPA trace adds a NaN guard (IsNaN + Where over every attention score): with it, int8 MiniLM cost
    1.62 ms CPU per short text, without it 1.50 (same texts and batches, measured under load); the
    probabilities are the same function (the parity and int8 checks run on the exported graph)."""
    model = getattr(getattr(module, "backbone", None), "transformer", None)
    before = getattr(getattr(model, "config", None), "_attn_implementation", None)
    switched = False
    if before not in (None, "eager") and hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation("eager")
            switched = True
        except (ValueError, NotImplementedError):  # a model without an eager path: traced as it is
            pass
    try:
        yield
    finally:
        if switched:
            model.set_attn_implementation(before)


def export_graph(clf, folder: Path) -> dict:
    """Write ``model.onnx`` and the tokenizer files into ``folder``; return the graph's facts."""
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
        import torch
    except ImportError as e:  # pragma: no cover - depends on the install
        raise MissingDependency("onnx", "onnx", "ONNX export") from e
    module, tokenizer, max_length = _graph_module(clf)
    sample = tokenizer(["a short example", "a somewhat longer example sentence to export"], padding=True,
                       truncation=True, max_length=max_length, return_tensors="pt")
    outputs = ["probabilities", "embeddings"] + (["distance"] if module.abstain is not None else [])
    dynamic = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
               **{name: {0: "batch"} for name in outputs}}
    with warnings.catch_warnings(), torch.inference_mode(), eager_attention(module):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (sample["input_ids"], sample["attention_mask"]), str(folder / ONNX_FILE),
                          input_names=["input_ids", "attention_mask"], output_names=outputs,
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False, do_constant_folding=True)
    tokenizer.save_pretrained(str(folder))
    return {"opset": OPSET, "max_length": max_length, "inputs": ["input_ids", "attention_mask"],
            "outputs": outputs, "activation": "sigmoid" if clf.multi_label else "softmax",
            "exporter": f"torch.onnx (TorchScript) {torch.__version__}"}


def quantize_int8(path: Path) -> dict:
    """Dynamic int8 quantization in place: per-channel weights, the classification head and the abstention
    distance kept in float."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(path), load_external_data=False)
    head_nodes = [n.name for n in model.graph.node if n.name.startswith(("/head/", "/abstain/"))]
    del model
    tmp = path.with_name(path.stem + ".int8.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import logging

        level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic logs a pre-processing hint
        try:
            quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                             nodes_to_exclude=head_nodes)
        finally:
            logging.getLogger().setLevel(level)
    before = path.stat().st_size
    tmp.replace(path)
    return {"quantize": "int8", "quantization": {"method": "onnxruntime.quantize_dynamic", "weight_type": "QInt8",
                                                 "per_channel": True, "excluded": head_nodes,
                                                 "float_bytes": before, "int8_bytes": path.stat().st_size}}


def parity(original, exported, texts: list[str]) -> dict:
    """How closely the exported model follows the original on ``texts``.

    Illustrative (needs a workspace with data; not run as a doctest):
    >>> parity(clf, onnx_clf, texts)["agreement"]
    1.0
    """
    if not texts:
        raise UsageError("the parity check needs at least one text.", fix="Give --check-dataset with documents in it.")
    p0, d0 = original.predict_scores(list(texts))
    p1, d1 = exported.predict_scores(list(texts))
    p0 = np.asarray(p0, dtype=np.float32)
    same = p0.argmax(1) == p1.argmax(1)
    out = {"texts": len(texts), "agreement": float(same.mean()), "disagreements": int((~same).sum()),
           "max_abs_diff": float(np.abs(p0 - p1).max()), "mean_abs_diff": float(np.abs(p0 - p1).mean())}
    if d0 is not None and d1 is not None:  # the distance rule: the same texts turned away
        a0, a1 = original.abstains(p0, d0), exported.abstains(p1, d1)
        out.update(abstain_agreement=float((a0 == a1).mean()),
                   distance_max_rel_diff=float((np.abs(d0 - d1) / np.maximum(np.abs(d0), 1e-6)).max()))
    return out


def write_onnx(ws: Workspace, v: registry.Version, folder: Path, *, quantize: str | None,
               check_texts: list[str], check_source: str) -> dict:
    """Export ``v`` into ``folder`` and check it; returns the manifest fields of the ONNX artifact."""
    from ..classifiers.load import load_classifier

    t0 = time.time()
    clf = load_classifier(ws, v)
    if isinstance(clf, OnnxClassifier):
        raise UsageError(f"{v.ref} is already an ONNX model.", fix="Export it with --format folder to move it as it is.")
    info = export_graph(clf, folder)
    if quantize == "int8":
        info.update(quantize_int8(folder / ONNX_FILE))
    elif quantize:
        raise UsageError(f"--quantize {quantize!r} is unknown; the choice is 'int8'.")
    else:
        info["quantize"] = None
    fields = {k: val for k, val in v.manifest.items() if k not in registry.RESERVED_FIELDS}
    fields.update(format="onnx", onnx=info, derived_from={"ref": v.ref, "sha256": v.sha256, "format": v.manifest.get("format", "safetensors")})
    files = registry.file_listing(folder)
    probe = registry.Version(v.name, v.version, registry.content_hash(files, fields), folder, {**fields, "files": files})
    result = parity(clf, OnnxClassifier(probe, ws=ws), check_texts)
    info["parity"] = {**result, "source": check_source, "against": v.ref}
    info["seconds"] = round(time.time() - t0, 3)
    return fields
