"""Model registry: immutable versions, aliases, integrity, crash safety, diff, export/import."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from inhouse import registry
from inhouse.errors import Conflict, IntegrityError, NotFound, UsageError
from inhouse.workspace.documents import read_documents
from inhouse.workspace.store import Workspace

REPO = Path(__file__).resolve().parents[1]
LABELS = ["card_arrival", "card_lost", "refund"]


def head_build(seed: int, labels=LABELS, **extra):
    """A build callback writing a real safetensors head, as training does."""

    def build(folder: Path) -> dict:
        rng = np.random.default_rng(seed)
        save_file({"W": rng.normal(size=(len(labels), 16)).astype(np.float32),
                   "b": rng.normal(size=len(labels)).astype(np.float32)}, str(folder / "head.safetensors"))
        return {"kind": "classifier", "method": "head", "labels": list(labels),
                "base": {"name": "minilm-l6", "sha256": "0" * 64}, "seed": seed, **extra}

    return build


# -------------------------------------------------------------- versions ----

def test_each_save_is_a_new_immutable_content_addressed_version(ws):
    v1 = registry.save_version(ws, "intents", head_build(0))
    v2 = registry.save_version(ws, "intents", head_build(1))
    assert (v1.ref, v2.ref) == ("intents@1", "intents@2") and v1.sha256 != v2.sha256
    for v in (v1, v2):
        loaded = registry.load(ws, v.ref)
        assert loaded.path == ws.home / "models" / "objects" / v.sha256
        m = loaded.manifest
        assert {"torch", "numpy", "safetensors", "python"} <= set(m["libraries"])
        assert m["created_by"] and m["created_at"].endswith("Z") and m["inhouse_version"] and m["version"] == v.version
        assert json.loads((v.path / "manifest.json").read_text())["sha256"] == v.sha256
    # the same bytes again: a new number, the same hash and folder
    v3 = registry.save_version(ws, "intents", head_build(0))
    assert v3.ref == "intents@3" and v3.sha256 == v1.sha256 and v3.path == v1.path
    # the hash covers what gives the numbers meaning: same weights, other labels -> other hash
    relabelled = registry.save_version(ws, "intents", head_build(0, labels=["a", "b", "c"]))
    assert relabelled.sha256 != v1.sha256
    # numbers are never reused
    registry.remove_version(ws, "intents@4")
    assert registry.save_version(ws, "intents", head_build(2)).ref == "intents@5"


def test_bad_builds_leave_nothing(ws):
    with pytest.raises(UsageError, match="set by the registry"):
        registry.save_version(ws, "m", lambda d: (d / "w.bin").write_bytes(b"x") and {"sha256": "fake"})
    with pytest.raises(UsageError, match="wrote no files"):
        registry.save_version(ws, "m", lambda d: {})
    with pytest.raises(UsageError, match="not valid"):
        registry.save_version(ws, "a@b", head_build(0))
    with pytest.raises(RuntimeError):
        registry.save_version(ws, "m", lambda d: (_ for _ in ()).throw(RuntimeError("boom")))
    assert registry.versions(ws) == [] and list((ws.home / "tmp").iterdir()) == []
    assert not any((ws.home / "models").rglob("*.safetensors")) and not any((ws.home / "models").rglob("w.bin"))


def test_references_resolve_and_alias_moves_are_audited(ws, run_cli):
    v1 = registry.save_version(ws, "intents", head_build(0))
    v2 = registry.save_version(ws, "intents", head_build(1))
    assert registry.resolve(ws, "intents").ref == "intents@2"  # no production alias: the latest
    assert registry.resolve(ws, "intents@latest").ref == "intents@2"
    assert registry.resolve(ws, f"intents@{v1.sha256[:8]}").ref == "intents@1"
    assert registry.resolve(ws, v1.sha256[:10]).ref == "intents@1"  # a bare hash prefix

    r = run_cli("models", "alias", "intents@1", "production")
    assert r.exit_code == 0 and "intents@production -> intents@1" in r.stdout
    assert registry.resolve(ws, "intents@production").ref == "intents@1"
    assert registry.resolve(ws, "intents").ref == "intents@1"  # bare name follows production
    r = run_cli("models", "alias", "intents@2", "production")
    assert "(was intents@1)" in r.stdout
    assert registry.resolve(ws, "intents@production").sha256 == v2.sha256
    assert registry.resolve(ws, "intents").ref == "intents@2"

    r = run_cli("models", "unalias", "intents", "production")
    assert r.exit_code == 0 and "was intents@2" in r.stdout
    r = run_cli("models", "unalias", "intents", "production")
    assert r.exit_code == NotFound.exit_code and "no alias 'production'" in r.stderr
    moves = [e for e in registry.history(ws, "intents") if e["action"] in ("models.alias", "models.unalias")]
    assert [(e["action"], e["details"].get("version"), e["details"].get("previous")) for e in moves] == [
        ("models.alias", 1, None), ("models.alias", 2, 1), ("models.unalias", None, 2)]
    assert all(e["user"] and e["at"] for e in moves)
    hist = run_cli("models", "history", "intents")
    lines = hist.stdout.splitlines()
    assert [l.split()[4] for l in lines] == ["saved", "saved", "alias", "alias", "unalias"]
    assert "-> @2 (was @1)" in lines[3]

    for bad in ("intents@9", "intents@staging", "nope"):
        with pytest.raises(NotFound):
            registry.resolve(ws, bad)
    for bad_alias in ("3", "latest", "a@b"):
        with pytest.raises(UsageError):
            registry.set_alias(ws, "intents@1", bad_alias)


def test_rm_refuses_a_version_an_alias_points_to(ws, run_cli):
    registry.save_version(ws, "m", head_build(0))
    v2 = registry.save_version(ws, "m", head_build(1))
    registry.set_alias(ws, "m@2", "production")
    r = run_cli("models", "rm", "m@2")
    assert r.exit_code == Conflict.exit_code and "alias production points to" in r.stderr
    assert registry.load(ws, "m@2").path.exists()
    with pytest.raises(UsageError, match="does not name one version"):
        registry.remove_version(ws, "m")
    r = run_cli("models", "rm", "m@1")
    assert r.exit_code == 0 and [v.ref for v in registry.versions(ws, "m")] == ["m@2"]
    registry.remove_alias(ws, "m", "production")
    registry.remove_version(ws, "m@2")
    assert not v2.path.exists() and registry.versions(ws) == []


# ------------------------------------------------------------- integrity ----

def test_flipped_truncated_or_edited_files_are_refused_by_name(ws, run_cli):
    v = registry.save_version(ws, "m", head_build(0))
    weights = v.path / "head.safetensors"
    good = weights.read_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x01
    weights.write_bytes(bytes(flipped))
    with pytest.raises(IntegrityError, match="head.safetensors does not match its sha256"):
        registry.load(ws, "m@1")
    r = run_cli("models", "verify")
    assert r.exit_code == IntegrityError.exit_code and "BAD  m@1" in r.stdout and "head.safetensors" in r.stdout
    weights.write_bytes(good[:-10])
    with pytest.raises(IntegrityError, match=r"head.safetensors is \d+ bytes, the manifest says"):
        registry.load(ws, "m@1")
    weights.write_bytes(good)
    assert registry.load(ws, "m@1").sha256 == v.sha256
    # editing the labels in the manifest changes what the numbers mean: refused too
    mpath = v.path / "manifest.json"
    m = json.loads(mpath.read_text())
    m["labels"] = list(reversed(m["labels"]))
    mpath.write_text(json.dumps(m))
    with pytest.raises(IntegrityError, match="labels, method or files edited"):
        registry.load(ws, "m@1")
    with pytest.raises(IntegrityError):  # and nobody can point production at it
        registry.set_alias(ws, "m@1", "production")


KILLED_SAVE = textwrap.dedent("""
    import sys, time
    from inhouse import registry
    from inhouse.workspace.store import Workspace

    ws = Workspace.open(sys.argv[1])
    phase = sys.argv[2]

    def build(folder):
        with open(folder / "head.safetensors", "wb") as f:
            f.write(b"\\0" * 4096)  # half of the weights
            f.flush()
            if phase == "build":
                print("half-written", flush=True)
                time.sleep(120)
            f.write(b"\\0" * 4096)
        return {"labels": ["a", "b"], "method": "head"}

    if phase == "commit":  # stop inside the commit, after the folder is renamed into place
        from inhouse.registry import core as impl
        real = impl._fsync_dir
        def slow(p):
            real(p)
            if p.name == "objects":
                print("renamed", flush=True)
                time.sleep(120)
        impl._fsync_dir = slow
    registry.save_version(ws, "m", build)
