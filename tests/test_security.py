"""Hostile inputs: crafted exports, edited manifests, poisoned caches, model folders that name code.

Every malicious export here is made for real: a real export written by
``export_version``, then edited and its hashes recomputed, so that the manifest
is self-consistent and only the new checks can refuse it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from inhouse import registry
from inhouse.errors import InputError, IntegrityError
from inhouse.workspace.files import sha256_file
from inhouse.workspace.store import Workspace

TEXTS = ["my card has not arrived yet", "I want a refund for this", "someone stole my card",
         "how long does delivery take", "the refund is missing"]
LABELS = ["card_arrival", "card_lost", "refund"]


# ----------------------------------------------------------------- helpers ----

def tiny_st_folder(folder: Path) -> Path:
    """A real, tiny sentence-transformers folder (random 2-layer BERT, MiniLM's tokenizer)."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from inhouse.models.catalog import CATALOG

    tok = AutoTokenizer.from_pretrained(str(CATALOG["minilm-l6"].locate()))
    torch.manual_seed(0)
    hf = folder.parent / (folder.name + "-hf")
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=128)).save_pretrained(hf)
    tok.save_pretrained(hf)
    word = models.Transformer(str(hf), max_seq_length=32)
    st = SentenceTransformer(modules=[word, models.Pooling(word.get_word_embedding_dimension(), "mean"), models.Normalize()],
                             device="cpu")
    st.save(str(folder), create_model_card=False, safe_serialization=True)
    shutil.rmtree(hf)
    return folder


def head_version(ws: Workspace, name: str, base: str = "minilm-l6", dim: int = 384, seed: int = 0, **extra):
    """A real classifier version: a random linear head on a real base encoder."""
    from inhouse.models.catalog import get_model

    b = get_model(ws, base)

    def build(folder: Path) -> dict:
        rng = np.random.default_rng(seed)
        save_file({"W": rng.normal(size=(len(LABELS), dim)).astype(np.float32) * 5,
                   "b": rng.normal(size=len(LABELS)).astype(np.float32)}, str(folder / "head.safetensors"))
        return {"kind": "classifier", "method": "head", "labels": list(LABELS), "format": "safetensors",
                "base": {"name": b.name, "sha256": b.sha256, "kind": b.kind}, "multi_label": False, "threshold": 0.5,
                "encoder": {"pooling": "mean", "normalize": True, "max_length": 128, "frozen": True},
                "train_seconds": 1.5, **extra}

    return registry.save_version(ws, name, build)


