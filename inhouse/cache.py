"""Bounded, locked caches of loaded models, safe to share between threads.

Loading a model costs seconds and hundreds of megabytes, so encoders,
classifiers and generators are kept once loaded. A server holds many of them
for many users, so every cache here is bounded by bytes: when a new model
would push the total over the budget, the least recently used ones are
dropped (and closed, when they know how). One lock guards the table; a model
is loaded under its own key's lock, so two threads asking for the same model
load it once, and a slow load never blocks lookups of other models.

The budget is ``$INHOUSE_MODEL_CACHE_MB`` (default 4096) per cache.

    >>> c = ModelCache("example", max_bytes=100)
    >>> c.get_or_load("a", lambda: "model A", size=lambda m: 60)
    'model A'
    >>> c.get_or_load("b", lambda: "model B", size=lambda m: 60)   # "a" is dropped to make room
    'model B'
    >>> c.keys()
    ['b']
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable

DEFAULT_MB = 4096


def default_budget() -> int:
    """Bytes each model cache may hold: ``$INHOUSE_MODEL_CACHE_MB`` megabytes (default 4096)."""
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


class ModelCache:
    """An LRU table of loaded models, bounded by their total size in bytes."""

    def __init__(self, name: str, max_bytes: int | None = None, on_evict: Callable[[Any], None] | None = None):
        self.name = name
        self.max_bytes = default_budget() if max_bytes is None else max_bytes
        self.on_evict = on_evict
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            self._items.move_to_end(key)
            return hit[0]

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
        evicted = []
        with self._lock:
            self._items[key] = (value, nbytes)
            self._items.move_to_end(key)
            while self.total_bytes() > self.max_bytes and len(self._items) > 1:
                old_key, (old, _) = self._items.popitem(last=False)
                if old_key == key:  # never drop what was just asked for
                    self._items[key] = (value, nbytes)
                    break
                evicted.append(old)
        for old in evicted:
            self._evict(old)

    def total_bytes(self) -> int:
        return sum(n for _, n in self._items.values())

    def keys(self) -> list:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            values = [v for v, _ in self._items.values()]
            self._items.clear()
        for v in values:
            self._evict(v)

    def _evict(self, value: Any) -> None:
        if self.on_evict is not None:
            try:
                self.on_evict(value)
            except Exception:  # pragma: no cover - closing must never break a caller
                pass