""")


@pytest.mark.parametrize("phase,signal_line", [("build", "half-written"), ("commit", "renamed")])
def test_a_killed_save_leaves_no_visible_version(ws, phase, signal_line):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(ws.home), phase], stdout=subprocess.PIPE, env=env)
    try:
        assert p.stdout.readline().decode().strip() == signal_line
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    ws.close()
    fresh = Workspace.open(ws.home)
    assert registry.versions(fresh) == []
    with pytest.raises(NotFound):
        registry.resolve(fresh, "m")
    objects = fresh.home / "models" / "objects"
    if phase == "commit":
        assert len(list(objects.iterdir())) == 1  # renamed, never committed: an orphan no version points to
    else:
        assert not objects.exists() or list(objects.iterdir()) == []
        assert len(list((fresh.home / "tmp").glob("build-*"))) == 1  # the killed build's temp folder
    # the next save cleans up whatever the killed one left, and works
    v = registry.save_version(fresh, "m", head_build(0))
    assert v.ref == "m@1"
    assert [p.name for p in objects.iterdir()] == [v.sha256]
    assert list((fresh.home / "tmp").glob("build-*")) == []


# ------------------------------------------------------ evaluations, CLI ----

def test_evaluations_are_recorded_and_shown(ws, run_cli):
    registry.save_version(ws, "intents", head_build(0, val_metrics={"accuracy": 0.5, "macro_f1": 0.4, "n": 10}))
    v2 = registry.save_version(ws, "intents", head_build(1))
    rows = run_cli("models", "list", "--json").json["models"]
    assert rows[0]["metrics"] == {"accuracy": 0.5, "macro_f1": 0.4, "on": "validation"} and rows[1]["metrics"] == {}
    registry.record_evaluation(ws, "intents@2", "banking77", "test", {"accuracy": 0.91, "macro_f1": 0.9, "n": 3080},
                               data_sha256="ab" * 32)
    registry.record_evaluation(ws, v2, "banking77", "test", {"accuracy": 0.92, "macro_f1": 0.91, "n": 3080})  # replaces
    registry.record_evaluation(ws, v2, "banking77", "train", {"accuracy": 0.99})
    registry.set_alias(ws, "intents@2", "production")

    shown = run_cli("models", "show", "intents", "--json").json
    assert shown["ref"] == "intents@2" and shown["aliases"] == ["production"] and shown["integrity"] == "ok"
    assert sorted((e["dataset"], e["split"], e["metrics"]["accuracy"]) for e in shown["evaluations"]) == [
        ("banking77", "test", 0.92), ("banking77", "train", 0.99)]
    human = run_cli("models", "show", "intents@2").stdout
    assert "evaluated   banking77:test: accuracy 0.92" in human and "aliases: production" in human
    assert "integrity   ok" in human and "{" not in human  # a summary, not raw JSON

    listing = run_cli("models", "list", "--json").json
    row = next(r for r in listing["models"] if r["ref"] == "intents@2")
    assert row["metrics"] == {"accuracy": 0.92, "macro_f1": 0.91, "on": "banking77:test"}
    assert row["aliases"] == ["production"] and row["size"] > 0 and row["created_at"]
    assert {m["name"] for m in listing["base_models"]} >= {"minilm-l6"}
    table = run_cli("models", "list").stdout
    assert any(l.startswith("intents") and "production" in l and "0.920" in l for l in table.splitlines())
    assert "evaluated  intents@2 on banking77:train" in run_cli("models", "history", "intents").stdout


# ------------------------------------------------------ real, trained models ----

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A workspace with a 12-intent slice of banking77 and two real trainings (method head)."""
    import pandas as pd

    from inhouse.data.ingest import ingest
    from inhouse.training.arguments import TrainingArguments
    from inhouse.training.train import train

    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "banking77" / "banking77.csv"
    if not data.exists():
        pytest.skip(f"{data} is missing")
    home = tmp_path_factory.mktemp("registry-trained")
    df = pd.read_csv(data)
    df = df[df["label"].isin(sorted(df["label"].unique())[:12])]
    part = pd.concat([df[df.split == "train"].groupby("label").head(16), df[df.split == "test"].groupby("label").head(17)])
    csv = home.parent / "banking77-slice.csv"
    part.to_csv(csv, index=False)
    ws = Workspace.open(home)
    ingest(ws, csv, "b77", label_col="label", split_col="split")
    train(ws, "b77", "intents", TrainingArguments(method="head", seed=0))
    train(ws, "b77", "intents", TrainingArguments(method="head", seed=1, shots=8))
    texts = read_documents(ws, "b77", columns=["text"])["text"].tolist()
    return {"home": home, "ws": ws, "csv": csv, "texts": texts}


