"""Bounded, locked caches of loaded models, safe to share between threads.

Loading a model costs seconds and hundreds of megabytes, so encoders,
classifiers and generators are kept once loaded. A server holds many of them
for many users, so every cache here is bounded by bytes: when a new model
would push the total over the budget, the least recently used ones are
dropped (and closed, when they know how). One lock guards the table; a model
is loaded under its own key's lock, so two threads asking for the same model
load it once, and a slow load never blocks lookups of other models.

The budget is ``$INHOUSE_MODEL_CACHE_MB`` (default 4096) for the whole
process: every cache made without its own ``max_bytes`` (encoders,
classifiers, backbones, generators, the server's served models) shares one
:class:`MemoryBudget`, and a load that would go over it drops the least
recently used model of any of them, not only of its own cache.

    >>> c = ModelCache("example", max_bytes=100)
    >>> c.get_or_load("a", lambda: "model A", size=lambda m: 60)
    'model A'
    >>> c.get_or_load("b", lambda: "model B", size=lambda m: 60)   # "a" is dropped to make room
    'model B'
    >>> c.keys()
    ['b']
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from collections import OrderedDict
from typing import Any, Callable, Hashable

DEFAULT_MB = 4096


def default_budget() -> int:
    """Bytes the process's model caches may hold together: ``$INHOUSE_MODEL_CACHE_MB`` megabytes (default 4096)."""
    try:
        mb = int(os.environ.get("INHOUSE_MODEL_CACHE_MB", DEFAULT_MB))
    except ValueError:
        mb = DEFAULT_MB
    return max(mb, 0) << 20


def module_bytes(module: Any) -> int:
    """Bytes of a torch module's parameters and buffers (0 for anything else)."""
    total = 0
    for attr in ("parameters", "buffers"):
        fn = getattr(module, attr, None)
        if fn is None:
            continue
        try:
            total += sum(t.numel() * t.element_size() for t in fn())
        except Exception:  # not a torch module after all
            return total
    return total


class MemoryBudget:
    """Bytes several :class:`ModelCache` share; over it, the least recently used model of any of them goes.

    >>> b = MemoryBudget(100)
    >>> enc, clf = ModelCache("encoders", budget=b), ModelCache("classifiers", budget=b)
    >>> enc.get_or_load("e", lambda: "E", size=lambda m: 60)
    'E'
    >>> clf.get_or_load("c", lambda: "C", size=lambda m: 60)   # the encoder, used longest ago, is dropped
    'C'
    >>> enc.keys(), clf.keys(), b.total_bytes()
    ([], ['c'], 60)
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._caches: list["weakref.ref[ModelCache]"] = []
        self._lock = threading.Lock()  # taken before any cache's lock, never after
        self._tick = itertools.count()

    def join(self, cache: "ModelCache") -> None:
        with self._lock:
            self._caches.append(weakref.ref(cache))

    def caches(self) -> list["ModelCache"]:
        return [c for c in (r() for r in self._caches) if c is not None]

    def total_bytes(self) -> int:
        return sum(c.total_bytes() for c in self.caches())

    def enforce(self, keep: tuple["ModelCache", Hashable]) -> None:
        """Drop least recently used models (never ``keep``) until the caches fit the budget."""
        with self._lock:
            while self.total_bytes() > self.max_bytes:
                oldest = [(c.oldest(skip=keep[1] if c is keep[0] else None), c) for c in self.caches()]
                oldest = [(o, c) for o, c in oldest if o is not None]
                if not oldest:
                    return
                (_, key), cache = min(oldest, key=lambda x: x[0][0])
                cache.drop(key)


_PROCESS_BUDGET: list[MemoryBudget] = []
_PROCESS_LOCK = threading.Lock()


def process_budget() -> MemoryBudget:
    """The one budget every default :class:`ModelCache` of this process shares (made on first use)."""
    with _PROCESS_LOCK:
        if not _PROCESS_BUDGET:
            _PROCESS_BUDGET.append(MemoryBudget(default_budget()))
        return _PROCESS_BUDGET[0]


class ModelCache:
    """An LRU table of loaded models, bounded by bytes: its own ``max_bytes``, else the process's budget."""

    def __init__(self, name: str, max_bytes: int | None = None, on_evict: Callable[[Any], None] | None = None,
                 budget: MemoryBudget | None = None):
        self.name = name
        self.budget = budget or (MemoryBudget(max_bytes) if max_bytes is not None else process_budget())
        self.on_evict = on_evict
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._used: dict[Hashable, int] = {}
        self._lock = threading.Lock()
        self._loading: dict[Hashable, threading.Lock] = {}
        self.budget.join(self)

    @property
    def max_bytes(self) -> int:
        return self.budget.max_bytes

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            self._items.move_to_end(key)
            self._used[key] = next(self.budget._tick)
            return hit[0]

    def oldest(self, skip: Hashable | None = None) -> tuple[int, Hashable] | None:
        """(last use, key) of the least recently used entry other than ``skip``."""
        with self._lock:
            for key in self._items:
                if key != skip:
                    return self._used.get(key, -1), key
        return None

    def drop(self, key: Hashable) -> None:
        with self._lock:
            hit = self._items.pop(key, None)
            self._used.pop(key, None)
        if hit is not None:
            self._evict(hit[0])

    def get_or_load(self, key: Hashable, load: Callable[[], Any], *, size: Callable[[Any], int] | None = None) -> Any:
        """The cached value for ``key``, or ``load()`` stored under it (loaded once even when asked concurrently)."""
        found = self.get(key)
        if found is not None:
            return found
        with self._lock:
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            found = self.get(key)
            if found is not None:
                return found
            value = load()
            nbytes = int(size(value)) if size else module_bytes(value)
            self.put(key, value, nbytes)
        with self._lock:
            self._loading.pop(key, None)
        return value

    def put(self, key: Hashable, value: Any, nbytes: int) -> None:
        with self._lock:
            self._items[key] = (value, nbytes)
            self._items.move_to_end(key)
            self._used[key] = next(self.budget._tick)
        self.budget.enforce(keep=(self, key))  # never drops what was just asked for

    def total_bytes(self) -> int:
        return sum(n for _, n in list(self._items.values()))

    def keys(self) -> list:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            values = [v for v, _ in self._items.values()]
            self._items.clear()
            self._used.clear()
        for v in values:
            self._evict(v)

    def _evict(self, value: Any) -> None:
        if self.on_evict is not None:
            try:
                self.on_evict(value)
            except Exception:  # pragma: no cover - closing must never break a caller
                pass
