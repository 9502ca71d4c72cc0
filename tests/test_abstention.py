"""Issue 18 §4: abstention that turns away texts of intents never trained on and keeps good answers.

Real data (banking77 from ../shared/data), real models: ``wordllama`` static vectors for the accuracy test
(the real encoder path, seconds for thousands of texts), ``minilm-l6`` for the ONNX graph.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from inhouse.classifiers.base import DecisionRule
from inhouse.workspace.store import Workspace

HELD = 19  # of banking77's 77 intents, never trained on (seeded, as bench/abstention.py)


def _held_out(intents: list[str]) -> list[str]:
    return sorted(np.random.default_rng(0).choice(intents, size=HELD, replace=False).tolist())


@pytest.fixture(scope="module")
def banking(tmp_path_factory, shared_data):
    """A workspace with banking77: 60 training rows per intent, the whole test split."""
    from inhouse.data.ingest import ingest

    df = pd.read_csv(shared_data / "banking77" / "banking77.csv")
    df = pd.concat([df[df["split"] == "train"].groupby("label").head(60), df[df["split"] == "test"]])
    folder = tmp_path_factory.mktemp("abstention")
    df.to_csv(folder / "b.csv", index=False)
    ws = Workspace.open(folder / "home")
    ingest(ws, folder / "b.csv", "b", label_col="label", split_col="split")
    yield ws, df
    ws.close()


def _measure(clf, test: pd.DataFrame, held: list[str]) -> dict:
    from inhouse.classifiers.predict import cached_proba, classify_texts

    texts = test["text"].tolist()
    out = classify_texts(clf, texts)
    j, _ = clf.best_in_scope(cached_proba(clf, texts))
    right = np.array([clf.labels[k] == t for k, t in zip(j, test["label"])])
    ab, oos = np.array(out["abstained"]), test["label"].isin(held).to_numpy()
    return {"never": right[~oos].mean(), "acc": (right & ~ab)[~oos].mean(), "recall": ab[oos].mean()}


@pytest.mark.slow
def test_head_on_banking77_turns_away_held_out_intents_and_keeps_good_answers(banking):
    """Before: the default rule turned away 20 % of in-scope validation rows, costing ~13 points of in-scope
    accuracy on banking77 (BENCHMARKS.md). Now in-scope accuracy stays within 2 points of never abstaining
    while a share of the held-out intents' texts is turned away (measured here: 88.6 % never abstaining,
    87.2 % with the rule, 35.5 % of held-out-intent texts turned away; minilm-l6 does better, BENCHMARKS.md),
    and unrelated text is turned away."""
    from inhouse.classifiers.load import load_classifier
    from inhouse.training.arguments import TrainingArguments
    from inhouse.training.train import train

    ws, df = banking
    held = _held_out(sorted(df["label"].unique()))
    where = "split = 'train' and label not in (" + ", ".join(f"'{h}'" for h in held) + ")"
    r = train(ws, "b", "k", TrainingArguments(base="wordllama", method="head", where=where))
    assert r.abstain["rule"] == "distance" and r.abstain["distance"]["kind"] == "knn1-cosine"
    assert r.abstain["pseudo_out_of_scope"]["folds"] == 5  # tuned on classes left out of the training rows
    clf = load_classifier(ws, r.ref)
    assert (clf.version.path / r.abstain["distance"]["file"]).is_file() and "abstain.safetensors" in clf.version.manifest["files"]
    m = _measure(clf, df[df["split"] == "test"], held)
    assert m["acc"] >= m["never"] - 0.02, m
    assert m["recall"] >= 0.28, m
    unrelated = ["what is the weather today", "who wrote the iliad", "how tall is mount everest",
                 "recommend a good pizza place", "what time does the football match start"]
    assert clf.predict(unrelated).count(clf.other_label) >= 4


def test_versions_without_the_distance_keep_the_probability_rule():
    old = DecisionRule({"labels": ["a", "b"], "abstain": {"threshold": 0.7, "label": "other"}})
    P = np.array([[0.9, 0.1], [0.6, 0.4]])
    assert not old.needs_distance and old.decide(P) == ["a", "other"]
    new = DecisionRule({"labels": ["a", "b"], "abstain": {"threshold": 0.2, "label": "other",
                                                          "distance": {"threshold": 0.8, "weight": 2.0}}})
    assert new.needs_distance and new.decide(P, distance=np.array([0.4, 0.1])) == ["other", "a"]
    with pytest.raises(ValueError, match="distance"):
        new.abstains(P)  # a path that forgot the distance fails loudly instead of answering by probability


@pytest.mark.slow
def test_onnx_engine_and_server_abstain_on_the_same_rows_as_in_process(tmp_path, shared_data):
    """The ONNX graph outputs the distance; the streamed engine (ONNX and torch) and the server's online
    classifier turn away the same texts as the in-process classifier."""
    from inhouse import registry
    from inhouse.classifiers.load import load_classifier
    from inhouse.classifiers.predict import classify_texts
    from inhouse.data.ingest import ingest
    from inhouse.pipeline.engine import load_predictor, predict_unique
    from inhouse.server.batching import OnlineModels
    from inhouse.training.arguments import TrainingArguments
    from inhouse.training.train import train

    df = pd.read_csv(shared_data / "banking77" / "banking77.csv")
    intents = sorted(df["label"].unique())[::9]  # 9 intents
    part = df[df["label"].isin(intents)].groupby(["label", "split"]).head(30)
    part.to_csv(tmp_path / "b.csv", index=False)
    ws = Workspace.open(tmp_path / "home")
    ingest(ws, tmp_path / "b.csv", "b", label_col="label", split_col="split")
    where = f"split = 'train' and label not in ('{intents[0]}', '{intents[4]}')"
    r = train(ws, "b", "m", TrainingArguments(method="head", where=where))
    texts = part[part["split"] == "test"]["text"].tolist() + ["what is the weather today", "who wrote hamlet"]
    clf = load_classifier(ws, r.ref)
    mine = classify_texts(clf, texts, cache=False)["abstained"]
    assert 0 < sum(mine) < len(texts) and mine[-2]
    v = registry.resolve(ws, r.ref)
    onnx = load_predictor(ws, v, backend="onnx")
    assert "distance" in [o.name for o in onnx.session.get_outputs()]
    got = predict_unique(onnx, texts)[0]["abstained"]
    assert np.mean(np.array(got) == np.array(mine)) >= 0.98, (got, mine)
    assert predict_unique(load_predictor(ws, v, backend="torch"), texts)[0]["abstained"] == mine
    served = OnlineModels(ws).classifier(r.ref)
    online = served.classify(texts)
    # online runs the graph prepared at save (int8 where its verdict kept it), so it agrees as the ONNX engine does
    assert np.mean(np.array([o["abstained"] for o in online]) == np.array(mine)) >= 0.98
    assert [o["label"] for o in online][-2] == "other"
    # a few texts at a time are remembered: the row keeps the distance, so the remembered answer turns away
    # the same texts as the fresh one (a row of probabilities alone would raise, or answer by probability)
    few = texts[-6:]
    fresh = served.classify(few)
    assert served.memo.hits == 0 and served.classify(few) == fresh and served.memo.hits == len(few)
    assert [o["abstained"] for o in fresh] == mine[-6:] and fresh[-2]["label"] == "other"
    ws.close()


def test_the_int8_verdict_judges_what_each_graph_answers_under_the_distance_rule():
    """A stand-in whose top labels all agree but whose distances turn away more good rows loses accuracy
    under the version's rule and is refused (before: judged by the top label alone, accepted)."""
    from inhouse.pipeline.verdict import judge

    rule = DecisionRule({"labels": ["a", "b", "c"], "abstain": {"threshold": 0.0, "label": "other",
                                                                "out_of_scope": ["c"],
                                                                "distance": {"threshold": 0.5, "weight": 1.0}}})
    P = np.tile([[0.8, 0.1, 0.1]], (10, 1))
    gold = np.array([0] * 9 + [2])  # the last row's gold label is out of scope: `other` is right there
    d_ref = np.array([0.1] * 9 + [0.9])
    d_int8 = np.array([0.1] * 8 + [0.9, 0.9])  # one good row more turned away
    ok = judge(P, P, gold, rule=rule, distances=(d_ref, d_ref))
    assert ok["accepted"] and ok["accuracy"] == 1.0 and ok["abstain_agreement"] == 1.0
    worse = judge(P, P, gold, rule=rule, distances=(d_ref, d_int8))
    assert worse["agreement"] == 1.0 and not worse["accepted"] and worse["accuracy_loss"] == pytest.approx(0.1)
    assert worse["abstain_agreement"] == 0.9
    assert judge(P, P, gold)["accepted"]  # without the rule, agreement of the top label alone