@pytest.mark.slow
def test_two_trainings_are_two_loadable_versions(trained):
    from inhouse.classifiers.load import load_classifier

    ws = trained["ws"]
    v1, v2 = registry.versions(ws, "intents")
    assert (v1.ref, v2.ref) == ("intents@1", "intents@2") and v1.sha256 != v2.sha256
    for v in (v1, v2):
        m = v.manifest
        assert m["dataset"]["name"] == "b77" and len(m["dataset"]["rows_sha256"]) == 64
        assert m["base"]["name"] == "minilm-l6" and len(m["labels"]) == 12
        clf = load_classifier(ws, v.ref)
        assert clf.version.sha256 == v.sha256
        # a label of the version, or its abstention label when it is not confident enough (issue 12)
        assert set(clf.predict(trained["texts"][:5])) <= set(m["labels"]) | {m["abstain"]["label"]}
    runs = ws.db.execute("SELECT model, model_sha256 FROM runs WHERE kind = 'train' ORDER BY id").fetchall()
    assert [tuple(r) for r in runs] == [("intents@1", v1.sha256), ("intents@2", v2.sha256)]


@pytest.mark.slow
def test_diff_of_a_version_with_itself_agrees_fully_and_with_another_does_not(trained, run_cli):
    from inhouse.analysis import diff

    home = trained["home"]
    r = run_cli("--home", home, "models", "diff", "intents@1", "intents@1", "--dataset", "b77", "--split", "test", "--json")
    assert r.exit_code == 0, r.stderr
    same = r.json
    assert same["agreement"] == 1.0 and same["flipped"] == 0 and same["examples"] == []
    assert all(m["delta"] == 0 for m in same["metrics"].values())
    v1, v2 = registry.versions(trained["ws"], "intents")
    unchanged = diff.registry_weight_changes(trained["ws"], v1, v1)
    assert unchanged["head"]["max_relative_change"] == 0.0 and unchanged["head"]["labels_compared"] == 12
    assert unchanged["encoder"]["note"] == "the same frozen weights"
    changed = diff.registry_weight_changes(trained["ws"], v1, v2)["head"]
    assert changed["changed"] == 2 and changed["mean_relative_change"] > 0.01 and changed["top"][0]["tensor"] == "W"

    r = run_cli("--home", home, "models", "diff", "intents@1", "intents@2", "--dataset", "b77", "--split", "test", "--json")
    d = r.json
    assert d["documents"] == d["labelled"] == 204 and 0.5 < d["agreement"] < 1.0
    assert d["flipped"] == round((1 - d["agreement"]) * 204) and d["fixed"] + d["broken"] <= d["flipped"]
    acc = d["metrics"]["accuracy"]
    assert acc["delta"] == pytest.approx(acc["new"] - acc["old"]) and 0.5 < acc["old"] <= 1
    known = set(registry.resolve(trained["ws"], "intents@1").manifest["labels"])
    # the versions answer as they would in use: "other" where they abstain
    assert {c["label"] for c in d["per_class"]} == known | {"other"}
    assert sum(c["old_count"] for c in d["per_class"]) == sum(c["new_count"] for c in d["per_class"]) == 204
    ex = d["examples"][0]
    assert ex["old"] != ex["new"] and ex["text"] and 0 < ex["new_score"] <= 1 and ex["verdict"]
    assert d["weights"]["source"] == "inhouse.explain"  # the training engineer's explain is installed
    human = run_cli("--home", home, "models", "diff", "intents@1", "intents@2", "--dataset", "b77", "--split", "test").stdout
    assert "agreement" in human and "accuracy" in human and "->" in human and "weights: " in human
    run = trained["ws"].db.execute("SELECT model, model_sha256 FROM runs WHERE kind = 'models.diff' ORDER BY id DESC").fetchone()
    assert run["model"] == "intents@2" and run["model_sha256"] == registry.resolve(trained["ws"], "intents@2").sha256


