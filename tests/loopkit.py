"""The data of the retrain -> diff -> promote tests: a 5-intent banking77 slice whose intents people label.

The file keeps banking77's intent as a plain column (``intent_src``), so the ingest brings no labels;
people label four intents into the label set ``intent`` and the production model learns those. The
fifth, :data:`NEW_LABEL`, is the label added later, as the candidate action (issue 20 §2) or the Label
screen would add it: its documents labelled into the same label set.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from serverkit import LABELS, banking_slice

LABEL_SET = "intent"
NEW_LABEL = "lost_or_stolen_card"
FIRST = [label for label in LABELS if label != NEW_LABEL]


def loop_csv(shared_data: Path, folder: Path) -> Path:
    """The banking slice with its intents moved to the metadata column ``intent_src``."""
    path = banking_slice(shared_data, folder)
    df = pd.read_csv(path).rename(columns={"label": "intent_src"})
    out = folder / "b5-loop.csv"
    df.to_csv(out, index=False)
    return out


def label_where(intent: str) -> dict:
    """The label action's body (POST /datasets/{name}/labels) that labels one intent's documents into the set."""
    return {"label": intent, "where": f"intent_src = '{intent}'", "into": LABEL_SET}


UNSEEN = "terminate_account"  # an intent far from FIRST: production turns its documents away (answers ``other``)


def walk_csv(shared_data: Path, folder: Path) -> Path:
    """The browser walk's data: FIRST with 40 training rows each (enough validation rows for the abstain
    threshold to mean something) and 8 test rows, and :data:`UNSEEN` unlabelled (12 train, 8 test), in
    ``intent_src`` as in :func:`loop_csv`, with a ``created`` time so a pipeline can run on it."""
    df = pd.read_csv(shared_data / "banking77" / "banking77.csv")
    n_train = {label: 40 for label in FIRST} | {UNSEEN: 12}
    df = df[df["label"].isin(n_train)]
    train = df[df["split"] == "train"]
    train = pd.concat([g.head(n_train[label]) for label, g in train.groupby("label")])
    df = pd.concat([train, df[df["split"] == "test"].groupby("label").head(8)])
    created = pd.date_range("2026-01-01", periods=len(df), freq="h", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    out = folder / "b5-walk.csv"
    df.assign(created=created).rename(columns={"label": "intent_src"}).to_csv(out, index=False)
    return out