def rehash(src: Path, manifest: dict) -> None:
    """Make an edited export self-consistent again: file entries, base bundle, version hash."""
    from inhouse.workspace.files import json_dumps, sha256_bytes

    def listing_hash(hashes: dict) -> str:  # a model folder's sha256 (inhouse.models.catalog.hash_model)
        return sha256_bytes(json_dumps([[r, h] for r, h in sorted(hashes.items())]).encode())

    for rel, meta in manifest["files"].items():
        p = src / "model" / rel
        if p.is_file():
            meta.update(sha256=sha256_file(p), size=p.stat().st_size)
    bundled = manifest["export"].get("base")
    if bundled:
        for rel, meta in bundled["files"].items():
            p = src / "base" / rel
            if p.is_file():
                meta.update(sha256=sha256_file(p), size=p.stat().st_size)
        bundled["sha256"] = listing_hash({r: m["sha256"] for r, m in bundled["files"].items()})
        manifest["base"]["sha256"] = bundled["sha256"]
    manifest["sha256"] = registry.content_hash(manifest["files"], manifest)  # under the rule this inhouse writes
    (src / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


def nothing_registered(ws: Workspace) -> None:
    assert registry.versions(ws) == []
    assert ws.db.execute("SELECT COUNT(*) FROM base_models").fetchone()[0] == 0
    objects, bases = ws.home / "models" / "objects", ws.home / "models" / "bases"
    assert not objects.exists() or list(objects.iterdir()) == []
    assert not bases.exists() or list(bases.iterdir()) == []
    assert list((ws.home / "tmp").glob("build-*")) == []


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A source workspace with a head version on minilm-l6 and one on a tiny user-registered encoder."""
    from inhouse.models.catalog import add_model

    home = tmp_path_factory.mktemp("security-source")
    ws = Workspace.open(home)
    head_version(ws, "intents")
    add_model(ws, "tiny-st", tiny_st_folder(home.parent / "tiny-st"))
    head_version(ws, "tiny", base="tiny-st", dim=32)
    return ws


@pytest.fixture
def export_of(source, tmp_path):
    from inhouse.exchange.export import export_version

    def make(ref: str, *, include_base: bool = False, where: str = "export") -> tuple[Path, dict]:
        out = tmp_path / where
        export_version(source, ref, out, include_base=include_base)
        return out, json.loads((out / "manifest.json").read_text())

    return make


# ----------------------------------------------------------- 1. import paths ----

def test_a_manifest_path_that_climbs_out_is_refused_and_nothing_is_written(ws, export_of, tmp_path):
    from inhouse.exchange.export import import_version

    src, m = export_of("intents@1", where="a/b/c/export")
    name = f"escaped-{os.getpid()}.bin"
    planted = tmp_path / "a" / name  # what model/../../../../NAME names, beside the export
    planted.write_bytes(b"payload")
    m["files"][f"../../../../{name}"] = {"sha256": sha256_file(planted), "size": planted.stat().st_size}
    rehash(src, m)
    escaped = ws.home.parent.parent / name  # where the old import wrote it: tmp/build-*/../../../../NAME
    try:
        with pytest.raises(IntegrityError, match=r"has a '\.\.'"):
            import_version(ws, src, name="evil")
        assert not escaped.exists()
    finally:
        escaped.unlink(missing_ok=True)
    nothing_registered(ws)


@pytest.mark.parametrize("rel,problem", [
    ("/etc/hostname", "an absolute path"), ("sub\\head.safetensors", "a backslash"), ("C:head.bin", "a drive letter"),
    ("", "no name"), ("./head2.safetensors", "a '..', '.' or empty"), ("a//b", "a '..', '.' or empty")])
def test_absolute_windows_and_empty_paths_are_refused_with_the_guards_error(ws, export_of, rel, problem):
    from inhouse.exchange.export import import_version

    src, m = export_of("intents@1")
    m["files"][rel] = dict(m["files"]["head.safetensors"])
    rehash(src, m)
    with pytest.raises(IntegrityError, match=problem):
        import_version(ws, src, name="evil")
    nothing_registered(ws)


def test_links_in_an_export_are_refused(ws, export_of, tmp_path):
    from inhouse.exchange.export import import_version

    src, m = export_of("intents@1")
    weights = src / "model" / "head.safetensors"
    outside = tmp_path / "outside.safetensors"
    shutil.move(weights, outside)
    weights.symlink_to(outside)  # same bytes, so every hash still matches
    with pytest.raises(IntegrityError, match="is a link"):
        import_version(ws, src, name="evil")
    nothing_registered(ws)


def test_bundled_base_paths_are_checked_before_anything_is_registered(ws, export_of):
    from inhouse.exchange.export import import_version

    src, m = export_of("tiny@1", include_base=True)
    bundled = m["export"]["base"]
    assert "tokenizer.json" in bundled["files"]
    shutil.move(src / "base" / "tokenizer.json", src / "tokenizer.json")  # named as base/../tokenizer.json
    bundled["files"]["../tokenizer.json"] = bundled["files"].pop("tokenizer.json")
    rehash(src, m)
    with pytest.raises(IntegrityError, match=r"has a '\.\.'"):
        import_version(ws, src, name="evil")
    nothing_registered(ws)
    assert not (ws.home / "models" / "tokenizer.json").exists()


def test_a_clean_export_with_its_base_still_imports_and_predicts(ws, source, export_of):
    from inhouse.classifiers.load import load_classifier
    from inhouse.exchange.export import import_version

    src, m = export_of("tiny@1", include_base=True)
    got = import_version(ws, src)
    assert got["ref"] == "tiny@1" and got["sha256"] == m["sha256"] == registry.resolve(source, "tiny@1").sha256
    assert "registered from the export" in got["base_note"]
    a = load_classifier(source, "tiny@1").predict_proba(TEXTS)
    b = load_classifier(ws, "tiny@1").predict_proba(TEXTS)
    assert np.allclose(a, b, atol=1e-5)


def test_verify_never_reads_outside_the_version_folder(ws, tmp_path):
    v = head_version(ws, "m")
    mpath = v.path / "manifest.json"
    m = json.loads(mpath.read_text())
    outside = v.path.parent / "x"
    outside.write_bytes(b"secret")
    m["files"]["../x"] = {"sha256": sha256_file(outside), "size": 6}
    mpath.write_text(json.dumps(m))
    with pytest.raises(IntegrityError, match=r"the path '\.\./x' has a '\.\.'"):
        registry.verify(registry.resolve(ws, "m@1"))
    outside.unlink()
    m["files"].pop("../x")
    mpath.write_text(json.dumps(m))
    assert registry.load(ws, "m@1").sha256 == v.sha256
    weights = v.path / "head.safetensors"  # a link to identical bytes elsewhere: still refused
    moved = tmp_path / "w.safetensors"
    shutil.move(weights, moved)
    weights.symlink_to(moved)
    with pytest.raises(IntegrityError, match="is a link"):
        registry.load(ws, "m@1")


# ------------------------------------------------------------ 2. the hash ----

@pytest.mark.parametrize("edit", [
    {"threshold": 0.9}, {"multi_label": True}, {"format": "onnx"}, {"kind": "embedder"},
    {"encoder": {"pooling": "last", "normalize": True, "max_length": 128, "frozen": True}},
    {"encoder": {"pooling": "mean", "normalize": False, "max_length": 128, "frozen": True}},
    {"encoder": {"pooling": "mean", "normalize": True, "max_length": 16, "frozen": True}},
    {"onnx": {"max_length": 8, "activation": "sigmoid"}},
    {"base": {"name": "minilm-l6", "sha256": "0" * 64, "kind": "sentence-transformers"}},
    {"base": {"name": "minilm-l6", "sha256": "BASE", "kind": "hf"}},
])
def test_every_field_that_decides_a_prediction_is_hashed(ws, edit):
    v = head_version(ws, "m")
    m = registry.load(ws, "m@1").manifest
    edit = json.loads(json.dumps(edit).replace("BASE", m["base"]["sha256"]))
    assert registry.content_hash(m["files"], {**m, **edit}) != v.sha256
    # purely descriptive fields are not: a re-import, another name or machine keeps the hash
    same = {**m, "created_at": "2000-01-01T00:00:00Z", "created_by": "mallory", "train_seconds": 99.0, "name": "x",
            "origin": {"ref": "elsewhere@3"}, "base": {**m["base"], "name": "renamed-base"}}
    assert registry.content_hash(m["files"], same) == v.sha256


def test_an_edited_threshold_in_an_export_is_refused_or_imports_under_another_hash(ws, export_of):
    from inhouse.exchange.export import import_version

    src, m = export_of("intents@1")
    first = import_version(ws, src, name="m")
    m["threshold"] = 0.99
    m["multi_label"] = True
    (src / "manifest.json").write_text(json.dumps(m))  # hashes not recomputed: refused
    with pytest.raises(IntegrityError, match="does not hash to its sha256"):
        import_version(ws, src, name="m")
    rehash(src, m)  # recomputed: a different model, so a different hash and a new version
    second = import_version(ws, src, name="m")
    assert not second["existed"] and second["sha256"] != first["sha256"] and second["ref"] == "m@2"
    assert registry.load(ws, "m@2").manifest["multi_label"] is True


def test_the_database_copy_of_a_manifest_is_never_what_runs(ws, run_cli):
    from inhouse.classifiers.load import load_classifier

    head_version(ws, "m")
    db = sqlite3.connect(ws.db_path)
    row = json.loads(db.execute("SELECT manifest FROM model_versions WHERE name = 'm'").fetchone()[0])
    # a descriptive edit: verify passes, and the manifest it returns is the verified file's
    db.execute("UPDATE model_versions SET manifest = ? WHERE name = 'm'", (json.dumps({**row, "created_by": "mallory"}),))
    db.commit()
    v = registry.load(ws, "m@1")
    assert v.manifest["created_by"] != "mallory" and v.manifest["version"] == 1
    # an edit that would change predictions: reported, never used
    db.execute("UPDATE model_versions SET manifest = ? WHERE name = 'm'",
               (json.dumps({**row, "labels": list(reversed(row["labels"]))}),))
    db.commit()
    db.close()
    with pytest.raises(IntegrityError, match="database's copy of the manifest"):
        registry.verify(registry.resolve(ws, "m@1"))
    r = run_cli("models", "verify")
    assert r.exit_code == IntegrityError.exit_code and "BAD  m@1" in r.stdout
    with pytest.raises(IntegrityError):
        load_classifier(ws, "m@1")


def make_legacy(ws: Workspace, name: str) -> tuple[str, Path, dict]:
    """A version as inhouse wrote it before hash rule 2 (no hash_rule; the rule-1 hash)."""
    v = head_version(ws, name)
    m = json.loads((v.path / "manifest.json").read_text())
    m.pop("hash_rule")
    old = registry.content_hash(m["files"], m, rule=1)
    m["sha256"] = old
    folder = v.path.parent / old
    os.replace(v.path, folder)
    (folder / "manifest.json").write_text(json.dumps(m, indent=2, sort_keys=True))
    with ws.tx() as db:
        db.execute("UPDATE model_versions SET sha256 = ?, path = ?, manifest = ? WHERE name = ?",
                   (old, str(folder.relative_to(ws.home)), json.dumps({**m, "version": 1}), name))
    return old, folder, m


def test_versions_saved_under_the_old_hash_rule_still_verify(ws):
    from inhouse.classifiers.load import load_classifier

    old, folder, m = make_legacy(ws, "m")
    assert registry.load(ws, "m@1").sha256 == old
    assert len(load_classifier(ws, "m@1").predict(TEXTS[:2])) == 2
    m["labels"] = list(reversed(m["labels"]))  # rule 1 still covers labels
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IntegrityError, match="does not hash to"):
        registry.load(ws, "m@1")


def test_an_old_rule_export_is_registered_under_the_new_rule(ws, tmp_path):
    from inhouse.classifiers.load import load_classifier
    from inhouse.exchange.export import export_version, import_version

    other = Workspace.open(tmp_path / "old-ws")
    old, _, _ = make_legacy(other, "m")
    export_version(other, "m@1", tmp_path / "out", include_base=False)
    got = import_version(ws, tmp_path / "out")
    assert got["sha256"] != old and "hash rule 1" in got["base_note"]
    v = registry.load(ws, got["ref"])
    assert v.manifest["hash_rule"] == 2 and v.manifest["origin"]["exported_sha256"] == old
    assert import_version(ws, tmp_path / "out")["existed"]  # the same export again adds nothing
    a = load_classifier(other, "m@1").predict_proba(TEXTS)
    assert np.allclose(a, load_classifier(ws, got["ref"]).predict_proba(TEXTS), atol=1e-5)


# ------------------------------------------------------------- 2. caches ----

def _poison(part: Path, fn) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pq.read_table(part)
    vec = np.stack(t.column("vector").to_pylist()).astype(np.float32)
    bad = fn(vec)
    arr = pa.FixedSizeListArray.from_arrays(pa.array(bad.ravel()), bad.shape[1])
    pq.write_table(pa.table({"text_hash": t.column("text_hash"), "vector": arr}), part)


def test_a_poisoned_prediction_cache_is_ignored(ws):
    from inhouse.classifiers.load import load_classifier
    from inhouse.classifiers.predict import PredictionCache, classify_texts

    head_version(ws, "m")
    clf = load_classifier(ws, "m@1")
    truth = classify_texts(clf, TEXTS)["label"]
    store = PredictionCache(ws, clf.sha256)
    (part,) = store.parts()
    # every cached row now says the least likely label with certainty
    _poison(part, lambda p: np.eye(p.shape[1], dtype=np.float32)[p.argmin(1)])
    assert classify_texts(clf, TEXTS)["label"] == truth
    again = PredictionCache(ws, clf.sha256)
    again.get(["x"])
    assert part in again.skipped


def test_a_poisoned_embedding_cache_is_ignored(ws):
    from inhouse.models.embeddings import EmbeddingCache, embed_texts
    from inhouse.models.encoders import load_encoder

    enc = load_encoder(ws, "minilm-l6")
    truth = embed_texts(ws, enc, TEXTS)
    (part,) = EmbeddingCache(ws, enc.sha256).parts()
    _poison(part, lambda v: -v)
    stats: dict = {}
    assert np.allclose(embed_texts(ws, enc, TEXTS, stats=stats), truth, atol=1e-5)
    assert stats["computed"] == len(TEXTS) and stats["skipped_parts"] == 1
    stats = {}
    embed_texts(ws, enc, TEXTS, stats=stats)  # the recomputed part is sealed and used
    assert stats["computed"] == 0


# --------------------------------------------------- 3. code in model folders ----

def _edit_json(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data, indent=2))


def test_models_add_refuses_folders_that_name_code(ws, run_cli, tmp_path):
    from inhouse.models.catalog import get_model

    folder = tiny_st_folder(tmp_path / "enc")
    assert run_cli("models", "add", "good", folder).exit_code == 0
    _edit_json(folder / "modules.json", lambda d: d[1].update(type="subprocess.Popen"))
    r = run_cli("models", "add", "evil", folder)
    assert r.exit_code == InputError.exit_code
    assert "modules.json" in r.stderr and "'subprocess.Popen'" in r.stderr and "--trust-code" in r.stderr
    # changed after registering: refused when loaded
    with pytest.raises(InputError, match="subprocess.Popen"):  # UntrustedCode
        get_model(ws, "good")
    assert run_cli("models", "add", "audited", folder, "--trust-code").exit_code == 0
    assert get_model(ws, "audited").meta["trust_code"] is True

    _edit_json(folder / "modules.json", lambda d: d[1].update(type="sentence_transformers.models.Pooling"))
    _edit_json(folder / "config.json", lambda d: d.update(auto_map={"AutoModel": "modeling_evil.EvilModel"}))
    r = run_cli("models", "add", "evil", folder)
    assert r.exit_code == InputError.exit_code and "config.json" in r.stderr and "auto_map" in r.stderr
    _edit_json(folder / "config.json", lambda d: d.pop("auto_map"))
    _edit_json(folder / "modules.json", lambda d: d[1].update(path="../../elsewhere"))
    assert run_cli("models", "add", "evil", folder).exit_code == InputError.exit_code


def test_import_refuses_a_bundled_base_that_names_code_unless_trusted(ws, export_of, run_cli):
    src, m = export_of("tiny@1", include_base=True)
    _edit_json(src / "base" / "modules.json", lambda d: d[0].update(type="evil_module.Transformer"))
    rehash(src, m)
    r = run_cli("models", "import", src, "--name", "evil")
    assert r.exit_code == InputError.exit_code and "evil_module.Transformer" in r.stderr
    nothing_registered(ws)
    r = run_cli("models", "import", src, "--name", "evil", "--trust-code", "--json")
    assert r.exit_code == 0, r.stderr
    assert r.json["ref"] == "evil@1"


# --------------------------------------------------- 5. ONNX export and LoRA ----

def test_onnx_export_of_a_lora_version_leaves_the_cached_classifier_alone(ws, shared_data, run_cli, tmp_path):
    import pandas as pd

    from inhouse.classifiers.load import load_classifier
    from inhouse.exchange.export import export_version

    from inhouse.models.catalog import add_model

    add_model(ws, "tiny-st", tiny_st_folder(tmp_path / "tiny-st"))
    df = pd.read_csv(shared_data / "banking77" / "banking77.csv")
    df = df[df["label"].isin(LABELS_B77)]
    pd.concat([df[df.split == "train"].groupby("label").head(6), df[df.split == "test"].groupby("label").head(2)]
              ).to_csv(tmp_path / "s.csv", index=False)
    assert run_cli("ingest", tmp_path / "s.csv", "--dataset", "s", "--label-col", "label", "--split-col", "split").exit_code == 0
    r = run_cli("train", "--dataset", "s", "--name", "lo", "--base", "tiny-st", "--method", "lora", "--max-steps", "2",
                "--epochs", "1", "--batch-size", "8", "--max-seq-length", "32", "--json")
    assert r.exit_code == 0, r.stderr
    clf = load_classifier(ws, "lo")
    before = clf.predict_proba(TEXTS)
    export_version(ws, "lo@1", tmp_path / "onnx", format="onnx", check_texts=TEXTS, min_agreement=0.0)
    after = load_classifier(ws, "lo").predict_proba(TEXTS)
    assert np.array_equal(before, after)
    w = run_cli("explain-weights", "lo", "--json")
    assert w.exit_code == 0, w.stderr
    assert w.json["lora"]["adapters"]  # the adapters are still there, not merged into the shared model


LABELS_B77 = ["card_arrival", "lost_or_stolen_card", "request_refund"]