@pytest.mark.slow
def test_folder_export_then_import_predicts_identically(trained, ws, run_cli, tmp_path):
    from inhouse.service.classify import classify

    out = tmp_path / "usb" / "intents-1"
    r = run_cli("--home", trained["home"], "models", "export", "intents@1", "--out", out, "--json")
    assert r.exit_code == 0, r.stderr
    assert r.json["base_included"] and r.json["exported_sha256"] == r.json["sha256"]
    card = (out / "README.md").read_text()
    for section in ("## Intended use", "## Training data", "## Metrics", "## Limitations", "## Versions", "## Files"):
        assert section in card
    assert registry.resolve(trained["ws"], "intents@1").sha256 in card and (out / "base" / "model.safetensors").exists()

    r = run_cli("models", "import", out, "--name", "moved", "--json")  # into this test's own, empty workspace
    assert r.exit_code == 0, r.stderr
    assert r.json["ref"] == "moved@1" and r.json["sha256"] == registry.resolve(trained["ws"], "intents@1").sha256
    assert "found by hash" in r.json["base_note"]
    again = run_cli("models", "import", out, "--name", "moved", "--json").json
    assert again["existed"] and again["ref"] == "moved@1"
    # the version itself on both sides: each workspace prepares its own ONNX graph, and the imported one has no
    # labelled rows to judge int8 by, so their precisions may differ; the artifact is what must predict identically
    from inhouse.pipeline.classify import ClassifyOptions

    same = ClassifyOptions(backend="torch")
    a = classify(trained["ws"], "intents@1", input_path=str(trained["csv"]), output=str(tmp_path / "a.parquet"),
                 options=same)
    b = classify(ws, "moved", input_path=str(trained["csv"]), output=str(tmp_path / "b.parquet"), options=same)
    assert a["model_sha256"] == b["model_sha256"]
    import pandas as pd

    pa_, pb_ = pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
    assert len(pa_) == len(trained["texts"]) and pa_["label"].tolist() == pb_["label"].tolist()
    assert pa_["top_labels"].map(list).tolist() == pb_["top_labels"].map(list).tolist()
    # the target recomputes embeddings in other batches; padding changes the last float bits only
    assert np.abs(np.stack(pa_["top_scores"]) - np.stack(pb_["top_scores"])).max() < 1e-5
    shown = registry.describe(ws, "moved@1")["manifest"]
    assert shown["origin"]["ref"] == "intents@1" and shown["dataset"]["name"] == "b77"