@pytest.mark.slow
def test_a_full_fine_tune_turns_away_unrelated_text_by_its_own_distance_and_keeps_good_answers(tmp_path, shared_data):
    """The full fine-tune is sure of texts it was never trained on ("what is the weather today" -> app_problem at
    0.9999 in the issue). Its distance is measured in its own fine-tuned embedding (the reference holds the tuned
    encoder's vectors of the training rows), so unrelated text is turned away while the in-scope test rows keep
    their answers. The old quantile rule, computed on the same version's validation rows, fails one of the two:
    it turns away a fifth of good answers by design (here, on a small confident model, its threshold is 1.0)."""
    from inhouse import registry
    from inhouse.classifiers.load import load_classifier
    from inhouse.data.ingest import ingest
    from inhouse.pipeline.verdict import labelled_rows
    from inhouse.training.arguments import TrainingArguments
    from inhouse.training.train import abstain_threshold, train

    labels = ["card_arrival", "exchange_rate", "top_up_failed", "pin_blocked", "cash_withdrawal_charge"]
    df = pd.read_csv(shared_data / "banking77" / "banking77.csv")
    part = df[df["label"].isin(labels)].groupby(["label", "split"]).head(40)
    part.to_csv(tmp_path / "b.csv", index=False)
    ws = Workspace.open(tmp_path / "home")
    ingest(ws, tmp_path / "b.csv", "b", label_col="label", split_col="split")
    r = train(ws, "b", "f", TrainingArguments(method="full", where="split = 'train'", max_steps=16, epochs=20,
                                              batch_size=16, max_seq_length=32, freeze_layers=4, seed=3))
    assert r.abstain["rule"] == "distance"
    clf = load_classifier(ws, r.ref)
    test = part[part["split"] == "test"]
    P, D = clf.predict_scores(test["text"].tolist())
    right = np.array([clf.labels[j] == t for j, t in zip(P.argmax(1), test["label"])])
    kept = right & ~clf.abstains(P, D)
    unrelated = ["what is the weather today", "who wrote the iliad", "how tall is mount everest",
                 "recommend a good pizza place", "what time does the football match start",
                 "translate hello into french", "how do i bake sourdough bread", "what is the capital of peru"]
    Pu, Du = clf.predict_scores(unrelated)
    assert clf.abstains(Pu, Du).mean() >= 0.75, (Pu.max(1), Du)
    assert kept.mean() >= right.mean() - 0.02, (kept.mean(), right.mean())
    # the old rule on the same model: a fifth of the validation rows' confidences as its threshold
    val_texts, gold = labelled_rows(ws, registry.resolve(ws, r.ref)).part(True)
    Pv = clf.predict_proba(val_texts)
    t, _ = abstain_threshold(Pv.max(1), Pv.argmax(1) == gold, np.zeros(len(gold), bool), 0.2)
    old_kept, old_away = (right & (P.max(1) >= t)).mean(), (Pu.max(1) < t).mean()
    assert old_kept < right.mean() - 0.02 or old_away < 0.75, (t, old_kept, old_away)
    ws.close()


