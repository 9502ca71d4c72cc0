"""Faster full fine-tuning: frozen bottom layers computed once (``freeze_layers``, ``cache_frozen``),
length-bucketed batches, validation without dropout. Real MiniLM, real banking77 rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from inhouse import progress
from inhouse.errors import UsageError
from inhouse.workspace.store import Workspace

LABELS = ["card_swallowed", "exchange_via_app", "receiving_money", "beneficiary_not_allowed", "get_physical_card"]
TINY = dict(max_steps=4, epochs=1, batch_size=8, max_seq_length=32, seed=3, num_threads=1)


@pytest.fixture(scope="module")
def b5(tmp_path_factory, shared_data):
    """A workspace with 5 banking77 intents, 8 training rows each, as dataset 'b5'."""
    from inhouse.data.ingest import ingest

    home = tmp_path_factory.mktemp("frozen-ws")
    df = pd.read_csv(shared_data / "banking77" / "banking77.csv")
    df = df[df["label"].isin(LABELS) & (df["split"] == "train")].groupby("label").head(8)
    df.to_csv(home / "b5.csv", index=False)
    ws = Workspace.open(home)
    ingest(ws, str(home / "b5.csv"), "b5", label_col="label", split_col="split")
    yield ws
    ws.close()


def test_bottom_then_top_is_the_whole_encoder(b5):
    import torch

    from inhouse.classifiers.backbone import load_backbone

    bb = load_backbone(b5, "minilm-l6").eval()
    batch = bb.tokenize(["my card was swallowed", "hi", "why can't I add this beneficiary to my account?"])
    with torch.no_grad():
        whole = bb(batch)
        for k in (0, 2, 5):
            assert torch.allclose(bb.top(bb.bottom(batch, k), batch["attention_mask"], k), whole, atol=1e-6)


def test_bottom_cache_vectors_are_the_encoders_and_a_budget_bounds_it(b5):
    from inhouse.classifiers.backbone import load_backbone
    from inhouse.training.frozen import BottomCache

    bb = load_backbone(b5, "minilm-l6").eval()
    bb.freeze_bottom(3)
    texts = ["my card was swallowed", "hi", "why can't I add this beneficiary?", "exchange rate in the app"]
    cache = BottomCache.build(bb, texts, 3, batch_size=3)
    assert cache.lengths == [len(bb.tokenizer(t)["input_ids"]) for t in texts]
    rows = np.array([2, 0, 3])
    assert np.allclose(cache.vectors(bb, rows), bb.embed([texts[i] for i in rows]), atol=1e-5)
    assert BottomCache.build(bb, texts, 3, budget=1000) is None  # too big: training runs the whole encoder


def test_frozen_layers_stay_in_eval_mode_and_out_of_the_gradient(b5):
    from inhouse.classifiers.backbone import load_backbone

    bb = load_backbone(b5, "minilm-l6")
    bb.freeze_bottom(2)
    bb.train()
    emb, layers = bb.layers()
    assert not emb.training and not layers[1].training and layers[2].training and bb.training
    assert not any(p.requires_grad for m in (emb, layers[0], layers[1]) for p in m.parameters())
    assert all(p.requires_grad for p in layers[2].parameters())
    with pytest.raises(UsageError, match="freeze-layers must be in"):
        bb.freeze_bottom(6)  # MiniLM-L6 has 6 layers: at least one must train


def _train(ws, name, **kw):
    from inhouse.training.arguments import TrainingArguments
    from inhouse.training.train import train

    events: list = []
    with progress.use(progress.ListSink(events)):
        r = train(ws, "b5", name, TrainingArguments(method="full", **TINY, **kw))
    return r, {e.desc for e in events}


@pytest.mark.slow
def test_cached_frozen_layers_give_the_model_that_running_them_gives(b5):
    """Same seed, frozen bottom 3 layers: computing them once gives the same model as running them every step."""
    from inhouse.classifiers.backbone import load_backbone
    from inhouse.classifiers.load import load_classifier

    cached, seen_cached = _train(b5, "cached", freeze_layers=3)
    plain, seen_plain = _train(b5, "plain", freeze_layers=3, cache_frozen=False)
    assert "running the 3 frozen layers once" in seen_cached
    assert not any("frozen layers" in d for d in seen_plain)
    texts = ["the ATM kept my card", "how do I exchange currencies in the app", "someone sent me money"]
    p1 = load_classifier(b5, cached.ref).predict_proba(texts)
    p2 = load_classifier(b5, plain.ref).predict_proba(texts)
    assert np.allclose(p1, p2, atol=1e-4)
    assert cached.val_metrics["accuracy"] == plain.val_metrics["accuracy"]
    default, _ = _train(b5, "default")  # full's default freezes half of MiniLM's 6 layers, as above
    assert load_classifier(b5, default.ref).manifest["encoder"]["frozen_layers"] == 3
    assert np.allclose(load_classifier(b5, default.ref).predict_proba(texts), p1, atol=1e-4)
    # the saved encoder is whole (loadable like any other); its bottom is the base's, its top is tuned
    base = load_backbone(b5, "minilm-l6").layers()[1]
    tuned = load_classifier(b5, cached.ref).encoder_module().layers()[1]
    same = lambda a, b: all(np.array_equal(x.detach().numpy(), y.detach().numpy())
                            for x, y in zip(a.parameters(), b.parameters()))
    assert same(base[2], tuned[2]) and not same(base[3], tuned[3])


def test_freeze_layers_arguments():
    from inhouse.service import training as training_service
    from inhouse.training.arguments import TrainingArguments

    assert TrainingArguments().resolved().freeze_layers is None  # full: half of a BERT-family encoder's layers
    assert TrainingArguments(method="lora").resolved().freeze_layers == 0
    assert TrainingArguments().resolved().epochs == 5.0  # chosen on banking77's validation rows (BENCHMARKS.md)
    with pytest.raises(UsageError, match="freeze-layers must be 0 or more"):
        TrainingArguments(freeze_layers=-1).resolved()
    assert {"freeze_layers", "cache_frozen"} <= set(training_service.argument_types())


def test_length_batches_cover_every_row_once():
    from inhouse.training.loops import length_batches

    rng = np.random.default_rng(0)
    lengths = list(rng.integers(1, 200, 1000))
    rows = np.arange(3, 1000)
    batches = length_batches(rows, lengths, 32, np.random.default_rng(1))
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == rows.tolist()
    assert all(len(b) <= 32 for b in batches) and sum(len(b) < 32 for b in batches) <= 1
    # padding stays small: a batch's lengths spread far less than the data's
    spread = np.median([np.ptp([lengths[i] for i in b]) for b in batches])
    assert spread < 0.1 * np.ptp(lengths)


def test_validation_runs_without_dropout(b5):
    """Validation embeds with the encoder in eval mode, whatever mode training left it in."""
    import torch

    from inhouse.classifiers.backbone import load_backbone
    from inhouse.training.arguments import TrainingArguments
    from inhouse.training.data import load_training_data
    from inhouse.training.loops import _validate

    bb = load_backbone(b5, "minilm-l6", max_length=32)
    args = TrainingArguments(**TINY).resolved()
    data = load_training_data(b5, "b5", args)
    modes = []
    embed = bb.embed
    bb.embed = lambda texts, **kw: (modes.append(bb.training), embed(texts, **kw))[1]
    bb.train()
    _validate(bb, torch.nn.Linear(bb.dim, len(data.labels)), data, args)
    assert modes == [False]
