"""One progress mechanism for all long work.

Library code reports progress through :func:`task` or :func:`track`; it never
prints. Whoever drives the work decides where the reports go by installing a
*sink* with :func:`use`: the CLI installs a terminal bar with rate and ETA, the
server (later) a sink that writes job status to the workspace, tests a list.

    >>> events = []
    >>> with use(ListSink(events)):
    ...     for _ in track(range(3), "counting", unit="doc"):
    ...         pass
    >>> [(e.kind, e.done) for e in events]
    [('start', 0), ('advance', 1), ('advance', 2), ('advance', 3), ('end', 3)]
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, TextIO


@dataclass
class Event:
    """A snapshot of one task's progress."""

    kind: str  # "start" | "advance" | "end"
    desc: str
    done: int
    total: int | None
    unit: str
    elapsed: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        if not self.total or not self.rate:
            return None
        return max(self.total - self.done, 0) / self.rate


class Sink:
    """Where progress events go. Subclasses implement :meth:`emit`."""

    def emit(self, event: Event) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class NullSink(Sink):
    def emit(self, event: Event) -> None:
        pass


class ListSink(Sink):
    """Collects events in a list (tests, and the server's job records)."""

    def __init__(self, events: list[Event]):
        self.events = events

    def emit(self, event: Event) -> None:
        self.events.append(event)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _rate(e: Event) -> str:
    """``190.0 doc/s``; under one a second, seconds per unit (``33.2 s/category``: a slow model's rate is not 0.0)."""
    if 0 < e.rate < 1:
        return f"{1 / e.rate:,.1f} s/{e.unit}"
    return f"{e.rate:,.1f} {e.unit}/s"


def format_event(e: Event, width: int = 24) -> str:
    """One line: ``embedding  62% |█████     | 620/1000 doc [00:03<00:02, 190 doc/s] loss=0.31``."""
    if e.total:
        frac = min(e.done / e.total, 1.0)
        filled = int(frac * width)
        bar = "█" * filled + " " * (width - filled)
        head = f"{e.desc} {frac:4.0%} |{bar}| {e.done}/{e.total} {e.unit}"
        tail = f"[{_clock(e.elapsed)}<{_clock(e.eta)}, {_rate(e)}]"
    else:
        head = f"{e.desc} {e.done} {e.unit}"
        tail = f"[{_clock(e.elapsed)}, {_rate(e)}]"
    extra = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in e.info.items())
    return f"{head} {tail} {extra}".rstrip()


class TerminalSink(Sink):
    """A redrawn one-line bar on a terminal; a line every few seconds elsewhere."""

    def __init__(self, stream: TextIO | None = None, interval: float | None = None):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.1 if self.tty else 10.0)
        self._last: dict[str, float] = {}

    def emit(self, e: Event) -> None:
        now = time.monotonic()
        if e.kind == "advance" and now - self._last.get(e.desc, 0.0) < self.interval:
            return
        self._last[e.desc] = now
        line = format_event(e)
        if self.tty:
            end = "\n" if e.kind == "end" else ""
            self.stream.write("\r\033[K" + line + end)
        elif e.kind != "start":
            self.stream.write(line + "\n")
        self.stream.flush()


_sink: contextvars.ContextVar[Sink] = contextvars.ContextVar("inhouse_progress_sink", default=NullSink())


@contextlib.contextmanager
def use(sink: Sink) -> Iterator[Sink]:
    """Send every progress report made inside the block to ``sink``."""
    token = _sink.set(sink)
    try:
        yield sink
    finally:
        _sink.reset(token)


def current() -> Sink:
    return _sink.get()


class Task:
    """A unit of long work; use through :func:`task`."""

    def __init__(self, desc: str, total: int | None, unit: str, sink: Sink):
        self.desc, self.total, self.unit, self.sink = desc, total, unit, sink
        self.done = 0
        self.info: dict[str, Any] = {}
        self.start = time.monotonic()
        self._emit("start")

    def _emit(self, kind: str) -> None:
        self.sink.emit(Event(kind, self.desc, self.done, self.total, self.unit,
                             time.monotonic() - self.start, dict(self.info)))

    def advance(self, n: int = 1, **info: Any) -> None:
        self.done += n
        self.info.update(info)
        self._emit("advance")

    def close(self) -> None:
        self._emit("end")


@contextlib.contextmanager
def task(desc: str, total: int | None = None, unit: str = "it") -> Iterator[Task]:
    """Report progress on a block of work.

    >>> with task("training", total=10, unit="step") as t:
    ...     t.advance(10, loss=0.25)
    """
    t = Task(desc, total, unit, _sink.get())
    try:
        yield t
    finally:
        t.close()


def track(items: Iterable, desc: str, total: int | None = None, unit: str = "it") -> Iterator:
    """Yield from ``items`` and report one step per item."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with task(desc, total, unit) as t:
        for item in items:
            yield item
            t.advance()