@pytest.mark.slow
def test_the_accuracy_budget_holds_on_the_versions_own_validation_rows(banking):
    """Before: the threshold was chosen on the folds alone, whose heads know a fifth fewer intents (easier
    in-scope rows), so a budget could cost more on new texts (1 point on the folds cost 2.5 test points on
    airline complaints, bench/abstention_scores.py). Now the version's own validation rows hold the budget
    too, and the manifest says which of the two thresholds bound. (On this 60-rows-an-intent sample the
    folds alone happened to stay within 2 validation points as well: before the fix this test failed on
    the missing ``threshold_folds``/``threshold_validation``, not on the budget.)"""
    from inhouse.training.arguments import TrainingArguments
    from inhouse.training.train import train

    ws, df = banking
    held = _held_out(sorted(df["label"].unique()))
    where = "split = 'train' and label not in (" + ", ".join(f"'{h}'" for h in held) + ")"
    r = train(ws, "b", "budget", TrainingArguments(base="wordllama", method="head", where=where,
                                                   abstain_max_loss=0.02))
    ab = r.abstain
    assert ab["val_in_scope_accuracy"] >= ab["val_in_scope_accuracy_without_abstaining"] - 0.02 - 1e-9, ab
    chosen = ab["pseudo_out_of_scope"]
    assert ab["distance"]["threshold"] == max(chosen["threshold_folds"], chosen["threshold_validation"],
                                              chosen.get("threshold_training_rows", -np.inf))


