"""Contact-center transcripts -> one document per conversation.

A conversation is a list of turns in the text column of a JSON/JSONL row. A
turn is an object (``{"speaker": "customer", "text": "...", "time": "..."}``;
``role``/``author``/``from`` and ``content``/``utterance``/``message`` work
too) or a ``[speaker, text]`` / ``[speaker, text, time]`` list, as in ABCD.
The document's text is the turns as ``speaker: text`` lines, or only the
words of the chosen speakers (``--speaker customer``); the number of turns and
the duration (first to last turn time) become metadata.

    >>> turns = [{"speaker": "agent", "text": "Hi, how can I help?", "time": "2026-01-05T10:00:00Z"},
    ...          {"speaker": "customer", "text": "My card is lost.", "time": "2026-01-05T10:01:30Z"}]
    >>> conversation(turns, ())
    ('agent: Hi, how can I help?\\ncustomer: My card is lost.', {'turns': 2, 'duration_s': 90.0})
    >>> conversation(turns, ("customer",))
    ('My card is lost.', {'turns': 2, 'speaker_turns': 1, 'duration_s': 90.0})
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from .dates import parse_time

__all__ = ["SPEAKER_KEYS", "TEXT_KEYS", "conversation", "is_conversation"]

SPEAKER_KEYS = ("speaker", "role", "author", "from", "participant", "party", "sender")
TEXT_KEYS = ("text", "content", "utterance", "message", "body", "transcript")
TIME_KEYS = ("time", "timestamp", "ts", "start", "start_time", "created_at", "offset")


def is_conversation(value: Any) -> bool:
    """Whether a text cell holds a list of turns (rather than a string)."""
    return isinstance(value, list) and bool(value) and all(isinstance(t, (dict, list, tuple)) for t in value)


def conversation(turns: list, speakers: Iterable[str], parse: Callable[[Any], int | None] = parse_time
                 ) -> tuple[str, dict[str, Any]]:
    """``(text, metadata)`` of one conversation; raises ValueError naming the turn that cannot be read."""
    wanted = {s.casefold() for s in speakers}
    lines, times, counted = [], [], 0
    for i, turn in enumerate(turns, start=1):
        speaker, text, when = _turn(turn, i)
        if when is not None:
            try:
                t = parse(when)
            except ValueError as e:
                raise ValueError(f"turn {i}: time {e}") from None
            if t is not None:
                times.append(t)
        if not text.strip():
            continue
        if wanted:
            if speaker.casefold() in wanted:
                counted += 1
                lines.append(text)
        else:
            lines.append(f"{speaker}: {text}" if speaker else text)
    meta: dict[str, Any] = {"turns": len(turns)}
    if wanted:
        meta["speaker_turns"] = counted
    if len(times) >= 2:
        meta["duration_s"] = round((max(times) - min(times)) / 1e6, 3)
    return "\n".join(lines), meta


def _turn(turn: Any, i: int) -> tuple[str, str, Any]:
    if isinstance(turn, dict):
        speaker = next((turn[k] for k in SPEAKER_KEYS if k in turn), "")
        text = next((turn[k] for k in TEXT_KEYS if k in turn), None)
        when = next((turn[k] for k in TIME_KEYS if k in turn), None)
        if text is None:
            raise ValueError(f"turn {i} has no text; expected one of the keys {list(TEXT_KEYS)}, found {list(turn)}")
    elif isinstance(turn, (list, tuple)) and len(turn) in (2, 3):
        speaker, text, when = (*turn, None)[:3]
    else:
        raise ValueError(f"turn {i} is a {type(turn).__name__}; expected an object with speaker and text, "
                         "or a [speaker, text] pair")
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    return ("" if speaker is None else str(speaker)), text, when
