"""Write the example's inbox: two daily files of contact-center tickets from inhouse's own demo generator.

    python examples/make_inbox.py          # rewrites examples/inbox/*.csv (deterministic)

Generated text only (no real customer data); ``tests/test_examples.py`` checks the shipped files are what
this writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from inhouse.demo.data import generate

HERE = Path(__file__).resolve().parent
ROWS, SEED = 400, 21


def inbox_frames(rows: int = ROWS, seed: int = SEED) -> dict[str, pd.DataFrame]:
    """File name -> its rows: ticket_id, created_at, text (no labels: the pipeline predicts them)."""
    df = pd.DataFrame(generate(n=rows, seed=seed))
    df = df.rename(columns={"message_id": "ticket_id", "timestamp": "created_at"})[["ticket_id", "created_at", "text"]]
    cut = int(len(df) * 0.75)  # sorted by time: the first file, then the newer one ("the next day's")
    return {"tickets-1.csv": df.iloc[:cut], "tickets-2.csv": df.iloc[cut:]}


def main(folder: Path = HERE / "inbox") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in inbox_frames().items():
        frame.to_csv(folder / name, index=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "inbox")