@pytest.mark.slow
def test_import_refuses_tampering_and_explains_a_missing_base(trained, ws, run_cli, tmp_path, monkeypatch):
    from inhouse.classifiers.load import load_classifier
    from inhouse.exchange import export

    full, bare = tmp_path / "full", tmp_path / "bare"
    export.export_version(trained["ws"], "intents@2", full)
    export.export_version(trained["ws"], "intents@2", bare, include_base=False)
    assert not (bare / "base").exists()
    with pytest.raises(Conflict, match="already exists"):
        export.export_version(trained["ws"], "intents@2", full)

    # a target machine without the base encoder
    monkeypatch.setattr(export, "_find_base", lambda ws, sha: None)
    r = run_cli("models", "import", bare)
    assert r.exit_code == NotFound.exit_code and "base model 'minilm-l6'" in r.stderr and "not in this workspace" in r.stderr
    got = export.import_version(ws, full)  # the bundled base is checked and registered under a free name
    assert got["ref"] == "intents@1" and "registered from the export" in got["base_note"]
    clf = load_classifier(ws, got["ref"])
    assert clf.base.startswith("minilm-l6-") and len(clf.predict(trained["texts"][:3])) == 3

    weights = full / "model" / "head.safetensors"
    data = bytearray(weights.read_bytes())
    data[100] ^= 0xFF
    weights.write_bytes(bytes(data))
    r = run_cli("models", "import", full, "--name", "other")
    assert r.exit_code == IntegrityError.exit_code and "head.safetensors does not match its sha256" in r.stderr
    assert registry.versions(ws, "other") == []


