"""Fine-tuning, evaluation, explanation and batch classification on a real banking77 slice.

Ten intents whose names say little (zero-shot MiniLM gets about 57% on them),
8 training and 10 test examples each. One module-scoped workspace holds the
models that several tests inspect; the other tests use their own.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from inhouse import progress
from inhouse.workspace.store import Workspace

LABELS = ["topping_up_by_card", "get_physical_card", "order_physical_card", "top_up_by_bank_transfer_charge",
          "card_swallowed", "exchange_via_app", "why_verify_identity", "card_payment_not_recognised",
          "receiving_money", "beneficiary_not_allowed"]
TINY = ["--max-steps", "3", "--epochs", "1", "--batch-size", "16", "--max-seq-length", "32"]


def _slice(shared, n_train: int = 8, n_test: int = 10) -> pd.DataFrame:
    df = pd.read_csv(shared / "banking77" / "banking77.csv")
    df = df[df["label"].isin(LABELS)]
    train = df[df["split"] == "train"].groupby("label").head(n_train)
    test = df[df["split"] == "test"].groupby("label").head(n_test)
    return pd.concat([train, test]).reset_index(drop=True)


@pytest.fixture(scope="module")
def slice_ws(tmp_path_factory, shared_data):
    """A workspace with the slice ingested as dataset 'b10' and a head model 'h@1'."""
    from conftest import invoke_cli

    home = tmp_path_factory.mktemp("train-ws")
    csv = home / "b10.csv"
    _slice(shared_data).to_csv(csv, index=False)
    r = invoke_cli("--home", home, "ingest", csv, "--dataset", "b10", "--label-col", "label", "--split-col", "split")
    assert r.exit_code == 0, r.stderr
    # forced choice: these tests are about formats and order; abstention has its own tests (test_analyst.py)
    r = invoke_cli("--home", home, "train", "--dataset", "b10", "--name", "h", "--method", "head", "--no-abstain",
                   "--json")
    assert r.exit_code == 0, r.stderr
    return home, r.json


@pytest.mark.slow
def test_train_head_json(slice_ws):
    home, out = slice_ws
    for key in ("model", "version", "sha256", "train_seconds", "method", "base", "n_train", "n_val", "val_metrics"):
        assert key in out
    assert (out["model"], out["version"], out["method"], out["base"]) == ("h", 1, "head", "minilm-l6")
    assert out["n_train"] + out["n_val"] == 80 and out["n_val"] == 10  # one per label held out
    ws = Workspace.open(home)
    from inhouse.registry.core import load

    m = load(ws, "h@1").manifest
    assert m["labels"] == sorted(LABELS) and m["base"]["sha256"] and len(m["dataset"]["rows_sha256"]) == 64
    assert m["training_args"]["seed"] == 0 and "C" in m["val_metrics"]
    assert sorted(m["files"]) == ["head.safetensors", "train_index.safetensors", "train_rows.json"]


@pytest.mark.slow
def test_eval_json_beats_zero_shot(slice_ws, run_cli):
    home, _ = slice_ws
    r = run_cli("--home", home, "eval", "h", "--dataset", "b10", "--json")
    assert r.exit_code == 0, r.stderr
    e = r.json
    for key in ("accuracy", "macro_f1", "n", "per_class", "ece", "confusion_matrix_png", "top_confusions",
                "model", "sha256", "zero_shot"):
        assert key in e
    assert e["n"] == 100 and e["model"] == "h@1" and set(e["per_class"]) == set(LABELS)
    assert e["per_class"]["card_swallowed"]["support"] == 10
    assert e["accuracy"] > e["zero_shot"]["accuracy"] + 0.1, (e["accuracy"], e["zero_shot"])
    assert 0.4 < e["zero_shot"]["accuracy"] < 0.75  # about 57% for MiniLM on these labels
    png = open(e["confusion_matrix_png"], "rb").read(8)
    assert png == b"\x89PNG\r\n\x1a\n" and "/runs/" in e["confusion_matrix_png"]
    ws = Workspace.open(home)
    row = ws.db.execute("SELECT model, model_sha256 FROM runs WHERE kind = 'eval' ORDER BY id DESC").fetchone()
    assert tuple(row) == ("h@1", e["sha256"])


@pytest.mark.slow
def test_eval_out_folder_and_label_names(slice_ws, run_cli, tmp_path):
    home, _ = slice_ws
    r = run_cli("--home", home, "eval", "h@1", "--dataset", "b10", "--split", "test", "--out", tmp_path, "--json")
    assert r.exit_code == 0, r.stderr
    assert r.json["confusion_matrix_png"].startswith(str(tmp_path))
    saved = json.loads(next(tmp_path.glob("eval-h-v1-b10-test-*.json")).read_text())
    assert saved["accuracy"] == r.json["accuracy"]
    r = run_cli("--home", home, "train", "--dataset", "b10", "--name", "ln", "--method", "head", "--label-names", "--json")
    assert r.exit_code == 0, r.stderr
    assert r.json["n_train"] == 80  # 70 rows + one per label name
    rows = json.loads((home / r.json["path"] / "train_rows.json").read_text())
    assert rows["doc_ids"][-10:] == list(range(-1, -11, -1))


@pytest.mark.slow
def test_explain_and_head_weights(slice_ws, run_cli):
    home, _ = slice_ws
    r = run_cli("--home", home, "explain", "h", "I want to order a physical card", "--k", "3", "--json")
    assert r.exit_code == 0, r.stderr
    x = r.json
    assert x["label"] == "order_physical_card" and len(x["top_k"]) == 3
    assert x["top_k"][0]["label"] == x["label"] and x["top_k"][0]["score"] >= x["top_k"][1]["score"]
    assert len(x["supporting"]) == 3 and all(s["label"] == x["label"] and s["text"] for s in x["supporting"])
    assert all(s["label"] != x["label"] for s in x["nearest_other"])
    r = run_cli("--home", home, "explain-weights", "h", "--json", "--chart", home / "w.png")
    assert r.exit_code == 0, r.stderr
    w = r.json
    assert w["overall"]["relative_change"] == 0 and not w["encoder_changed"] and "frozen base" in w["note"]
    assert w["head"]["shape"] == [10, 384] and w["head"]["W_norm"] > 0
    assert (home / "w.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_classify_formats_keep_input_order(slice_ws, run_cli, tmp_path):
    home, _ = slice_ws
    rows = pd.DataFrame({"ticket": ["t9", "t1", "t5", "t3"],
                         "body": ["my card got stuck in the ATM", "how do I get a physical card",
                                  "why do you need to verify my identity", "how do I get a physical card"]})
    src = tmp_path / "in.csv"
    rows.to_csv(src, index=False)
    outs = {}
    for ext in ("csv", "jsonl", "parquet"):
        out = tmp_path / f"out.{ext}"
        r = run_cli("--home", home, "classify", "h", "--input", src, "--text-col", "body", "--id-col", "ticket",
                    "--output", out, "--top-k", "2", "--json")
        assert r.exit_code == 0, r.stderr
        assert r.json["rows"] == 4 and r.json["model"] == "h@1"
        df = pd.read_csv(out) if ext == "csv" else pd.read_json(out, lines=True) if ext == "jsonl" else pd.read_parquet(out)
        assert list(df["ticket"].astype(str)) == ["t9", "t1", "t5", "t3"]
        assert set(df["model"]) == {"h@1"} and df["model_sha256"].str.len().eq(64).all()
        tops = [json.loads(v) if isinstance(v, str) else list(v) for v in df["top_labels"]]
        assert all(len(t) == 2 and t[0] == l for t, l in zip(tops, df["label"]))
        outs[ext] = list(df["label"])
    assert outs["csv"] == outs["jsonl"] == outs["parquet"]
    assert outs["csv"][0] == "card_swallowed" and outs["csv"][1] == outs["csv"][3]
    r = run_cli("--home", home, "classify", "h", "--dataset", "b10", "--split", "test", "--output", tmp_path / "d.csv")
    assert r.exit_code == 0, r.stderr
    df = pd.read_csv(tmp_path / "d.csv")
    assert len(df) == 100 and list(df["doc_id"]) == sorted(df["doc_id"])


@pytest.mark.parametrize("method", ["full", "setfit", "lora"])
@pytest.mark.slow
def test_finetune_methods_tiny_budget(slice_ws, run_cli, method):
    home, _ = slice_ws
    r = run_cli("--home", home, "train", "--dataset", "b10", "--name", f"m-{method}", "--method", method, *TINY, "--json")
    assert r.exit_code == 0, r.stderr
    t = r.json
    assert t["method"] == method and t["val_metrics"]["n"] == 10
    ws = Workspace.open(home)
    from inhouse.registry.core import load

    files = set(load(ws, t["model"]).manifest["files"])
    assert ("adapter/adapter_model.safetensors" in files) if method == "lora" else ("encoder/model.safetensors" in files)
    w = run_cli("--home", home, "explain-weights", t["model"], "--json").json
    assert w["encoder_changed"] and 0 < w["overall"]["relative_change"] < 0.2
    if method == "lora":
        assert w["lora"]["ranks"] == [8] and all(a["BA_norm"] > 0 for a in w["lora"]["adapters"])
    e = run_cli("--home", home, "eval", t["model"], "--dataset", "b10", "--json").json
    assert e["accuracy"] > e["zero_shot"]["accuracy"]  # starts from the linear probe


@pytest.mark.slow
def test_same_seed_same_model(slice_ws, run_cli):
    """Same data, base, method and seed: the same weights, hence the same predictions (same process)."""
    from inhouse.classifiers.load import load_classifier

    home, _ = slice_ws
    refs = []
    for _ in range(2):
        r = run_cli("--home", home, "train", "--dataset", "b10", "--name", "rep", "--method", "full", *TINY,
                    "--seed", "7", "--json")
        assert r.exit_code == 0, r.stderr
        refs.append(r.json)
    assert refs[0]["sha256"] == refs[1]["sha256"] and refs[1]["version"] == 2
    ws = Workspace.open(home)
    texts = ["card swallowed by the machine", "fee for a bank transfer top up", "someone sent me money"]
    p1 = load_classifier(ws, "rep@1").predict_proba(texts)
    p2 = load_classifier(ws, "rep@2").predict_proba(texts)
    assert np.array_equal(p1, p2)
    r = run_cli("--home", home, "train", "--dataset", "b10", "--name", "rep", "--method", "full", *TINY,
                "--seed", "8", "--json")
    assert r.json["sha256"] != refs[0]["sha256"]


class _StopAt(progress.Sink):
    def __init__(self, desc: str, at: int):
        self.desc, self.at = desc, at

    def emit(self, e):
        if e.kind == "advance" and e.desc.startswith(self.desc) and e.done >= self.at:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_ctrl_c_saves_nothing(slice_ws):
    from inhouse.registry.core import versions
    from inhouse.training.arguments import TrainingArguments
    from inhouse.training.train import train

    home, _ = slice_ws
    ws = Workspace.open(home)
    before = sorted(p.name for p in (home / "models" / "objects").iterdir())
    with progress.use(_StopAt("fine-tuning", 2)), pytest.raises(KeyboardInterrupt):
        train(ws, "b10", "interrupted", TrainingArguments(method="full", max_steps=5, max_seq_length=32))
    assert versions(ws, "interrupted") == []
    assert sorted(p.name for p in (home / "models" / "objects").iterdir()) == before
    assert not list((home / "tmp").glob("build-interrupted-*"))


def test_bad_input_errors(ws, shared_data, run_cli, tmp_path):
    df = _slice(shared_data, 3, 0)
    df.loc[df.index[0], "label"] = "only_once"
    df.to_csv(tmp_path / "a.csv", index=False)
    assert run_cli("ingest", tmp_path / "a.csv", "--dataset", "a", "--label-col", "label", "--split-col", "split").exit_code == 0
    r = run_cli("train", "--dataset", "a", "--name", "x", "--method", "head")
    assert r.exit_code == 3 and "only_once" in r.stderr and "--min-examples 2" in r.stderr
    r = run_cli("train", "--dataset", "a", "--name", "x", "--method", "head", "--label-col", "intent")
    assert r.exit_code == 3 and "'intent' not found" in r.stderr and "--label-col" in r.stderr
    r = run_cli("train", "--dataset", "a", "--name", "x", "--split", "dev")
    assert r.exit_code == 3 and "no split 'dev'" in r.stderr and "['train']" in r.stderr
    df[["text"]].to_csv(tmp_path / "u.csv", index=False)
    assert run_cli("ingest", tmp_path / "u.csv", "--dataset", "u").exit_code == 0
    r = run_cli("train", "--dataset", "u", "--name", "x", "--split", "all")
    assert r.exit_code == 3 and "no labelled documents" in r.stderr and "--label-col" in r.stderr
    assert Workspace.open().db.execute("SELECT COUNT(*) FROM model_versions").fetchone()[0] == 0


@pytest.mark.slow
def test_multi_label_and_meta_label_column(ws, shared_data, run_cli, tmp_path):
    """Labels from a metadata column; several labels per document -> sigmoid head and set metrics."""
    df = _slice(shared_data, 8, 4)
    topic = {l: ("card|topup" if "top" in l else "card" if "card" in l else "account") for l in LABELS}
    df["topics"] = [topic[l] for l in df["label"]]
    df[["text", "topics", "split"]].to_csv(tmp_path / "m.csv", index=False)
    r = run_cli("ingest", tmp_path / "m.csv", "--dataset", "m", "--label-col", "topics", "--label-sep", "|",
                "--split-col", "split")
    assert r.exit_code == 0, r.stderr
    r = run_cli("train", "--dataset", "m", "--name", "ml", "--method", "head", "--json")
    assert r.exit_code == 0, r.stderr
    assert r.json["labels"] == ["account", "card", "topup"] and "micro_f1" in r.json["val_metrics"]
    e = run_cli("eval", "ml", "--dataset", "m", "--json").json
    assert e["micro_f1"] > 0.6 and e["per_class"]["topup"]["support"] > 0
    r = run_cli("classify", "ml", "--dataset", "m", "--output", tmp_path / "p.jsonl")
    assert r.exit_code == 0
    first = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])
    assert isinstance(first["labels"], list)
    # the intent as a metadata column of another ingest
    df[["text", "label", "split"]].rename(columns={"label": "intent"}).to_csv(tmp_path / "i.csv", index=False)
    assert run_cli("ingest", tmp_path / "i.csv", "--dataset", "i", "--split-col", "split").exit_code == 0
    r = run_cli("train", "--dataset", "i", "--name", "meta", "--method", "head", "--label-col", "intent", "--json")
    assert r.exit_code == 0, r.stderr
    assert len(r.json["labels"]) == 10


def test_lora_on_a_causal_lm(ws, shared_data, run_cli, tmp_path):
    """A tiny random Llama saved as a Hugging Face folder, registered, tuned with LoRA (last-token pooling)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from inhouse.models.catalog import get_model

    tok = AutoTokenizer.from_pretrained(get_model(ws, "minilm-l6").path)
    cfg = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      pad_token_id=tok.pad_token_id)
    import torch

    torch.manual_seed(0)
    folder = tmp_path / "tiny-llama"
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    assert run_cli("models", "add", "tiny-llama", folder).exit_code == 0
    _slice(shared_data, 4, 2).to_csv(tmp_path / "s.csv", index=False)
    assert run_cli("ingest", tmp_path / "s.csv", "--dataset", "s", "--label-col", "label", "--split-col", "split").exit_code == 0
    r = run_cli("train", "--dataset", "s", "--name", "llm", "--base", "tiny-llama", "--method", "lora", *TINY, "--json")
    assert r.exit_code == 0, r.stderr
    from inhouse.registry.core import load

    m = load(Workspace.open(), "llm").manifest
    assert m["encoder"]["pooling"] == "last" and m["base"]["name"] == "tiny-llama"
    w = run_cli("explain-weights", "llm", "--json").json
    assert {a["module"].rsplit(".", 1)[-1] for a in w["lora"]["adapters"]} >= {"q_proj", "v_proj"}
    r = run_cli("classify", "llm", "--dataset", "s", "--output", tmp_path / "p.csv")
    assert r.exit_code == 0, r.stderr
    assert len(pd.read_csv(tmp_path / "p.csv")) == 60
