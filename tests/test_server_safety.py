"""The core is safe inside a multi-user server: shared models, bounded caches, no global state.

A real `full` model (a few steps on a banking77 slice) is loaded once and used
from eight threads at once; training is checked to leave the process's random
generators, thread count and determinism flag as it found them; inference is
checked never to flip a shared module between train and eval mode; an ONNX
version runs through the same ``load_classifier`` as every other caller.
"""

from __future__ import annotations

import random
import threading

import numpy as np
import pandas as pd
import pytest

from inhouse.cache import ModelCache
from inhouse.classifiers.load import load_classifier
from inhouse.workspace.store import Workspace

LABELS = ["card_arrival", "lost_or_stolen_card", "exchange_rate", "top_up_failed", "pin_blocked"]


@pytest.fixture(scope="module")
def full_model(tmp_path_factory, shared_data):
    """A workspace with a 5-intent banking77 slice and a `full` model fine-tuned for a few steps."""
    from conftest import invoke_cli

    home = tmp_path_factory.mktemp("safety-ws")
    df = pd.read_csv(shared_data / "banking77" / "banking77.csv")
    df = df[df["label"].isin(LABELS)]
    df = pd.concat([df[df["split"] == "train"].groupby("label").head(12),
                    df[df["split"] == "test"].groupby("label").head(16)])
    csv = home / "b5.csv"
    df.to_csv(csv, index=False)
    assert invoke_cli("--home", home, "ingest", csv, "--dataset", "b5", "--label-col", "label",
                      "--split-col", "split").exit_code == 0
    r = invoke_cli("--home", home, "train", "--dataset", "b5", "--name", "m", "--method", "full", "--max-steps", "4",
                   "--epochs", "1", "--batch-size", "16", "--max-seq-length", "48", "--json")
    assert r.exit_code == 0, r.stderr
    texts = df[df["split"] == "test"]["text"].tolist()
    return Workspace.open(home), texts


@pytest.mark.slow
def test_eight_threads_share_one_loaded_version_and_get_the_serial_predictions(full_model):
    ws, texts = full_model
    serial = load_classifier(ws, "m@1").predict_proba(texts)
    chunks = [texts[i::8] for i in range(8)]
    results: dict[int, tuple] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(i: int) -> None:
        try:
            start.wait()
            clf = load_classifier(ws, "m@1")
            results[i] = (id(clf), clf.predict_proba(texts), clf.predict(chunks[i]))
        except BaseException as e:  # surfaced below with the thread's error
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert len(results) == 8
    assert len({r[0] for r in results.values()}) == 1  # one loaded object, shared
    labels = load_classifier(ws, "m@1").predict(texts)  # the distance rule needs each text's distance too
    for i, (_, probs, chunk_labels) in results.items():
        assert np.array_equal(probs, serial)  # the same batches give bit-identical probabilities
        assert chunk_labels == labels[i::8]


@pytest.mark.slow
def test_inference_never_switches_a_shared_module_between_train_and_eval(full_model, monkeypatch):
    import torch

    ws, texts = full_model
    clf = load_classifier(ws, "m@1")
    calls = []
    real = torch.nn.Module.train

    def recording_train(self, mode=True):
        calls.append(mode)
        return real(self, mode)

    monkeypatch.setattr(torch.nn.Module, "train", recording_train)
    clf.predict(texts)
    clf.embed(texts[:3])
    assert calls == []
    assert clf.encoder_module().training is False


def _global_state():
    import torch

    return (random.getstate(), np.random.get_state()[1].tobytes(), torch.get_rng_state().numpy().tobytes(),
            torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())


@pytest.mark.slow
def test_training_leaves_the_process_as_it_found_it(full_model):
    from inhouse.training.arguments import TrainingArguments
    from inhouse.training.train import train

    ws, _ = full_model
    before = _global_state()
    first = train(ws, "b5", "state", TrainingArguments(method="full", max_steps=2, min_steps=0, epochs=1,
                                                        batch_size=16, max_seq_length=32, num_threads=1))
    assert _global_state() == before
    second = train(ws, "b5", "state", TrainingArguments(method="full", max_steps=2, min_steps=0, epochs=1,
                                                         batch_size=16, max_seq_length=32, num_threads=1))
    assert first.sha256 == second.sha256  # seeded inside, still reproducible
    head = train(ws, "b5", "state-head", TrainingArguments(method="head"))
    assert head.ref == "state-head@1" and _global_state() == before


def test_model_cache_is_bounded_least_recently_used_and_loads_once():
    closed = []
    cache = ModelCache("test", max_bytes=100, on_evict=closed.append)
    loads = []

    def loader(name):
        def load():
            loads.append(name)
            return f"model {name}"
        return load

    assert cache.get_or_load("a", loader("a"), size=lambda m: 40) == "model a"
    assert cache.get_or_load("b", loader("b"), size=lambda m: 40) == "model b"
    cache.get_or_load("a", loader("a"), size=lambda m: 40)  # a is now the most recent
    cache.get_or_load("c", loader("c"), size=lambda m: 40)  # over budget: b, the least recent, goes
    assert sorted(cache.keys()) == ["a", "c"] and closed == ["model b"] and loads == ["a", "b", "c"]
    assert cache.total_bytes() <= 100

    slow_loads = []
    gate = threading.Event()

    def slow():
        slow_loads.append(1)
        gate.wait(5)
        return "big"

    threads = [threading.Thread(target=cache.get_or_load, args=("big", slow), kwargs={"size": lambda m: 10})
               for _ in range(6)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert slow_loads == [1]  # six threads asked at once, it was loaded once


@pytest.mark.slow
def test_an_onnx_version_runs_through_eval_and_explains_itself_clearly(full_model, run_cli, tmp_path):
    ws, _ = full_model
    out = tmp_path / "onnx"
    home = str(ws.home)
    r = run_cli("--home", home, "models", "export", "m@1", "--out", out, "--format", "onnx", "--json")
    assert r.exit_code == 0, r.stderr
    assert run_cli("--home", home, "models", "import", out, "--name", "m-onnx", "--json").exit_code == 0
    r = run_cli("--home", home, "eval", "m-onnx", "--dataset", "b5", "--json")
    assert r.exit_code == 0, r.stderr
    torch_eval = run_cli("--home", home, "eval", "m@1", "--dataset", "b5", "--json").json
    assert r.json["n"] == torch_eval["n"] == 80
    assert abs(r.json["accuracy"] - torch_eval["accuracy"]) <= 1 / 80  # fp32 ONNX: at most one near-tie differs
    r = run_cli("--home", home, "explain-weights", "m-onnx")
    assert r.exit_code == 2 and "m@1" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_eval_diff_and_training_compute_the_same_scores(full_model, run_cli):
    """One metrics module: eval and models diff agree on the same rows (they once computed F1 three ways)."""
    from inhouse.training.metrics import label_report

    ws, texts = full_model
    home = str(ws.home)
    ev = run_cli("--home", home, "eval", "m@1", "--dataset", "b5", "--json").json
    d = run_cli("--home", home, "models", "diff", "m@1", "m@1", "--dataset", "b5", "--split", "test", "--json").json
    assert d["metrics"]["accuracy"]["old"] == pytest.approx(ev["accuracy"])
    assert d["metrics"]["macro_f1"]["old"] == pytest.approx(ev["macro_f1"])
    gold = ["a", "a", "b", "c"]
    r = label_report(gold, ["a", "b", "b", "b"])
    assert r["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 0.0) / 3)  # over the 3 labels in gold