@pytest.mark.slow
def test_onnx_int8_export_imports_and_agrees_with_the_original(trained, ws, run_cli, tmp_path):
    from inhouse.classifiers.load import load_classifier
    from inhouse.classifiers.onnx import OnnxClassifier
    from inhouse.classifiers.predict import classify_texts

    out = tmp_path / "onnx"
    r = run_cli("--home", trained["home"], "models", "export", "intents@1", "--out", out, "--format", "onnx",
                "--quantize", "int8", "--json")
    assert r.exit_code == 0, r.stderr
    parity = r.json["parity"]
    assert parity["texts"] == 200 and parity["agreement"] >= 0.995 and "b77" in parity["source"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "onnx" and manifest["onnx"]["opset"] >= 17 and manifest["onnx"]["quantize"] == "int8"
    assert manifest["onnx"]["parity"] == parity and manifest["derived_from"]["ref"] == "intents@1"
    assert {"model.onnx", "tokenizer.json"} <= set(manifest["files"])
    assert r.json["size"] < 40e6  # int8: about a quarter of the 90 MB float encoder
    assert "ONNX parity" in (out / "README.md").read_text()

    imp = run_cli("models", "import", out, "--name", "intents-onnx", "--json").json
    assert imp["format"] == "onnx" and imp["sha256"] == manifest["sha256"]
    clf = load_classifier(ws, "intents-onnx")
    assert isinstance(clf, OnnxClassifier)
    texts = trained["texts"]
    torch_clf = load_classifier(trained["ws"], "intents@1")
    original = torch_clf.predict(texts, abstain=False)
    pred = classify_texts(clf, texts, cache=False, abstain=False)  # the same batch core `inhouse classify` runs
    agreement = float(np.mean([a == b for a, b in zip(original, pred["label"])]))
    assert agreement >= 0.99, agreement  # int8 noise: one of 198 flipped once attention was traced as plain ops
    # the abstention threshold travels with the export and is honoured the same way (Classifier.decide);
    # int8 noise can move a text across it, so decisions with abstention agree a little less exactly
    assert clf.abstain_threshold == torch_clf.abstain_threshold is not None
    with_abstain = classify_texts(clf, texts, cache=False)["label"]
    assert float(np.mean([a == b for a, b in zip(torch_clf.predict(texts), with_abstain)])) >= 0.98
    assert clf.embed(texts[:2]).shape == (2, 384)