def test_the_cli_sets_what_abstaining_may_cost(banking, run_cli):
    """``train --abstain-max-loss`` is the lead's one lever on the rule (before: only the API and Python had
    it): a larger budget may turn away more texts of intents never trained on; the version's own validation
    rows hold it; it is refused beside a rule it does not bound."""
    ws, df = banking
    held = _held_out(sorted(df["label"].unique()))
    where = "split = 'train' and label not in (" + ", ".join(f"'{h}'" for h in held) + ")"
    common = ("--home", ws.home, "train", "--dataset", "b", "--method", "head", "--base", "wordllama",
              "--where", where, "--no-prepare")
    r = run_cli(*common, "--name", "loose", "--abstain-max-loss", "0.03", "--json")
    assert r.exit_code == 0, r.stderr
    ab = r.json["abstain"]
    assert ab["rule"] == "distance" and ab["pseudo_out_of_scope"]["max_loss"] == 0.03
    assert ab["val_in_scope_accuracy"] >= ab["val_in_scope_accuracy_without_abstaining"] - 0.03 - 1e-9, ab
    assert ab["val_in_scope_accuracy"] < ab["val_in_scope_accuracy_without_abstaining"] - 0.01, ab  # it spent more than the default's 1 point
    r = run_cli(*common, "--name", "both", "--abstain-max-loss", "0.03", "--abstain-target", "0.1")
    assert r.exit_code == 2 and "--abstain-max-loss" in r.stderr and "--abstain-target" in r.stderr, r.stderr
    r = run_cli(*common, "--name", "bad", "--abstain-max-loss", "3")
    assert r.exit_code == 2 and "--abstain-max-loss" in r.stderr and "found 3.0" in r.stderr, r.stderr


@pytest.mark.slow
def test_a_version_trained_on_a_few_rows_a_label_keeps_its_good_answers(tmp_path, shared_data):
    """Before: with 12 rows a label the version's validation rows were ~1 a label, the budget was held on
    those few, and new in-scope texts landed past them: 10 banking77 intents lost 6.3 points of test accuracy
    (96.5 % never abstaining, 90.2 % with the rule; 5 intents in the UI's test lost 15.5). Now, under
    1,000 validation rows, the budget is also held on the training rows, each scored out of fold (heads on
    the other folds, distance to the nearest other row), and the manifest says so."""
    from inhouse.classifiers.load import load_classifier
    from inhouse.classifiers.predict import cached_proba, classify_texts
    from inhouse.data.ingest import ingest
    from inhouse.training.arguments import TrainingArguments
    from inhouse.training.train import train

    df = pd.read_csv(shared_data / "banking77" / "banking77.csv")
    labels = sorted(np.random.default_rng(0).choice(sorted(df["label"].unique()), 10, replace=False))
    df = df[df["label"].isin(labels)]
    df = pd.concat([df[df["split"] == "train"].groupby("label").head(12), df[df["split"] == "test"]])
    df.to_csv(tmp_path / "few.csv", index=False)
    ws = Workspace.open(tmp_path / "home")
    try:
        ingest(ws, tmp_path / "few.csv", "few", label_col="label", split_col="split")
        r = train(ws, "few", "few", TrainingArguments(method="head"))
        clf = load_classifier(ws, r.ref)
        test = df[df["split"] == "test"]
        texts = test["text"].tolist()
        ab = np.array(classify_texts(clf, texts)["abstained"])
        j, _ = clf.best_in_scope(cached_proba(clf, texts))
        right = np.array([clf.labels[k] == t for k, t in zip(j, test["label"])])
        assert (right & ~ab).mean() >= right.mean() - 0.02, (right.mean(), (right & ~ab).mean(), ab.mean())
        po = r.abstain["pseudo_out_of_scope"]
        assert po["budget_rows"] == 120 and po["threshold_training_rows"] > po["threshold_validation"], po
        assert r.abstain["distance"]["threshold"] == po["threshold_training_rows"]
        unrelated = ["what is the weather today", "who wrote the iliad", "how tall is mount everest",
                     "recommend a good pizza place", "what time does the football match start", "i love this movie",
                     "the cat sat on the mat", "how do i bake bread", "what is the capital of france", "play some jazz"]
        assert sum(classify_texts(clf, unrelated)["abstained"]) >= 5  # still turned away, most of them
    finally:
        ws.close()
