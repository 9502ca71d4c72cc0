"""Retrain like production (issue 20 §4): the version's own arguments on the current labels, then the diff's
new-label section, from the service layer and the CLI. The browser walk is tests/test_ui_retrain.py."""

from __future__ import annotations

import json

import pytest
from loopkit import FIRST, LABEL_SET, NEW_LABEL, label_where, loop_csv

from inhouse import registry
from inhouse.errors import Conflict, NotFound, UsageError
from inhouse.service import retrain as retrain_service
from inhouse.service import topics as topics_service
from inhouse.service.diff import diff
from inhouse.service.training import train, training_arguments


@pytest.fixture
def production(ws, shared_data, tmp_path, run_cli):
    """intents@1 (head, seed 3, label set 'intent', four intents) in production on dataset b5."""
    r = run_cli("ingest", loop_csv(shared_data, tmp_path), "--dataset", "b5", "--split-col", "split", "--json")
    assert r.exit_code == 0, r.stderr
    for intent in FIRST:
        topics_service.label(ws, "b5", **label_where(intent))
    args = training_arguments({"method": "head", "label_col": LABEL_SET, "seed": 3, "head_C": 4.0})
    v = train(ws, "b5", "intents", args)
    registry.set_alias(ws, v.ref, "production")
    return v


@pytest.mark.slow
def test_retrain_reuses_production_arguments_and_learns_the_new_label(ws, production, run_cli):
    p = retrain_service.plan(ws, "intents")  # a bare name: its production version
    assert p["like"]["ref"] == "intents@1" and p["labels_added"] == [] and p["changed"] is False
    topics_service.label(ws, "b5", **label_where(NEW_LABEL))  # what the candidate action does
    p = retrain_service.plan(ws, "intents")
    assert p["labels_added"] == [NEW_LABEL] and p["changed"] is True and p["label_rows"][NEW_LABEL] == 12
    assert p["method"] == "head" and p["label_col"] == LABEL_SET and p["dataset"] == "b5"

    r = run_cli("retrain", "intents", "--json")
    assert r.exit_code == 0, r.stderr
    out = r.json
    assert out["ref"] == "intents@2" and out["like"]["ref"] == "intents@1" and out["labels_added"] == [NEW_LABEL]
    old, new = registry.resolve(ws, "intents@1").manifest, registry.resolve(ws, "intents@2").manifest
    assert new["training_args"] == old["training_args"] and new["base"] == old["base"]
    assert new["method"] == old["method"] == "head" and new["dataset"]["label_col"] == LABEL_SET
    assert NEW_LABEL in new["labels"] and NEW_LABEL not in old["labels"]
    assert retrain_service.plan(ws, "intents")["already"] == "intents@2"  # not trained twice by mistake

    d = diff(ws, "intents@production", "intents@2", "b5", split="test")
    assert d["label_col"] == LABEL_SET and d["labelled"] == 40  # gold from the label set the versions learnt
    assert d["labels_added"] == [NEW_LABEL] and d["flipped"] >= 1
    (row,) = d["new_labels"]
    assert row["label"] == NEW_LABEL and row["validation_rows"] == new["n_val"]
    assert row["candidate"] is None  # labelled by a label action, not made from a candidate
    assert row["validation"]["support"] >= 1 and 0 <= row["validation"]["f1"] <= 1
    assert row["on_documents"]["support"] == 8 and row["predicted"] >= 1
    assert sum(row["old_answers"].values()) == row["predicted"] and NEW_LABEL not in row["old_answers"]
    per = {r["label"]: r for r in d["per_class"]}
    assert per[NEW_LABEL]["old_f1"] == 0 and per[NEW_LABEL]["new_f1"] > 0

    # the validation figures are training's own: same rows, same answers
    from inhouse.analysis.coverage import validation_scores
    from inhouse.classifiers.load import load_classifier

    val = validation_scores(ws, load_classifier(ws, "intents@2"))
    assert val["n"] == new["n_val"] and val["missing"] == 0
    assert val["accuracy"] == pytest.approx(new["val_metrics"]["accuracy"])

    text = run_cli("models", "diff", "intents@1", "intents@2", "--dataset", "b5", "--split", "test")
    assert text.exit_code == 0 and f"{NEW_LABEL}: validation F1" in text.stdout

    dry = run_cli("retrain", "intents@1", "--dry-run")
    assert dry.exit_code == 0 and "would train intents@next like intents@1" in dry.stdout and NEW_LABEL in dry.stdout
    assert [v.version for v in registry.versions(ws, "intents")] == [1, 2]  # --dry-run trained nothing


def test_retrain_refuses_versions_without_training_arguments(ws, run_cli):
    with pytest.raises(NotFound):
        retrain_service.plan(ws, "nope")

    def build(folder):
        (folder / "x.txt").write_text("x")
        return {"kind": "classifier", "labels": ["a"]}

    registry.save_version(ws, "imported", build)
    with pytest.raises(UsageError, match="no training arguments"):
        retrain_service.plan(ws, "imported@1")
    r = run_cli("retrain", "imported", "--json")
    assert r.exit_code != 0 and "no training arguments" in json.loads(r.stdout)["message"]


def test_retrain_refuses_when_the_base_model_is_not_the_one_trained_on(ws):
    """Retraining 'like' a version on other base weights would not be like it: refused, naming both hashes."""
    args = training_arguments({"method": "head"}).resolved().to_dict()

    def build(folder):
        (folder / "x.txt").write_text("x")
        return {"kind": "classifier", "labels": ["a", "b"], "training_args": args, "method": "head",
                "base": {"name": args["base"], "sha256": "0" * 64}, "dataset": {"name": "gone", "label_col": "label"}}

    registry.save_version(ws, "drifted", build)
    with pytest.raises(Conflict, match="000000000000") as e:
        retrain_service.plan(ws, "drifted")
    assert "drifted@1" in str(e.value) and e.value.fix
